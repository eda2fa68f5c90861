"""export@<engine>: the engine's leads from PostgreSQL -> data/exports/<engine>.xlsx.

Before writing, the database is compared with the ingest marker: a database that was
replaced or emptied behind DVC's back fails the stage instead of producing an empty or
partial workbook. data/exports/<engine>.json records the run (rows, sheets, bytes, seconds);
data/metrics/<engine>.json the numbers DVC compares (stages.metrics).
"""

from __future__ import annotations

import json
import sys
import time

from stages.runner import engine_parser, run_stage

STAGE = "export"
PROGRESS_EVERY = 10_000  # rows between progress reports


def export(engine_name: str) -> None:
    from stages import db, leads, metrics
    from stages.config import load_params
    from stages.errors import PipelineError
    from stages.files import write_json
    from stages.workbook import write_leads_workbook

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

    def export_once():
        with db.connect() as conn:
            drift = leads.check_drift(conn, engine.name, marker.get("database", {}))
            if drift:
                raise PipelineError(f"{STAGE}@{engine.name}: {drift}")
            rows = _counted(leads.engine_leads(conn, engine.name, source_tag), workbook.name)
            return write_leads_workbook(workbook, rows, rows_per_sheet=settings.rows_per_sheet)

    stats = db.retrying(settings.retry_policy, export_once, describe=f"{STAGE}@{engine.name}")
    write_json(
        params.path("exports", engine.name, ".json"),
        {
            "rows": stats.rows,
            "sheets": stats.sheets,
            "bytes": stats.bytes,
            "seconds": round(time.monotonic() - started, 3),
            "source_tag": source_tag or "",
        },
    )
    metrics.write_engine_metrics(params, engine.name, marker, rows=stats.rows, sheets=stats.sheets)


def _counted(rows, name: str):
    """Pass `rows` through, reporting progress every PROGRESS_EVERY rows and the true count at
    the end; the rows stream from PostgreSQL straight into the workbook."""
    from stages.progress import Progress

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
