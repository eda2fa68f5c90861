"""Figure 2: export@<engine> of N leads against a bare openpyxl write-only script.

    uv run python -m benchmarks.export --rows 200000 --repeat 5

Ours is the stage as DVC runs it (`python -m stages.export --engine E` in a throw-away project
on a private PostgreSQL holding N seeded leads): start-up, drift check, the database read and
the workbook. The baseline is `benchmarks/bare_export.py` writing the same rows, already in
memory, with openpyxl's write-only mode and nothing else; its time to unpickle the rows is
left out. Target: ours <= 1.15x the baseline.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys

from benchmarks import common, timing

ENGINE = "siteminder"
TARGET = 1.15


def export_rows(url: str, engine: str) -> list[tuple]:
    """The rows the stage writes, converted the way a bare script would write them."""
    from datetime import UTC

    from stages.store import db, leads

    def plain(value):
        if isinstance(value, list):
            return ", ".join(value)
        if hasattr(value, "tzinfo") and value.tzinfo is not None:
            return value.astimezone(UTC).replace(tzinfo=None)
        return value

    with db.connect(url) as conn:
        return [
            tuple(plain(v) for v in row) for row in leads.engine_leads(conn, engine, "commoncrawl")
        ]


def run(args: argparse.Namespace) -> list[timing.Figure]:
    timing.print_header(f"export of {args.rows:,} leads vs bare openpyxl write-only")
    with common.postgres(args.pg) as base_url, common.scratch("export") as folder:
        databases = common.Databases(base_url)
        try:
            url = databases.fresh(databases.migrated())
            marker = common.seed_leads(url, ENGINE, args.rows)
            project = common.stage_project(folder / "project", stages_from=args.stages)
            ingest_marker = project / "data" / "ingest" / f"{ENGINE}.json"
            ingest_marker.parent.mkdir(parents=True, exist_ok=True)
            ingest_marker.write_text(json.dumps(marker), encoding="utf-8")
            rows_file = folder / "rows.pickle"
            with rows_file.open("wb") as handle:
                pickle.dump(export_rows(url, ENGINE), handle, protocol=pickle.HIGHEST_PROTOCOL)
            env = common.child_env(DATABASE_URL=url)

            def ours() -> timing.Measured:
                return timing.run_measured(
                    [common.PYTHON, "-m", "stages.export", "--engine", ENGINE],
                    cwd=project,
                    env=env,
                )

            def baseline() -> timing.Measured:
                measured = timing.run_measured(
                    [common.PYTHON, "-m", "benchmarks.bare_export", str(rows_file)]
                    + [str(folder / "bare.xlsx")],
                    cwd=common.REPO,
                    env=common.child_env(),
                )
                load = float(measured.output.split("load_seconds=")[1].split()[0])
                measured.seconds -= load
                return measured

            results = timing.interleaved(
                [("ours (stages.export)", ours), ("bare openpyxl", baseline)],
                args.repeat,
                warmup=not args.no_warmup,
            )
            metrics = json.loads((project / "data/exports" / f"{ENGINE}.json").read_text())
            assert metrics["rows"] == args.rows, metrics
            figure = timing.compare(
                "2",
                f"export of {args.rows:,} leads",
                results["ours (stages.export)"],
                results["bare openpyxl"],
                max_ratio=TARGET,
            )
        finally:
            databases.drop_all()
    return [figure]


def main(argv: list[str] | None = None) -> int:
    parser = timing.command("benchmarks.export", __doc__, repeat=5, pg=True, stages="a proposal")
    parser.add_argument("--rows", type=int, default=200_000, help="leads to export")
    return timing.run_command(parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
