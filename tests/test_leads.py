"""The lead merge, the export query and the drift check against a real PostgreSQL."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from stages.rules.config import Engine
from stages.store import db, drift, leads
from tests.support.pg import create_database, drop_database

JANUARY = datetime(2025, 1, 6, tzinfo=UTC)
FEBRUARY = datetime(2025, 2, 3, tzinfo=UTC)
WAIT = 60  # seconds before a stuck thread or poll fails the test instead of hanging it


def make_engine(
    name: str = "cloudbeds",
    display_name: str = "Cloudbeds",
    booking_url: str = "https://hotels.cloudbeds.com/reservation/{id}",
) -> Engine:
    return Engine(
        name=name,
        file=f"{name}.txt",
        display_name=display_name,
        hosts=(f"{name}.com",),
        url_patterns=(re.compile(r"/(?P<id>[^/]+)$"),),
        id_pattern=re.compile(r"\S+"),
        id_case="preserve",
        booking_url=booking_url,
    )


CLOUDBEDS = make_engine()
MEWS = make_engine("mews", "Mews", "https://app.mews.com/distributor/{id}")


@pytest.fixture
def conn(database_url) -> Iterator[psycopg.Connection]:
    with db.connect() as connection:
        yield connection


def load(conn, ids, *, engine=CLOUDBEDS, tag="commoncrawl", seen_at=JANUARY) -> leads.LoadResult:
    return leads.load_leads(conn, engine, ids, source_tag=tag, seen_at=seen_at)


def lead_rows(conn, engine_name: str = "cloudbeds") -> dict[str, tuple]:
    """property_id -> (hotel_id, booking_url, sources, detection_method, first, last seen)."""
    rows = conn.execute(
        "SELECT l.property_id, l.hotel_id, l.booking_url, l.sources, l.detection_method,"
        " l.first_seen_at, l.last_seen_at FROM hotel_booking_engines l"
        " JOIN booking_engines e ON e.id = l.engine_id WHERE e.name = %s",
        [engine_name],
    ).fetchall()
    return {row[0]: row[1:] for row in rows}


def snapshot(conn) -> list[tuple]:
    """Every row of the lead tables with its xmin: equal snapshots mean no row was rewritten."""
    return conn.execute(
        "SELECT 'lead', l.xmin::text, l.property_id, l.sources::text, l.last_seen_at::text"
        " FROM hotel_booking_engines l"
        " UNION ALL SELECT 'hotel', h.xmin::text, h.id::text, h.name, h.city FROM hotels h"
        " UNION ALL SELECT 'engine', e.xmin::text, e.name, e.display_name, NULL"
        " FROM booking_engines e ORDER BY 1, 3"
    ).fetchall()


def assert_counts_add_up(result: leads.LoadResult) -> None:
    assert result.unique == result.inserted + result.updated + result.unchanged
    assert result.duplicates == result.valid - result.unique


# --- the first load ------------------------------------------------------------------------


def test_first_load_inserts_one_hotel_and_one_lead_per_unique_id(conn):
    result = load(conn, ["AbC123", "xyz9", "AbC123", "q1", "xyz9", "xyz9"])
    assert result.counts() == {
        "valid": 6,
        "unique": 3,
        "duplicates": 3,
        "inserted": 3,
        "updated": 0,
        "unchanged": 0,
        "leads": 3,
        "retracted": 0,
        "unretracted": 0,
    }
    assert_counts_add_up(result)
    rows = lead_rows(conn)
    assert set(rows) == {"AbC123", "xyz9", "q1"}
    hotels = conn.execute("SELECT id, name, website, city, country FROM hotels").fetchall()
    assert sorted(h[0] for h in hotels) == sorted(r[0] for r in rows.values())
    assert {h[1:] for h in hotels} == {(None, None, None, None)}


def test_a_new_lead_gets_the_canonical_url_the_tag_and_the_seen_date(conn):
    load(conn, ["AbC123"], tag="commoncrawl", seen_at=JANUARY)
    _, url, sources, method, first_seen, last_seen = lead_rows(conn)["AbC123"]
    assert url == CLOUDBEDS.canonical_url("AbC123")
    assert sources == ["commoncrawl"]
    assert method == "crawl"
    assert first_seen == last_seen == JANUARY


def test_the_engine_row_carries_the_display_name_from_params(conn):
    load(conn, ["a1"])
    load(conn, ["a1"], engine=make_engine(display_name="Cloudbeds Inc."))
    assert conn.execute("SELECT name, display_name FROM booking_engines").fetchall() == [
        ("cloudbeds", "Cloudbeds Inc.")
    ]


def test_property_ids_are_case_sensitive(conn):
    result = load(conn, ["abc", "ABC", "Abc"])
    assert result.unique == 3
    assert set(lead_rows(conn)) == {"abc", "ABC", "Abc"}


def test_ids_holding_copy_special_characters_arrive_intact(conn):
    odd = ["back\\slash", "tab\there", "new\nline", "carriage\rreturn", r"\N"]
    result = load(conn, [*odd, "plain"])
    assert result.unique == 6
    assert set(lead_rows(conn)) == {*odd, "plain"}


def stored_leads(conn) -> list[tuple[str, str, str]]:
    return conn.execute(
        "SELECT property_id, booking_url, evidence FROM hotel_booking_engines ORDER BY 1"
    ).fetchall()


def test_evidence_holding_escaped_bytes_and_tabs_arrives_intact(conn):
    # A junk line keeps its id; its evidence holds the invalid byte as a backslash escape.
    url = "https://hotels.cloudbeds.com/reservation/"
    rows = [
        ("qmbRwE", 1, f"{url}qmbRwE", f"{url}qmbRwE?lang=\\xff"),
        ("aBc123", 2, f"{url}aBc123", f"{url}aBc123\tBook now"),
        ("zZ9yX8", 3, f"{url}zZ9yX8", f"{url}zZ9yX8"),
    ]
    load(conn, rows)
    assert stored_leads(conn) == sorted((i, u, e) for i, _, u, e in rows)


def test_an_id_holding_a_control_character_arrives_intact(conn):
    url = "https://hotels.cloudbeds.com/reservation/"
    rows = [
        ("ctl\x01id", 1, f"{url}ctl\x01id", "ctl\\x01id"),
        ("aBc123", 2, f"{url}aBc123", "a\\b"),
    ]
    load(conn, rows)
    assert stored_leads(conn) == sorted((i, u, e) for i, _, u, e in rows)


def test_an_empty_file_loads_nothing_and_still_records_the_load(conn):
    result = load(conn, [])
    assert result.counts()["valid"] == result.unique == result.leads == 0
    assert conn.execute("SELECT count(*) FROM ingest_loads").fetchone() == (1,)


def test_a_large_file_is_copied_in_blocks_and_deduplicated_in_sql(conn):
    ids = (f"id{n % 70_000}" for n in range(100_000))  # a generator: never held as a list
    result = load(conn, ids)
    assert (result.valid, result.unique, result.duplicates) == (100_000, 70_000, 30_000)


# --- loading again -------------------------------------------------------------------------


def test_reloading_the_same_ids_rewrites_no_row(conn):
    first = load(conn, ["a1", "b2", "c3", "a1"])
    before = snapshot(conn)
    again = load(conn, ["a1", "b2", "c3", "a1"])
    assert snapshot(conn) == before
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, first.unique)
    assert_counts_add_up(again)


def test_a_newer_file_inserts_new_ids_and_keeps_the_old_ones(conn):
    load(conn, ["a1", "b2", "c3"], seen_at=JANUARY)
    result = load(conn, ["b2", "c3", "d4"], seen_at=FEBRUARY)
    assert (result.inserted, result.updated, result.unchanged) == (1, 2, 0)
    assert_counts_add_up(result)
    rows = lead_rows(conn)
    assert set(rows) == {"a1", "b2", "c3", "d4"}  # nothing is deleted
    assert rows["a1"][5] == JANUARY  # not seen again: last_seen_at stays
    assert rows["b2"][4:] == (JANUARY, FEBRUARY)  # first seen kept, last seen moved
    assert rows["d4"][4:] == (FEBRUARY, FEBRUARY)
    assert result.leads == 4


def test_an_older_file_never_moves_last_seen_at_back(conn):
    load(conn, ["a1", "b2"], seen_at=FEBRUARY)
    before = snapshot(conn)
    same_tag = load(conn, ["a1"], seen_at=JANUARY)
    assert (same_tag.updated, same_tag.unchanged) == (0, 1)
    assert snapshot(conn) == before
    # A new tag still updates the row, and last_seen_at still stays where it was.
    new_tag = load(conn, ["b2"], seen_at=JANUARY, tag="licences")
    assert new_tag.updated == 1
    assert lead_rows(conn)["b2"][2:] == (["commoncrawl", "licences"], "crawl", FEBRUARY, FEBRUARY)


def test_a_second_source_tag_is_appended_once(conn):
    load(conn, ["a1"], tag="commoncrawl")
    first = load(conn, ["a1"], tag="licences")
    second = load(conn, ["a1"], tag="licences")
    assert lead_rows(conn)["a1"][2] == ["commoncrawl", "licences"]
    assert (first.updated, second.updated, second.unchanged) == (1, 0, 1)


def test_each_load_is_recorded_with_its_counts(conn):
    result = load(conn, ["a1", "a1", "b2"])
    row = conn.execute(
        "SELECT source_tag, seen_at, valid, unique_ids, inserted, updated, unchanged, leads,"
        " finished_at IS NOT NULL FROM ingest_loads WHERE id = %s",
        [result.load_id],
    ).fetchone()
    assert row == ("commoncrawl", JANUARY, 3, 2, 2, 0, 0, 2, True)


def test_the_fingerprint_names_the_load_the_lead_count_and_the_database(conn, database_url):
    result = load(conn, ["a1", "b2"])
    identity = db.database_identity(conn)
    assert result.fingerprint == {
        "load_id": result.load_id,
        "engine": "cloudbeds",
        "leads": 2,
        "database": identity["database"],
        "database_id": identity["database_id"],
    }
    assert database_url not in str(result.fingerprint)


# --- failures and concurrency ----------------------------------------------------------------


def failing_after(ids: list[str]) -> Iterator[str]:
    yield from ids
    raise OSError("crawl file vanished half-way")


def test_a_load_that_fails_half_way_leaves_the_previous_state(conn):
    load(conn, ["a1", "b2"], seen_at=JANUARY)
    before = snapshot(conn)
    loads_before = conn.execute("SELECT count(*) FROM ingest_loads").fetchone()
    with pytest.raises(OSError, match="half-way"):
        load(conn, failing_after(["a1", "c3", "d4"]), seen_at=FEBRUARY, tag="licences")
    assert snapshot(conn) == before
    assert conn.execute("SELECT count(*) FROM ingest_loads").fetchone() == loads_before
    # The connection is usable again and the next load works.
    assert load(conn, ["c3"]).inserted == 1


class GatedIds:
    """Ids that stop half-way, inside the COPY and so inside the load's transaction, until
    `release` is set: a load that is visibly in progress and holding its engine lock."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        self.paused = threading.Event()
        self.release = threading.Event()

    def __iter__(self) -> Iterator[str]:
        half = len(self.ids) // 2
        yield from self.ids[:half]
        self.paused.set()
        if not self.release.wait(WAIT):
            raise TimeoutError("the test never released the load")
        yield from self.ids[half:]


