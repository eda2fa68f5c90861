"""Run history: every attempt of every stage, and a heartbeat for each stage that is running.

The stage runner records one `Attempt` per try of a stage: stage, engine, attempt number,
start, end, outcome (running, succeeded, failed, retried), counts, the error's first line,
host and git commit. Each record is appended to `logs/history.jsonl` at once (start, retry and
end), so even a stage that crashes or is killed leaves its start behind; a later line for the
same (run_id, attempt) supersedes an earlier one. When a database is in use the same records
are upserted into the `stage_runs` table, best-effort and with short timeouts, so machines that
share the database see each other's runs. A running stage also keeps
`logs/running/<stage>@<engine>.json` (pid, attempt, progress), removed when it ends.

`python -m stages.observe.history` lists recent attempts, newest first.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

from stages.errors import cli, first_line
from stages.observe import runs
from stages.rules.config import database_configured
from stages.store.files import pid_alive
from stages.store.secrets import redact

log = logging.getLogger(__name__)

LOGS_FOLDER = "logs"
HISTORY_FILE = "history.jsonl"
RUNNING_FOLDER = "running"
OUTCOMES = ("running", "succeeded", "failed", "retried")
# Reading only the end of a long history keeps status fast; older runs are still in the file.
READ_TAIL_BYTES = 16 << 20
TABLE_TIMEOUT = 3  # seconds to connect and per statement: history must never hold a stage up
TABLE_WAIT = 8.0  # seconds a finishing stage waits for its table write before giving up
HEARTBEAT_EVERY = 1.0  # seconds between progress updates of the heartbeat file
# Counts a stage leaves in its marker: (params `paths` key, file suffix) per stage kind.
MARKERS = {
    "download": ("raw", ".meta.json"),
    "ingest": ("ingest", ".json"),
    "export": ("exports", ".json"),
    "publish": ("published", ".json"),
}


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def parse_time(value: str | None) -> datetime | None:
    """An ISO timestamp of a record as an aware datetime (None when absent or unreadable)."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass
