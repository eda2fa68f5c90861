"""Start `dvc` in a project the way a terminal, `timeout` or a CI runner would, and stop it at a
chosen moment: a delay after a stage starts, or while dvc rewrites one of its state files."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support.project import Project


def _take_ctrl_c() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def start(project: Project, *command: str, output: Path | None = None) -> subprocess.Popen[bytes]:
    """`python -m <command>` in the project, in its own process group (like a shell job);
    its output goes to `output` when given."""
    sink = output.open("wb") if output else subprocess.DEVNULL
    env = dict(os.environ)  # the venv first on PATH, as for project.run: DVC's `python -m ...`
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("CRAWL_PIPELINE_ROOT", None)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", *command],
            cwd=project.root,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # A job started from a terminal takes Ctrl-C and SIGTERM; the test runner may not
            # (a shell without job control ignores SIGINT in background commands, and a thread
            # may block signals), and a child inherits both its disposition and its mask.
            preexec_fn=_take_ctrl_c,
        )
    finally:
        if not isinstance(sink, int):  # our file, not subprocess.DEVNULL
            sink.close()


def wait_for_stage(project: Project, process: subprocess.Popen[bytes], name: str) -> int:
    """Wait until stage `name` (e.g. "publish@rms") writes its heartbeat; return its pid."""
    heartbeat = project.root / "logs" / "running" / f"{name}.json"
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            return int(json.loads(heartbeat.read_text())["pid"])
        time.sleep(0.005)
    raise AssertionError(f"{name} never started (exit {process.poll()})")


def kill_while_written(process: subprocess.Popen[bytes], path: Path, sig: signal.Signals) -> bool:
    """Send `sig` to the process group the moment `path` is rewritten and still empty (dvc
    truncates, then dumps); True when that moment was caught before the process ended."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    while process.poll() is None:
        try:
            found = path.stat()
        except FileNotFoundError:
            continue
        if found.st_mtime_ns != before and found.st_size == 0:
            os.killpg(process.pid, sig)
            return True
    return False


def wait_group_gone(pgid: int, timeout: float = 120) -> None:
    """Wait until no process of group `pgid` is left (an orphaned stage finishing its work)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)
    raise AssertionError(f"process group {pgid} still runs after {timeout} s")


@contextlib.contextmanager
def a_dvc_process_in(project: Project, folder: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A process whose command is `dvc`, working in the project (a `sleep` named dvc, made in
    `folder`), for as long as the block runs: what the busy checks look for."""
    import shutil

    fake = folder / "bin" / "dvc"
    fake.parent.mkdir()
    sleep = shutil.which("sleep")
    assert sleep is not None
    fake.symlink_to(sleep)
    running = subprocess.Popen([str(fake), "60"], cwd=project.root)
    try:
        yield running
    finally:
        running.kill()
        running.wait()