class LoadThread(threading.Thread):
    """load_leads on its own connection in a thread, keeping its result or error."""

    def __init__(self, engine: Engine, ids, seen_at: datetime = JANUARY) -> None:
        super().__init__(daemon=True)
        self.engine, self.ids, self.seen_at = engine, ids, seen_at
        self.result: leads.LoadResult | None = None
        self.error: BaseException | None = None
        self.backend_pid: int | None = None
        self.connected = threading.Event()

    def run(self) -> None:
        try:
            with db.connect() as conn:
                self.backend_pid = conn.info.backend_pid
                self.connected.set()
                self.result = load(conn, self.ids, engine=self.engine, seen_at=self.seen_at)
        except BaseException as exc:
            self.error = exc
            self.connected.set()

    def finish(self) -> leads.LoadResult:
        self.join(WAIT)
        assert not self.is_alive(), "load did not finish"
        if self.error:
            raise self.error
        assert self.result is not None
        return self.result


def wait_until_blocked_on_advisory_lock(conn, pid: int) -> None:
    for _ in range(WAIT * 20):
        waiting = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE pid = %s AND locktype = 'advisory'"
            " AND NOT granted",
            [pid],
        ).fetchone()[0]
        if waiting:
            return
        threading.Event().wait(0.05)
    raise AssertionError("the second load never waited for the engine lock")


