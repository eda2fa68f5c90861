"""PostgreSQL: which server, connecting to it, its schema, and retrying its hiccups.

The database is `DATABASE_URL` (a libpq URL or key=value string) when it is set, else the server
the libpq PG* variables name (PGHOST, PGHOSTADDR or PGSERVICE), else an embedded PostgreSQL kept
under `<project root>/.pgdata/` (stages.store.embedded), started on demand and left running
for later stages and runs. `connect()` applies the migrations in `stages/store/migrations/`
before handing out a connection.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg

from stages.errors import ConfigError, PipelineError, TransientError, cli, first_line
from stages.rules.config import RetryPolicy, database_configured, project_root
from stages.store.embedded import (
    EMBEDDED_FOLDER,
    embedded_server_url,
    stop_embedded_server,
    upgrade_embedded_server,
)
from stages.store.files import pid_alive
from stages.store.secrets import MASK, needs_percent_encoding, redact, scrub

if TYPE_CHECKING:
    from psycopg.abc import Params, QueryNoTemplate

log = logging.getLogger(__name__)
T = TypeVar("T")

MIGRATIONS = Path(__file__).with_name("migrations")
MIGRATION_FILE = re.compile(r"^(?P<version>\d{4})_\w+\.sql$")
APPLICATION_NAME = "crawl-pipeline"
CONNECT_TIMEOUT = 10  # seconds, unless the URL or PGCONNECT_TIMEOUT says otherwise

# Lost connections, serialization failures, deadlocks, too many clients, lock timeouts and a
# server that is starting, stopping or recovering: running the work again can succeed.
TRANSIENT_SQLSTATES = {"40001", "40P01", "53300", "55P03", "57P01", "57P02", "57P03"}
# libpq reports connection-level failures without a SQLSTATE; these words mark the passing ones.
TRANSIENT_MESSAGE = re.compile(
    r"connection refused|could not connect|server closed the connection|connection is lost"
    r"|the connection is closed|connection reset|broken pipe|timeout|timed out|starting up"
    r"|shutting down|recovery mode|too many clients|no such file or directory"
    r"|terminating connection|consuming input failed|sending query failed"
    r"|could not (?:send|receive) data|ssl syscall error|eof detected",
    re.IGNORECASE,
)


# --- which server -------------------------------------------------------------------------


def database_url() -> str:
    """The libpq connection string to use; "" means libpq reads the PG* variables itself."""
    url = os.environ.get("DATABASE_URL", "").strip()
    if url:
        _check_conninfo(url)
        return url
    if database_configured():  # by the PG* variables, which libpq reads itself
        return ""
    return embedded_server_url()


def available_database_url(root: Path, *, start_embedded: bool = False) -> str | None:
    """The database to use without ever starting a server (status, the run history, `status`
    of this module's command).

    A configured server (DATABASE_URL or PG* variables) counts; the embedded one only when it
    is already running, or with `start_embedded`. None means there is no database to use.
    """
    if database_configured():
        return database_url()
    pid_file = root / EMBEDDED_FOLDER / "postmaster.pid"
    if start_embedded or _postmaster_alive(pid_file):
        return embedded_server_url(root)
    return None


def _postmaster_alive(pid_file: Path) -> bool:
    try:
        pid = int(pid_file.read_text(encoding="utf-8").split("\n", 1)[0])
    except (OSError, ValueError):
        return False
    return pid_alive(pid)


def database_label(url: str) -> str:
    """How messages name the database behind `url`, without its password."""
    return redact(url) if url else "the PostgreSQL server named by the PG* variables"


def _check_conninfo(url: str) -> None:
    from psycopg.conninfo import conninfo_to_dict

    if needs_percent_encoding(url):
        # libpq would cut the password at the first such character and echo the rest as the
        # host name ("failed to resolve host 'ssw0rd@127.0.0.1'"): refuse it before it sees it.
        scheme, _, rest = url.strip().partition("://")
        raise ConfigError(
            f"DATABASE_URL ({scheme}://{MASK}@{rest.rpartition('@')[2]}) has a user name or "
            "password holding characters that must be percent-encoded (@ / ? # % or a space); "
            'write them as %40 %2F %3F %23 %25 %20, e.g. with python -c "from urllib.parse '
            "import quote; print(quote(input('password: '), safe=''))\"."
        )
    try:
        conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(
            f"DATABASE_URL ({redact(url)}) is not a valid libpq connection string: "
            f"{scrub(first_line(exc), url)}; write it as "
            "postgresql://user:password@host:port/database (percent-encode special characters)."
        ) from None


# --- connecting and migrating --------------------------------------------------------------

_migrated: set[str] = set()


def connect(url: str | None = None, *, migrate: bool = True) -> psycopg.Connection:
    """Open an autocommit connection to the pipeline database (`database_url()` by default).

    Migrations are applied on the first connection of the process. Raises TransientError when
    the server cannot be reached right now (see `retrying`) and PipelineError when the settings
    are wrong; neither message contains the password.
    """
    from psycopg.conninfo import conninfo_to_dict

    url = database_url() if url is None else url
    _check_conninfo(url)
    options: dict[str, Any] = {"autocommit": True, "application_name": APPLICATION_NAME}
    given = conninfo_to_dict(url)
    if "connect_timeout" not in given and not os.environ.get("PGCONNECT_TIMEOUT"):
        options["connect_timeout"] = CONNECT_TIMEOUT
    try:
        conn = psycopg.connect(url, **options)
    except psycopg.Error as exc:
        message = f"Cannot connect to {database_label(url)}: {scrub(first_line(exc), url)}"
        if is_transient(exc):
            raise TransientError(message) from None
        raise PipelineError(f"{message}; check DATABASE_URL (or the PG* variables).") from None
    # The run history connects to the same database with a shorter connect_timeout: one
    # migration check per database and process, not one per spelling of its URL.
    database = str(sorted((k, v) for k, v in given.items() if k != "connect_timeout"))
    try:
        # Timestamps come back in UTC whatever the server's zone: exports read the same anywhere.
        conn.execute("SET TimeZone TO 'UTC'")
        if migrate and database not in _migrated:
            apply_migrations(conn)
            _migrated.add(database)
    except BaseException:
        conn.close()
        raise
    return conn


def migration_files() -> list[tuple[str, str, str]]:
    """(version, file name, SQL) of every migration, in the order they apply."""
    found = []
    for path in sorted(MIGRATIONS.glob("*.sql")):
        match = MIGRATION_FILE.match(path.name)
        if match:
            found.append((match["version"], path.name, path.read_text(encoding="utf-8")))
    return found


def apply_migrations(conn: psycopg.Connection) -> list[str]:
    """Apply pending migrations in order, each in its own transaction; return their versions.

    Concurrent callers take turns on an advisory lock, so the later ones find nothing to do.
    A migration edited after it was applied, or a schema newer than this code, is an error.
    """
    if not conn.autocommit:
        raise ValueError("apply_migrations needs an autocommit connection (see db.connect).")
    files = migration_files()
    wanted = {version: _checksum(sql) for version, _, sql in files}
    if _applied_migrations(conn) == wanted:
        return []
    key = advisory_key("schema_migrations")
    conn.execute("SELECT pg_advisory_lock(%s)", [key])
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        applied = _applied_migrations(conn) or {}
        _check_history(conn, applied, files)
        done = []
        for version, name, sql in files:
            if version in applied:
                continue
            with conn.transaction():
                conn.execute(sql)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    [version, name, _checksum(sql)],
                )
            log.info("Applied migration %s to %s.", name, conn.info.dbname)
            done.append(version)
        return done
    finally:
        if not conn.closed:
            conn.execute("SELECT pg_advisory_unlock(%s)", [key])


def _applied_migrations(conn: psycopg.Connection) -> dict[str, str] | None:
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return None
    return dict(conn.execute("SELECT version, checksum FROM schema_migrations").fetchall())


def _check_history(
    conn: psycopg.Connection, applied: dict[str, str], files: list[tuple[str, str, str]]
) -> None:
    known = {version: (name, sql) for version, name, sql in files}
    database = conn.info.dbname
    newer = sorted(set(applied) - set(known))
    if newer:
        raise PipelineError(
            f"Database {database} has schema migration(s) {', '.join(newer)} that this code does "
            "not know; update the code (git pull) before running the pipeline against it."
        )
    for version, checksum in applied.items():
        name, sql = known[version]
        if checksum != _checksum(sql):
            raise PipelineError(
                f"stages/store/migrations/{name} was edited after it was applied to database "
                f"{database}; restore it and put the change in a new migration file."
            )


def _checksum(sql: str) -> str:
    return hashlib.sha256(sql.encode("utf-8")).hexdigest()


def advisory_key(*parts: str) -> int:
    """A stable 64-bit advisory lock key for `parts` (the same in every process and run)."""
    digest = hashlib.sha256(":".join((APPLICATION_NAME, *parts)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def scalar(
    conn: psycopg.Connection | psycopg.Cursor, query: QueryNoTemplate, params: Params | None = None
) -> Any:
    """The first column of the first row `query` returns (`SELECT count(*) ...`, `SHOW ...`).

    Raises LookupError when it returns no row."""
    row = conn.execute(query, params).fetchone()
    if row is None:
        raise LookupError(f"no row from {query!r}")
    return row[0]


def database_identity(conn: psycopg.Connection) -> dict[str, str]:
    """Name and identity (a uuid made with the schema) of the database `conn` is attached to."""
    row = conn.execute("SELECT current_database(), id::text FROM database_identity").fetchone()
    assert row is not None  # the first migration inserts the row
    return {"database": row[0], "database_id": row[1]}


# --- transient failures ---------------------------------------------------------------------


def is_transient(exc: BaseException) -> bool:
    """True when running the same work again may succeed (see TRANSIENT_SQLSTATES)."""
    if isinstance(exc, TransientError):
        return True
    if not isinstance(exc, psycopg.Error):
        return False
    state = exc.sqlstate
    if state:
        return state.startswith("08") or state in TRANSIENT_SQLSTATES
    return isinstance(exc, psycopg.OperationalError) and bool(TRANSIENT_MESSAGE.search(str(exc)))


def retrying(
    policy: RetryPolicy,
    fn: Callable[[], T],
    *,
    describe: str,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run `fn()`, running it again after transient failures, at most `policy.retries` times.

    `describe` names the work and the engine ("Loading cloudbeds leads into ..."). A database
    error that is not transient, or a transient one that outlasts the retries, becomes a
    PipelineError; other exceptions (PipelineError included) pass through unchanged. `fn` must
    do its database work in one transaction, so a failed attempt leaves nothing behind.
    """
    from stages.store.retry import with_retries

    try:
        return with_retries(
            policy, lambda _attempt: fn(), is_transient=is_transient, describe=describe, sleep=sleep
        )
    except PipelineError:
        raise
    except Exception as exc:
        if is_transient(exc):
            attempts = max(policy.retries, 0) + 1
            raise PipelineError(
                f"{describe} failed after {attempts} attempt(s): {_error_text(exc)}; "
                "nothing was changed, run the stage again when the database is reachable "
                "(or raise `retries` in params.yaml)."
            ) from exc
        if isinstance(exc, psycopg.Error):
            raise PipelineError(
                f"{describe} failed: {_error_text(exc)}; nothing was changed, fix the "
                "cause and run the stage again."
            ) from exc
        raise


def _error_text(exc: BaseException) -> str:
    text = redact(first_line(exc)).rstrip(".")
    state = getattr(exc, "sqlstate", None)
    return f"{text} (SQLSTATE {state})" if state else text


def main(argv: list[str] | None = None) -> int:
    """`python -m stages.store.db start|stop|status|upgrade`: manage the embedded PostgreSQL."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m stages.store.db",
        description="Manage the embedded PostgreSQL under .pgdata/.",
    )
    parser.add_argument("action", choices=("start", "stop", "status", "upgrade"))
    action = parser.parse_args(argv).action
    try:
        if action == "start":
            print(f"running: {redact(embedded_server_url())}")
        elif action == "stop":
            print("stopped" if stop_embedded_server() else "not running")
        elif action == "upgrade":
            old, new = upgrade_embedded_server()
            print(f"PostgreSQL {new}" + (f" (upgraded from {old})" if old != new else ""))
        else:
            return _status()
    except (PipelineError, TransientError) as exc:
        print(redact(str(exc)), file=sys.stderr)
        return 1
    return 0


def _status() -> int:
    """Print which database the pipeline uses and its version; 1 when it is not answering.
    Never starts a server: a stopped embedded PostgreSQL is reported as stopped."""
    root = project_root()
    url = available_database_url(root)
    if url is None:
        print(
            f"the embedded PostgreSQL ({root / EMBEDDED_FOLDER}) is not running; start it with "
            "`python -m stages.store.db start` (stages start it on demand)."
        )
        return 1
    try:
        with connect(url, migrate=False) as conn:
            version = scalar(conn, "SHOW server_version")
    except TransientError as exc:
        print(f"{redact(str(exc))}; it is down or unreachable from here.", file=sys.stderr)
        return 1
    print(f"{database_label(url)}: PostgreSQL {version}")
    return 0


if __name__ == "__main__":
    sys.exit(cli(main))  # `... | head` ends it quietly
