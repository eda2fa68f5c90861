"""Hotel leads in PostgreSQL: the ingest merge, the export query and the drift check.

A load is one transaction under a per-engine advisory lock: the ids are COPYed into a staging
table while they are parsed, then merged with set-based SQL. Nothing is ever deleted: a lead
missing from a newer crawl file keeps its row and its last_seen_at.

Each lead keeps its evidence (the first line that produced it) and each engine the fingerprint
of the rules its leads were checked against. When the rules change, the load first brings the
stored leads in line (`recheck`): ids re-normalised and merged, booking URLs re-derived, and
leads whose evidence no longer yields their id retracted (kept, but left out of the export).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any, cast

import psycopg

from stages.errors import ConfigError
from stages.rules.config import Engine
from stages.rules.crawl import LineParser, evidence_line, rules_fingerprint
from stages.store.db import advisory_key, database_identity

DETECTION_METHOD = "crawl"
# Ids per COPY write: large blocks keep Python's per-call cost low, and memory stays flat.
COPY_BLOCK = 65_536
# What a re-run costs nothing to try and fixes a database that lost an engine's leads: it
# re-runs ingest@E without re-downloading, then export@E and publish@E from the new marker.
REPAIR_COMMAND = "dvc repro --downstream --force ingest@{engine}"
# What brings a workbook in line with a database that changed after the export (a load by
# hand, another checkout's load into a shared database): DVC cannot see the database, so
# only a forced export writes the workbook again, and publish follows it.
REEXPORT_COMMAND = "dvc repro --downstream --force export@{engine}"
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
# The same as replaces, backslash first so the escapes' own backslashes stay single.
ESCAPE_ORDER = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))
RECHECK_BATCH = 10_000

# One staged row per id a line named: (property_id, line number, booking URL, evidence). A
# repeat of an id already staged may carry "" for both: the first line of each id decides.
Found = tuple[str, int, str, str]


@dataclass(frozen=True)
class Recheck:
    """What bringing an engine's stored leads in line with changed rules did to them."""

    checked: int = 0  # leads whose evidence was read again (0: the rules had not changed)
    urls: int = 0  # booking URL re-derived
    renamed: int = 0  # id re-normalised (id_case), onto a new id or merged into another lead
    merged: int = 0  # rows folded into another lead of the same id
    retracted: int = 0  # evidence no longer yields the id
    unretracted: int = 0  # evidence yields the id again

    @property
    def rows_changed(self) -> int:
        return self.urls + self.renamed + self.retracted + self.unretracted

    def counts(self) -> dict[str, int]:
        return {
            "checked": self.checked,
            "rows_changed": self.rows_changed,
            "urls": self.urls,
            "renamed": self.renamed,
            "merged": self.merged,
            "retracted": self.retracted,
            "unretracted": self.unretracted,
        }


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
    ids: Iterable[str] | Iterable[Found],
    *,
    source_tag: str,
    seen_at: datetime,
    by_hand: bool = False,
    before_commit: Callable[[int, int | None], None] | None = None,
) -> LoadResult:
    """Merge every id of one crawl file (duplicates included) into `engine`'s leads.

    `ids` holds bare ids (str: the lead gets the `booking_url` template and the id as its
    evidence) or `Found` rows, all of one kind; it is consumed inside the COPY, so parsing
    overlaps the server's work, and is never held in memory. A new lead takes the URL and
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
        rules = recheck(conn, engine_id, engine)
        cur.execute(
            'CREATE TEMP TABLE lead_staging (property_id text COLLATE "C" NOT NULL,'
            " line bigint NOT NULL, booking_url text NOT NULL, evidence text NOT NULL)"
            " ON COMMIT DROP"
        )
        with cur.copy("COPY lead_staging FROM STDIN") as copy:
            valid = _copy_ids(copy, ids)
        # Counted before the merge, while the visibility map still spares the heap: after it,
        # counting reads every page the merge wrote. Loads of one engine take turns and the
        # merge never deletes, so it adds exactly `inserted`.
        cur.execute("SELECT count(*) FROM hotel_booking_engines WHERE engine_id = %s", [engine_id])
        before = _one(cur)
        retracted_before = _retracted(cur, engine_id)
        counts = _merge(cur, engine_id, engine, source_tag, seen_at)
        leads = before + counts[1]
        retracted = _retracted(cur, engine_id) if retracted_before else 0
        if before_commit is not None:
            cur.execute(
                "SELECT unique_ids FROM ingest_loads WHERE engine_id = %s AND NOT by_hand"
                " ORDER BY finished_at DESC LIMIT 1",
                [engine_id],
            )
            previous = cur.fetchone()
            before_commit(counts[0], previous[0] if previous else None)
        cur.execute(
            "INSERT INTO ingest_loads (engine_id, source_tag, seen_at, valid, unique_ids,"
            " inserted, updated, unchanged, leads, by_hand)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id::text",
            [engine_id, source_tag, seen_at, valid, *counts, leads, by_hand],
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
        retracted=retracted,
        unretracted=retracted_before - retracted,
        rules=rules,
    )


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


def _copy_ids(copy: psycopg.Copy, ids: Iterable[str] | Iterable[Found]) -> int:
    """Write `ids` to the COPY in large text blocks; return how many were written."""
    written = 0
    remaining = iter(ids)
    while block := list(islice(remaining, COPY_BLOCK)):
        rows: list[Found]
        if type(block[0]) is str:  # bare ids: the evidence is the id, the URL the template
            bare = cast(list[str], block)
            rows = [(i, written + n, "", i) for n, i in enumerate(bare, start=1)]
        else:
            rows = cast(list[Found], block)
        text = "\n".join([f"{i}\t{n}\t{u}\t{e}" for i, n, u, e in rows])
        # One scan per special character over the whole block is far cheaper than per row.
        if (
            text.count("\n") != len(rows) - 1
            or text.count("\t") != 3 * len(rows)
            or "\\" in text
            or "\r" in text
        ):
            text = _escaped_block(rows)
        copy.write(text + "\n")
        written += len(block)
    return written


def _escaped_block(rows: list[Found]) -> str:
    """`rows` as COPY text with their special characters escaped.

    One backslash in a block is enough to send it here, and nearly every block has some:
    about 1 line in 120 of a real crawl keeps an id beside a control character or an invalid
    UTF-8 byte, which its evidence holds as a backslash escape. So the block is escaped with a
    few whole-text replaces, not per field (about 1 us a row against 5.8 us field by field):
    fields are joined with NUL and rows with SOH, which evidence never holds (`evidence_text`
    escapes control characters), and become tabs and newlines after the escaping.
    """
    text = "\x01".join([f"{i}\x00{n}\x00{u}\x00{e}" for i, n, u, e in rows])
    if text.count("\x00") == 3 * len(rows) and text.count("\x01") == len(rows) - 1:
        for char, escape in ESCAPE_ORDER:
            text = text.replace(char, escape)
        return text.replace("\x00", "\t").replace("\x01", "\n")
    return "\n".join(  # an id or URL holding NUL or SOH: field by field
        "\t".join(
            (
                i.translate(COPY_ESCAPES),
                str(n),
                u.translate(COPY_ESCAPES),
                e.translate(COPY_ESCAPES),
            )
        )
        for i, n, u, e in rows
    )


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
    return unique, inserted, updated, unique - inserted - updated


# --- rules changed: bring the stored leads in line -----------------------------------------

APPLY_URLS = """
UPDATE hotel_booking_engines AS l SET booking_url = c.booking_url
FROM lead_changes AS c
WHERE c.kind = 'url' AND l.engine_id = %(engine_id)s AND l.property_id = c.old_id
"""

APPLY_RETRACT = """
UPDATE hotel_booking_engines AS l SET retracted_at = now()
FROM lead_changes AS c
WHERE c.kind = 'retract' AND l.engine_id = %(engine_id)s AND l.property_id = c.old_id
"""

APPLY_UNRETRACT = """
UPDATE hotel_booking_engines AS l SET retracted_at = NULL, booking_url = c.booking_url
FROM lead_changes AS c
WHERE c.kind = 'unretract' AND l.engine_id = %(engine_id)s AND l.property_id = c.old_id
"""

# Renamed leads, and the leads already holding the new ids, gathered per new id ...
FOLDS = """
CREATE TEMP TABLE lead_folds ON COMMIT DROP AS
SELECT c.new_id, l.property_id, l.hotel_id, c.booking_url, l.sources, l.detection_method,
       l.first_seen_at, l.last_seen_at, l.evidence, l.retracted_at
