"""S3 objects and DVC remotes: where an object is, how to reach it, what its errors mean, and
uploads. Shared by download (stages.store.storage) and publish.

A location is either a local path or an S3 object. S3 objects are named `s3://bucket/key`
(endpoint from the standard AWS chain, e.g. AWS_ENDPOINT_URL) or `remote://<name>/key`, where
<name> is a DVC remote: the same remote DVC uses to track the object, so the endpoint, bucket,
prefix and any credentials kept with the remote (`dvc remote modify --local`) are configured in
exactly one place and read the way DVC reads them.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stages.errors import ConfigError, PipelineError, TransientError, first_line
from stages.rules.config import RetryPolicy
from stages.store.retry import with_retries

log = logging.getLogger(__name__)

# S3 error codes that no retry can fix, with the fix to suggest.
PERMANENT_S3_ERRORS = {
    "NoSuchKey": "the object does not exist: check the engine's `file` and `{setting}`",
    "404": "the object does not exist: check the engine's `file` and `{setting}`",
    "NotFound": "the object does not exist: check the engine's `file` and `{setting}`",
    "NoSuchBucket": "no such bucket: check the bucket in `{setting}` or the DVC remote",
    "AccessDenied": "access denied: give the credentials s3:GetObject/s3:PutObject on the bucket",
    "403": "access denied: give the credentials s3:GetObject/s3:PutObject on the bucket",
    "AllAccessDisabled": "access to the bucket is disabled: check the bucket's policy",
    "InvalidAccessKeyId": "the AWS access key is not known: check AWS_ACCESS_KEY_ID or AWS_PROFILE",
    "SignatureDoesNotMatch": "the AWS secret key is wrong: check AWS_SECRET_ACCESS_KEY/AWS_PROFILE",
    "ExpiredToken": "the AWS session token expired: refresh the credentials",
    "InvalidToken": "the AWS session token is invalid: refresh the credentials",
}
TRANSIENT_S3_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
    "PreconditionFailed",  # the object changed under a resumed read: start again
}


@dataclass(frozen=True)
class Credentials:
    """AWS credentials a DVC remote keeps in its config (usually .dvc/config.local); never shown."""

    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    credentials_file: str | None = None  # the remote's `credentialpath`
    config_file: str | None = None  # the remote's `configpath`

    def __repr__(self) -> str:
        return "Credentials(***)"


@dataclass(frozen=True)
class S3Object:
    """An object on S3; `remote` names the DVC remote it was resolved through, if any."""

    bucket: str
    key: str
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    credentials: Credentials = field(default_factory=Credentials, repr=False, compare=False)
    ssl_verify: bool | str = True
    remote: str | None = None

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


Location = Path | S3Object


def resolve(root: str, name: str, project: Path) -> Location:
    """The location of file `name` under `root` (a folder, `s3://bucket/prefix` or `remote://r/p`)."""
    root = root.rstrip("/")
    if root.startswith("remote://"):
        remote, _, prefix = root.removeprefix("remote://").partition("/")
        base = _dvc_remote(project, remote)
        return dataclasses.replace(base, key=_join(base.key, prefix, name))
    if root.startswith("s3://"):
        bucket, _, prefix = root.removeprefix("s3://").partition("/")
        return S3Object(bucket=bucket, key=_join(prefix, name))
    if "://" in root:
        raise ConfigError(f"{root!r} is neither a folder, s3://bucket/prefix nor remote://<name>.")
    return (project / root / name).resolve()


def describe(location: Location, project: Path | None = None) -> str:
    """The location as users write it: s3://bucket/key, or a path relative to the project."""
    if isinstance(location, S3Object):
        return location.uri
    if project is not None and location.is_relative_to(project):
        return str(location.relative_to(project))
    return str(location)


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


