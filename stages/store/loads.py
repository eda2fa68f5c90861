"""What changed between loads of an engine: per-load figures, new leads, leads not seen lately.

`ingest_loads` holds one row per committed load (0001); migration 0004 adds the crawl lines,
rejected lines and retracted leads. New leads of a load are its `inserted`; leads it did not
see are the engine's leads after it less the unique ids it held. The workbook's New, Not seen
and Summary sheets come from here (stages.export); the dashboard's trends come from the ingest
attempts in the run history instead (stages.observe.snapshot.trends: no database needed), the
same counts.

A load that looks like a lost crawl (too many lines rejected, or far fewer ids than the
engine's previous load) is refused before it commits: `collapse_guard`.

Retracted leads (a flag the lead-evidence migration adds to hotel_booking_engines) are not
leads: they are left out of New and Not seen; the flag is read through the row as JSON, so a
database without it answers too.
"""

from __future__ import annotations

import shlex
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from stages.errors import PipelineError
from stages.store.leads import LEAD_ROWS

if TYPE_CHECKING:
    import psycopg

    from stages.rules.config import Ingest


@dataclass(frozen=True)
class LoadFigures:
    """One load of one engine: when the crawl was made, and its counts."""

    seen_at: datetime  # the crawl file's time (first/last_seen_at of the leads it saw)
    lines: int | None  # None: loaded before migration 0004 recorded it
    leads: int
    new: int
    not_seen: int
    rejected: int | None
    retracted: int | None


def record_line_counts(conn: psycopg.Connection, load_id: str, counts: Mapping[str, Any]) -> None:
    """Store a load's `lines`, `rejected` and `retracted` (0 when not counted) on its row.

    Call it in the load's transaction, so the figures commit with the load or not at all.
    """
    conn.execute(
        "UPDATE ingest_loads SET lines = %s, rejected = %s, retracted = %s WHERE id = %s",
        [counts.get("lines"), counts.get("rejected"), counts.get("retracted", 0), load_id],
    )


class LineCounts(Protocol):
    """The line counts of the file being loaded, read when the guard runs (stages.ingest's
    LineTally): lines read, blank lines, and rejected lines by reason."""

    lines: int
    blank: int
    rejected: Counter[str]


def collapse_guard(
    engine: str, lines: LineCounts, limits: Ingest, *, file: str, by_hand: bool = False
) -> Callable[[int, int | None], None]:
    """The `before_commit` guard of a load (stages.store.leads.load_leads): it raises
    PipelineError if the load looks like a lost crawl.

    Fails when rejected lines exceed `limits.max_rejected_share` of the non-blank lines, or when
    the unique ids fall below `limits.min_previous_share` of the previous pipeline load's; the
    message names the crawl `file`, the figures, the three commonest reject reasons and how to
    accept on purpose (for a run `by_hand`, the command with `--file`).
    """
    rerun = f"python -m stages.ingest --engine {engine}"
    rerun += f" --file {shlex.quote(file)} --accept" if by_hand else " --accept"
    max_rejected_share, min_previous_share = limits.max_rejected_share, limits.min_previous_share

    def check(unique: int, previous: int | None) -> None:
        rejected = sum(lines.rejected.values())
        read = lines.lines - lines.blank
        problems, keys = [], []
        if read and rejected / read > max_rejected_share:
            problems.append(
                f"{rejected:,} of {read:,} non-blank lines rejected ({rejected / read:.0%}, "
                f"above ingest.max_rejected_share {max_rejected_share:g})"
            )
            keys.append("raise ingest.max_rejected_share")
        if previous and unique < min_previous_share * previous:
            problems.append(
                f"{unique:,} unique ids, {unique / previous:.0%} of the previous load's "
                f"{previous:,} (below ingest.min_previous_share {min_previous_share:g})"
            )
            keys.append("lower ingest.min_previous_share")
        if not problems:
            return
        common = ", ".join(f"{reason} {count:,}" for reason, count in lines.rejected.most_common(3))
        raise PipelineError(
            f"nothing loaded from {file}: {'; '.join(problems)}; commonest rejects: "
            f"{common or 'none'}. If the file is right, {' and '.join(keys)} in params.yaml, "
            f"or run `{rerun}` once."
        )

    return check


LOADS_SQL = """
SELECT l.seen_at, to_jsonb(l) ->> 'lines', l.leads, l.inserted,
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
            lines=_int(lines),
            leads=leads,
            new=new,
            not_seen=max(not_seen, 0),
            rejected=_int(rejected),
            retracted=_int(retracted),
        )
        for seen, lines, leads, new, not_seen, rejected, retracted in rows.fetchall()
    ]


_CHANGED_LEADS = (
    LEAD_ROWS
    + """
  AND (%(source_tag)s::text IS NULL OR %(source_tag)s::text = ANY (l.sources))
  AND l.retracted_at IS NULL
"""
)
# In the order of the Leads sheet, so a reader finds a new lead where the Leads sheet has it.
NEW_SQL = (
    _CHANGED_LEADS
    + """  AND l.first_seen_at = %(at)s
ORDER BY h.country NULLS LAST, h.city NULLS LAST, h.name NULLS LAST, l.property_id
"""
)
# Newest last seen first: the hotels that left most recently are the warmest leads.
NOT_SEEN_SQL = (
    _CHANGED_LEADS
    + """  AND l.last_seen_at < %(at)s
ORDER BY l.last_seen_at DESC, l.property_id
"""
)


def new_leads(
    conn: psycopg.Connection, engine: str, source_tag: str | None, latest: LoadFigures
) -> Iterator[tuple[Any, ...]]:
    """Export rows (leads.EXPORT_COLUMNS) of the leads first seen in the `latest` load."""
    return _stream(conn, NEW_SQL, engine, source_tag, latest.seen_at)


def not_seen_since(loads: list[LoadFigures], count: int) -> datetime | None:
    """The crawl time a lead must have been seen at to count as seen in the last `count`
    loads; None while there are fewer loads than that (nobody can have missed them yet)."""
    if count < 1 or len(loads) < count:
        return None
    return min(load.seen_at for load in loads[-count:])


def not_seen_leads(
    conn: psycopg.Connection, engine: str, source_tag: str | None, since: datetime
) -> Iterator[tuple[Any, ...]]:
    """Export rows of the leads last seen before `since`, newest last seen first."""
    return _stream(conn, NOT_SEEN_SQL, engine, source_tag, since)


def _stream(
    conn: psycopg.Connection, query: str, engine: str, source_tag: str | None, at: datetime
) -> Iterator[tuple[Any, ...]]:
    params = {"engine": engine, "source_tag": source_tag or None, "at": at}
    with conn.transaction(), conn.cursor(name=f"changed_leads_{uuid.uuid4().hex}") as cur:
        cur.itersize = 10_000
        cur.execute(query, params)
        yield from cur


def _int(value: Any) -> int | None:
    return None if value is None else int(value)