def test_two_loads_of_one_engine_take_turns(conn):
    first_ids = GatedIds([f"a{n}" for n in range(1000)])
    first = LoadThread(CLOUDBEDS, first_ids)
    first.start()
    assert first_ids.paused.wait(WAIT)
    overlapping = [f"a{n}" for n in range(500, 1500)]
    second = LoadThread(CLOUDBEDS, overlapping, seen_at=FEBRUARY)
    second.start()
    assert second.connected.wait(WAIT)
    assert second.backend_pid is not None
    wait_until_blocked_on_advisory_lock(conn, second.backend_pid)
    first_ids.release.set()
    a, b = first.finish(), second.finish()
    assert (a.inserted, b.inserted, b.updated) == (1000, 500, 500)
    assert len(lead_rows(conn)) == 1500


def test_loads_of_two_engines_run_at_the_same_time(conn):
    held = GatedIds([f"c{n}" for n in range(1000)])
    cloudbeds = LoadThread(CLOUDBEDS, held)
    cloudbeds.start()
    assert held.paused.wait(WAIT)
    # While the cloudbeds load is stuck half-way with its lock held, mews loads to the end.
    mews = LoadThread(MEWS, [f"m{n}" for n in range(1000)])
    mews.start()
    mews_result = mews.finish()
    assert cloudbeds.is_alive()
    held.release.set()
    assert cloudbeds.finish().inserted == mews_result.inserted == 1000
    assert len(lead_rows(conn, "cloudbeds")) == len(lead_rows(conn, "mews")) == 1000


