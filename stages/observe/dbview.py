"""The database per engine, as status and the dashboard see it: did it lose what the ingest left
(drift), or move on after the export (changed, so the workbook is stale)?

DVC cannot see the database, so these findings make the cell whose run repairs them stale
(stages.observe.cells). Read without starting a server unless asked (`start_db`); never raises.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stages.errors import first_line
from stages.observe import runtable
from stages.observe.records import Attempt
from stages.store.secrets import redact

# An engine's finding: DRIFT when it lost what the ingest left, CHANGED when it moved on after
# the export, OK when it matches both markers (stages.store.drift has the checks and the fix).
DRIFT, CHANGED, OK = "drift", "changed", "ok"
NOT_INGESTED, UNCHECKED = "not ingested", "unchecked"


@dataclass
class Finding:
    """One engine's database finding: `state` (DRIFT, CHANGED, OK, NOT_INGESTED or UNCHECKED),
    the sentence that explains it and the engine's lead count when it was read."""

    engine: str
    state: str = UNCHECKED
    message: str = ""
    leads: int | None = None


@dataclass
class DatabaseView:
    """The database as status found it: `state` "unchecked", "reachable", "unreachable" or
    "error"; its label (server and database, no secrets); a message when it was not read; the
    findings by engine; the stage_runs rows of the shared run history."""

    state: str = UNCHECKED
    label: str = ""
    message: str = ""
    findings: dict[str, Finding] = field(default_factory=dict)
    runs: list[Attempt] = field(default_factory=list)


def database_view(
    root: Path,
    markers: dict[str, dict[str, Any] | None],
    *,
    start_db: bool,
    exports: dict[str, dict[str, Any] | None] | None = None,
    source_tag: str | None = None,
) -> DatabaseView:
    """The findings of each engine in `markers` (ingest markers by engine; `exports` the export
    markers) and the stage_runs rows, without starting a server unless `start_db`.

    Never raises: a server that cannot be reached is "unreachable", a refused login or a
    missing permission "error", each with the first line of the cause."""
    view = DatabaseView()
    try:
        from stages.store.db import available_database_url

        url = available_database_url(root, start_embedded=start_db)
    except Exception as exc:
        view.message = redact(first_line(exc))
        return view
    if url is None:
        view.message = (
            "the embedded PostgreSQL (.pgdata) is not running and DATABASE_URL is not set; "
            "drift not checked (use --start-db to start it)"
        )
        return view
    from stages.store import db

    view.label = db.database_label(url)
    try:
        with runtable.connect_briefly(url, migrate=False) as conn:
            view.state = "reachable"
            view.runs = runtable.read_table(conn)
            for engine, marker in markers.items():
                exported = (exports or {}).get(engine)
                view.findings[engine] = _finding(conn, engine, marker, exported, source_tag)
    except Exception as exc:
        # Only a server that cannot be reached is "unreachable"; a refused login or a missing
        # permission is reported as the error it is.
        view.state = "unreachable" if db.is_transient(exc) else "error"
        view.message = redact(first_line(exc))
    return view


def _finding(
    conn: Any,
    engine: str,
    marker: dict[str, Any] | None,
    exported: dict[str, Any] | None,
    source_tag: str | None,
) -> Finding:
    import psycopg

    from stages.store.drift import REPAIR_COMMAND, check_drift, check_workbook, lead_count

    if marker is None:
        return Finding(engine, NOT_INGESTED, "no ingest marker yet")
    ingested = marker.get("database") or {}
    try:
        with conn.transaction():
            problem = check_drift(conn, engine, ingested)
            found = lead_count(conn, engine)
            changed = None
            if not problem:
                recorded = (exported or {}).get("database")
                changed = check_workbook(conn, engine, recorded, ingested, source_tag)
    except psycopg.errors.UndefinedTable:
        repair = REPAIR_COMMAND.format(engine=engine)
        problem = (
            f"Engine {engine}: database {conn.info.dbname} has no pipeline tables (it was "
            f"replaced or re-created); run `{repair}` to load them again."
        )
        found = 0
    if problem:
        return Finding(engine, DRIFT, problem, found)
    if changed:
        return Finding(engine, CHANGED, changed, found)
    return Finding(engine, OK, f"{found:,} leads; the workbook is current", found)
