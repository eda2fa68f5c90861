"""Figure 7 (issue 15, target 2): the whole pipeline from clean, three ways side by side.

    uv sync --group bench
    uv run python -m benchmarks.versus_prefect --lines 25000 --repeat 3

Each round runs, in turn and from the same state (a fresh copy of one git + DVC project with
the 4 engines and generated crawl files of `--lines` lines, on a fresh copy of a migrated
database): `dvc repro`; the same 16 stage commands in a shell loop, one after the other (no
orchestration at all); and the seed's planned Prefect 3 flow (benchmarks/prefect_flow.py:
ConcurrentTaskRunner, every engine's chain at once, retries per params.yaml), its tasks running
the same stage commands; and `python -m stages.tools.parallel --jobs 2` (one `dvc repro` chain per
engine, two at a time: the concurrent counterpart of the flow). Each is timed as a whole
process, start-up included: for Prefect that covers its import and its temporary local API
server (ephemeral mode: PREFECT_API_URL unset, PREFECT_HOME in the benchmark's temp folder; the
warm-up round creates its database). The flow's body alone is printed beside it.

The embedded PostgreSQL starts before the clock, and byte code is cached (benchmarks.common).
Targets: `dvc repro` <= 1.5x the shell loop and <= 0.5x the Prefect flow (stages.tools.parallel is
held to the same two).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from benchmarks import common, prefect_flow, timing
from benchmarks.pipeline import ENGINES, CleanRuns

REPRO, LOOP, PREFECT = "dvc repro from clean", "the 16 stage commands, no DVC", "Prefect flow"
PARALLEL = "stages.tools.parallel --jobs 2 from clean"
MAX_VS_LOOP = 1.5
MAX_VS_PREFECT = 0.5


def prefect_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("prefect") is not None


def run(args: argparse.Namespace) -> list[timing.Figure]:
    timing.print_header("whole pipeline from clean: dvc repro, a shell loop, the Prefect flow")
    figures = []
    with common.databases(args.pg) as databases:
        for lines in args.lines:
            figures += compare(lines, args, databases)
    return figures


def compare(lines: int, args: argparse.Namespace, databases: common.Databases) -> list:
    with common.scratch(f"prefect{lines}") as folder:
        runs = CleanRuns(folder, lines, databases)
        flow = _PrefectFlow(runs, folder / "prefect-home")
        results = timing.interleaved(
            [
                (REPRO, runs.repro),
                (PARALLEL, lambda: _parallel(runs)),
                (LOOP, runs.stages_alone),
                (PREFECT, flow.run),
            ],
            args.repeat,
            warmup=not args.no_warmup,
            before_each=runs.fresh,
        )
        timed = flow.seconds[-len(results[PREFECT].runs) :]
        note = f"Prefect flow body alone: median {statistics.median(timed):.2f} s"
        return _figures(results, f"{ENGINES} engines x {lines:,} lines", note)


class _PrefectFlow:
    """The seed's Prefect flow as one measured process; `seconds` collects its body's times."""

    def __init__(self, runs: CleanRuns, prefect_home: Path):
        self.runs = runs
        self.prefect_home = prefect_home
        self.seconds: list[float] = []

    def run(self) -> timing.Measured:
        env = dict(self.runs.env)
        env.pop("PREFECT_API_URL", None)  # ephemeral mode: Prefect's own temporary server
        env.update(
            PREFECT_HOME=str(self.prefect_home),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",  # no calls out of the machine
            PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120",  # a loaded machine
            PYTHONPATH=str(common.REPO),  # benchmarks.prefect_flow; stages/ is the copy's
        )
        measured = timing.run_measured(
            [common.PYTHON, "-m", "benchmarks.prefect_flow"], cwd=self.runs.root, env=env
        )
        last = measured.output.rsplit(prefect_flow.FLOW_SECONDS, 1)[1].split()[0]
        self.seconds.append(float(last))
        return measured


def _parallel(runs: CleanRuns) -> timing.Measured:
    return timing.run_measured(
        [common.PYTHON, "-m", "stages.tools.parallel", "--jobs", "2"], cwd=runs.root, env=runs.env
    )


def _figures(results: dict[str, timing.Series], what: str, note: str) -> list[timing.Figure]:
    """dvc repro and stages.tools.parallel, each against the shell loop and the Prefect flow."""
    figures = []
    for ours, name in ((REPRO, "dvc repro"), (PARALLEL, "stages.tools.parallel --jobs 2")):
        figures += [
            timing.compare(
                "7",
                f"{name} vs shell loop, {what}",
                results[ours],
                results[LOOP],
                max_ratio=MAX_VS_LOOP,
            ),
            timing.compare(
                "7",
                f"{name} vs Prefect flow, {what}",
                results[ours],
                results[PREFECT],
                max_ratio=MAX_VS_PREFECT,
                note=note if ours == REPRO else "",
            ),
        ]
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = timing.command("benchmarks.versus_prefect", __doc__, repeat=3, pg=True)
    parser.add_argument("--lines", type=int, nargs="+", default=[25_000])
    args = parser.parse_args(argv)
    if not prefect_available():
        print("Prefect is not installed: run `uv sync --group bench` first.", file=sys.stderr)
        return 2
    timing.print_figures(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