def test_a_load_whose_connection_is_lost_is_transient_and_changes_nothing(conn):
    load(conn, ["a1"])
    before = snapshot(conn)
    held = GatedIds([f"n{n}" for n in range(1000)])
    lost = LoadThread(CLOUDBEDS, held)
    lost.start()
    assert held.paused.wait(WAIT)
    conn.execute("SELECT pg_terminate_backend(%s)", [lost.backend_pid])
    held.release.set()
    with pytest.raises(psycopg.OperationalError) as raised:
        lost.finish()
    assert db.is_transient(raised.value)
    assert snapshot(conn) == before


# --- drift -----------------------------------------------------------------------------------


REPAIR = "`dvc repro --downstream --force ingest@cloudbeds`"


def test_no_drift_right_after_a_load(conn):
    result = load(conn, ["a1", "b2"])
    assert drift.check_drift(conn, "cloudbeds", {"database": result.fingerprint}) is None
    assert drift.check_drift(conn, "cloudbeds", result.fingerprint) is None


def test_later_loads_and_other_engines_are_not_drift(conn):
    marker = load(conn, ["a1", "b2"], seen_at=JANUARY).fingerprint
    load(conn, ["c3"], seen_at=FEBRUARY)
    load(conn, ["m1"], engine=MEWS)
    assert drift.check_drift(conn, "cloudbeds", marker) is None


def test_truncated_leads_are_drift_naming_the_engine_and_the_repair(conn):
    marker = load(conn, ["a1", "b2"]).fingerprint
    conn.execute("TRUNCATE hotel_booking_engines")
    message = drift.check_drift(conn, "cloudbeds", marker)
    assert message is not None
    assert message.startswith("Engine cloudbeds: ")
    assert "holds 0 leads but ingest left 2" in message
    assert REPAIR in message


def test_deleted_leads_are_drift(conn):
    marker = load(conn, ["a1", "b2", "c3"]).fingerprint
    conn.execute("DELETE FROM hotel_booking_engines WHERE property_id = 'b2'")
    assert "holds 2 leads but ingest left 3" in str(drift.check_drift(conn, "cloudbeds", marker))


def test_a_fresh_empty_database_is_drift(conn, pg_server):
    marker = load(conn, ["a1"]).fingerprint
    name, url = create_database(pg_server)
    try:
        with db.connect(url) as fresh:
            message = drift.check_drift(fresh, "cloudbeds", marker)
    finally:
        drop_database(pg_server, name)
    assert message is not None
    assert "is not the one its leads were loaded into" in message
    assert REPAIR in message