def _dvc_remote(project: Path, name: str) -> S3Object:
    """Remote `name` as DVC itself reads it: .dvc/config, .dvc/config.local, the global and the
    system config merged (the later wins), relative paths resolved against their file."""
    from dvc.config import Config
    from dvc.config import ConfigError as DvcConfigError

    try:
        config = Config(dvc_dir=str(project / ".dvc"))
    except DvcConfigError as exc:
        raise ConfigError(
            f"DVC's config is invalid ({first_line(exc)}); fix .dvc/config."
        ) from None
    section: dict[str, Any] = config.get("remote", {}).get(name, {})
    url = str(section.get("url", ""))
    if not url.startswith("s3://"):
        raise ConfigError(
            f"DVC remote {name!r} is not an S3 remote in .dvc/config; "
            f"add it with `dvc remote add {name} s3://<bucket>/<prefix>`."
        )
    bucket, _, key = url.removeprefix("s3://").partition("/")

    def text(option: str) -> str | None:
        value = section.get(option)
        return str(value) if value not in (None, "") else None

    return S3Object(
        bucket=bucket,
        key=key,
        endpoint_url=text("endpointurl"),
        region=text("region"),
        profile=text("profile"),
        credentials=Credentials(
            access_key_id=text("access_key_id"),
            secret_access_key=text("secret_access_key"),
            session_token=text("session_token"),
            credentials_file=text("credentialpath"),
            config_file=text("configpath"),
        ),
        ssl_verify=section.get("ssl_verify", True),
        remote=name,
    )


def s3_client(obj: S3Object, timeout: float) -> Any:  # botocore builds its methods at run time
    """A botocore S3 client with the remote's own settings over the standard AWS chain; retries
    are ours (params.yaml), so botocore's own are turned off."""
    import botocore.session
    from botocore.config import Config

    session = botocore.session.Session(profile=obj.profile)
    creds = obj.credentials
    if creds.credentials_file:
        session.set_config_variable("credentials_file", creds.credentials_file)
    if creds.config_file:
        session.set_config_variable("config_file", creds.config_file)
    config = Config(
        retries={"total_max_attempts": 1},
        connect_timeout=timeout,
        read_timeout=timeout,
        s3={"addressing_style": "path"} if obj.endpoint_url else None,
    )
    return session.create_client(
        "s3",
        endpoint_url=obj.endpoint_url,
        region_name=obj.region,
        config=config,
        verify=obj.ssl_verify,
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
        aws_session_token=creds.session_token,
    )