FROM lead_changes AS c
JOIN hotel_booking_engines AS l ON l.engine_id = %(engine_id)s AND l.property_id = c.old_id
WHERE c.kind = 'rename'
UNION ALL
SELECT l.property_id, l.property_id, l.hotel_id, l.booking_url, l.sources, l.detection_method,
       l.first_seen_at, l.last_seen_at, l.evidence, l.retracted_at
FROM hotel_booking_engines AS l
WHERE l.engine_id = %(engine_id)s
  AND l.property_id IN (SELECT new_id FROM lead_changes WHERE kind = 'rename')
  AND l.property_id NOT IN (SELECT old_id FROM lead_changes WHERE kind = 'rename')
"""

FOLDS_DELETE = """
DELETE FROM hotel_booking_engines AS l USING lead_folds AS f
WHERE l.engine_id = %(engine_id)s AND l.property_id = f.property_id
"""

# ... and written back as one lead per id: the earliest lead's hotel, URL and evidence, the
# widest seen dates, every source; retracted only if every folded lead was.
FOLDS_INSERT = """
INSERT INTO hotel_booking_engines (engine_id, property_id, hotel_id, booking_url, sources,
                                   detection_method, first_seen_at, last_seen_at, evidence,
                                   retracted_at)
SELECT %(engine_id)s, f.new_id,
       (array_agg(f.hotel_id ORDER BY f.first_seen_at, f.property_id))[1],
       (array_agg(f.booking_url ORDER BY f.first_seen_at, f.property_id))[1],
       ARRAY(SELECT DISTINCT s FROM lead_folds AS g, unnest(g.sources) AS s
             WHERE g.new_id = f.new_id ORDER BY s),
       (array_agg(f.detection_method ORDER BY f.first_seen_at, f.property_id))[1],
       min(f.first_seen_at), max(f.last_seen_at),
       (array_agg(f.evidence ORDER BY f.first_seen_at, f.property_id))[1],
       CASE WHEN bool_and(f.retracted_at IS NOT NULL) THEN max(f.retracted_at) END
