"""Figure 1: ingest@<engine> of an N-line crawl file against the database floor.

    uv run python -m benchmarks.ingest --lines 1000000 --repeat 5 [--executemany]

Ours is the stage as DVC runs it (`python -m stages.ingest --engine E` in a throw-away project
on a private PostgreSQL): start-up, parsing every line, rejects file, COPY, merge, marker. The
floor is `benchmarks/floor_ingest.py floor`: the same file's ids, parsed beforehand, COPYed
into an index-less temp table and merged by one statement into the same schema. Each run gets
a fresh database: empty for the first load; for the re-load, a copy of one holding the leads
of our own first load of the file (vacuumed, as a weekly run finds them), loaded again a week
later so that every lead moves. Target: ours <= 1.3x the floor. `--executemany` also times,
once, row-by-row upserts through psycopg's executemany.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import common, timing

TARGET = 1.3


def parsed_ids(engine_name: str, crawl: Path, out: Path) -> int:
    """Write the valid ids of `crawl` (duplicates included) to `out` as COPY text."""
    from stages.rules.config import load_params
    from stages.rules.crawl import LineParser, iter_lines
    from stages.store.leads import COPY_ESCAPES

    parser = LineParser(load_params(common.REPO).engine(engine_name))
    count = 0
    with crawl.open("rb") as lines, out.open("w", encoding="utf-8") as ids:
        for raw in iter_lines(lines):
            found = parser.parse(raw)
            if type(found) is str:
                ids.write(found.translate(COPY_ESCAPES) + "\n")
                count += 1
    return count


def lead_count(url: str) -> int:
    import psycopg

    from stages.store import db

    with psycopg.connect(url) as conn:
        return db.scalar(conn, "SELECT count(*) FROM hotel_booking_engines")


def run(args: argparse.Namespace) -> list[timing.Figure]:
    from stages.rules.config import load_params

    engine = load_params(common.REPO).engine(args.engine)
    timing.print_header(f"ingest of {args.lines:,} {engine.name} lines vs the database floor")
    crawl = common.crawl_file(engine.name, args.lines)
    figures = []
    with common.postgres(args.pg) as base_url, common.scratch("ingest") as folder:
        databases = common.Databases(base_url)
        try:
            ids = folder / "ids.txt"
            valid = parsed_ids(engine.name, crawl, ids)
            print(f"# {crawl.name}: {args.lines:,} lines, {valid:,} valid ids", flush=True)
            project = common.stage_project(folder / "project", stages_from=args.stages)
            runs = _Runs(args, engine, project, crawl, ids, databases)
            empty = databases.migrated()
            loaded = runs.first_load(empty)
            for what, template, seen_at in (
                ("first load", empty, common.SEEN_AT),
                ("re-load a week later", loaded, common.SEEN_AGAIN_AT),
            ):
                figures += runs.figures(what, template, seen_at)
        finally:
            databases.drop_all()
    return figures


@dataclass
class _Runs:
    """The timed runs of one engine's crawl: ours (the stage) and the floor, each on a fresh
    copy of a template database."""

    args: argparse.Namespace
    engine: Any
    project: Path
    crawl: Path
    ids: Path
    databases: common.Databases
    url: str = ""
    seen_at: str = common.SEEN_AT

    def ingest(self, url: str) -> timing.Measured:
        return timing.run_measured(
            [common.PYTHON, "-m", "stages.ingest", "--engine", self.engine.name],
            cwd=self.project,
            env=common.child_env(DATABASE_URL=url),
        )

    def first_load(self, empty: str) -> str:
        """A template database holding the leads as our own first load leaves them (their
        order on disk matters), vacuumed as a weekly run finds them."""
        loaded = self.databases.copy(empty)
        loaded_url = self.databases.url(loaded)
        common.place_raw(self.project, self.engine.name, self.crawl, common.SEEN_AT)
        self.ingest(loaded_url)
        common.vacuum(loaded_url)
        return loaded

    def figures(self, what: str, template: str, seen_at: str) -> list[timing.Figure]:
        """Ours against the floor (and, with --executemany, row-by-row upserts) on copies of
        `template`, the crawl dated `seen_at`."""
        common.place_raw(self.project, self.engine.name, self.crawl, seen_at)
        self.seen_at = seen_at

        def fresh(name: str) -> None:
            self.url = self.databases.fresh(template)

        results = timing.interleaved(
            [
                ("ours (stages.ingest)", lambda: self.ingest(self.url)),
                ("floor (COPY + one merge)", lambda: self.floor(self.url)),
            ],
            self.args.repeat,
            warmup=not self.args.no_warmup,
            before_each=fresh,
        )
        lines = f"{self.args.lines:,} lines"
        ours = results["ours (stages.ingest)"]
        floor = results["floor (COPY + one merge)"]
        figures = [timing.compare("1", f"ingest {lines}, {what}", ours, floor, max_ratio=TARGET)]
        if self.args.executemany:
            upserts = timing.Series("row-by-row executemany upserts")
            upserts.runs.append(self.floor(self.databases.fresh(template), "executemany"))
            figures.append(
                timing.compare("1", f"ingest {lines}, {what}, vs executemany", ours, upserts)
            )
        return figures

    def floor(self, url: str, mode: str = "floor") -> timing.Measured:
        return floor_load(url, self.engine, self.seen_at, self.ids, mode)


def floor_load(url: str, engine, seen_at: str, ids: Path, mode: str = "floor") -> timing.Measured:
    return timing.run_measured(
        [common.PYTHON, "-m", "benchmarks.floor_ingest", mode, url, engine.name]
        + [engine.display_name, engine.booking_url, seen_at, str(ids)],
        cwd=common.REPO,
        env=common.child_env(),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ingest", description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines in the crawl file")
    parser.add_argument("--engine", default="cloudbeds", help="engine whose lines to generate")
    parser.add_argument("--executemany", action="store_true", help="also time row-by-row upserts")
    parser.add_argument("--pg", help="PostgreSQL URL to create databases on (default: private)")
    parser.add_argument("--stages", type=Path, help="run this copy of stages/ (a proposal)")
    timing.common_arguments(parser, repeat=5)
    timing.print_figures(run(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
