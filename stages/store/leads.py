"""Hotel leads in PostgreSQL: the ingest merge and the export query.

A load is one transaction under a per-engine advisory lock: the ids are COPYed into a staging
table while they are parsed (stages.store.staging), then merged with set-based SQL. Nothing is
ever deleted: a lead missing from a newer crawl file keeps its row and its last_seen_at.

Each lead keeps its evidence (the first line that produced it) and each engine the fingerprint
of the rules its leads were checked against. When the rules change, the load first brings the
stored leads in line (stages.store.recheck): ids re-normalised and merged, booking URLs
re-derived, and leads whose evidence no longer yields their id retracted (kept, but left out of
the export). Whether the database still holds what the markers say is stages.store.drift.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import psycopg

from stages.errors import ConfigError
from stages.rules.config import Engine
from stages.store.db import advisory_key, database_identity
from stages.store.recheck import Recheck, recheck
from stages.store.staging import CopyBlocks, Found, stage_rows

DETECTION_METHOD = "crawl"
EXPORT_COLUMNS = (
    "hotel_name",
    "city",
    "country",
    "website",
    "booking_url",
    "engine",
    "property_id",
    "sources",
    "first_seen_at",
    "last_seen_at",
)


@dataclass(frozen=True)
class LoadResult:
    """What one load did; `unique == inserted + updated + unchanged`."""

    load_id: str
    engine: str
    source_tag: str
    seen_at: datetime
    valid: int  # ids copied, duplicates included
    unique: int
    inserted: int
    updated: int
    unchanged: int
    leads: int  # the engine's leads after the load, from every source, retracted included
    database: str
    database_id: str
    retracted: int = 0  # the engine's retracted leads after the load
    unretracted: int = 0  # retracted leads this file named again
    rules: Recheck = Recheck()  # what a change of the engine's rules did before the merge

    @property
    def duplicates(self) -> int:
        return self.valid - self.unique

    def counts(self) -> dict[str, int]:
        return {
            "valid": self.valid,
            "unique": self.unique,
            "duplicates": self.duplicates,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "leads": self.leads,
            "retracted": self.retracted,
            "unretracted": self.unretracted,
        }

    @property
    def fingerprint(self) -> dict[str, Any]:
        """What the ingest marker records so `check_drift` can compare it later; no secrets."""
        return {
            "load_id": self.load_id,
            "engine": self.engine,
            "leads": self.leads,
            "database": self.database,
            "database_id": self.database_id,
        }


def load_leads(
    conn: psycopg.Connection,
    engine: Engine,
    ids: Iterable[str] | Iterable[Found] | CopyBlocks,
    *,
    source_tag: str,
    seen_at: datetime,
    by_hand: bool = False,
    before_commit: Callable[[int, int | None], None] | None = None,
) -> LoadResult:
    """Merge every id of one crawl file (duplicates included) into `engine`'s leads.

    `ids` holds bare ids (str: the lead gets the `booking_url` template and the id as its
    evidence) or `Found` rows, all of one kind, or their COPY text (`CopyBlocks`); it is
    consumed inside the COPY, so parsing overlaps the server's work, and is never held in
    memory. A new lead takes the URL and
    evidence of the first line that named it; a lead seen again keeps its own unless it had
    none or was retracted. If the engine's rules changed since its leads were last checked,
    they are brought in line first (`recheck`). `before_commit(unique, previous_unique)`,
    given the unique ids of this load and of the engine's previous pipeline load (None if
    none), may raise to abandon the load. The work runs in `with conn.transaction()`: on an
    autocommit connection (what `db.connect()` returns) the load is committed when this
    returns; inside a transaction of the caller it is a savepoint and the caller's commit
    makes it stick. If anything raises, iterating `ids` included, the database keeps its
    previous state.
    """
    _check_load(engine, source_tag, seen_at)
    with conn.transaction(), conn.cursor() as cur:
        engine_id = _take_engine(cur, engine)
        rules = recheck(conn, engine_id, engine)
        valid = stage_rows(cur, ids)
        before, retracted_before = _counts_before_merge(cur, engine_id)
        merged = _merge(cur, engine_id, engine, source_tag, seen_at)
        leads = before + merged.inserted
        retracted = _retracted(cur, engine_id) if retracted_before else 0
        if before_commit is not None:
            before_commit(merged.unique, _previous_unique(cur, engine_id))
        load_id = _record_load(cur, engine_id, source_tag, seen_at, valid, merged, leads, by_hand)
        # Dropped now, not only at commit, so a caller's transaction can hold two loads.
        cur.execute("DROP TABLE lead_staging, lead_ids")
        identity = database_identity(conn)
    return LoadResult(
        load_id=load_id,
        engine=engine.name,
        source_tag=source_tag,
        seen_at=seen_at,
        valid=valid,
        **merged._asdict(),
        leads=leads,
        database=identity["database"],
        database_id=identity["database_id"],
        retracted=retracted,
        unretracted=retracted_before - retracted,
        rules=rules,
    )


def _check_load(engine: Engine, source_tag: str, seen_at: datetime) -> None:
    """ConfigError for an empty source tag; ValueError for a naive `seen_at` (a caller's bug)."""
    if not source_tag:
        raise ConfigError(f"Engine {engine.name}: the source tag is empty; set ingest.source_tag.")
    if seen_at.tzinfo is None:
        raise ValueError("seen_at must be timezone-aware")


def _counts_before_merge(cur: psycopg.Cursor, engine_id: int) -> tuple[int, int]:
    """The engine's leads and retracted leads before the merge.

    Counted before it, while the visibility map still spares the heap: after it, counting reads
    every page the merge wrote. Loads of one engine take turns and the merge never deletes, so
    it adds exactly `inserted`."""
    cur.execute("SELECT count(*) FROM hotel_booking_engines WHERE engine_id = %s", [engine_id])
    return _one(cur), _retracted(cur, engine_id)


def _take_engine(cur: psycopg.Cursor, engine: Engine) -> int:
    """Take the engine's load lock and its id (registering it if new); set the load's memory."""
    # Two loads of one engine take turns; loads of different engines never wait.
    cur.execute("SELECT pg_advisory_xact_lock(%s)", [advisory_key("engine", engine.name)])
    # Room to hash a large file's ids in memory; past that PostgreSQL spills to disk.
    cur.execute("SET LOCAL work_mem = '256MB'")
    return _upsert_engine(cur, engine)


def _previous_unique(cur: psycopg.Cursor, engine_id: int) -> int | None:
    """The unique ids of the engine's latest pipeline load (not by hand); None if none."""
    cur.execute(
        "SELECT unique_ids FROM ingest_loads WHERE engine_id = %s AND NOT by_hand"
        " ORDER BY finished_at DESC LIMIT 1",
        [engine_id],
    )
    previous = cur.fetchone()
    return previous[0] if previous else None


def _record_load(
    cur: psycopg.Cursor,
    engine_id: int,
    source_tag: str,
    seen_at: datetime,
    valid: int,
    merged: Merged,
    leads: int,
    by_hand: bool,
) -> str:
    """Insert the load's row into ingest_loads; return its id."""
    cur.execute(
        "INSERT INTO ingest_loads (engine_id, source_tag, seen_at, valid, unique_ids,"
        " inserted, updated, unchanged, leads, by_hand)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id::text",
        [engine_id, source_tag, seen_at, valid, *merged, leads, by_hand],
    )
    return str(_one(cur))


def _retracted(cur: psycopg.Cursor, engine_id: int) -> int:
    cur.execute(
        "SELECT count(*) FROM hotel_booking_engines"
        " WHERE engine_id = %s AND retracted_at IS NOT NULL",
        [engine_id],
    )
    return _one(cur)


def _upsert_engine(cur: psycopg.Cursor, engine: Engine) -> int:
    cur.execute(
        "INSERT INTO booking_engines (name, display_name) VALUES (%s, %s)"
        " ON CONFLICT (name) DO UPDATE SET display_name = EXCLUDED.display_name"
        " WHERE booking_engines.display_name IS DISTINCT FROM EXCLUDED.display_name",
        [engine.name, engine.display_name],
    )
    cur.execute("SELECT id FROM booking_engines WHERE name = %s", [engine.name])
    return _one(cur)


# The staged ids, deduplicated, each with the URL and evidence of the first line naming it;
# new_hotel_id is pre-assigned for ids the engine has not seen, which pairs each new hotel
# with its lead without a round trip per row.
LEAD_IDS = """
INSERT INTO lead_ids (property_id, booking_url, evidence, new_hotel_id)
SELECT s.property_id,
       CASE WHEN s.booking_url = '' THEN replace(%(booking_url)s::text, '{id}', s.property_id)
            ELSE s.booking_url END,
       s.evidence,
       CASE WHEN l.property_id IS NULL
            THEN nextval(pg_get_serial_sequence('hotels', 'id')) END
FROM (SELECT DISTINCT ON (property_id) property_id, booking_url, evidence
      FROM lead_staging WHERE evidence <> '' ORDER BY property_id, line) AS s
LEFT JOIN hotel_booking_engines AS l
       ON l.engine_id = %(engine_id)s AND l.property_id = s.property_id
-- Leads seen again are then updated in the order they lie on disk, not in key order: a large
-- table is read and written once instead of page by page at random.
ORDER BY l.ctid, s.property_id
"""

NEW_HOTELS = """
INSERT INTO hotels (id) SELECT new_hotel_id FROM lead_ids WHERE new_hotel_id IS NOT NULL
"""

NEW_LEADS = """
INSERT INTO hotel_booking_engines (engine_id, property_id, hotel_id, booking_url, sources,
                                   detection_method, first_seen_at, last_seen_at, evidence)
SELECT %(engine_id)s, property_id, new_hotel_id, booking_url,
       ARRAY[%(source_tag)s::text], %(detection_method)s, %(seen_at)s, %(seen_at)s, evidence
FROM lead_ids
WHERE new_hotel_id IS NOT NULL
"""

# last_seen_at only moves forward and the tag is added once; a retracted lead named again is
# un-retracted and takes this line as its evidence and URL, as does a lead stored before
# evidence was kept. Rows that would not change are left alone, so loading the same file
# again rewrites nothing.
SEEN_AGAIN = """
UPDATE hotel_booking_engines AS l
SET last_seen_at = greatest(l.last_seen_at, %(seen_at)s),
    sources = CASE WHEN %(source_tag)s::text = ANY (l.sources) THEN l.sources
                   ELSE array_append(l.sources, %(source_tag)s::text) END,
    booking_url = CASE WHEN l.evidence IS NULL OR l.retracted_at IS NOT NULL
                       THEN i.booking_url ELSE l.booking_url END,
    evidence = CASE WHEN l.evidence IS NULL OR l.retracted_at IS NOT NULL
                    THEN i.evidence ELSE l.evidence END,
    retracted_at = NULL
FROM lead_ids AS i
WHERE i.new_hotel_id IS NULL
  AND l.engine_id = %(engine_id)s
  AND l.property_id = i.property_id
  AND (l.last_seen_at < %(seen_at)s OR NOT %(source_tag)s::text = ANY (l.sources)
       OR l.evidence IS NULL OR l.retracted_at IS NOT NULL)
"""


class Merged(NamedTuple):
    """What the merge did to the staged ids; `unique == inserted + updated + unchanged`."""

    unique: int
    inserted: int
    updated: int
    unchanged: int


def _merge(
    cur: psycopg.Cursor, engine_id: int, engine: Engine, source_tag: str, seen_at: datetime
) -> Merged:
    """Merge lead_staging into the engine's leads."""
    params = {
        "engine_id": engine_id,
        "booking_url": engine.booking_url,
        "source_tag": source_tag,
        "detection_method": DETECTION_METHOD,
        "seen_at": seen_at,
    }
    cur.execute(
        'CREATE TEMP TABLE lead_ids (property_id text COLLATE "C" NOT NULL, booking_url text,'
        " evidence text, new_hotel_id bigint) ON COMMIT DROP"
    )
    # Statistics of what was just copied steer the joins to hash joins at scale.
    cur.execute("ANALYZE lead_staging")
    cur.execute(LEAD_IDS, params)
    unique = cur.rowcount
    cur.execute("ANALYZE lead_ids")
    cur.execute(NEW_HOTELS)
    cur.execute(NEW_LEADS, params)
    inserted = cur.rowcount
    cur.execute(SEEN_AGAIN, params)
    updated = cur.rowcount
    return Merged(unique, inserted, updated, unique - inserted - updated)


def _one(cur: psycopg.Cursor) -> Any:
    row = cur.fetchone()
    assert row is not None
    return row[0]


# A workbook row of each lead of engine %(engine)s, in EXPORT_COLUMNS order; every sheet that
# lists leads (Leads here, New and Not seen in stages.store.loads) starts from it.
LEAD_ROWS = """
SELECT h.name, h.city, h.country, h.website, l.booking_url, e.display_name, l.property_id,
       l.sources, l.first_seen_at, l.last_seen_at
FROM hotel_booking_engines AS l
JOIN booking_engines AS e ON e.id = l.engine_id
JOIN hotels AS h ON h.id = l.hotel_id
WHERE e.name = %(engine)s
"""

EXPORT_SQL = (
    LEAD_ROWS
    + """
  AND (l.retracted_at IS NULL OR %(include_retracted)s)
  AND (%(source_tag)s::text IS NULL OR %(source_tag)s::text = ANY (l.sources))
ORDER BY h.country NULLS LAST, h.city NULLS LAST, h.name NULLS LAST, l.property_id
"""
)


def engine_leads(
    conn: psycopg.Connection,
    engine_name: str,
    source_tag: str | None = None,
    *,
    itersize: int = 10_000,
    include_retracted: bool = False,
) -> Iterator[tuple[Any, ...]]:
    """Stream the export rows (EXPORT_COLUMNS) of `engine_name` through a server-side cursor.

    Ordered by country, city, hotel name (NULLs last) and property id, so the order is total.
    Only leads whose sources hold `source_tag`, unless it is None or empty; retracted leads
    only with `include_retracted`. The rows come from
    one transaction, opened on the first row and closed when the iterator is exhausted or
    closed; timestamps are timezone-aware datetimes and sources a list of str.
    """
    params = {
        "engine": engine_name,
        "source_tag": source_tag or None,
        "include_retracted": include_retracted,
    }
    with conn.transaction():
        conn.execute("SET LOCAL work_mem = '64MB'")  # sort a large engine in memory
        with conn.cursor(name=f"engine_leads_{uuid.uuid4().hex}") as cur:
            cur.itersize = itersize
            cur.execute(EXPORT_SQL, params)
            yield from cur
