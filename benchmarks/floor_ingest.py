"""The ingest baselines: already-parsed ids into the leads schema, with nothing else around.

    python -m benchmarks.floor_ingest floor      URL ENGINE DISPLAY BOOKING_URL SEEN_AT IDS
    python -m benchmarks.floor_ingest executemany URL ENGINE DISPLAY BOOKING_URL SEEN_AT IDS

IDS holds the file's leads, parsed and deduplicated beforehand: one line per unique property
id with the booking URL and the evidence of the first line that named it, tab-separated COPY
text, so the rows left behind are the ones our ingest leaves. `floor` is the database floor:
one COPY of the file into an index-less temp table and one set-based merge statement, in one
transaction. `executemany` is the row-by-row way: one upsert per id through psycopg's
executemany (pipelined), in one transaction. Only psycopg is imported. The process prints
`seconds=S`, the time from connecting to the commit: start-up and imports count on our side
only, as the issue's floor has it.
"""

from __future__ import annotations

import re
import sys
import time

import psycopg

TAG = "commoncrawl"

ENGINE_ID = """
WITH new AS (
    INSERT INTO booking_engines (name, display_name) VALUES (%(engine)s, %(display)s)
    ON CONFLICT (name) DO NOTHING RETURNING id
)
SELECT id FROM new UNION ALL SELECT id FROM booking_engines WHERE name = %(engine)s
"""

# Every lead seen again gets the later last_seen_at and the tag (rows that would not change
# are skipped); every new id gets a hotel and a lead. Data-modifying CTEs share one snapshot,
# so `known` and `fresh` see the leads as they were before the statement. The leads seen
# again are updated in their order on disk: in any other order a table larger than
# shared_buffers is read and written page by page many times over (2-3x slower at 1M lines).
MERGE = """
WITH known AS (
    UPDATE hotel_booking_engines AS l
    SET last_seen_at = greatest(l.last_seen_at, %(seen_at)s),
        sources = CASE WHEN %(tag)s::text = ANY (l.sources) THEN l.sources
                       ELSE array_append(l.sources, %(tag)s::text) END
    FROM (SELECT s.property_id FROM staging AS s JOIN hotel_booking_engines AS o
            ON o.engine_id = %(engine_id)s AND o.property_id = s.property_id
          ORDER BY o.ctid) AS ids
    WHERE l.engine_id = %(engine_id)s AND l.property_id = ids.property_id
      AND (l.last_seen_at < %(seen_at)s OR NOT %(tag)s::text = ANY (l.sources))
),
fresh AS MATERIALIZED (
    SELECT s.property_id, s.booking_url, s.evidence,
           nextval(pg_get_serial_sequence('hotels', 'id')) AS hotel_id
    FROM staging AS s
    WHERE NOT EXISTS (SELECT FROM hotel_booking_engines AS l
                      WHERE l.engine_id = %(engine_id)s AND l.property_id = s.property_id)
),
new_hotels AS (
    INSERT INTO hotels (id) SELECT hotel_id FROM fresh
)
INSERT INTO hotel_booking_engines (engine_id, property_id, hotel_id, booking_url, sources,
                                   detection_method, first_seen_at, last_seen_at, evidence)
SELECT %(engine_id)s, property_id, hotel_id, booking_url,
       ARRAY[%(tag)s::text], 'crawl', %(seen_at)s, %(seen_at)s, evidence
FROM fresh
"""

# One id: move a known lead forward, or add a hotel and a lead.
UPSERT_ONE = """
WITH known AS (
    UPDATE hotel_booking_engines
    SET last_seen_at = greatest(last_seen_at, %(seen_at)s),
        sources = CASE WHEN %(tag)s::text = ANY (sources) THEN sources
                       ELSE array_append(sources, %(tag)s::text) END
    WHERE engine_id = %(engine_id)s AND property_id = %(id)s
    RETURNING 1
),
hotel AS (
    INSERT INTO hotels (id)
    SELECT nextval(pg_get_serial_sequence('hotels', 'id')) WHERE NOT EXISTS (SELECT FROM known)
    RETURNING id
)
INSERT INTO hotel_booking_engines (engine_id, property_id, hotel_id, booking_url, sources,
                                   detection_method, first_seen_at, last_seen_at, evidence)
SELECT %(engine_id)s, %(id)s, hotel.id, %(url)s, ARRAY[%(tag)s::text], 'crawl',
       %(seen_at)s, %(seen_at)s, %(evidence)s
FROM hotel
"""
COPY_ESCAPE = re.compile(r"\\(.)")
COPY_CODES = {"t": "\t", "n": "\n", "r": "\r"}


def _upsert_params(line: str, params: dict[str, str]) -> dict[str, str]:
    """UPSERT_ONE's parameters for one line of IDS, its COPY text escapes undone."""
    fields = [
        COPY_ESCAPE.sub(lambda m: COPY_CODES.get(m[1], m[1]), field)
        for field in line.rstrip("\n").split("\t")
    ]
    return {**params, **dict(zip(("id", "url", "evidence"), fields, strict=True))}


def main(argv: list[str]) -> int:
    mode, url, engine, display, booking_url, seen_at, ids_path = argv
    params = {"engine": engine, "display": display, "booking_url": booking_url, "tag": TAG}
    params["seen_at"] = seen_at
    started = time.perf_counter()
    with psycopg.connect(url) as conn, conn.cursor() as cur:  # one transaction, committed
        cur.execute("SET LOCAL work_mem = '256MB'")
        # At plan time the table may be empty; a nested loop over it would rescan every page
        # the same statement inserts. Hash joins are what a bulk merge wants.
        cur.execute("SET LOCAL enable_nestloop = off")
        row = cur.execute(ENGINE_ID, params).fetchone()
        assert row is not None  # the engine's id, new or not
        params["engine_id"] = row[0]
        if mode == "floor":
            cur.execute(
                'CREATE TEMP TABLE staging (property_id text COLLATE "C" NOT NULL,'
                " booking_url text NOT NULL, evidence text NOT NULL)"
            )
            with (
                cur.copy("COPY staging FROM STDIN") as copy,
                open(ids_path, "rb") as ids,
            ):
                while block := ids.read(1 << 20):
                    copy.write(block)
            cur.execute(MERGE, params)
        elif mode == "executemany":
            # Re-plan each statement: a plan cached while the table was empty would scan it.
            cur.execute("SET LOCAL plan_cache_mode = force_custom_plan")
            with open(ids_path, encoding="utf-8") as ids:
                rows = (_upsert_params(line, params) for line in ids)
                cur.executemany(UPSERT_ONE, rows)
        else:
            raise SystemExit(f"unknown mode {mode!r}: floor or executemany")
    print(f"seconds={time.perf_counter() - started:.6f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
