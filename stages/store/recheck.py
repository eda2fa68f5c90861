"""Rules changed: bring an engine's stored leads in line with its current rules.

Each lead keeps its evidence (the first line that produced it) and each engine the fingerprint
of the rules its leads were checked against. When the rules change, a load first re-reads
every lead's evidence (`recheck`, called by stages.store.leads.load_leads in its transaction):
ids re-normalised and merged, booking URLs re-derived, and leads whose evidence no longer
yields their id retracted (kept, but left out of the export).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import psycopg

from stages.rules.config import Engine
from stages.rules.crawl import LineParser, evidence_line, rules_fingerprint

RECHECK_BATCH = 10_000  # leads read per round trip while their evidence is parsed again


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
    checked = _stage_changes(conn, engine_id, parser)
    kinds, merged = _apply_changes(conn, engine_id)
    conn.execute(
        "UPDATE booking_engines SET rules_fingerprint = %s WHERE id = %s", [fingerprint, engine_id]
    )
    return Recheck(
        checked=checked,
        urls=kinds.get("url", 0),
        renamed=kinds.get("rename", 0),
        merged=merged,
        retracted=kinds.get("retract", 0),
        unretracted=kinds.get("unretract", 0),
    )


def _stage_changes(conn: psycopg.Connection, engine_id: int, parser: LineParser) -> int:
    """Parse every stored lead's evidence again, in batches read through a server-side cursor,
    and COPY the changes they need into lead_changes; return how many leads were read."""
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
    return checked


def _apply_changes(conn: psycopg.Connection, engine_id: int) -> tuple[dict[str, int], int]:
    """Apply lead_changes set-based and drop it; return the changes per kind and the rows
    folded into another lead of the same id."""
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
    return kinds, merged


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
