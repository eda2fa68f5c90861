"""Atomic file writes: a crash or a kill leaves the previous file, never half of a new one."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

# Failures of a write that name no file; the output being written is the one to name.
_WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}


@contextlib.contextmanager
def atomic_output(path: Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temp file beside `path`; on a clean exit fsync it and rename it over `path`.

    The temp file lives in the same folder so the rename is atomic; it is removed on error.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_orphans(path)
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent
        )
    except OSError as exc:
        exc.filename = str(path)  # name the output, not a random temp name beside it
        raise
    tmp = Path(tmp_name)
    os.chmod(fd, _CREATE_MODE)  # mkstemp makes 0600; outputs should look like any other file
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None and exc.errno in _WRITE_ERRORS:
            exc.filename = str(path)  # a full disk says ENOSPC, not which file was being written
        raise
    _fsync_folder(path.parent)


def _sweep_orphans(path: Path) -> None:
    """Remove temp files a killed writer of `path` left behind (their pid is gone)."""
    for orphan in path.parent.glob(f".{path.name}.*.tmp"):
        pid = orphan.name.removeprefix(f".{path.name}.").split(".", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            orphan.unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    """True when a process with `pid` exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it is just not ours
    return True


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


_CREATE_MODE = 0o666 & ~_umask()


def write_json(path: Path, data: Any) -> None:
    """Write `data` as stable, readable JSON, atomically."""
    with atomic_output(path, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True, default=str)
        handle.write("\n")


def _fsync_folder(folder: Path) -> None:
    # The rename is durable only once the folder entry is on disk.
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