FROM lead_folds AS f
GROUP BY f.new_id
"""


def recheck(conn: psycopg.Connection, engine_id: int, engine: Engine) -> Recheck:
    """Bring `engine`'s stored leads in line with its current rules, if they changed.

    Compares `rules_fingerprint(engine)` with the one stored for the engine; when they differ
    (or none is stored), every lead's evidence (its bare id when it has none) is parsed again:
    a lead whose evidence still yields its id gets the URL the line gives now (and is
    un-retracted); one yielding its id in another case (id_case changed) is renamed, and
    merged with the lead already holding that id; any other lead is retracted, never deleted.
    Runs inside the caller's transaction; the changes are applied set-based.
    """
    fingerprint = rules_fingerprint(engine)
    row = conn.execute(
        "SELECT rules_fingerprint FROM booking_engines WHERE id = %s", [engine_id]
    ).fetchone()
    if row is not None and row[0] == fingerprint:
        return Recheck()
    parser = LineParser(engine)  # evidence_line gives back the line's own bytes
    conn.execute(
        'CREATE TEMP TABLE lead_changes (old_id text COLLATE "C" NOT NULL,'
        ' new_id text COLLATE "C", booking_url text, kind text NOT NULL) ON COMMIT DROP'
    )
    checked = 0
    with conn.cursor(name=f"recheck_{uuid.uuid4().hex}") as stored, conn.cursor() as cur:
        stored.execute(
            "SELECT property_id, coalesce(evidence, property_id), booking_url,"
            " retracted_at IS NOT NULL FROM hotel_booking_engines WHERE engine_id = %s",
            [engine_id],
        )
        while batch := stored.fetchmany(RECHECK_BATCH):
            checked += len(batch)
            changes = [c for c in map(lambda r: _recheck_one(parser, *r), batch) if c]
            if changes:
                with cur.copy("COPY lead_changes FROM STDIN") as copy:
                    for change in changes:
                        copy.write_row(change)
    with conn.cursor() as cur:
        params = {"engine_id": engine_id}
        cur.execute("SELECT kind, count(*) FROM lead_changes GROUP BY kind")
        kinds: dict[str, int] = dict(cur.fetchall())
        cur.execute(APPLY_URLS, params)
        cur.execute(APPLY_RETRACT, params)
        cur.execute(APPLY_UNRETRACT, params)
        merged = 0
        if kinds.get("rename"):
            cur.execute(FOLDS, params)
            cur.execute(FOLDS_DELETE, params)
            removed = cur.rowcount
            cur.execute(FOLDS_INSERT, params)
            merged = removed - cur.rowcount
            cur.execute("DROP TABLE lead_folds")
        cur.execute("DROP TABLE lead_changes")
        cur.execute(
            "UPDATE booking_engines SET rules_fingerprint = %s WHERE id = %s",
            [fingerprint, engine_id],
        )
    return Recheck(
        checked=checked,
        urls=kinds.get("url", 0),
        renamed=kinds.get("rename", 0),
        merged=merged,
        retracted=kinds.get("retract", 0),
        unretracted=kinds.get("unretract", 0),
    )


def _recheck_one(
    parser: LineParser, property_id: str, evidence: str, url: str, retracted: bool
) -> tuple[str, str | None, str | None, str] | None:
    """The change (old id, new id, URL, kind) one stored lead needs, or None."""
    outcome = parser.parse(evidence_line(evidence))
    ids = outcome if type(outcome) is tuple else (outcome,) if type(outcome) is str else ()
    if property_id in ids:
        new_url = parser.booking_url(property_id)
        if retracted:
            return (property_id, property_id, new_url, "unretract")
        return (property_id, property_id, new_url, "url") if new_url != url else None
    folded = property_id.casefold()
    for found in ids:
        if found.casefold() == folded:
            return (property_id, found, parser.booking_url(found), "rename")
    return None if retracted else (property_id, None, None, "retract")


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


EXPORT_SQL = """
SELECT h.name, h.city, h.country, h.website, l.booking_url, e.display_name, l.property_id,
       l.sources, l.first_seen_at, l.last_seen_at
FROM hotel_booking_engines AS l
JOIN booking_engines AS e ON e.id = l.engine_id
JOIN hotels AS h ON h.id = l.hotel_id
WHERE e.name = %(engine)s
  AND (l.retracted_at IS NULL OR %(include_retracted)s)
  AND (%(source_tag)s::text IS NULL OR %(source_tag)s::text = ANY (l.sources))
ORDER BY h.country NULLS LAST, h.city NULLS LAST, h.name NULLS LAST, l.property_id
"""


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
