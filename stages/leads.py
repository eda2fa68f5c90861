"""Hotel leads in PostgreSQL: the ingest merge, the export query and the drift check.

A load is one transaction under a per-engine advisory lock: the ids are COPYed into a staging
table while they are parsed, then merged with set-based SQL. Nothing is ever deleted: a lead
missing from a newer crawl file keeps its row and its last_seen_at.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any

import psycopg

from stages.config import Engine
from stages.db import advisory_key, database_identity
from stages.errors import ConfigError

DETECTION_METHOD = "crawl"
# Ids per COPY write: large blocks keep Python's per-call cost low, and memory stays flat.
COPY_BLOCK = 65_536
# What a re-run costs nothing to try and fixes a database that lost an engine's leads: it
# re-runs ingest@E without re-downloading, then export@E and publish@E from the new marker.
REPAIR_COMMAND = "dvc repro --downstream --force ingest@{engine}"
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

# COPY text format gives \, tab, newline and carriage return a meaning; crawl ids never hold
# them, but an id that does must arrive intact rather than split or mangled.
COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


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
    leads: int  # the engine's leads after the load, from every source
    database: str
    database_id: str

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
    ids: Iterable[str],
    *,
    source_tag: str,
    seen_at: datetime,
) -> LoadResult:
    """Merge every valid id of one crawl file (duplicates included) into `engine`'s leads.

    `ids` is consumed inside the COPY, so parsing overlaps the server's work, and is never held
    in memory. The work runs in `with conn.transaction()`: on an autocommit connection (what
    `db.connect()` returns) the load is committed when this returns; inside a transaction of
    the caller it is a savepoint and the caller's commit makes it stick. If anything raises,
    iterating `ids` included, the database keeps its previous state.
    """
    if not source_tag:
        raise ConfigError(f"Engine {engine.name}: the source tag is empty; set ingest.source_tag.")
    if seen_at.tzinfo is None:
        raise ValueError("seen_at must be timezone-aware")
    with conn.transaction(), conn.cursor() as cur:
        # Two loads of one engine take turns; loads of different engines never wait.
        cur.execute("SELECT pg_advisory_xact_lock(%s)", [advisory_key("engine", engine.name)])
        # Room to hash a large file's ids in memory; past that PostgreSQL spills to disk.
        cur.execute("SET LOCAL work_mem = '256MB'")
        engine_id = _upsert_engine(cur, engine)
        cur.execute(
            'CREATE TEMP TABLE lead_staging (property_id text COLLATE "C" NOT NULL) ON COMMIT DROP'
        )
        with cur.copy("COPY lead_staging (property_id) FROM STDIN") as copy:
            valid = _copy_ids(copy, ids)
        # Counted before the merge, while the visibility map still spares the heap: after it,
        # counting reads every page the merge wrote. Loads of one engine take turns and never
        # delete, so the merge adds exactly `inserted`.
        cur.execute("SELECT count(*) FROM hotel_booking_engines WHERE engine_id = %s", [engine_id])
        before = _one(cur)
        counts = _merge(cur, engine_id, engine, source_tag, seen_at)
        leads = before + counts[1]
        cur.execute(
            "INSERT INTO ingest_loads (engine_id, source_tag, seen_at, valid, unique_ids,"
            " inserted, updated, unchanged, leads)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id::text",
            [engine_id, source_tag, seen_at, valid, *counts, leads],
        )
        load_id = _one(cur)
        # Dropped now, not only at commit, so a caller's transaction can hold two loads.
        cur.execute("DROP TABLE lead_staging, lead_ids")
        identity = database_identity(conn)
    unique, inserted, updated, unchanged = counts
    return LoadResult(
        load_id=load_id,
        engine=engine.name,
        source_tag=source_tag,
        seen_at=seen_at,
        valid=valid,
        unique=unique,
        inserted=inserted,
        updated=updated,
        unchanged=unchanged,
        leads=leads,
        database=identity["database"],
        database_id=identity["database_id"],
    )


def _upsert_engine(cur: psycopg.Cursor, engine: Engine) -> int:
    cur.execute(
        "INSERT INTO booking_engines (name, display_name) VALUES (%s, %s)"
        " ON CONFLICT (name) DO UPDATE SET display_name = EXCLUDED.display_name"
        " WHERE booking_engines.display_name IS DISTINCT FROM EXCLUDED.display_name",
        [engine.name, engine.display_name],
    )
    cur.execute("SELECT id FROM booking_engines WHERE name = %s", [engine.name])
    return _one(cur)


def _copy_ids(copy: psycopg.Copy, ids: Iterable[str]) -> int:
    """Write `ids` to the COPY in large text blocks; return how many were written."""
    written = 0
    remaining = iter(ids)
    while block := list(islice(remaining, COPY_BLOCK)):
        text = "\n".join(block)
        # One scan per special character over the whole block is far cheaper than per id.
        if text.count("\n") != len(block) - 1 or "\\" in text or "\t" in text or "\r" in text:
            text = "\n".join(property_id.translate(COPY_ESCAPES) for property_id in block)
        copy.write(text + "\n")
        written += len(block)
    return written


# The staged ids, deduplicated; new_hotel_id is pre-assigned for ids the engine has not seen,
# which pairs each new hotel with its lead without a round trip per row.
LEAD_IDS = """
INSERT INTO lead_ids (property_id, new_hotel_id)
SELECT s.property_id,
       CASE WHEN l.property_id IS NULL
            THEN nextval(pg_get_serial_sequence('hotels', 'id')) END