class Attempt:
    """One try of one stage for one engine, as the history file and table record it."""

    run_id: str
    attempt: int
    stage: str
    engine: str
    outcome: str
    started_at: str
    ended_at: str | None = None
    seconds: float | None = None
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    host: str = ""
    commit: str | None = None
    pid: int | None = None
    via: str = "manual"  # "dvc" when `dvc repro` ran the command
    # The pipeline run (dvc repro, CI job, by-hand run) it belongs to, and how: stages.observe.runs.
    pipeline_run: str | None = None
    ci_url: str | None = None
    trigger: str | None = None
    log_offset: int | None = None  # where its lines start in logs/<stage>/<engine>.log

    @property
    def key(self) -> tuple[str, int]:
        return (self.run_id, self.attempt)

    @property
    def label(self) -> str:
        return f"{self.stage}@{self.engine}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Attempt | None:
        """The attempt `data` describes, or None when it is not a history record."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        try:
            values["attempt"] = int(values["attempt"])
            if not all(isinstance(values[k], str) for k in ("run_id", "stage", "engine")):
                return None
            if values["outcome"] not in OUTCOMES or not values.get("started_at"):
                return None
            values["counts"] = {
                str(k): int(v)
                for k, v in (values.get("counts") or {}).items()
                if isinstance(v, int | float) and not isinstance(v, bool)
            }
            return cls(**values)
        except (KeyError, TypeError, ValueError):
            return None


def heartbeat_path(logs: Path, stage: str, engine: str) -> Path:
    return logs / RUNNING_FOLDER / f"{stage}@{engine}.json"


# --- recording ------------------------------------------------------------------------------

_current: StageRun | None = None


class StageRun:
    """One run of one stage for one engine: records its attempts as they happen.

    Nothing here raises: a history that cannot be written (read-only checkout, full disk,
    unreachable database) is logged at debug level and the stage carries on.
    """

    def __init__(self, stage: str, engine: str, logs: Path, root: Path):
        self.stage = stage
        self.engine = engine
        self.logs = logs
        self.root = root
        self.run_id = str(uuid.uuid4())
        self.context = runs.run_context(self.run_id)
        self.attempts: list[Attempt] = []
        self._progress: dict[str, Any] | None = None
        self._progress_written = 0.0
        self._table = _TableWriter(root)

    @classmethod
    def begin(cls, stage: str, engine: str, *, logs: Path | None = None) -> StageRun | None:
        """Record the start of attempt 1 and write the heartbeat; None when there is no project."""
        global _current
        try:
            root = _project_root()
            run = cls(stage, engine, logs or root / LOGS_FOLDER, root)
        except Exception:
            log.debug("run history is off: no project root", exc_info=True)
            return None
        run._start_attempt()
        run._table.start([run.attempts[-1]])
        _current = run
        return run

    @property
    def current(self) -> Attempt:
        return self.attempts[-1]

    def retried(self, describe: str, attempt: int, exc: BaseException, delay: float) -> None:
        """A retry loop gave up on the current attempt and will try again (a retry listener)."""
        self._end_attempt("retried", error=first_line(exc))
        self._start_attempt()

    def progress(self, label: str, done: float, total: float | None = None, unit: str = "") -> None:
        """Put the progress of a long step into the heartbeat, at most once a second."""
        self._progress = {"label": label, "done": done, "total": total, "unit": unit}
        now = time.monotonic()
        if now - self._progress_written >= HEARTBEAT_EVERY:
            self._progress_written = now
            self._write_heartbeat()

    def finish(
        self,
        outcome: str,
        *,
        error: str | None = None,
        counts: Mapping[str, Any] | None = None,
    ) -> Attempt:
        """Record how the current attempt ended, remove the heartbeat, update the table."""
        global _current
        if counts is None and outcome == "succeeded":
            counts = marker_counts(self.root, self.stage, self.engine, since=self._started)
        self._end_attempt(outcome, error=error, counts=counts)
        self._remove_heartbeat()
        self._table.finish(self.attempts)
        if _current is self:
            _current = None
        return self.current

    @property
    def _started(self) -> datetime:
        return parse_time(self.attempts[0].started_at) or datetime.now(UTC)

    def _start_attempt(self) -> None:
        self.attempts.append(
            Attempt(
                run_id=self.run_id,
                attempt=len(self.attempts) + 1,
                stage=self.stage,
                engine=self.engine,
                outcome="running",
                started_at=now_iso(),
                host=_host(),
                commit=_git_commit(self.root),
                pid=os.getpid(),
                via="dvc" if os.environ.get("DVC_STAGE") else "manual",
                log_offset=runs.log_offset(self.logs / self.stage / f"{self.engine}.log"),
                **self.context,
            )
        )
        self._append(self.current)
        self._write_heartbeat()

    def _end_attempt(
        self, outcome: str, *, error: str | None, counts: Mapping[str, Any] | None = None
    ) -> None:
        attempt = self.current
        attempt.outcome = outcome
        attempt.ended_at = now_iso()
        started, ended = parse_time(attempt.started_at), parse_time(attempt.ended_at)
        if started and ended:
            attempt.seconds = round((ended - started).total_seconds(), 3)
        attempt.error = redact(error)[:1000] if error else None
        attempt.counts = _int_counts(counts or {})
        self._append(attempt)

    def _append(self, attempt: Attempt) -> None:
        try:
            append_record(self.logs / HISTORY_FILE, attempt)
        except OSError:
            log.debug("could not append to the run history", exc_info=True)

    def _write_heartbeat(self) -> None:
        beat = {
            "run_id": self.run_id,
            "stage": self.stage,
            "engine": self.engine,
            "attempt": self.current.attempt,
            "started_at": self.attempts[0].started_at,
            "attempt_started_at": self.current.started_at,
            "updated_at": now_iso(),
            "pid": os.getpid(),
            "host": _host(),
            "progress": self._progress,
        }
        path = heartbeat_path(self.logs, self.stage, self.engine)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            temporary.write_text(json.dumps(beat), encoding="utf-8")
            temporary.replace(path)  # readers never see half a file
        except OSError:
            log.debug("could not write the heartbeat %s", path, exc_info=True)

    def _remove_heartbeat(self) -> None:
        path = heartbeat_path(self.logs, self.stage, self.engine)
        with contextlib.suppress(OSError, ValueError):
            # A second run of the same stage may have taken the file over: leave it theirs.
            if json.loads(path.read_text(encoding="utf-8")).get("run_id") == self.run_id:
                path.unlink()


def report_progress(label: str, done: float, total: float | None = None, unit: str = "") -> None:
    """Show the progress of the running stage (if any) in its heartbeat; cheap to call often."""
    if _current is not None:
        _current.progress(label, done, total, unit)


def append_record(path: Path, attempt: Attempt) -> None:
    """Append `attempt` to the history file as one JSON line."""
    line = json.dumps(attempt.to_json(), sort_keys=True, separators=(",", ":")) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        # Stages of several `dvc repro` processes may append at once: whole lines only.
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)


def marker_counts(root: Path, stage: str, engine: str, *, since: datetime) -> dict[str, int]:
    """The integer counts a stage's marker holds, when the marker was written by this run."""
    if stage not in MARKERS:
        return {}
    try:
        from stages.rules.config import load_params

        kind, suffix = MARKERS[stage]
        path = load_params(root).path(kind, engine, suffix)
        if path.stat().st_mtime < since.timestamp() - 1:
            return {}  # not rewritten by this run (a by-hand run with --file, for one)
        return _int_counts(json.loads(path.read_text(encoding="utf-8")))
    except Exception:
        return {}


def _int_counts(data: Mapping[str, Any]) -> dict[str, int]:
    return {
        str(key): int(value)
        for key, value in data.items()
        if isinstance(value, int | float) and not isinstance(value, bool) and key != "seconds"
    }


