"""A stage run as its own process, the way DVC runs it, and its peak memory measured: how the
hostile-input tests check that a bad file costs the ingest no more memory than a good one."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

_MEASURE = (
    "import resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[2:])\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "open(sys.argv[1], 'w').write(str(peak))\n"
    "sys.exit(code)\n"
)


def run_measured(
    args: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 300
) -> tuple[subprocess.CompletedProcess, float]:
    """Run `args` and return its result and peak resident memory in MiB.

    A small Python launcher starts the command and reads RUSAGE_CHILDREN: a child's peak
    counts the memory of the process that forked it, so forking from the (large) test
    process directly would report the test's size instead of the stage's.
    """
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "peak"
        result = subprocess.run(
            [sys.executable, "-c", _MEASURE, str(report), *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        peak_kib = int(report.read_text()) if report.exists() else 0
    return result, peak_kib / 1024


def stage_env(database_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment DVC would give a stage: this venv first on PATH, `database_url` set."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DATABASE_URL"] = database_url
    env.pop("CRAWL_PIPELINE_ROOT", None)
    env.update(extra or {})
    return env
