"""export@<engine>: the engine's leads from PostgreSQL -> data/exports/<engine>.xlsx.

Sheets: "Leads" (every lead; byte-stable for the same leads), then what changed
(stages.store.loads): "New" (leads first seen in the engine's latest load), "Not seen" (leads
missing from the latest `export.not_seen_loads` loads, newest last seen first) and "Summary" (one
row per load). All sheets are read in one snapshot of the database, so they agree with each other.

Before writing, the database is compared with the ingest marker: a database that was
replaced or emptied behind DVC's back fails the stage instead of producing an empty or
partial workbook. data/exports/<engine>.json records the run (rows, sheets, bytes, seconds,
the rows of New and Not seen, and under "database" the latest load and the listed leads it
exported, which status compares with the database: `drift.check_workbook`);
data/metrics/<engine>.json the numbers DVC compares (stages.report.metrics).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from stages.report.workbook import COLUMNS, Sheet, WorkbookStats
from stages.runner import engine_parser, run_stage

if TYPE_CHECKING:
    import psycopg

    from stages.rules.config import Params
    from stages.store.loads import LoadFigures  # loads imports psycopg: only when exporting

STAGE = "export"
PROGRESS_EVERY = 10_000  # rows between progress reports
# Dates of the sheets after Leads say their time zone (Leads keeps its titles: byte-stable).
CHANGE_COLUMNS = (*COLUMNS[:-2], "First Seen (UTC)", "Last Seen (UTC)")
SUMMARY_COLUMNS = (
    # No "loaded at": the workbook's bytes must follow from the crawls alone, so that every
    # clone that loads the same crawls writes the same workbook (and dvc.lock).
    "Crawl Date (UTC)",
    "Lines",
    "Leads",
    "New",
    "Not Seen",
    "Rejected",
    "Retracted",
)


def export(engine_name: str) -> None:
    """Write `engine_name`'s workbook, its run record and its metrics (see the module docstring).

    Raises PipelineError when the ingest marker is missing, the database drifted from it, or
    the database fails for good (after the retries of `export`'s retry policy)."""
    from stages.report import metrics
    from stages.rules.config import load_params
    from stages.store import db

    params = load_params()
    engine = params.engine(engine_name)
    marker = _ingest_marker(params, engine.name)
    started = time.monotonic()
    stats, state = db.retrying(
        params.export.retry_policy,
        lambda: _export_snapshot(params, engine.name, marker),
        describe=f"{STAGE}@{engine.name}: reading leads",
    )
    _write_record(params, engine.name, stats, state, time.monotonic() - started)
    metrics.write_engine_metrics(params, engine.name, marker, rows=stats.rows, sheets=stats.sheets)


def _ingest_marker(params: Params, engine: str) -> dict[str, Any]:
    """data/ingest/<engine>.json, which says what the database should hold."""
    from stages.errors import PipelineError
    from stages.store import drift

    marker_path = params.files(engine).marker
    if not marker_path.is_file():
        raise PipelineError(
            f"{marker_path.name} is missing; run `{drift.REPAIR_COMMAND.format(engine=engine)}`."
        )
    marker: dict[str, Any] = json.loads(marker_path.read_text(encoding="utf-8"))
    return marker


def _export_snapshot(
    params: Params, engine: str, marker: dict[str, Any]
) -> tuple[WorkbookStats, dict[str, int | str | None]]:
    """One attempt: every sheet from one snapshot of the database, written to the workbook;
    returns the workbook's figures and what the snapshot held (load id, database identity)."""
    import psycopg

    from stages.errors import PipelineError
    from stages.report.workbook import write_leads_workbook
    from stages.store import db, drift, leads

    source_tag = params.export.source_tag or None
    workbook = params.files(engine).workbook
    with db.connect() as conn:
        # One snapshot for every sheet: a load committed meanwhile shows in none of them.
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        with conn.transaction():
            lost = drift.check_drift(conn, engine, marker.get("database", {}))
            if lost:
                raise PipelineError(lost)
            changes = _change_sheets(conn, engine, source_tag, params.export.not_seen_loads)
            # What this snapshot holds, so status can tell when the database moves on.
            latest = drift.loads_after(conn, engine, None, source_tag).latest_id
            state = {"load_id": latest, **db.database_identity(conn)}
            rows = _counted(leads.engine_leads(conn, engine, source_tag), workbook.name)
            written = write_leads_workbook(
                workbook, rows, rows_per_sheet=params.export.rows_per_sheet, extra_sheets=changes
            )
            return written, {**state, "leads": written.rows}


def _change_sheets(
    conn: psycopg.Connection, engine: str, source_tag: str | None, not_seen_loads: int
) -> list[Sheet]:
    """The sheets after Leads: New, Not seen and Summary (stages.store.loads reads them)."""
    from stages.store import loads

    history = loads.engine_loads(conn, engine, source_tag)
    since = loads.not_seen_since(history, not_seen_loads)
    new = loads.new_leads(conn, engine, source_tag, history[-1]) if history else ()
    not_seen = loads.not_seen_leads(conn, engine, source_tag, since) if since else ()
    return [
        Sheet("New", CHANGE_COLUMNS, new),
        Sheet("Not seen", CHANGE_COLUMNS, not_seen),
        Sheet("Summary", SUMMARY_COLUMNS, [_summary_row(load) for load in history]),
    ]


def _write_record(
    params: Params,
    engine: str,
    stats: WorkbookStats,
    state: dict[str, int | str | None],
    seconds: float,
) -> None:
    """data/exports/<engine>.json: what this run wrote and the snapshot it read."""
    from stages.store.files import write_json

    write_json(
        params.files(engine).export_record,
        {
            "rows": stats.rows,
            "sheets": stats.sheets,
            "bytes": stats.bytes,
            "new": stats.extra_rows.get("New", 0),
            "not_seen": stats.extra_rows.get("Not seen", 0),
            "seconds": round(seconds, 3),
            "source_tag": params.export.source_tag or "",
            "database": state,
        },
    )


def _summary_row(load: LoadFigures) -> tuple[Any, ...]:
    """A Summary row; figures a load did not record (older loads) stay empty, not 0."""
    return (
        load.seen_at,
        load.lines,
        load.leads,
        load.new,
        load.not_seen,
        load.rejected,
        load.retracted,
    )


def _counted(rows: Iterable[Sequence[Any]], name: str) -> Iterator[Sequence[Any]]:
    """Pass `rows` through, reporting progress every PROGRESS_EVERY rows and the true count at
    the end; the rows stream from PostgreSQL straight into the workbook."""
    from stages.observe.progress import Progress

    progress = Progress(f"read leads, write {name}", unit="rows")
    number = 0
    for number, row in enumerate(rows, start=1):
        if not number % PROGRESS_EVERY:
            progress.update(number)
        yield row
    progress.finish(number)


def main(argv: list[str] | None = None) -> int:
    parser = engine_parser(STAGE, "Write one engine's leads to data/exports/<engine>.xlsx.")
    args = parser.parse_args(argv)
    return run_stage(STAGE, args.engine, lambda: export(args.engine))


if __name__ == "__main__":
    sys.exit(main())
