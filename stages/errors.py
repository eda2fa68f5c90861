"""Error types every stage understands, and the few failures of the machine told in one line.

A `PipelineError` is permanent and meant for a person: its message is one sentence naming the
engine, the file or key, and the fix. The stage runner prints it and exits non-zero without a
traceback. An OSError a person can fix (disk full, read-only folder, permission denied) is told
the same way (`explain_os_error`). Anything else escaping a stage is a bug and keeps its
traceback.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator


class PipelineError(Exception):
    """A permanent failure with a message written for the user."""


class ConfigError(PipelineError):
    """params.yaml, dvc config or the environment is wrong; nothing was done."""


class TransientError(Exception):
    """A failure worth retrying (network hiccup, throttling, lost DB connection)."""


_WRITABLE = "make it writable, or point `paths` in params.yaml at a folder that is"
# errno -> what happened, what to do. Only failures of the machine a person can fix.
_OS_ERRORS = {
    errno.ENOSPC: ("no space left on the device", "free disk space and run the stage again"),
    errno.EDQUOT: ("disk quota exceeded", "free space or raise the quota, then run again"),
    errno.EFBIG: (
        "file too large for this process's file size limit",
        "raise the limit (ulimit -f) and run again",
    ),
    errno.EROFS: ("read-only file system", _WRITABLE),
    errno.EACCES: ("permission denied", "give this user access to it"),
    errno.EPERM: ("operation not permitted", "give this user access to it"),
    errno.ENOTDIR: (
        "a part of the path is a file, not a folder",
        "move that file away or change `paths` in params.yaml",
    ),
    errno.EEXIST: (
        "a file is in the way of a folder",
        "move that file away or change `paths` in params.yaml",
    ),
    errno.EISDIR: ("it is a folder, not a file", "remove or rename the folder"),
}


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type when the message is empty."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def explain_os_error(exc: BaseException) -> str | None:
    """One line for an OSError a person can fix ("data/exports/rms.xlsx: no space left on the
    device (ENOSPC); free disk space ..."); None for anything else (a bug). The stage runner
    puts the stage's name in front, as for every error."""
    if not isinstance(exc, OSError) or exc.errno not in _OS_ERRORS:
        return None
    what, fix = _OS_ERRORS[exc.errno]
    where = f"{_shown(exc.filename)}: " if exc.filename else ""
    return f"{where}{what} ({errno.errorcode[exc.errno]}); {fix}."


def _shown(filename: object) -> str:
    """A path relative to the working directory (the project root under DVC) when inside it."""
    text = os.fsdecode(filename) if isinstance(filename, str | bytes) else str(filename)
    try:
        relative = os.path.relpath(text)
    except ValueError:
        return text
    return text if relative.startswith("..") else relative


def cli(main: Callable[[], int]) -> int:
    """Run a command's `main` so that `... | head` ends it quietly: when the reader of stdout
    goes away, exit with 141 (as a process killed by SIGPIPE) and no traceback."""
    try:
        code = main()
        sys.stdout.flush()  # inside the try: a closed pipe is found here, not at shutdown
        return code
    except BrokenPipeError:
        # Python flushes stdout again at exit; point it at /dev/null so that stays quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM raises KeyboardInterrupt as Ctrl-C does, so a terminated
    command still cleans up (temp files, its run record, the dvc it started); the handler is
    put back after. Only where SIGTERM has its default action, in the main thread (Python
    handles signals there): a handler or an ignore set by someone else is left alone."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt("terminated (SIGTERM)")