def is_transient(exc: BaseException) -> bool:
    """True for failures a retry may cure: 5xx, throttling, timeouts, resets, short bodies."""
    from botocore import exceptions as boto

    if isinstance(exc, boto.ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        code = exc.response.get("Error", {}).get("Code", "")
        return code in TRANSIENT_S3_CODES or (status >= 500 and code not in PERMANENT_S3_ERRORS)
    if isinstance(exc, boto.NoCredentialsError | boto.PartialCredentialsError):
        return False
    return isinstance(
        exc,
        TransientError
        | boto.ConnectionError
        | boto.HTTPClientError
        | boto.IncompleteReadError
        | boto.ResponseStreamingError
        | ConnectionError
        | TimeoutError,
    )


def explain(
    exc: BaseException, what: str, remote: str | None = None, setting: str = "source.root"
) -> str:
    """One sentence for a failed S3 call on `what`, with the likely fix; never a secret.
    `remote` is the DVC remote the object was resolved through, named in credential fixes;
    `setting` is the params key that chose the location (source.root, publish.to)."""
    from botocore import exceptions as boto

    if isinstance(exc, boto.ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        hint = PERMANENT_S3_ERRORS.get(code)
        if hint:
            return f"{what}: {hint.format(setting=setting)} ({code})."
        return f"{what}: S3 answered {code or 'an error'} ({first_line(exc)})."
    if isinstance(exc, boto.NoCredentialsError | boto.PartialCredentialsError):
        where = f"`dvc remote modify --local {remote} access_key_id ...` (and secret_access_key), "
        return (
            f"{what}: no AWS credentials found; set AWS_PROFILE or "
            f"AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or {where if remote else ''}"
            "never in params.yaml."
        )
    if isinstance(exc, boto.ProfileNotFound):
        return f"{what}: {first_line(exc)}; fix AWS_PROFILE or the remote's `profile`."
    return f"{what}: {first_line(exc)}."


# DVC's own words when it cannot hash an S3 dependency (it checks dependencies before running a
# stage, so the stage's own one-line message never shows), and the fix for each. {remote} is the
# DVC remote of `source.root`.
DVC_S3_FAILURES = (
    (
        ("Forbidden", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "(403)"),
        "S3 refused the credentials DVC used for the crawl files: set them with `dvc remote "
        "modify --local {remote} access_key_id ...` and `... secret_access_key ...` (or "
        "AWS_PROFILE / AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY) and allow s3:GetObject",
    ),
    (
        ("ExpiredToken", "InvalidToken"),
        "the AWS session token expired: refresh the credentials",
    ),
    (
        ("NoSuchBucket", "bucket does not exist", "does not exist"),
        "the crawl object is not there: check the bucket and prefix in the url of remote "
        "{remote} (`dvc remote list`, `dvc remote modify {remote} url s3://<bucket>/<prefix>`) "
        "and the engine's `file`; `python -m stages.download --engine <engine>` names the cause",
    ),
    (
        ("Unable to locate credentials", "NoCredentialsError"),
        "DVC found no AWS credentials: set them with `dvc remote modify --local {remote} "
        "access_key_id ...` and `... secret_access_key ...`, or AWS_PROFILE",
    ),
)


def explain_dvc_failure(error: BaseException | str, remote: str | None = None) -> str | None:
    """The fix for DVC's own error about an S3 dependency (`Forbidden: ... HeadObject`,
    `dependency 'remote://...' does not exist`, missing credentials), or None for any other.

    `error` is DVC's message or exception (its causes are read too: DVC wraps botocore's error);
    `remote` names the DVC remote of `source.root` in the fix."""
    texts, seen = [], set()
    cause: BaseException | str | None = error
    while isinstance(cause, BaseException) and id(cause) not in seen:
        seen.add(id(cause))
        texts.append(f"{type(cause).__name__}: {cause}")
        cause = cause.__cause__ or cause.__context__
    if isinstance(error, str):
        texts.append(error)
    message = " ".join(texts)
    for markers, fix in DVC_S3_FAILURES:
        if any(marker in message for marker in markers):
            return fix.format(remote=remote or "<remote>")
    return None


def is_boto_or_transient(exc: BaseException) -> bool:
    """True for a botocore failure or a transient one: what `explain` turns into a sentence."""
    return is_transient(exc) or type(exc).__module__.startswith("botocore")


def upload(
    path: Path,
    target: S3Object,
    *,
    content_type: str,
    policy: RetryPolicy,
    timeout: float,
    label: str,
) -> dict[str, Any]:
    """Upload `path` to `target` with retries; returns the object's ETag and size."""

    def attempt(number: int) -> dict[str, Any]:
        client = s3_client(target, timeout)
        with path.open("rb") as body:
            response = client.put_object(
                Bucket=target.bucket, Key=target.key, Body=body, ContentType=content_type
            )
        return {"etag": response.get("ETag", "").strip('"'), "attempts": number}

    try:
        result = with_retries(
            policy, attempt, is_transient=is_transient, describe=f"{label}: {target.uri}"
        )
    except Exception as exc:
        if not is_boto_or_transient(exc):
            raise
        message = explain(exc, f"{label}: {target.uri}", target.remote, "publish.to")
        if is_transient(exc):
            message += " Gave up after the configured retries; rerun `dvc repro` later."
        raise PipelineError(message) from None
    return {**result, "size": path.stat().st_size}
