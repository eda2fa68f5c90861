"""Where crawl files and workbooks live (a local folder or S3) and how bytes move to and fro.

A location is either a local path or an S3 object. S3 objects are named `s3://bucket/key`
(endpoint from the standard AWS chain, e.g. AWS_ENDPOINT_URL) or `remote://<name>/key`, where
<name> is a DVC remote in .dvc/config: the same remote DVC uses to track the object, so the
endpoint, bucket and prefix are configured in exactly one place.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from stages.config import RetryPolicy
from stages.errors import ConfigError, PipelineError, TransientError
from stages.files import atomic_output
from stages.progress import Progress
from stages.retry import first_line, with_retries

log = logging.getLogger(__name__)
CHUNK = 1 << 20

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
class S3Object:
    bucket: str
    key: str
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None

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
        return S3Object(
            bucket=base.bucket,
            key=_join(base.key, prefix, name),
            endpoint_url=base.endpoint_url,
            region=base.region,
            profile=base.profile,
        )
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
    """Read remote `name` from .dvc/config and .dvc/config.local (the local file wins)."""
    from configobj import ConfigObj

    section: dict[str, Any] = {}
    for file in (project / ".dvc" / "config", project / ".dvc" / "config.local"):
        if file.exists():
            section.update(ConfigObj(str(file)).get(f'remote "{name}"', {}))
    url = section.get("url", "")
    if not url.startswith("s3://"):
        raise ConfigError(
            f"DVC remote {name!r} is not an S3 remote in .dvc/config; "
            f"add it with `dvc remote add {name} s3://<bucket>/<prefix>`."
        )
    bucket, _, key = url.removeprefix("s3://").partition("/")
    return S3Object(
        bucket=bucket,
        key=key,
        endpoint_url=section.get("endpointurl") or None,
        region=section.get("region") or None,
        profile=section.get("profile") or None,
    )


def s3_client(obj: S3Object, timeout: float):
    """A botocore S3 client; retries are ours (params.yaml), so botocore's own are turned off."""
    import botocore.session
    from botocore.config import Config

    session = botocore.session.Session(profile=obj.profile)
    config = Config(
        retries={"total_max_attempts": 1},
        connect_timeout=timeout,
        read_timeout=timeout,
        s3={"addressing_style": "path"} if obj.endpoint_url else None,
    )
    return session.create_client(
        "s3", endpoint_url=obj.endpoint_url, region_name=obj.region, config=config
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


def explain(exc: BaseException, what: str, setting: str = "source.root") -> str:
    """One sentence for a failed S3 call on `what`, with the likely fix naming the params key
    `setting` that chose the location (source.root, publish.to); never a secret."""
    from botocore import exceptions as boto

    if isinstance(exc, boto.ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        hint = PERMANENT_S3_ERRORS.get(code)
        if hint:
            return f"{what}: {hint.format(setting=setting)} ({code})."
        return f"{what}: S3 answered {code or 'an error'} ({first_line(exc)})."
    if isinstance(exc, boto.NoCredentialsError | boto.PartialCredentialsError):
        return (
            f"{what}: no AWS credentials found; set AWS_PROFILE or "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (never in params.yaml)."
        )
    return f"{what}: {first_line(exc)}."


@dataclass
class FetchResult:
    size: int
    md5: str
    etag: str | None
    modified: datetime
    attempts: int


def fetch(
    source: Location, dest: Path, *, policy: RetryPolicy, timeout: float, label: str
) -> FetchResult:
    """Copy `source` to `dest` atomically, retrying transient failures and resuming a broken
    transfer from the bytes already written when the source allows ranged reads."""
    with atomic_output(dest) as out:
        state = _Transfer(out)

        def attempt(number: int) -> FetchResult:
            state.attempts = number
            if isinstance(source, Path):
                _copy_local(source, state)
            else:
                _copy_s3(source, state, timeout, label)
            return FetchResult(
                state.written, state.md5.hexdigest(), state.etag, state.modified, number
            )

        try:
            return with_retries(
                policy, attempt, is_transient=is_transient, describe=f"{label}: {describe(source)}"
            )
        except FileNotFoundError:
            raise PipelineError(
                f"{label}: {source} does not exist; check `source.root` and the engine's `file` "
                "in params.yaml."
            ) from None
        except Exception as exc:
            if isinstance(source, Path) or not _is_boto_or_transient(exc):
                raise
            message = explain(exc, f"{label}: {describe(source)}")
            if is_transient(exc):
                message += f" Gave up after {state.attempts} attempt(s); rerun `dvc repro` later."
            raise PipelineError(message) from None


class _Transfer:
    """Bytes written so far, their hash and the object's ETag: what a resumed read continues."""

    def __init__(self, out: IO[bytes]):
        self.out = out
        self.written = 0
        self.md5 = hashlib.md5()
        self.etag: str | None = None
        self.etag_is_md5 = True  # a single-part object's ETag (no "-") is its MD5
        self.modified = datetime.now(UTC)
        self.attempts = 0

    def restart(self) -> None:
        self.out.seek(0)
        self.out.truncate()
        self.written = 0
        self.md5 = hashlib.md5()

    def write(self, chunk: bytes) -> None:
        self.out.write(chunk)
        self.md5.update(chunk)
        self.written += len(chunk)


def _copy_local(source: Path, state: _Transfer) -> None:
    with source.open("rb") as handle:
        handle.seek(state.written)
        stat = os.fstat(handle.fileno())
        size = stat.st_size
        state.modified = datetime.fromtimestamp(stat.st_mtime, UTC)
        progress = Progress(f"read {source.name}", total=size, unit="B")
        progress.done = state.written
        while chunk := handle.read(CHUNK):
            state.write(chunk)
            progress.advance(len(chunk))
        progress.finish()


def _copy_s3(source: S3Object, state: _Transfer, timeout: float, label: str) -> None:
    from botocore.exceptions import ClientError

    client = s3_client(source, timeout)
    request: dict[str, Any] = {"Bucket": source.bucket, "Key": source.key}
    if state.written and state.etag:
        # Continue where the broken attempt stopped, but only from the same object version.
        request.update(Range=f"bytes={state.written}-", IfMatch=state.etag)
    try:
        response = client.get_object(**request)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
            state.restart()
            state.etag = None
        raise
    if "Range" not in request:
        state.restart()
    state.etag = response.get("ETag")
    state.modified = response.get("LastModified", state.modified)
    # With SSE-KMS or SSE-C the ETag of a single-part object is not the MD5 of its bytes.
    state.etag_is_md5 = not (
        str(response.get("ServerSideEncryption", "")).startswith("aws:kms")
        or response.get("SSECustomerAlgorithm")
    )
    total = state.written + response["ContentLength"]
    progress = Progress(f"{label}: download", total=total, unit="B")
    progress.done = state.written
    for chunk in response["Body"].iter_chunks(CHUNK):
        state.write(chunk)
        progress.advance(len(chunk))
    progress.finish()
    if state.written != total:
        raise TransientError(f"body cut short at {state.written} of {total} bytes")
    # The hash covers every byte from the first, so a resumed transfer is checked whole too: a
    # server that ignored If-Match would otherwise splice two versions of the object.
    etag = (state.etag or "").strip('"')
    if state.etag_is_md5 and "-" not in etag and etag and etag != state.md5.hexdigest():
        state.restart()
        raise TransientError("content does not match the object's ETag")


def _is_boto_or_transient(exc: BaseException) -> bool:
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
        if not _is_boto_or_transient(exc):
            raise
        message = explain(exc, f"{label}: {target.uri}", "publish.to")
        if is_transient(exc):
            message += " Gave up after the configured retries; rerun `dvc repro` later."
        raise PipelineError(message) from None
    return {**result, "size": path.stat().st_size}
