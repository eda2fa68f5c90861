"""Timing for every benchmark script: interleaved runs, medians and ratios, the machine and its
load, and child processes measured for wall time and peak RSS (benchmarks/measure.py).

Figures are ratios of our code to a baseline measured in the same run, interleaved (A, B, A,
B, ...) after one discarded warm-up round each, so that other work on the machine hits both
sides alike. The medians, their ratio, the target and the load average are printed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# --- machine and load -----------------------------------------------------------------------


def machine() -> str:
    """One line naming the machine: CPU, cores, memory, OS, Python."""
    cpu = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kb / 1024**2:.0f} GB RAM"
    return (
        f"{cpu}, {os.cpu_count()} cores{memory}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def load_text() -> str:
    """The load average, as printed beside every figure."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def print_header(title: str) -> None:
    """Print what is measured, on which machine, under which load."""
    print(f"# {title}", flush=True)
    print(f"# {machine()}", flush=True)
    print(f"# {load_text()} at start", flush=True)


# --- timing ---------------------------------------------------------------------------------

Case = Callable[[], "float | Measured | None"]


@dataclass
class Measured:
    """One timed run: wall seconds, and the peak RSS of the child process when there was one."""

    seconds: float
    peak_rss_mb: float | None = None
    output: str = ""


@dataclass
class Series:
    """Every timed run of one case."""

    name: str
    runs: list[Measured] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(run.seconds for run in self.runs)

    @property
    def peak_rss_mb(self) -> float | None:
        peaks = [run.peak_rss_mb for run in self.runs if run.peak_rss_mb is not None]
        return max(peaks) if peaks else None

    def spread(self) -> str:
        values = sorted(run.seconds for run in self.runs)
        return f"{values[0]:.3f}..{values[-1]:.3f}" if values else "-"


def interleaved(
    cases: Sequence[tuple[str, Case]],
    repeat: int,
    *,
    warmup: bool = True,
    before_each: Callable[[str], None] | None = None,
) -> dict[str, Series]:
    """Run the cases in turn (A, B, A, B, ...) `repeat` times; each returns its seconds, a
    Measured, or None to be timed here. One warm-up round (discarded) fills caches first.
    `before_each(name)` prepares a run outside the timed region (a fresh database, say)."""
    results = {name: Series(name) for name, _ in cases}
    for round_number in range(repeat + (1 if warmup else 0)):
        for name, case in cases:
            if before_each:
                before_each(name)
            started = time.perf_counter()
            outcome = case()
            elapsed = time.perf_counter() - started
            if isinstance(outcome, Measured):
                measured = outcome
            else:
                measured = Measured(outcome if isinstance(outcome, float) else elapsed)
            if warmup and round_number == 0:
                continue
            results[name].runs.append(measured)
    return results


@dataclass
class Figure:
    """One line of the results table: ours against a baseline, and the target."""

    figure: str
    what: str
    ours: float
    baseline: float
    ratio: float
    target: str
    met: bool | None
    unit: str = "s"
    note: str = ""

    def line(self) -> str:
        verdict = {True: "MET", False: "MISSED", None: "-"}[self.met]
        return (
            f"{self.figure:<4} {self.what:<52} ours {self.ours:>9.3f} {self.unit:<4} "
            f"baseline {self.baseline:>9.3f} {self.unit:<4} ratio {self.ratio:>6.2f}x  "
            f"target {self.target:<10} {verdict}{'  ' + self.note if self.note else ''}"
        )


def compare(
    figure: str,
    what: str,
    ours: Series,
    baseline: Series,
    *,
    max_ratio: float | None = None,
    min_ratio: float | None = None,
    max_seconds: float | None = None,
    throughput_bytes: int | None = None,
    note: str = "",
) -> Figure:
    """Print and return ours against the baseline: medians of seconds, or of MB/s when
    `throughput_bytes` is given (then the ratio is ours/baseline throughput, higher is better).
    The target is a ratio, or `max_seconds` for our median itself."""
    if throughput_bytes:
        ours_value = throughput_bytes / ours.median / 1e6
        base_value = throughput_bytes / baseline.median / 1e6
        unit = "MB/s"
    else:
        ours_value, base_value, unit = ours.median, baseline.median, "s"
    ratio = ours_value / base_value if base_value else float("inf")
    if max_ratio is not None:
        target, met = f"<= {max_ratio:.2f}x", ratio <= max_ratio
    elif min_ratio is not None:
        target, met = f">= {min_ratio:.2f}x", ratio >= min_ratio
    elif max_seconds is not None:  # an absolute target on our median
        target, met = f"<= {max_seconds:.2f} s", ours.median <= max_seconds
    else:
        target, met = "-", None
    result = Figure(figure, what, ours_value, base_value, ratio, target, met, unit, note)
    print(result.line(), flush=True)
    for series in (ours, baseline):
        rss = f", peak RSS {series.peak_rss_mb:.0f} MB" if series.peak_rss_mb else ""
        print(
            f"       {series.name}: median {series.median:.3f} s over {len(series.runs)} runs "
            f"(range {series.spread()} s{rss})",
            flush=True,
        )
    return result


def command(
    module: str, description: str | None, *, repeat: int, pg: bool = False, stages: str = ""
) -> argparse.ArgumentParser:
    """The command line of `python -m <module>` with the flags every benchmark takes: --repeat
    (default `repeat`) and --no-warmup; --pg when it creates databases; --stages when it can run
    a copy of stages/ (`stages` says for what: "a proposal")."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=description)
    parser.add_argument("--repeat", type=int, default=repeat, help="timed rounds per case")
    parser.add_argument("--no-warmup", action="store_true", help="skip the discarded warm-up round")
    if pg:
        parser.add_argument("--pg", help="PostgreSQL URL to create databases on (default: private)")
    if stages:
        parser.add_argument("--stages", type=Path, help=f"run this copy of stages/ ({stages})")
    return parser


def run_command(
    parser: argparse.ArgumentParser,
    run: Callable[[argparse.Namespace], Sequence[Figure]],
    argv: list[str] | None,
) -> int:
    """A benchmark's `main`: parse `argv`, run, print the figures' summary; exit code 0."""
    print_figures(run(parser.parse_args(argv)))
    return 0


# --- child processes ------------------------------------------------------------------------


def run_measured(
    args: Sequence[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
) -> Measured:
    """Run a command to its end; return its wall time and peak RSS, both taken by the small
    launcher benchmarks/measure.py (wait4's rusage covers the command and the children it
    waited for)."""
    import json

    with tempfile.TemporaryFile() as out, tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "measured.json"
        launcher = [sys.executable, "-S", str(Path(__file__).with_name("measure.py")), str(report)]
        process = subprocess.run(
            [*launcher, *map(str, args)], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT
        )
        out.seek(0)
        output = out.read().decode("utf-8", "replace")
        if not report.is_file():
            raise RuntimeError(f"the launcher failed ({process.returncode}):\n{output}")
        measured = json.loads(report.read_text(encoding="utf-8"))
    if check and measured["exit"] != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} exited {measured['exit']}:\n{output}")
    return Measured(measured["seconds"], measured["peak_rss_kb"] / 1024, output)


def print_figures(figures: Sequence[Figure]) -> None:
    """Print the closing load average and the summary: one line per figure."""
    print(f"# {load_text()} at end", flush=True)
    print("# summary", flush=True)
    for figure in figures:
        print(figure.line(), flush=True)
