"""`uv run pytest -m unit -n 0`, the quick loop: it runs every test marked `unit` and no other,
although it does not import the test modules that mark none (tests/support/units.py)."""

from __future__ import annotations

import subprocess
import sys

from tests.support.project import REPO


def collected(*selection: str) -> list[str]:
    """The test ids pytest collects from this checkout's tests with `selection`."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-n", "0", *selection],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return sorted(line for line in done.stdout.splitlines() if "::" in line)


def test_the_quick_unit_run_selects_the_same_tests_as_a_full_collection():
    quick = collected("-m", "unit")
    # Any other spelling of the marker expression collects every module first.
    everything = collected("-m", "unit or unit")
    assert quick == everything
    assert len(quick) > 400
