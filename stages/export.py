"""export@<engine>: the engine's leads from PostgreSQL -> data/exports/<engine>.xlsx.

Sheets: "Leads" (every lead; byte-stable for the same leads), then what changed
(stages.store.loads): "New" (leads first seen in the engine's latest load), "Not seen" (leads
missing from the latest `export.not_seen_loads` loads, newest last seen first) and "Summary" (one
row per load). All sheets are read in one snapshot of the database, so they agree with each other.

Before writing, the database is compared with the ingest marker: a database that was
replaced or emptied behind DVC's back fails the stage instead of producing an empty or
partial workbook. data/exports/<engine>.json records the run (rows, sheets, bytes, seconds,
the rows of New and Not seen, and under "database" the latest load and the listed leads it
exported, which status compares with the database: `leads.check_workbook`);
data/metrics/<engine>.json the numbers DVC compares (stages.report.metrics).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from stages.report.workbook import COLUMNS, WorkbookStats
from stages.runner import engine_parser, run_stage

if TYPE_CHECKING:
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
    import psycopg

    from stages.errors import PipelineError
    from stages.report import metrics
    from stages.report.workbook import Sheet, write_leads_workbook
    from stages.rules.config import load_params
    from stages.store import db, leads, loads
    from stages.store.files import write_json

    params = load_params()
    engine = params.engine(engine_name)
    marker_path = params.path("ingest", engine.name, ".json")
    if not marker_path.is_file():
        raise PipelineError(
            f"{STAGE}@{engine.name}: {marker_path.name} is missing; "
            f"run `{leads.REPAIR_COMMAND.format(engine=engine.name)}`."
        )
    marker = json.loads(marker_path.read_text(encoding="utf-8"))
    settings = params.export
    source_tag = settings.source_tag or None
    workbook = params.path("exports", engine.name, ".xlsx")
    started = time.monotonic()

    def export_once() -> tuple[WorkbookStats, dict[str, int | str | None]]:
        with db.connect() as conn:
            # One snapshot for every sheet: a load committed meanwhile shows in none of them.
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            with conn.transaction():
                drift = leads.check_drift(conn, engine.name, marker.get("database", {}))
                if drift:
                    raise PipelineError(f"{STAGE}@{engine.name}: {drift}")
                history = loads.engine_loads(conn, engine.name, source_tag)
                since = loads.not_seen_since(history, settings.not_seen_loads)
                changes = [
                    Sheet(
                        "New",
                        CHANGE_COLUMNS,
                        loads.new_leads(conn, engine.name, source_tag, history[-1])
                        if history
                        else (),
                    ),
                    Sheet(
                        "Not seen",
                        CHANGE_COLUMNS,
                        loads.not_seen_leads(conn, engine.name, source_tag, since) if since else (),
                    ),
                    Sheet("Summary", SUMMARY_COLUMNS, [_summary_row(load) for load in history]),
                ]
                # What this snapshot holds, so status can tell when the database moves on.
                latest = leads.loads_after(conn, engine.name, None, source_tag).latest_id
                state = {"load_id": latest, **db.database_identity(conn)}
                rows = _counted(leads.engine_leads(conn, engine.name, source_tag), workbook.name)
                written = write_leads_workbook(
                    workbook,
                    rows,
                    rows_per_sheet=settings.rows_per_sheet,
                    extra_sheets=changes,
                )
                return written, {**state, "leads": written.rows}

    stats, state = db.retrying(
        settings.retry_policy, export_once, describe=f"{STAGE}@{engine.name}"
    )
    write_json(
        params.path("exports", engine.name, ".json"),
        {
            "rows": stats.rows,
            "sheets": stats.sheets,
            "bytes": stats.bytes,
            "new": stats.extra_rows.get("New", 0),
            "not_seen": stats.extra_rows.get("Not seen", 0),
            "seconds": round(time.monotonic() - started, 3),
            "source_tag": source_tag or "",
            "database": state,
        },
    )
    metrics.write_engine_metrics(params, engine.name, marker, rows=stats.rows, sheets=stats.sheets)


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
