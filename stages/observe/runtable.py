"""The run history in PostgreSQL: the `stage_runs` table, written best-effort with short
timeouts so machines that share the database see each other's runs, and never at the cost of a
stage (a history that cannot be written is logged at debug level)."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg

from stages.errors import first_line
from stages.observe.records import Attempt, int_counts, merge
from stages.rules.config import database_configured

log = logging.getLogger(__name__)

TABLE_TIMEOUT = 3  # seconds to connect and per statement: history must never hold a stage up
TABLE_WAIT = 8.0  # seconds a finishing stage waits for its table write before giving up

UPSERT = """
INSERT INTO stage_runs (run_id, attempt, stage, engine, outcome, started_at, ended_at, seconds,
                        counts, error, host, git_commit, pid, via, pipeline_run, ci_url,
                        trigger, log_offset)
VALUES (%(run_id)s, %(attempt)s, %(stage)s, %(engine)s, %(outcome)s, %(started_at)s,
        %(ended_at)s, %(seconds)s, %(counts)s, %(error)s, %(host)s, %(commit)s, %(pid)s, %(via)s,
        %(pipeline_run)s, %(ci_url)s, %(trigger)s, %(log_offset)s)
ON CONFLICT (run_id, attempt) DO UPDATE
SET outcome = EXCLUDED.outcome, ended_at = EXCLUDED.ended_at, seconds = EXCLUDED.seconds,
    counts = EXCLUDED.counts, error = EXCLUDED.error
WHERE stage_runs.outcome = 'running'
"""


def connect_briefly(url: str, *, migrate: bool) -> psycopg.Connection:
    """A connection to `url` with short connect and statement timeouts (see TABLE_TIMEOUT)."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from stages.store import db

    if "connect_timeout" not in conninfo_to_dict(url):
        url = make_conninfo(url, connect_timeout=TABLE_TIMEOUT)
    conn = db.connect(url, migrate=migrate)
    conn.execute(f"SET statement_timeout = {TABLE_TIMEOUT * 1000}")
    return conn


def write_table(url: str, attempts: Iterable[Attempt]) -> None:
    """Upsert `attempts` into stage_runs (applying pending migrations first)."""
    from psycopg.types.json import Jsonb

    rows = [{**a.to_json(), "counts": Jsonb(a.counts)} for a in attempts]
    with connect_briefly(url, migrate=True) as conn, conn.cursor() as cur:
        cur.executemany(UPSERT, rows)


class TableWriter:
    """Writes a run's attempts to stage_runs in a background thread, never failing the stage.

    With a configured server the start is written at once, overlapping the stage's own work.
    The embedded server is written to only by stages that already use the database (psycopg
    is loaded, the server runs): download and publish must not pay for a database they do
    not need, and their records are in the history file anyway.
    """

    def __init__(self, root: Path):
        self.root = root
        self.thread: threading.Thread | None = None
        self.unreachable = False

    def start(self, attempts: list[Attempt]) -> None:
        if database_configured():
            self._spawn(list(attempts))

    def finish(self, attempts: list[Attempt]) -> None:
        if self.thread is not None:
            self.thread.join(TABLE_WAIT)
            if self.thread.is_alive():
                return  # still hanging on the server: do not wait twice
        if self.unreachable:
            return
        if not database_configured() and "psycopg" not in sys.modules:
            return
        self._spawn(list(attempts))
        assert self.thread is not None
        self.thread.join(TABLE_WAIT)

    def _spawn(self, attempts: list[Attempt]) -> None:
        self.thread = threading.Thread(
            target=self._write, args=(attempts,), name="stage-runs-writer", daemon=True
        )
        self.thread.start()

    def _write(self, attempts: list[Attempt]) -> None:
        try:
            from stages.store.db import available_database_url

            url = available_database_url(self.root)
            if url is None:
                return
            write_table(url, attempts)
        except Exception as exc:
            self.unreachable = True
            log.debug("run history: stage_runs not written (%s)", first_line(exc))


SELECT_TABLE = """
SELECT run_id::text, attempt, stage, engine, outcome, started_at, ended_at, seconds, counts,
       error, host, git_commit, pid, via,
       -- read through the row as JSON: a database without migration 0004 has no such columns
       to_jsonb(r) ->> 'pipeline_run', to_jsonb(r) ->> 'ci_url', to_jsonb(r) ->> 'trigger',
       (to_jsonb(r) ->> 'log_offset')::bigint
FROM stage_runs AS r ORDER BY started_at DESC LIMIT %s
"""


def read_table(conn: psycopg.Connection, *, limit: int = 5000) -> list[Attempt]:
    """The latest `limit` attempts in stage_runs, oldest first ([] before the migration)."""
    import psycopg

    try:
        rows = conn.execute(SELECT_TABLE, [limit]).fetchall()
    except psycopg.errors.UndefinedTable:
        return []
    found = []
    for run_id, number, stage, engine, outcome, started, ended, seconds, counts, *rest in rows:
        error, host, commit, pid, via, pipeline_run, ci_url, trigger, offset = rest
        found.append(
            Attempt(
                run_id=run_id,
                attempt=number,
                stage=stage,
                engine=engine,
                outcome=outcome,
                started_at=started.isoformat(timespec="milliseconds"),
                ended_at=ended.isoformat(timespec="milliseconds") if ended else None,
                seconds=seconds,
                counts=int_counts(counts or {}),
                error=error,
                host=host,
                commit=commit,
                pid=pid,
                via=via,
                pipeline_run=pipeline_run,
                ci_url=ci_url,
                trigger=trigger,
                log_offset=offset,
            )
        )
    return merge(found)
