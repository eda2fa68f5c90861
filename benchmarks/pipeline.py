"""Figure 6: the whole pipeline from clean, and the peak memory of ingest and export.

    uv run python -m benchmarks.pipeline --lines 25000 1000000 --repeat 3 \
        --ingest-lines 1000000 10000000 --export-rows 100000 1000000

From clean: a fresh copy of a git + DVC project with 4 engines (generated crawl files of each
`--lines` size) and a fresh database; `dvc repro` runs all 16 stages. Beside it, the same 16
stage commands run one after the other with no DVC, so the ratio is what orchestration costs.
Peak RSS (of the process and the children it waited for) is reported for both.

Memory: `python -m stages.ingest` of one engine's file at each `--ingest-lines` size, and
`python -m stages.export` of each `--export-rows` leads, each once on a fresh database.
Target: peak RSS <= 250 MB each, flat in size.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from pathlib import Path

from benchmarks import common, timing
from stages.rules.config import load_params

ENGINES = 4
MAX_RSS_MB = 250
MEMORY_ENGINE = "cloudbeds"
STAGE_ORDER = ("download", "ingest", "export", "publish")


def from_clean(args: argparse.Namespace, databases: common.Databases) -> list[timing.Figure]:
    figures = []
    for lines in args.lines:
        with common.scratch(f"pipeline{lines}") as folder:
            runs = CleanRuns(folder, lines, databases)
            results = timing.interleaved(
                [
                    ("dvc repro from clean", runs.repro),
                    ("the 16 stage commands, no DVC", runs.stages_alone),
                ],
                args.repeat,
                warmup=not args.no_warmup,
                before_each=runs.fresh,
            )
            ours = results["dvc repro from clean"]
            figures.append(
                timing.compare(
                    "6",
                    f"whole pipeline, {ENGINES} engines x {lines:,} lines",
                    ours,
                    results["the 16 stage commands, no DVC"],
                    note=f"peak RSS {ours.peak_rss_mb:.0f} MB",
                )
            )
    return figures


class CleanRuns:
    """Runs of the whole pipeline, each in a fresh copy of one project (`engines` engines,
    crawl files of `lines` lines) on a fresh database."""

    def __init__(
        self, folder: Path, lines: int, databases: common.Databases, engines: int = ENGINES
    ):
        self.template = common.pipeline_project(folder / "template", engines, lines)
        self.engines = list(load_params(self.template).engines)
        self.databases = databases
        self.empty = databases.migrated()
        self.root = folder / "run"
        self.env: dict[str, str] = {}

    def fresh(self, _: str) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.copytree(self.template, self.root, symlinks=True)
        self.env = common.child_env(DATABASE_URL=self.databases.fresh(self.empty))

    def repro(self) -> timing.Measured:
        return common.dvc(self.root, "repro", env=self.env)

    def stages_alone(self) -> timing.Measured:
        commands = " && ".join(
            shlex.join([common.PYTHON, "-m", f"stages.{stage}", "--engine", engine])
            for stage in STAGE_ORDER
            for engine in self.engines
        )
        return timing.run_measured(["sh", "-c", commands], cwd=self.root, env=self.env)


def memory(args: argparse.Namespace, databases: common.Databases) -> list[timing.Figure]:
    with common.scratch("memory") as folder:
        project = common.stage_project(folder / "project", stages_from=args.stages)
        empty = databases.migrated()
        ingest = {}
        for lines in args.ingest_lines:
            common.place_raw(project, MEMORY_ENGINE, common.crawl_file(MEMORY_ENGINE, lines))
            env = common.child_env(DATABASE_URL=databases.fresh(empty))
            ingest[lines] = timing.run_measured(
                [common.PYTHON, "-m", "stages.ingest", "--engine", MEMORY_ENGINE],
                cwd=project,
                env=env,
            )
            _report(f"ingest of {lines:,} lines", ingest[lines])
        export = {}
        marker = project / "data" / "ingest" / f"{MEMORY_ENGINE}.json"
        for rows in args.export_rows:
            url = databases.fresh(empty)
            marker.write_text(json.dumps(common.seed_leads(url, MEMORY_ENGINE, rows)))
            export[rows] = timing.run_measured(
                [common.PYTHON, "-m", "stages.export", "--engine", MEMORY_ENGINE],
                cwd=project,
                env=common.child_env(DATABASE_URL=url),
            )
            _report(f"export of {rows:,} rows", export[rows])
    return [
        _memory_figure("ingest", "lines", ingest),
        _memory_figure("export", "rows", export),
    ]


def _report(what: str, measured: timing.Measured) -> None:
    print(
        f"       {what}: {measured.seconds:.1f} s, peak RSS {measured.peak_rss_mb:.0f} MB",
        flush=True,
    )


def _memory_figure(stage: str, unit: str, runs: dict[int, timing.Measured]) -> timing.Figure:
    """Peak RSS at the largest size against the smallest: flat means a ratio near 1."""
    smallest, largest = min(runs), max(runs)
    peak, base = runs[largest].peak_rss_mb or 0.0, runs[smallest].peak_rss_mb or 0.0
    figure = timing.Figure(
        "6",
        f"peak RSS of {stage}, {largest:,} {unit} vs {smallest:,}",
        peak,
        base,
        peak / base if base else float("inf"),
        f"<= {MAX_RSS_MB} MB",
        peak <= MAX_RSS_MB and base <= MAX_RSS_MB,
        unit="MB",
    )
    print(figure.line(), flush=True)
    return figure


def run(args: argparse.Namespace) -> list[timing.Figure]:
    timing.print_header("whole pipeline from clean; peak memory of ingest and export")
    with common.databases(args.pg) as databases:
        figures = from_clean(args, databases) if args.lines else []
        if args.ingest_lines and args.export_rows:
            figures += memory(args, databases)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = timing.command("benchmarks.pipeline", __doc__, repeat=3, pg=True, stages="memory part")
    parser.add_argument("--lines", type=int, nargs="*", default=[25_000, 1_000_000])
    parser.add_argument("--ingest-lines", type=int, nargs="*", default=[1_000_000, 10_000_000])
    parser.add_argument("--export-rows", type=int, nargs="*", default=[100_000, 1_000_000])
    return timing.run_command(parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
