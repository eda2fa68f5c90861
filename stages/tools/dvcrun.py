"""Run `dvc` so that stopping it never damages its state files (`dvcstate run ARGS ...`).

How DVC 3.x reacts to each signal (read from dvc/cli, dvc/stage/run.py, dvc/rwlock.py and
dvc/utils/serialize/_common.py) and what that leaves behind:

- dvc.lock (after every stage) and .dvc/tmp/rwlock (before and after every stage and status
  check) are rewritten in place: open with truncation, dump, close. A process that dies between
  the open and the close leaves the file empty or cut at a buffer boundary, and every later
  `dvc repro`/`dvc status` fails on it ("dvc.lock validation failed", "Unable to read
  RWLock-file ... JSON structure is corrupted").
- SIGTERM and SIGKILL: DVC installs no handler, so it dies on the spot, mid-write or not. The
  repo lock (.dvc/tmp/lock, an flock) dies with it; the rwlock keeps its entries (DVC drops
  those of dead pids by itself). A signal sent to the dvc process alone leaves the stage
  command running on as an orphan.
- SIGINT: ignored by DVC while a stage command runs (the command gets it when it was sent to
  the process group, as a terminal's Ctrl-C is); at any other moment it raises
  KeyboardInterrupt wherever DVC is, which can also be between the truncation and the write.

So the safe way to stop a `dvc` we started is to never signal dvc itself: stop the stage
command it runs (SIGTERM, which the stage runner turns into a clean interrupt), let DVC see the
failed command and exit through its own cleanup, and wait. `SafeStopper` does that.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stages.errors import sigterm_as_interrupt
from stages.tools.dvcstate import repair_if_idle, save_good_copy

POLL = 0.05  # seconds between looks at a dvc process being stopped
# The environment variable a wrapper that starts several `dvc repro` (stages.tools.parallel)
# sets so their stages count as one pipeline run (stages.observe.runs reads it).
RUN_VARIABLE = "CRAWL_PIPELINE_RUN"


def stage_processes(pid: int) -> list[int]:
    """Pids of every process below the dvc process `pid` (the stage command it runs)."""
    import psutil

    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


class SafeStopper:
    """Stops running dvc processes without ever signalling dvc itself.

    `stop()` sends SIGTERM to the stage commands (the stage runner turns it into a clean
    interrupt: temp files removed, transaction rolled back, the attempt recorded), once per
    process, and keeps doing so for any stage a dvc starts later, until every dvc has exited.
    DVC sees a failed command and exits through its own cleanup, writing nothing half. Asked to
    stop again (a second Ctrl-C), it kills the stage commands with SIGKILL: still never dvc.
    """

    def __init__(self, processes: Sequence[subprocess.Popen[Any]]):
        self.processes = processes
        self.signalled: set[int] = set()
        self.hard = False

    def stop(self) -> None:
        """Stop the stages and wait for every dvc to exit; a KeyboardInterrupt meanwhile turns
        the stop hard and the wait goes on."""
        while True:
            try:
                self._wait_all()
                return
            except KeyboardInterrupt:
                self.hard = True
                self.signalled.clear()

    def _wait_all(self) -> None:
        while any(process.poll() is None for process in self.processes):
            for process in self.processes:
                if process.poll() is None:
                    self._signal_stages(process.pid)
            time.sleep(POLL)

    def _signal_stages(self, pid: int) -> None:
        for child in stage_processes(pid):
            if child in self.signalled:
                continue
            self.signalled.add(child)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(child, signal.SIGKILL if self.hard else signal.SIGTERM)


def run_dvc(root: Path, args: Sequence[str]) -> int:
    """Run `dvc ARGS` in `root` the safe way; return its exit code (130 when interrupted).

    Damaged state is repaired first (when no dvc runs); dvc runs in its own session, so a
    terminal's Ctrl-C or a CI runner's signal to our group reaches only us; SIGINT/SIGTERM then
    stop it through SafeStopper. A sound dvc.lock is copied as the last good one afterwards.
    """
    for line in repair_if_idle(root):
        print(f"dvcstate: {line}", file=sys.stderr)
    save_good_copy(root)
    with sigterm_as_interrupt():
        process = subprocess.Popen(
            [sys.executable, "-m", "dvc", *args], cwd=root, start_new_session=True
        )
        try:
            code = process.wait()
        except KeyboardInterrupt:
            print("dvcstate: stopping dvc's stage; dvc then exits by itself", file=sys.stderr)
            SafeStopper([process]).stop()
            code = 130
    save_good_copy(root)
    return code
