"""PostgreSQL fixtures: one real server per test session, one fresh database per test.

`pg_server` is an embedded PostgreSQL (pgserver) in a pytest temporary folder, deleted when
the session ends, or the server in `TEST_DATABASE_URL` when that is set. `database_url`
creates a uniquely named database on it, points DATABASE_URL at it and drops it afterwards.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a PostgreSQL server the tests may create databases on."""
    external = os.environ.get("TEST_DATABASE_URL", "").strip()
    if external:
        yield external
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset
        import pgserver
    server = pgserver.get_server(tmp_path_factory.mktemp("pg") / "pgdata", cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


def url_for_database(base_url: str, name: str) -> str:
    """`base_url` pointing at database `name` instead (URL or key=value form)."""
    if "://" in base_url:
        parts = urlsplit(base_url)
        return urlunsplit(parts._replace(path=f"/{name}"))
    from psycopg.conninfo import make_conninfo

    return make_conninfo(base_url, dbname=name)


def create_database(base_url: str) -> tuple[str, str]:
    """Create an empty, uniquely named database; return (name, URL)."""
    import psycopg
    from psycopg import sql

    name = f"test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
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
