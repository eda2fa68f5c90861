"""Per-load figures of an engine: what each ingest load read and did, for trends and the workbook.

`ingest_loads` holds one row per committed load (0001); migration 0004 adds the crawl lines,
rejected lines and retracted leads. New leads of a load are its `inserted`; leads it did not
see are the engine's leads after it less the unique ids it held. The dashboard's trends come
from the ingest attempts in the run history instead (no database needed), the same counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

    from stages.history import Attempt

TREND_POINTS = 30


@dataclass(frozen=True)
class LoadFigures:
    """One load of one engine: when the crawl was made and loaded, and its counts."""

    seen_at: datetime  # the crawl file's time (first/last_seen_at of the leads it saw)
    loaded_at: datetime
    lines: int | None  # None: loaded before migration 0004 recorded it
    leads: int
    new: int
    not_seen: int
    rejected: int | None
    retracted: int | None


def record_line_counts(conn: psycopg.Connection, load_id: str, counts: Mapping[str, Any]) -> None:
    """Store a load's `lines`, `rejected` and (when present) `retracted` counts on its row.

    Call it in the load's transaction, so the figures commit with the load or not at all.
    """
    conn.execute(
        "UPDATE ingest_loads SET lines = %s, rejected = %s, retracted = %s WHERE id = %s",
        [counts.get("lines"), counts.get("rejected"), counts.get("retracted"), load_id],
    )


LOADS_SQL = """
SELECT l.seen_at, l.finished_at, to_jsonb(l) ->> 'lines', l.leads, l.inserted,
       l.leads - l.unique_ids, to_jsonb(l) ->> 'rejected', to_jsonb(l) ->> 'retracted'
FROM ingest_loads AS l JOIN booking_engines AS e ON e.id = l.engine_id
WHERE e.name = %(engine)s AND (%(source_tag)s::text IS NULL OR l.source_tag = %(source_tag)s)
ORDER BY l.finished_at, l.id
"""


def engine_loads(
    conn: psycopg.Connection, engine: str, source_tag: str | None = None
) -> list[LoadFigures]:
    """Every load of `engine` (with `source_tag`, unless None), oldest first.

    The columns of 0004 are read through the row as JSON, so a database that lacks them
    (older schema) still answers, with None for what it did not record.
    """
    rows = conn.execute(LOADS_SQL, {"engine": engine, "source_tag": source_tag or None})
    return [
        LoadFigures(
            seen_at=seen,
            loaded_at=loaded,
            lines=_int(lines),
            leads=leads,
            new=new,
            not_seen=max(not_seen, 0),
            rejected=_int(rejected),
            retracted=_int(retracted),
        )
        for seen, loaded, lines, leads, new, not_seen, rejected, retracted in rows.fetchall()
    ]


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def trends(attempts: Iterable[Attempt], engines: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """Per engine, after each successful ingest (oldest first, the last TREND_POINTS): leads,
    new leads (inserted), retracted leads (0 when the ingest did not count any) and rejected
    lines, from the counts the ingest attempts recorded."""
    found: dict[str, list[dict[str, Any]]] = {engine: [] for engine in engines}
    for a in attempts:
        if a.stage != "ingest" or a.outcome != "succeeded" or a.engine not in found:
            continue
        if "leads" not in a.counts:
            continue
        found[a.engine].append(
            {
                "at": a.ended_at,
                "leads": a.counts["leads"],
                "new": a.counts.get("inserted", 0),
                "retracted": a.counts.get("retracted", 0),
                "rejected": a.counts.get("rejected", 0),
            }
        )
    return {engine: points[-TREND_POINTS:] for engine, points in found.items()}
