"""Downloads: a crawl file copied from a local folder or S3 (stages.store.s3) to a local file, whole
and of one version.

An S3 transfer is pinned to the ETag (and the VersionId on a versioned bucket) its first
response had, resumed only by a 206 answer that continues at the bytes already written,
verified whole (MD5, or the recomputed multipart ETag) and checked against the live object at
the end: DVC hashes a dependency after the command ends and would otherwise record a newer
version than the one fetched. A local file must have the same size, mtime and inode after the
copy as before it. Only download imports this module (publish uses stages.store.s3), so an edit
here re-runs download and nothing else.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol

from stages.errors import PipelineError, TransientError
from stages.rules.config import RetryPolicy
from stages.store.files import atomic_output
from stages.store.retry import with_retries
from stages.store.s3 import (
    Location,
    S3Object,
    describe,
    explain,
    is_boto_or_transient,
    is_transient,
    s3_client,
)

log = logging.getLogger(__name__)
CHUNK = 1 << 20


class ByteMeter(Protocol):
    """Counts the bytes of one copy as they arrive (stages.observe.progress.Progress is one)."""

    done: int

    def advance(self, amount: int) -> None: ...

    def finish(self) -> None: ...


# (what is being copied, its size in bytes) -> the meter that counts it; the caller chooses how
# progress is shown, so storage knows nothing of terminals and logs.
Meter = Callable[[str, int], ByteMeter]


@dataclass
class FetchResult:
    """What a download fetched: the bytes' size and MD5 and the source version they came from.

    `modified` is the source's modification time; `verified` says how the bytes were checked
    against the source: "md5" (single-part ETag), "multipart-etag" (recomputed from the parts),
    "stat" (a local file's size and mtime before and after) or "size" (nothing better exists).
    """

    size: int
    md5: str
    etag: str | None
    version_id: str | None
    modified: datetime
    attempts: int
    verified: str


class SourceChanged(TransientError):
    """The source changed while it was being copied: the copy starts again from byte 0."""


def fetch(
    source: Location,
    dest: Path,
    *,
    policy: RetryPolicy,
    timeout: float,
    label: str,
    meter: Meter,
) -> FetchResult:
    """Copy `source` to `dest` atomically, retrying transient failures and resuming a broken
    transfer from the bytes already written when the source allows ranged reads.

    The copy is of one version: a source that changed during the copy is copied again (within
    the retry budget), so DVC, which hashes the dependency after the command, records the
    version that was fetched. `meter` counts each attempt's bytes. Raises PipelineError with one
    line naming `label` and the fix."""
    with atomic_output(dest) as out:
        state = _Transfer(out, meter)

        def attempt(number: int) -> FetchResult:
            state.attempts = number
            if isinstance(source, Path):
                _copy_local(source, state)
            else:
                _copy_s3(source, state, timeout, label)
            return FetchResult(
                size=state.written,
                md5=state.md5.hexdigest(),
                etag=state.pin.etag if state.pin else None,
                version_id=state.pin.version_id if state.pin else None,
                modified=state.modified,
                attempts=number,
                verified=state.verified,
            )

        what = f"{label}: {describe(source)}"
        try:
            return with_retries(policy, attempt, is_transient=is_transient, describe=what)
        except FileNotFoundError:
            raise PipelineError(
                f"{source} does not exist; check `source.root` and the engine's `file` "
                "in params.yaml."
            ) from None
        except SourceChanged as exc:
            raise PipelineError(
                f"{what}: {exc}, and the retries are spent ({state.attempts} attempt(s)); run "
                "`dvc repro` again once whatever writes the crawl file has finished."
            ) from None
        except Exception as exc:
            if isinstance(source, Path) or not is_boto_or_transient(exc):
                raise
            message = explain(exc, what, source.remote)
            if is_transient(exc):
                message += f" Gave up after {state.attempts} attempt(s); rerun `dvc repro` later."
            raise PipelineError(message) from None


@dataclass(frozen=True)
class _Version:
    """The version of an S3 object a transfer is pinned to."""

    etag: str
    version_id: str | None
    size: int
    part_size: int | None  # a multipart object's part size, when S3 told it

    @property
    def parts(self) -> int:
        """The part count a multipart ETag ("<md5>-<parts>") ends with; 0 for single-part."""
        _, dash, count = self.etag.strip('"').partition("-")
        return int(count) if dash and count.isdigit() else 0


class _Transfer:
    """Bytes written so far, their hashes and the version they belong to: what a resumed read
    continues, and what a restart throws away."""

    def __init__(self, out: IO[bytes], meter: Meter):
        self.out = out
        self.meter = meter
        self.attempts = 0
        self.pin: _Version | None = None
        self.etag_is_md5 = True  # with SSE-KMS or SSE-C an ETag is not an MD5 of the bytes
        self.modified = datetime.now(UTC)
        self.verified = "size"
        self.restart()

    def restart(self) -> None:
        self.out.seek(0)
        self.out.truncate()
        self.written = 0
        self.md5 = hashlib.md5()
        self.part_digests: list[bytes] = []
        self.part_md5 = hashlib.md5()
        self.part_written = 0

    def unpin(self) -> None:
        """Forget the version: the next attempt starts from byte 0 with whatever is live."""
        self.restart()
        self.pin = None

    def write(self, chunk: bytes) -> None:
        self.out.write(chunk)
        self.md5.update(chunk)
        self.written += len(chunk)
        part_size = self.pin.part_size if self.pin else None
        if not part_size:
            return
        view = memoryview(chunk)
        while view:  # S3's multipart ETag is the MD5 of the parts' MD5s
            room = part_size - self.part_written
            self.part_md5.update(view[:room])
            self.part_written += min(room, len(view))
            view = view[room:]
            if self.part_written == part_size:
                self.part_digests.append(self.part_md5.digest())
                self.part_md5, self.part_written = hashlib.md5(), 0

    def multipart_etag(self) -> str:
        digests = self.part_digests + ([self.part_md5.digest()] if self.part_written else [])
        return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"


def _copy_local(source: Path, state: _Transfer) -> None:
    """Copy a local file; its size, mtime and inode after the copy must be those before it."""
    with source.open("rb") as handle:
        before = os.fstat(handle.fileno())
        if state.written > before.st_size:
            state.restart()
        handle.seek(state.written)
        state.modified = _committed_time(source) or datetime.fromtimestamp(before.st_mtime, UTC)
        progress = state.meter(f"read {source.name}", before.st_size)
        progress.done = state.written
        while chunk := handle.read(CHUNK):
            state.write(chunk)
            progress.advance(len(chunk))
        progress.finish()
    after = source.stat()
    if _identity(after) != _identity(before) or state.written != after.st_size:
        state.restart()
        raise SourceChanged(f"{source.name} changed while it was copied")
    state.verified = "stat"


def _committed_time(source: Path) -> datetime | None:
    """When `source` was last committed, if git tracks it unchanged; else None.

    A checkout sets every file's mtime to the moment of the clone, so for a crawl file kept in
    git (the bundled samples) the commit is the stable "crawled at": leads' First Seen and the
    committed dvc.lock then come out the same in every clone."""
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args, "--", source.name],
            cwd=source.parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()

    try:
        if not git("ls-files") or git("status", "--porcelain"):
            return None  # untracked, or changed since its last commit: the mtime tells
        stamp = git("log", "-1", "--format=%cI")
    except (OSError, subprocess.SubprocessError):
        return None  # no git, or not a work tree
    return datetime.fromisoformat(stamp).astimezone(UTC) if stamp else None


def _identity(stat: os.stat_result) -> tuple[int, int, int, int]:
    return stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_dev


def _copy_s3(source: S3Object, state: _Transfer, timeout: float, label: str) -> None:
    from botocore.exceptions import ClientError

    client = s3_client(source, timeout)
    request: dict[str, Any] = {"Bucket": source.bucket, "Key": source.key}
    pin = state.pin
    if pin:
        request["IfMatch"] = pin.etag
        if pin.version_id:
            request["VersionId"] = pin.version_id
        if state.written:
            request["Range"] = f"bytes={state.written}-"
    try:
        response = client.get_object(**request)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
            state.unpin()  # replaced since the last attempt: start again with the new one
        raise
    status = response["ResponseMetadata"]["HTTPStatusCode"]
    if pin is None:
        state.restart()
        pin = state.pin = _pin(client, source, response)
    elif response.get("ETag") != pin.etag or _version_id(response) != pin.version_id:
        # A store that ignores If-Match (or a proxy that drops it) served another version.
        state.unpin()
        raise SourceChanged("the object was replaced during the download")
    if state.written and not (
        status == 206
        and str(response.get("ContentRange", "")).startswith(f"bytes {state.written}-")
    ):
        # Range ignored: this body is the whole object (a 200), never a continuation.
        log.warning("%s: the server ignored the range request; starting from byte 0", label)
        state.restart()
        if status != 200:
            raise TransientError(f"unexpected HTTP {status} to a ranged read")
    state.modified = response.get("LastModified", state.modified)
    state.etag_is_md5 = not (
        str(response.get("ServerSideEncryption", "")).startswith("aws:kms")
        or response.get("SSECustomerAlgorithm")
    )
    progress = state.meter(f"{label}: download", pin.size)
    progress.done = state.written
    for chunk in response["Body"].iter_chunks(CHUNK):
        state.write(chunk)
        progress.advance(len(chunk))
    progress.finish()
    if state.written < pin.size:
        raise TransientError(f"body cut short at {state.written} of {pin.size} bytes")
    _verify(state, pin)
    # DVC hashes the dependency after the command: it must still be the version fetched.
    live = client.head_object(Bucket=source.bucket, Key=source.key)
    if live.get("ETag") != pin.etag or _version_id(live) != pin.version_id:
        state.unpin()
        raise SourceChanged("the object was replaced during the download")


def _pin(client: Any, source: S3Object, response: dict[str, Any]) -> _Version:
    """The version a first, unconditional GET answered with; for a multipart object also its
    part size (HeadObject of part 1), so the multipart ETag can be recomputed."""
    version = _Version(
        etag=response["ETag"],
        version_id=_version_id(response),
        size=int(response["ContentLength"]),
        part_size=None,
    )
    if version.parts:
        try:
            part = client.head_object(Bucket=source.bucket, Key=source.key, PartNumber=1)
            part_size = int(part["ContentLength"])
        except Exception as exc:
            if not is_boto_or_transient(exc) or is_transient(exc):
                raise
            part_size = 0  # a store without part numbers: the size check is what is left
        if part_size and math.ceil(version.size / part_size) == version.parts:
            version = dataclasses.replace(version, part_size=part_size)
    return version


def _version_id(response: dict[str, Any]) -> str | None:
    """The VersionId of a versioned bucket's object; None for an unversioned one ("null")."""
    value = response.get("VersionId")
    return None if value in (None, "", "null") else str(value)


def _verify(state: _Transfer, pin: _Version) -> None:
    """The bytes must be the object's: its size, and its MD5 or multipart ETag when S3's ETag
    is one (not with SSE-KMS/SSE-C, whose ETags are not digests of the bytes)."""
    etag = pin.etag.strip('"')
    if state.written != pin.size:
        state.restart()
        raise TransientError(f"received {state.written} bytes of a {pin.size}-byte object")
    if not state.etag_is_md5:
        state.verified = "size"
    elif not pin.parts:
        if etag != state.md5.hexdigest():
            state.restart()
            raise TransientError("content does not match the object's ETag")
        state.verified = "md5"
    elif pin.part_size:
        if etag != state.multipart_etag():
            state.restart()
            raise TransientError("content does not match the object's multipart ETag")
        state.verified = "multipart-etag"
    else:
        log.warning("%s: multipart object with unknown part size: checked by size only", etag)
        state.verified = "size"