def test_a_reset_load_history_is_drift(conn):
    marker = load(conn, ["a1"]).fingerprint
    conn.execute("DELETE FROM ingest_loads")
    assert "no longer records ingest load" in str(drift.check_drift(conn, "cloudbeds", marker))


def test_a_marker_without_a_load_is_drift(conn):
    message = drift.check_drift(conn, "cloudbeds", {})
    assert message is not None
    assert "records no database load" in message
    assert REPAIR in message


# --- a workbook behind the database (issue 12: one truth) -------------------------------------


REEXPORT = "`dvc repro --downstream --force export@cloudbeds`"


def exported(conn, tag: str | None = None) -> dict:
    """The export marker's "database" entry, as export@cloudbeds records it now."""
    latest = drift.loads_after(conn, "cloudbeds", None, tag).latest_id
    listed = sum(1 for _ in leads.engine_leads(conn, "cloudbeds", tag))
    return {"load_id": latest, "leads": listed, **db.database_identity(conn)}


def test_a_workbook_written_after_the_last_load_is_current(conn):
    ingest = load(conn, ["a1b2c3", "d4e5f6"]).fingerprint
    assert drift.check_workbook(conn, "cloudbeds", exported(conn), ingest) is None


def test_a_load_by_hand_that_adds_leads_makes_the_workbook_stale(conn):
    ingest = load(conn, ["a1b2c3", "d4e5f6"], seen_at=JANUARY).fingerprint
    recorded = exported(conn)
    leads.load_leads(
        conn, CLOUDBEDS, ["g7h8i9"], source_tag="manual", seen_at=FEBRUARY, by_hand=True
    )
    message = drift.check_workbook(conn, "cloudbeds", recorded, ingest)
    assert message is not None and message.startswith("Engine cloudbeds: ")
    assert "3 leads to list now, the workbook lists 2" in message
    assert "1 load since, the latest by hand at" in message
    assert REEXPORT in message
    assert drift.check_drift(conn, "cloudbeds", ingest) is None  # nothing was lost


def test_a_later_load_that_changes_no_count_still_makes_the_workbook_stale(conn):
    ingest = load(conn, ["a1b2c3", "d4e5f6"], seen_at=JANUARY).fingerprint
    recorded = exported(conn)
    load(conn, ["a1b2c3"], seen_at=FEBRUARY)  # last seen moves: the Leads sheet changes
    message = drift.check_workbook(conn, "cloudbeds", recorded, ingest)
    assert message is not None
    assert "2 leads to list now, the workbook lists 2" in message
    assert "the latest by a pipeline run" in message


def test_a_re_run_of_the_same_crawl_changes_no_lead_and_leaves_the_workbook_current(conn):
    ingest = load(conn, ["a1b2c3", "d4e5f6"], seen_at=JANUARY).fingerprint
    recorded = exported(conn)
    again = load(conn, ["a1b2c3", "d4e5f6"], seen_at=JANUARY)
    assert (again.inserted, again.updated) == (0, 0)
    assert drift.check_workbook(conn, "cloudbeds", recorded, ingest) is None


def test_leads_added_outside_the_pipeline_make_the_workbook_stale(conn):
    ingest = load(conn, ["a1b2c3"]).fingerprint
    recorded = exported(conn)
    conn.execute(
        "INSERT INTO hotels (id) VALUES (nextval(pg_get_serial_sequence('hotels', 'id')));"
        " INSERT INTO hotel_booking_engines (engine_id, property_id, hotel_id, booking_url,"
        " sources, detection_method, first_seen_at, last_seen_at)"
        " SELECT e.id, 'z9y8x7', currval(pg_get_serial_sequence('hotels', 'id')), 'u',"
        " ARRAY['commoncrawl'], 'crawl', now(), now() FROM booking_engines e"
        " WHERE e.name = 'cloudbeds'"
    )
    message = drift.check_workbook(conn, "cloudbeds", recorded, ingest)
    assert message is not None
    assert "2 leads to list now, the workbook lists 1" in message
    assert "outside the pipeline" in message


def test_a_load_the_export_filters_out_leaves_the_workbook_current(conn):
    ingest = load(conn, ["a1b2c3"]).fingerprint
    recorded = exported(conn, "commoncrawl")
    load(conn, ["g7h8i9"], tag="manual", seen_at=FEBRUARY)
    assert drift.check_workbook(conn, "cloudbeds", recorded, ingest, "commoncrawl") is None
    assert drift.check_workbook(conn, "cloudbeds", recorded, ingest, None) is not None


