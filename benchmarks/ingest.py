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
from pathlib import Path

from benchmarks import common, timing

TARGET = 1.3


def parsed_leads(engine_name: str, crawl: Path, out: Path) -> tuple[int, int]:
    """Write the leads of `crawl` to `out` as COPY text, parsed and deduplicated as our ingest
    stores them: one line per unique id with the booking URL and evidence of the first line
    naming it, in the order of first appearance. Returns (valid ids, unique ids)."""
    from stages.ingest import LineTally
    from stages.rules.config import load_params
    from stages.rules.crawl import LineParser
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
            ids = folder / "leads.txt"
            valid, unique = parsed_leads(engine.name, crawl, ids)
            print(
                f"# {crawl.name}: {args.lines:,} lines, {valid:,} valid ids, {unique:,} unique"
                " (parsed and deduplicated for the floor before the clock)",
                flush=True,
            )
            project = common.stage_project(folder / "project", stages_from=args.stages)
            empty = databases.migrated()
            loaded = databases.copy(empty)
            loaded_url = databases.url(loaded)
            # The leads as our own first load leaves them (their order on disk matters).
            common.place_raw(project, engine.name, crawl, common.SEEN_AT)
            timing.run_measured(
                [common.PYTHON, "-m", "stages.ingest", "--engine", engine.name],
                cwd=project,
                env=common.child_env(DATABASE_URL=loaded_url),
            )
            common.vacuum(loaded_url)
            state = {"url": ""}

            def ours() -> timing.Measured:
                return timing.run_measured(
                    [common.PYTHON, "-m", "stages.ingest", "--engine", engine.name],
                    cwd=project,
                    env=common.child_env(DATABASE_URL=state["url"]),
                )

            def floor() -> timing.Measured:
                return floor_load(state["url"], engine, state["seen_at"], ids)

            for what, template, seen_at in (
                ("first load", empty, common.SEEN_AT),
                ("re-load a week later", loaded, common.SEEN_AGAIN_AT),
            ):
                common.place_raw(project, engine.name, crawl, seen_at)
                state["seen_at"] = seen_at

                def fresh(name: str, template: str = template) -> None:
                    state["url"] = databases.fresh(template)

                # The floor is a floor only if it leaves the leads ours leaves.
                digests = []
                for case in (ours, floor):
                    fresh("", template)
                    case()
                    digests.append(leads_digest(state["url"]))
                same = "yes" if digests[0] == digests[1] else f"NO: {digests}"
                print(f"# {what}: floor and ours leave the same leads: {same}", flush=True)
                # That run of each was the warm-up.
                results = timing.interleaved(
                    [("ours (stages.ingest)", ours), ("floor (COPY + one merge)", floor)],
                    args.repeat,
                    warmup=False,
                    before_each=fresh,
                )
                figures.append(
                    timing.compare(
                        "1",
                        f"ingest {args.lines:,} lines, {what}",
                        results["ours (stages.ingest)"],
                        results["floor (COPY + one merge)"],
                        max_ratio=TARGET,
                    )
                )
                if args.executemany:
                    state["url"] = databases.fresh(template)
                    started = timing.Series("row-by-row executemany upserts")
                    started.runs.append(
                        floor_load(state["url"], engine, seen_at, ids, "executemany")
                    )
                    figures.append(
                        timing.compare(
                            "1",
                            f"ingest {args.lines:,} lines, {what}, vs executemany",
                            results["ours (stages.ingest)"],
                            started,
                        )
                    )
        finally:
            databases.drop_all()
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
