"""PostgreSQL fixtures: one real server per test session, one fresh database per test.

`pg_server` is the server in `TEST_DATABASE_URL` when that is set, else the pipeline's own embedded
PostgreSQL (`stages.store.embedded.embedded_server_url`) in a folder this session owns, stopped by
that folder alone and deleted when the session ends. Before each test that uses it the server is
checked: one that stopped is started again (the test gets a warning), and one that cannot be had
fails that one test and ends the run, instead of an error in every test after it. `database_url`
creates a uniquely named database on it, points DATABASE_URL at it and drops it afterwards.
`private_pg_server` is a server of a test's own, for tests that restart it.

The folders live in the system temp folder, not under pytest's: as root the embedded server runs
as a system user that must be able to traverse every parent of its data folder, and every pytest
session that starts on the machine makes /tmp/pytest-of-<user> private again (mode 0700). A
server kept there lost its own files mid-run ("could not open file global/pg_control:
Permission denied", then a shutdown) whenever another `pytest` started.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

import pytest

from stages.errors import PipelineError, first_line
from stages.rules.config import DATABASE_VARIABLES
from stages.store import embedded
from stages.store.secrets import redact

SERVER = pytest.StashKey["SessionServer"]()


@dataclass
class SessionServer:
    """The session's server: its URL and, for an embedded one, the folder holding `.pgdata`."""

    url: str
    root: Path | None  # None: TEST_DATABASE_URL, which the suite can neither restart nor stop

    def problem(self) -> str | None:
        """Why the server cannot be used right now (one line), or None when it answers."""
        import psycopg

        try:
            with psycopg.connect(self.url, connect_timeout=5) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            return first_line(exc)
        return None

    def ensure_running(self, item: pytest.Item) -> None:
        """Start a stopped embedded server again before `item`; fail `item` and end the run if the
        server cannot be had."""
        problem = self.problem()
        if problem is None:
            return
        if self.root is None:
            stop_run(
                item,
                f"TEST_DATABASE_URL ({redact(self.url)}) does not answer ({problem}); start that "
                "server again, or unset TEST_DATABASE_URL to let the tests start their own.",
            )
        pgdata = self.root / embedded.EMBEDDED_FOLDER
        try:
            url = embedded.embedded_server_url(self.root)
        except PipelineError as exc:
            failure = str(exc)  # reported outside this block, without the chained traceback
        else:
            answers = url == self.url and self.problem() is None
            failure = "" if answers else f"it does not answer at {url}; see {pgdata / 'log'}"
        if failure:
            stop_run(
                item,
                f"The test session's PostgreSQL stopped ({problem}) and did not start again: "
                f"{failure}",
            )
        item.warn(
            pytest.PytestWarning(
                f"The test session's PostgreSQL in {pgdata} had stopped ({problem}); it was "
                f"started again before this test; see {pgdata / 'log'} for why it stopped."
            )
        )


def stop_run(item: pytest.Item, message: str) -> NoReturn:
    """Fail `item` with `message` and let no later test run (they would all fail the same way)."""
    item.session.shouldstop = message
    pytest.fail(message, pytrace=False)


@contextmanager
def server_folder(name: str) -> Iterator[Path]:
    """A new folder outside pytest's temp folder (see the module docstring) for an embedded
    server's `.pgdata`; on exit the server there, if any, is stopped and the folder removed."""
    root = Path(tempfile.mkdtemp(prefix=f"crawl-pipeline-{name}-"))
    try:
        yield root
    finally:
        embedded.stop_embedded_server(root)
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class PrivateServer:
    """An embedded PostgreSQL of one test or module's own (see `private_pg_server`)."""

    root: Path
    url: str

    @property
    def pgdata(self) -> Path:
        return self.root / embedded.EMBEDDED_FOLDER

    def restart(self) -> None:
        """Stop the server (fast shutdown: every session is terminated), then start it again."""
        embedded.stop_embedded_server(self.root)
        assert embedded.embedded_server_url(self.root) == self.url


@contextmanager
def private_pg_server(name: str) -> Iterator[PrivateServer]:
    """Start an embedded PostgreSQL of its own; stop it (whatever happened to it) and delete it
    on exit. Stopping goes by its data folder, so a server restarted meanwhile is stopped too."""
    with server_folder(name) as root:
        yield PrivateServer(root, embedded.embedded_server_url(root))


@pytest.fixture(scope="session")
def pg_server(request: pytest.FixtureRequest) -> Iterator[str]:
    """Base URL of a PostgreSQL server the tests may create databases on."""
    external = os.environ.get("TEST_DATABASE_URL", "").strip()
    if external:
        request.config.stash[SERVER] = SessionServer(external, None)
        yield external
        return
    with private_pg_server("tests") as server:
        request.config.stash[SERVER] = SessionServer(server.url, server.root)
        yield server.url


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before a test that uses the session's server (once it runs): make sure it answers."""
    server = item.config.stash.get(SERVER, None)
    if server is not None and "pg_server" in getattr(item, "fixturenames", ()):
        server.ensure_running(item)


def forget_database(env: pytest.MonkeyPatch) -> None:
    """Unset every variable that names a database server (a developer's PG* settings too), so
    the test alone decides which server the code under test sees."""
    for variable in DATABASE_VARIABLES:
        env.delenv(variable, raising=False)


def url_for_database(base_url: str, name: str) -> str:
    """`base_url` pointing at database `name` instead (URL or key=value form)."""
    if "://" in base_url:
        parts = urlsplit(base_url)
        return urlunsplit(parts._replace(path=f"/{name}"))
    from psycopg.conninfo import make_conninfo

    return make_conninfo(base_url, dbname=name)


def unique_database_name(prefix: str) -> str:
    """`<prefix>_<16 hex digits>`: unique across concurrent pytest runs sharing one server
    (names derived from pytest's temp folders repeat in every run)."""
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


def create_database(
    base_url: str, prefix: str = "test", *, template: str | None = None, copy_files: bool = False
) -> tuple[str, str]:
    """Create a uniquely named database `<prefix>_<hex>`, empty or a copy of database
    `template`; return (name, URL). `copy_files` copies the template's files instead of
    WAL-logging every page (STRATEGY FILE_COPY): faster for a large template, slower for a
    small one (it forces a checkpoint)."""
    import psycopg
    from psycopg import sql

    name = unique_database_name(prefix)
    query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        query += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        if copy_files:
            query += sql.SQL(" STRATEGY FILE_COPY")
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(query)
    return name, url_for_database(base_url, name)


def drop_database(base_url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def database_url(pg_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh database for one test; DATABASE_URL points at it for the test's duration."""
    name, url = create_database(pg_server)
    monkeypatch.setenv("DATABASE_URL", url)
    try:
        yield url
    finally:
        drop_database(pg_server, name)


def lead_rows(database_url: str, engine: str) -> list[tuple]:
    """(property_id, booking_url, sources, first_seen_at, last_seen_at) of `engine`'s leads."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT l.property_id, l.booking_url, l.sources, l.first_seen_at, l.last_seen_at"
            " FROM hotel_booking_engines l JOIN booking_engines e ON e.id = l.engine_id"
            " WHERE e.name = %s ORDER BY l.property_id",
            [engine],
        ).fetchall()