def test_without_an_export_record_a_load_after_the_ingest_makes_the_workbook_stale(conn):
    ingest = load(conn, ["a1b2c3"], seen_at=JANUARY).fingerprint
    assert drift.check_workbook(conn, "cloudbeds", None, ingest) is None
    assert drift.check_workbook(conn, "cloudbeds", {}, ingest) is None
    load(conn, ["g7h8i9"], seen_at=FEBRUARY)
    message = drift.check_workbook(conn, "cloudbeds", None, ingest)
    assert message is not None and "2 leads to list now;" in message
    assert drift.check_workbook(conn, "cloudbeds", None, None) is None


# --- export rows -----------------------------------------------------------------------------


def name_hotel(conn, property_id: str, name, city, country) -> None:
    conn.execute(
        "UPDATE hotels SET name = %s, city = %s, country = %s, website = %s"
        " WHERE id = (SELECT hotel_id FROM hotel_booking_engines WHERE property_id = %s)",
        [name, city, country, f"https://{property_id}.example", property_id],
    )


def test_export_rows_are_ordered_by_country_city_name_then_id_with_nulls_last(conn):
    load(conn, ["p5", "p4", "p3", "p2", "p1", "p0"])
    name_hotel(conn, "p1", "Beta", "Lyon", "FR")
    name_hotel(conn, "p2", "Alpha", "Lyon", "FR")
    name_hotel(conn, "p3", "Gamma", "Berlin", "DE")
    name_hotel(conn, "p4", None, None, "DE")
    rows = list(leads.engine_leads(conn, "cloudbeds"))
    assert [row[6] for row in rows] == ["p3", "p4", "p2", "p1", "p0", "p5"]


def test_export_rows_have_the_documented_columns(conn):
    load(conn, ["p1"], seen_at=JANUARY)
    name_hotel(conn, "p1", "Alpha", "Lyon", "FR")
    (row,) = leads.engine_leads(conn, "cloudbeds")
    assert dict(zip(leads.EXPORT_COLUMNS, row, strict=True)) == {
        "hotel_name": "Alpha",
        "city": "Lyon",
        "country": "FR",
        "website": "https://p1.example",
        "booking_url": "https://hotels.cloudbeds.com/reservation/p1",
        "engine": "Cloudbeds",
        "property_id": "p1",
        "sources": ["commoncrawl"],
        "first_seen_at": JANUARY,
        "last_seen_at": JANUARY,
    }


def test_export_rows_keep_only_the_source_tag_unless_it_is_empty(conn):
    load(conn, ["a1", "b2"], tag="commoncrawl")
    load(conn, ["b2", "c3"], tag="licences")
    load(conn, ["m1"], engine=MEWS, tag="licences")

    def ids(tag):
        return [row[6] for row in leads.engine_leads(conn, "cloudbeds", tag)]

    assert ids("licences") == ["b2", "c3"]
    assert ids("commoncrawl") == ["a1", "b2"]
    assert ids(None) == ids("") == ["a1", "b2", "c3"]


def test_export_rows_stream_through_a_server_side_cursor(conn):
    load(conn, [f"p{n:04}" for n in range(50)])
    rows = leads.engine_leads(conn, "cloudbeds", itersize=10)
    first = next(rows)
    # Same session, mid-stream: the cursor is open on the server, not fetched whole.
    cursors = conn.execute("SELECT count(*) FROM pg_cursors WHERE name LIKE 'engine_leads%'")
    assert cursors.fetchone() == (1,)
    assert [first[6], *(row[6] for row in rows)] == [f"p{n:04}" for n in range(50)]
    assert conn.execute("SELECT count(*) FROM pg_cursors").fetchone() == (0,)


def test_export_of_an_engine_never_loaded_is_empty(conn):
    assert list(leads.engine_leads(conn, "siteminder")) == []
    assert drift.lead_count(conn, "siteminder") == 0


def test_seen_at_must_carry_a_timezone(conn):
    with pytest.raises(ValueError, match="timezone"):
        load(conn, ["a1"], seen_at=JANUARY.replace(tzinfo=None) + timedelta(0))
