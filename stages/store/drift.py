"""Has the database moved away from what the markers say? The checks export and status run.

`check_drift`: the database lost what the ingest marker records (replaced, reset, rows
deleted): export fails, status says so. `check_workbook`: the database changed after the export
wrote the workbook (a load by hand, another checkout's load into a shared database), so the
workbook is stale though DVC cannot see it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from stages.store.db import database_identity

# What a re-run costs nothing to try and fixes a database that lost an engine's leads: it
# re-runs ingest@E without re-downloading, then export@E and publish@E from the new marker.
REPAIR_COMMAND = "dvc repro --downstream --force ingest@{engine}"
# What brings a workbook in line with a database that changed after the export (a load by
# hand, another checkout's load into a shared database): DVC cannot see the database, so
# only a forced export writes the workbook again, and publish follows it.
REEXPORT_COMMAND = "dvc repro --downstream --force export@{engine}"


def lead_count(conn: psycopg.Connection, engine_name: str) -> int:
    """How many leads the database holds for `engine_name`, from every source."""
    row = conn.execute(
        "SELECT count(*) FROM hotel_booking_engines AS l"
        " JOIN booking_engines AS e ON e.id = l.engine_id WHERE e.name = %s",
        [engine_name],
    ).fetchone()
    return row[0] if row else 0


def check_drift(conn: psycopg.Connection, engine_name: str, marker: dict[str, Any]) -> str | None:
    """A sentence saying how the database lost what the ingest marker records, or None.

    `marker` is the ingest marker of `engine_name`, holding the load's `fingerprint` under
    "fingerprint" or "database", or the fingerprint itself. Drift is the marker's load missing
    (the database was replaced or reset) or fewer leads of the engine than the load left (rows
    were deleted or truncated).
    """
    nested = (marker.get(key) for key in ("fingerprint", "database"))
    fingerprint = next((value for value in nested if isinstance(value, dict)), marker)
    repair = f"run `{REPAIR_COMMAND.format(engine=engine_name)}` to load them again"
    try:
        load_id = str(uuid.UUID(str(fingerprint.get("load_id"))))
        expected = int(fingerprint["leads"])
    except (KeyError, TypeError, ValueError):
        return f"Engine {engine_name}: the ingest marker records no database load; {repair}."
    row = conn.execute(
        "SELECT e.name FROM ingest_loads AS l JOIN booking_engines AS e ON e.id = l.engine_id"
        " WHERE l.id = %s",
        [load_id],
    ).fetchone()
    identity = database_identity(conn)
    database = identity["database"]
    if row is None:
        if fingerprint.get("database_id") not in (None, identity["database_id"]):
            cause = (
                f"database {database} is not the one its leads were loaded into "
                "(it was replaced or re-created)"
            )
        else:
            cause = f"database {database} no longer records ingest load {load_id} (it was reset)"
        return f"Engine {engine_name}: {cause}; {repair}."
    if row[0] != engine_name:
        return (
            f"Engine {engine_name}: the ingest marker names load {load_id} of engine {row[0]}; "
            f"{repair}."
        )
    found = lead_count(conn, engine_name)
    if found < expected:
        return (
            f"Engine {engine_name}: database {database} holds {found} leads but ingest left "
            f"{expected} (rows were deleted or the table truncated); {repair}."
        )
    return None


LOADS_AFTER_SQL = """
SELECT count(*),
       (array_agg(l.id::text ORDER BY l.finished_at DESC, l.id DESC))[1],
       (array_agg(l.by_hand ORDER BY l.finished_at DESC, l.id DESC))[1],
       max(l.finished_at)
FROM ingest_loads AS l JOIN booking_engines AS e ON e.id = l.engine_id
WHERE e.name = %(engine)s
  AND (%(source_tag)s::text IS NULL OR l.source_tag = %(source_tag)s::text)
  AND (l.inserted > 0 OR l.updated > 0)
  AND l.finished_at > coalesce(
        (SELECT finished_at FROM ingest_loads WHERE id = %(load_id)s::uuid), '-infinity')
"""
# The leads an export lists: EXPORT_SQL's filter, counted.
LISTED_SQL = """
SELECT count(*) FROM hotel_booking_engines AS l JOIN booking_engines AS e ON e.id = l.engine_id
WHERE e.name = %(engine)s AND l.retracted_at IS NULL
  AND (%(source_tag)s::text IS NULL OR %(source_tag)s::text = ANY (l.sources))
"""


@dataclass(frozen=True)
class LaterLoads:
    """The loads of an engine that finished after a given one (all of them when it is None)."""

    count: int
    latest_id: str | None
    latest_by_hand: bool | None
    latest_at: datetime | None


def loads_after(
    conn: psycopg.Connection, engine_name: str, load_id: str | None, source_tag: str | None
) -> LaterLoads:
    """The loads of `engine_name` (with `source_tag` unless None) committed after `load_id`
    that changed its leads (added some or rewrote some: a re-run of the same crawl changes
    none); every such load counts when `load_id` is None, not a load id, or no longer
    recorded."""
    try:
        load_id = str(uuid.UUID(str(load_id))) if load_id is not None else None
    except ValueError:
        load_id = None
    row = conn.execute(
        LOADS_AFTER_SQL,
        {"engine": engine_name, "source_tag": source_tag or None, "load_id": load_id},
    ).fetchone()
    assert row is not None  # an aggregate always answers one row
    return LaterLoads(*row)


def check_workbook(
    conn: psycopg.Connection,
    engine_name: str,
    exported: dict[str, Any] | None,
    ingested: dict[str, Any] | None = None,
    source_tag: str | None = None,
) -> str | None:
    """A sentence saying how the database changed after the export wrote the engine's
    workbook (so the workbook is stale, though DVC cannot see it), with the fix; or None.

    `exported` is the export marker's "database" entry: the engine's latest load (with the
    export's source tag) and the rows listed, read in the export's snapshot, and the database
    identity (`database_identity`). A
    load committed after it (by hand with `stages.ingest --file`, or another checkout's load
    into a shared database) or a different count of listed leads (rows added, deleted or
    retracted outside the pipeline) is a change. Without it (no export yet, or a marker
    written before it was recorded), the ingest marker's fingerprint `ingested` stands in and
    only a load after the ingest's counts. Lost leads are `check_drift`'s finding, not this.
    """
    recorded = exported if (exported or {}).get("database_id") else None
    reference = (recorded or ingested or {}).get("load_id")
    if recorded is None and reference is None:
        return None  # nothing was exported or ingested yet: no workbook to be behind
    later = loads_after(conn, engine_name, reference, source_tag)
    row = conn.execute(
        LISTED_SQL, {"engine": engine_name, "source_tag": source_tag or None}
    ).fetchone()
    listed = row[0] if row else 0
    expected = int(recorded["leads"]) if recorded and recorded.get("leads") is not None else None
    if not later.count and expected in (None, listed):
        return None
    if later.count and later.latest_at is not None:
        how = "by hand" if later.latest_by_hand else "by a pipeline run"
        at = later.latest_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        plural = "s" if later.count > 1 else ""
        cause = f"{later.count} load{plural} since, the latest {how} at {at}"
    else:
        cause = "leads were added, deleted or retracted outside the pipeline"
    figures = f"{listed:,} leads to list now" + (
        f", the workbook lists {expected:,}" if expected is not None else ""
    )
    fix = REEXPORT_COMMAND.format(engine=engine_name)
    return (
        f"Engine {engine_name}: database {database_identity(conn)['database']} changed after "
        f"the export ({figures}; {cause}); the workbook is stale: run `{fix}`."
    )
