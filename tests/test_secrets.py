"""Data safety and secrets: the pipeline never deletes a lead, a failed run leaves the previous
database state and files, and no password or AWS key reaches a file, the console or the
database, whatever fails.
"""

from __future__ import annotations

import io
import sys
import uuid
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from stages import export, ingest
from stages.store import db
from tests.support.faultproxy import Fault
from tests.support.pg import create_database, drop_database, url_for_database
from tests.support.pg import lead_rows as leads
from tests.support.s3 import use_s3_source

SEEN = datetime(2026, 10, 1, tzinfo=UTC)
LEAD_TABLES = ("booking_engines", "hotels", "hotel_booking_engines", "ingest_loads")
ENGINES = ("cloudbeds", "mews", "rms", "siteminder")


# --- nothing is ever deleted ----------------------------------------------------------------

REFUSE_DELETES = """
CREATE FUNCTION refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the pipeline deleted from %', TG_TABLE_NAME;
END $$
"""


def refuse_deletes(database_url: str) -> None:
    """Make any DELETE or TRUNCATE on a leads table (cascades included) fail loudly."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(REFUSE_DELETES)
        for table in LEAD_TABLES:
            for when, each in (("DELETE", "ROW"), ("TRUNCATE", "STATEMENT")):
                conn.execute(
                    sql.SQL(
                        "CREATE TRIGGER {} BEFORE {} ON {} FOR EACH {} EXECUTE FUNCTION "
                        "refuse_delete()"
                    ).format(
                        sql.Identifier(f"no_{when.lower()}_{table}"),
                        sql.SQL(when),
                        sql.Identifier(table),
                        sql.SQL(each),
                    )
                )


def test_the_pipeline_never_deletes_from_the_leads_tables(project, database_url, capsys):
    project.write_raw("siteminder", "alpha\nbeta\ngamma\n", SEEN)
    assert ingest.main(["--engine", "siteminder"]) == 0
    refuse_deletes(database_url)
    later = SEEN.replace(month=11)
    project.write_raw("siteminder", "gamma\ndelta\n", later)  # alpha and beta are gone
    assert ingest.main(["--engine", "siteminder"]) == 0
    assert ingest.main(["--engine", "siteminder"]) == 0  # the same file again
    project.write_raw("siteminder", "", later.replace(day=2))  # an empty crawl, let through
    assert ingest.main(["--engine", "siteminder", "--accept"]) == 0
    one_off = project.root / "one-off.txt"
    one_off.write_text("epsilon\nalpha\n")
    assert ingest.main(["--engine", "siteminder", "--file", str(one_off), "--source-tag", "x"]) == 0
    assert export.main(["--engine", "siteminder"]) == 0
    assert "the pipeline deleted" not in capsys.readouterr().err
    ids = [row[0] for row in leads(database_url, "siteminder")]
    assert ids == ["alpha", "beta", "delta", "epsilon", "gamma"]


def test_the_delete_guard_itself_stops_a_stage_that_deletes(project, database_url):
    project.write_raw("siteminder", "alpha\n", SEEN)
    assert ingest.main(["--engine", "siteminder"]) == 0
    refuse_deletes(database_url)
    with psycopg.connect(database_url) as conn, pytest.raises(psycopg.errors.RaiseException):
        conn.execute("DELETE FROM hotel_booking_engines")


# --- a failed run keeps the previous state --------------------------------------------------


def fail_loads_at_the_last_step(database_url: str) -> None:
    """Make the ingest's final INSERT fail: everything before it in the load has run."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION fail_load() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN RAISE EXCEPTION 'injected failure at the end of the load'; END $$"
        )
        conn.execute(
            "CREATE TRIGGER fail_load BEFORE INSERT ON ingest_loads"
            " FOR EACH ROW EXECUTE FUNCTION fail_load()"
        )


def files_after(project, *names: str) -> dict[str, bytes]:
    return {name: (project.root / name).read_bytes() for name in names}


DOWNSTREAM = ("data/exports/siteminder.xlsx", "data/published/siteminder.json")


def test_a_failed_ingest_keeps_the_previous_leads_and_downstream_files(project, database_url):
    project.dvc("repro", "publish@siteminder")
    before, kept = leads(database_url, "siteminder"), files_after(project, *DOWNSTREAM)
    source = project.root / "data/sources/siteminder.txt"
    source.write_text(source.read_text() + "direct-book.com/properties/brand-new\n")
    fail_loads_at_the_last_step(database_url)
    failed = project.dvc("repro", "publish@siteminder", check=False)
    assert failed.returncode != 0 and "injected failure" in failed.stderr
    assert project.ran_stages(failed.stdout) == ["download@siteminder", "ingest@siteminder"]
    assert leads(database_url, "siteminder") == before
    assert files_after(project, *DOWNSTREAM) == kept


def test_a_failed_export_keeps_the_previous_workbook(project, database_url, pg_server):
    project.dvc("repro", "export@siteminder")
    workbook = files_after(project, "data/exports/siteminder.xlsx")
    project.edit_params(lambda p: p["export"].update(rows_per_sheet=100))
    name, elsewhere = create_database(pg_server)  # not the database the leads went into
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("DATABASE_URL", elsewhere)
            failed = project.dvc("repro", "export@siteminder", check=False)
    finally:
        drop_database(pg_server, name)
    assert failed.returncode != 0 and "export@siteminder" in failed.stderr
    assert files_after(project, "data/exports/siteminder.xlsx") == workbook


# --- no secret reaches a file, the console or the database ----------------------------------

DB_PASSWORD = "PgLeakProbe-7c41e9d2"
AWS_KEY_ID = "AKIALEAKPROBE7Q2Z9X4"
AWS_SECRET = "AwsLeakProbe-0b6f1d83a5c2e947"
SECRETS = (DB_PASSWORD, AWS_KEY_ID, AWS_SECRET)