def _project_root() -> Path:
    from stages.rules.config import project_root

    return project_root()


_cached_host: str | None = None
_commits: dict[Path, str | None] = {}


def _host() -> str:
    global _cached_host
    if _cached_host is None:
        _cached_host = socket.gethostname()
    return _cached_host


def _git_commit(root: Path) -> str | None:
    """HEAD's commit of the checkout at `root`, or None outside git or before the first commit."""
    if root not in _commits:
        try:
            done = subprocess.run(
                ["git", "rev-parse", "--verify", "--quiet", "HEAD"],
                cwd=root,
                capture_output=True,
                text=True,
                timeout=2,
                env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
            )
            commit = done.stdout.strip() if done.returncode == 0 else ""
            _commits[root] = commit or None
        except (OSError, subprocess.SubprocessError):
            _commits[root] = None
    return _commits[root]


# --- the stage_runs table -------------------------------------------------------------------

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


def available_database_url(root: Path, *, start_embedded: bool = False) -> str | None:
    """The database to read or write history with, without ever starting a server.

    A configured server (DATABASE_URL or PG* variables) counts; the embedded one only when it
    is already running, or with `start_embedded`. None means there is no database to use.
    """
    from stages.store.db import EMBEDDED_FOLDER, database_url, embedded_server_url

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


class _TableWriter:
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
            url = available_database_url(self.root)
            if url is None:
                return
            write_table(url, attempts)
        except Exception as exc:
            self.unreachable = True
            log.debug("run history: stage_runs not written (%s)", first_line(exc))


# --- reading --------------------------------------------------------------------------------


def read_history(logs: Path, *, tail_bytes: int = READ_TAIL_BYTES) -> list[Attempt]:
    """The attempts in `logs/history.jsonl` (its last `tail_bytes`), merged, oldest first."""
    path = logs / HISTORY_FILE
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - tail_bytes))
            data = handle.read()
    except OSError:
        return []
    lines = data.split(b"\n")
    if size > tail_bytes:
        lines = lines[1:]  # the first line was cut in the middle
    records = []
    for line in lines:
        if not line.strip():
            continue
        try:
            record = Attempt.from_json(json.loads(line))
        except ValueError:
            continue  # a line torn by a crash mid-write
        if record:
            records.append(record)
    return merge(records)


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
                counts=_int_counts(counts or {}),
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


def merge(records: Iterable[Attempt]) -> list[Attempt]:
    """One record per (run_id, attempt), oldest start first; an ended record beats a running one."""
    merged: dict[tuple[str, int], Attempt] = {}
    for record in records:
        known = merged.get(record.key)
        if known is None or known.outcome == "running" or record.outcome != "running":
            merged[record.key] = record
    return sorted(merged.values(), key=lambda a: (parse_time(a.started_at) or _EPOCH, a.attempt))


_EPOCH = datetime.fromtimestamp(0, UTC)


def read_heartbeats(logs: Path) -> list[dict[str, Any]]:
    """Heartbeats of stages that are running (or were killed: see `alive`)."""
    found = []
    for path in sorted((logs / RUNNING_FOLDER).glob("*@*.json")):
        try:
            beat = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(beat, dict) or "stage" not in beat or "engine" not in beat:
            continue
        local = beat.get("host") == _host()
        beat["alive"] = pid_alive(int(beat.get("pid") or 0)) if local else True
        found.append(beat)
    return found


# --- command line ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stages.observe.history",
        description="List recent stage attempts from logs/history.jsonl and the stage_runs table.",
    )
    parser.add_argument("--engine", help="only this engine")
    parser.add_argument("--stage", help="only this stage kind (download, ingest, ...)")
    parser.add_argument("--limit", type=int, default=30, help="how many attempts (default 30)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args(argv)
    root = _project_root()
    attempts = read_history(root / LOGS_FOLDER)
    with contextlib.suppress(Exception):
        url = available_database_url(root)
        if url is not None:
            with connect_briefly(url, migrate=False) as conn:
                attempts = merge([*read_table(conn), *attempts])
    chosen = [
        a
        for a in reversed(attempts)
        if (args.engine in (None, a.engine)) and (args.stage in (None, a.stage))
    ][: args.limit]
    for a in chosen:
        if args.json:
            print(json.dumps(a.to_json(), sort_keys=True))
            continue
        seconds = f"{a.seconds:.1f}s" if a.seconds is not None else "-"
        when = (parse_time(a.started_at) or _EPOCH).astimezone().strftime("%Y-%m-%d %H:%M:%S")
        line = f"{when}  {a.label:<22} #{a.attempt}  {a.outcome:<9} {seconds:>8}  {a.host}"
        line += f"  {(a.commit or '-')[:8]}"
        print(line + (f"\n    {a.error}" if a.error else ""))
    return 0


if __name__ == "__main__":
    sys.exit(cli(main))  # `... | head` ends it quietly