FROM (SELECT DISTINCT property_id FROM lead_staging) AS s
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
                                   detection_method, first_seen_at, last_seen_at)
SELECT %(engine_id)s, property_id, new_hotel_id,
       replace(%(booking_url)s::text, '{id}', property_id),
       ARRAY[%(source_tag)s::text], %(detection_method)s, %(seen_at)s, %(seen_at)s
FROM lead_ids
WHERE new_hotel_id IS NOT NULL
"""

# last_seen_at only moves forward and the tag is added once; rows that would not change are
# left alone, so loading the same file again rewrites nothing.
SEEN_AGAIN = """
UPDATE hotel_booking_engines AS l
SET last_seen_at = greatest(l.last_seen_at, %(seen_at)s),
    sources = CASE WHEN %(source_tag)s::text = ANY (l.sources) THEN l.sources
                   ELSE array_append(l.sources, %(source_tag)s::text) END
FROM lead_ids AS i
WHERE i.new_hotel_id IS NULL
  AND l.engine_id = %(engine_id)s
  AND l.property_id = i.property_id
  AND (l.last_seen_at < %(seen_at)s OR NOT %(source_tag)s::text = ANY (l.sources))
"""


def _merge(
    cur: psycopg.Cursor, engine_id: int, engine: Engine, source_tag: str, seen_at: datetime
) -> tuple[int, int, int, int]:
    """Merge lead_staging into the engine's leads; return (unique, inserted, updated, unchanged)."""
    params = {
        "engine_id": engine_id,
        "booking_url": engine.booking_url,
        "source_tag": source_tag,
        "detection_method": DETECTION_METHOD,
        "seen_at": seen_at,
    }
    cur.execute(
        'CREATE TEMP TABLE lead_ids (property_id text COLLATE "C" NOT NULL, new_hotel_id bigint)'
        " ON COMMIT DROP"
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
    return unique, inserted, updated, unique - inserted - updated


def _one(cur: psycopg.Cursor) -> Any:
    row = cur.fetchone()
    assert row is not None
    return row[0]


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
    load_id, expected = fingerprint.get("load_id"), fingerprint.get("leads")
    try:
        load_id, expected = str(uuid.UUID(str(load_id))), int(expected)
    except (TypeError, ValueError):
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


EXPORT_SQL = """
SELECT h.name, h.city, h.country, h.website, l.booking_url, e.display_name, l.property_id,
       l.sources, l.first_seen_at, l.last_seen_at
FROM hotel_booking_engines AS l
JOIN booking_engines AS e ON e.id = l.engine_id
JOIN hotels AS h ON h.id = l.hotel_id
WHERE e.name = %(engine)s
  AND (%(source_tag)s::text IS NULL OR %(source_tag)s::text = ANY (l.sources))
ORDER BY h.country NULLS LAST, h.city NULLS LAST, h.name NULLS LAST, l.property_id
"""


def engine_leads(
    conn: psycopg.Connection,
    engine_name: str,
    source_tag: str | None = None,
    *,
    itersize: int = 10_000,
) -> Iterator[tuple[Any, ...]]:
    """Stream the export rows (EXPORT_COLUMNS) of `engine_name` through a server-side cursor.

    Ordered by country, city, hotel name (NULLs last) and property id, so the order is total.
    Only leads whose sources hold `source_tag`, unless it is None or empty. The rows come from
    one transaction, opened on the first row and closed when the iterator is exhausted or
    closed; timestamps are timezone-aware datetimes and sources a list of str.
    """
    params = {"engine": engine_name, "source_tag": source_tag or None}
    with conn.transaction():
        conn.execute("SET LOCAL work_mem = '64MB'")  # sort a large engine in memory
        with conn.cursor(name=f"engine_leads_{uuid.uuid4().hex}") as cur:
            cur.itersize = itersize
            cur.execute(EXPORT_SQL, params)
            yield from cur
