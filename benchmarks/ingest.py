"""Figure 1: ingest@<engine> of an N-line crawl file against the database floor.

    uv run python -m benchmarks.ingest --lines 1000000 --repeat 5 [--executemany]

Ours is the stage as DVC runs it (`python -m stages.ingest --engine E` in a throw-away project
on a private PostgreSQL): start-up, parsing every line, rejects file, COPY, merge, marker. The
floor is `benchmarks/floor_ingest.py floor`, the database's share alone: the same file's leads,
parsed and deduplicated before the clock starts (one row per id with the URL and evidence of
its first line), COPYed into an index-less temp table and merged by one statement into the same
schema, timed from its connection to its commit. Before timing, one run of each checks that
both leave the same leads (that run is the warm-up). Each run gets
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


def parsed_leads(engine_name: str, crawl: Path, out: Path) -> tuple[int, int]:
    """Write the leads of `crawl` to `out` as COPY text, parsed and deduplicated as our ingest
    stores them: one line per unique id with the booking URL and evidence of the first line
    naming it, in the order of first appearance. Returns (valid ids, unique ids)."""
    from stages.rules.config import load_params
    from stages.rules.crawl import LineParser
    from stages.rules.crawl_tally import LineTally
    from stages.store.staging import COPY_ESCAPES

    parser = LineParser(load_params(common.REPO).engine(engine_name))
    first: dict[str, tuple[str, str]] = {}
    valid = 0
    for property_id, _, url, evidence in LineTally().found(crawl, parser):
        valid += 1
        if property_id not in first:  # the first line of an id always carries its evidence
            first[property_id] = (url, evidence)
    with out.open("w", encoding="utf-8") as leads:
        for property_id, (url, evidence) in first.items():
            fields = (property_id, url, evidence)
            leads.write("\t".join(f.translate(COPY_ESCAPES) for f in fields) + "\n")
    return valid, len(first)


# What a load leaves behind, as one digest: the floor must leave the same rows as ours.
LEADS_DIGEST = """
SELECT count(*), md5(string_agg(concat_ws('|', l.property_id, l.booking_url, l.evidence,
                                          l.sources::text, l.first_seen_at, l.last_seen_at,
                                          l.detection_method, l.retracted_at),
                                E'\n' ORDER BY l.property_id))
FROM hotel_booking_engines AS l
"""


def leads_digest(url: str) -> tuple[int, str]:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute(LEADS_DIGEST).fetchone()
        assert row is not None
        return row[0], row[1]


def run(args: argparse.Namespace) -> list[timing.Figure]:
    from stages.rules.config import load_params

    engine = load_params(common.REPO).engine(args.engine)
    timing.print_header(f"ingest of {args.lines:,} {engine.name} lines vs the database floor")
    crawl = common.crawl_file(engine.name, args.lines)
    figures = []
    with common.postgres(args.pg) as base_url, common.scratch("ingest") as folder:
        databases = common.Databases(base_url)
        try:
            bench = _Loads.prepare(args, engine, crawl, folder, databases)
            for what, template, seen_at in (
                ("first load", bench.empty, common.SEEN_AT),
                ("re-load a week later", bench.loaded, common.SEEN_AGAIN_AT),
            ):
                figures += bench.figures(what, template, seen_at)
        finally:
            databases.drop_all()
    return figures


@dataclass
class _Loads:
    """Our ingest and the floor, each loading `crawl` into a fresh copy of a template database."""

    args: argparse.Namespace
    engine: Any
    crawl: Path
    ids: Path  # the floor's input: the leads parsed and deduplicated before the clock
    project: Path
    databases: common.Databases
    empty: str  # template databases: migrated and empty; after our own first load
    loaded: str
    url: str = ""  # the database of the run at hand
    seen_at: str = common.SEEN_AT

    @classmethod
    def prepare(
        cls,
        args: argparse.Namespace,
        engine: Any,
        crawl: Path,
        folder: Path,
        databases: common.Databases,
    ) -> _Loads:
        """Parse the floor's leads, make the project, and the two templates: empty, and holding
        the leads as our own first load leaves them (their order on disk matters), vacuumed."""
        ids = folder / "leads.txt"
        valid, unique = parsed_leads(engine.name, crawl, ids)
        print(
            f"# {crawl.name}: {args.lines:,} lines, {valid:,} valid ids, {unique:,} unique"
            " (parsed and deduplicated for the floor before the clock)",
            flush=True,
        )
        project = common.stage_project(folder / "project", stages_from=args.stages)
        empty = databases.migrated()
        loads = cls(args, engine, crawl, ids, project, databases, empty, databases.copy(empty))
        loads.url = databases.url(loads.loaded)
        common.place_raw(project, engine.name, crawl, common.SEEN_AT)
        loads.ours()
        common.vacuum(loads.url)
        return loads

    def ours(self) -> timing.Measured:
        return timing.run_measured(
            [common.PYTHON, "-m", "stages.ingest", "--engine", self.engine.name],
            cwd=self.project,
            env=common.child_env(DATABASE_URL=self.url),
        )

    def floor(self) -> timing.Measured:
        return floor_load(self.url, self.engine, self.seen_at, self.ids)

    def figures(self, what: str, template: str, seen_at: str) -> list[timing.Figure]:
        """Check that the floor leaves the leads ours leaves (the warm-up), then time both."""
        common.place_raw(self.project, self.engine.name, self.crawl, seen_at)
        self.seen_at = seen_at

        def fresh(name: str) -> None:
            self.url = self.databases.fresh(template)

        digests = []
        for case in (self.ours, self.floor):
            fresh("")
            case()
            digests.append(leads_digest(self.url))
        same = "yes" if digests[0] == digests[1] else f"NO: {digests}"
        print(f"# {what}: floor and ours leave the same leads: {same}", flush=True)
        ours, floor = "ours (stages.ingest)", "floor (COPY + one merge)"
        results = timing.interleaved(
            [(ours, self.ours), (floor, self.floor)],
            self.args.repeat,
            warmup=False,
            before_each=fresh,
        )
        lines = f"ingest {self.args.lines:,} lines, {what}"
        figures = [timing.compare("1", lines, results[ours], results[floor], max_ratio=TARGET)]
        if self.args.executemany:
            fresh("")
            rows = timing.Series("row-by-row executemany upserts")
            rows.runs.append(floor_load(self.url, self.engine, seen_at, self.ids, "executemany"))
            figures.append(timing.compare("1", f"{lines}, vs executemany", results[ours], rows))
        return figures


def floor_load(url: str, engine, seen_at: str, ids: Path, mode: str = "floor") -> timing.Measured:
    """Run a baseline of benchmarks/floor_ingest.py; its time is the one it prints, from its
    connection to its commit (its start-up is not the database's share)."""
    measured = timing.run_measured(
        [common.PYTHON, "-m", "benchmarks.floor_ingest", mode, url, engine.name]
        + [engine.display_name, engine.booking_url, seen_at, str(ids)],
        cwd=common.REPO,
        env=common.child_env(),
    )
    seconds = float(measured.output.rsplit("seconds=", 1)[1].split()[0])
    return timing.Measured(seconds, measured.peak_rss_mb, measured.output)


def main(argv: list[str] | None = None) -> int:
    parser = timing.command("benchmarks.ingest", __doc__, repeat=5, pg=True, stages="a proposal")
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines in the crawl file")
    parser.add_argument("--engine", default="cloudbeds", help="engine whose lines to generate")
    parser.add_argument("--executemany", action="store_true", help="also time row-by-row upserts")
    return timing.run_command(parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