@pytest.fixture
def secret_database(pg_server) -> Iterator[str]:
    """A database owned by a role whose password is DB_PASSWORD; its URL carries it."""
    role, name = f"probe_{uuid.uuid4().hex[:10]}", f"probe_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(DB_PASSWORD)
            )
        )
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(role)
            )
        )
    parts = urlsplit(url_for_database(pg_server, name))
    host = parts.netloc.rpartition("@")[2]
    yield urlunsplit(parts._replace(netloc=f"{role}:{DB_PASSWORD}@{host}"))
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def texts_of(path: Path) -> Iterator[bytes]:
    """The bytes of a file, and of every member when it is a zip (a workbook, say)."""
    data = path.read_bytes()
    yield data
    if data[:2] == b"PK":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                for member in archive.namelist():
                    yield archive.read(member)
        except zipfile.BadZipFile:
            pass


def leaks_in_files(root: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            for data in texts_of(path):
                hits = [secret for secret in SECRETS if secret.encode() in data]
                if hits:
                    found.setdefault(str(path.relative_to(root)), []).extend(hits)
    return found


def leaks_in_database(database_url: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    with psycopg.connect(database_url) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
        for (table,) in tables:
            rows = conn.execute(
                sql.SQL("SELECT row_to_json(t)::text FROM {} AS t").format(sql.Identifier(table))
            ).fetchall()
            text = "\n".join(row[0] for row in rows)
            hits = [secret for secret in SECRETS if secret in text]
            if hits:
                found[table] = hits
    return found


def test_no_secret_reaches_any_file_the_console_or_the_database(
    project, s3_bucket, fault_proxy, secret_database, monkeypatch
):
    monkeypatch.setenv("DATABASE_URL", secret_database)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    use_s3_source(project, s3_bucket, fault_proxy.endpoint_url)
    project.add_s3_remote("leads", f"s3://{s3_bucket.name}/out", fault_proxy.endpoint_url)
    # Short timeouts and retry delays: the retries still happen (and log), without minutes of sleep.
    project.edit_params(
        lambda p: p["publish"].update(to="remote://leads", timeout=1, retry_delay=0.01)
    )
    project.edit_params(lambda p: p["source"].update(timeout=1, retry_delay=0.01))
    project.edit_params(lambda p: p["ingest"].update(retry_delay=0.01))
    project.edit_params(lambda p: p["export"].update(retry_delay=0.01))
    console: list[str] = []

    def run(*args: str, env: dict[str, str] | None = None, ok: bool | None = True) -> None:
        with pytest.MonkeyPatch.context() as patch:
            for name, value in (env or {}).items():
                patch.setenv(name, value)
            result = project.run(sys.executable, "-m", *args, check=False)
        console.append(result.stdout + result.stderr)
        if ok is not None:
            assert (result.returncode == 0) == ok, result.stdout + result.stderr

    # The whole pipeline, through retried S3 faults.
    fault_proxy.plan(Fault.status(503, "SlowDown", method="GET"), Fault.reset(method="PUT"))
    run("dvc", "repro")
    # Failures, each with the secrets in the environment.
    unreachable = secret_database.replace("@/", "@127.0.0.1:1/", 1).split("?")[0]
    run("stages.ingest", "--engine", "mews", env={"DATABASE_URL": unreachable}, ok=False)
    run("stages.export", "--engine", "mews", env={"DATABASE_URL": unreachable}, ok=False)
    malformed = secret_database + "&nosuchoption=1"
    run("stages.ingest", "--engine", "rms", env={"DATABASE_URL": malformed}, ok=False)
    fault_proxy.fail_always(Fault.status(500, "InternalError", method="GET"))
    s3_bucket.put("crawls/rms.txt", b"12345\n")
    run("dvc", "repro", "publish@rms", ok=False)  # download gives up after its retries
    fault_proxy.clear()
    fault_proxy.fail_always(Fault.reset(method="PUT"))
    run("stages.publish", "--engine", "mews", ok=False)
    fault_proxy.clear()
    s3_bucket.client.delete_object(Bucket=s3_bucket.name, Key="crawls/mews.txt")
    run("stages.download", "--engine", "mews", ok=False)  # NoSuchKey
    # What people look at afterwards.
    run("stages.observe.status", ok=None)
    run("stages.observe.history", "--limit", "100", ok=None)
    run("dvc", "status", ok=None)

    assert "Gave up" in "".join(console) and "***" in "".join(console)  # the failures happened
    assert len(list(project.root.glob("data/exports/*.xlsx"))) == len(ENGINES)
    assert list(project.root.glob("logs/*/*.log")) and list(project.root.glob(".dvc/cache/**/*"))
    assert leaks_in_files(project.root) == {}
    assert [secret for secret in SECRETS if secret in "".join(console)] == []
    assert leaks_in_database(secret_database) == {}


@pytest.mark.unit
def test_the_leak_search_finds_a_secret_inside_a_workbook(tmp_path):
    with zipfile.ZipFile(tmp_path / "book.xlsx", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/sharedStrings.xml", f"<t>{DB_PASSWORD}</t>" * 50)
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs/run.log").write_text(f"key {AWS_SECRET}\n")
    assert leaks_in_files(tmp_path) == {
        "book.xlsx": [DB_PASSWORD],
        "logs/run.log": [AWS_SECRET],
    }


def test_the_probe_database_url_carries_the_password_and_works(secret_database):
    assert f":{DB_PASSWORD}@" in secret_database
    with psycopg.connect(secret_database) as conn:
        assert db.scalar(conn, "SELECT current_user").startswith("probe_")
