"""The run history's recorder: `StageRun` records every attempt of one stage run as it happens.

The stage runner begins a StageRun, which appends each record at once (start, retry, end) to
the history file (stages.observe.journal), so even a stage that crashes or is killed leaves its
start behind, keeps the heartbeat with its progress, and upserts the records into the
stage_runs table (stages.observe.runtable) in a background thread. Nothing here raises: a
history that cannot be written (read-only checkout, full disk, unreachable database) is logged
at debug level and the stage carries on."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stages.errors import first_line
from stages.observe import runs
from stages.observe.gitcommit import git_commit
from stages.observe.journal import HISTORY_FILE, LOGS_FOLDER, append_record, heartbeat_path, host
from stages.observe.records import Attempt, int_counts, now_iso, parse_time, seconds_between
from stages.observe.runtable import TableWriter
from stages.store.secrets import redact

log = logging.getLogger(__name__)

HEARTBEAT_EVERY = 1.0  # seconds between progress updates of the heartbeat file
# Counts a stage leaves in its marker: (params `paths` key, file suffix) per stage kind.
MARKERS = {
    "download": ("raw", ".meta.json"),
    "ingest": ("ingest", ".json"),
    "export": ("exports", ".json"),
    "publish": ("published", ".json"),
}

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
        self._table = TableWriter(root)

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
                host=host(),
                commit=git_commit(self.root),
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
        attempt.seconds = seconds_between(attempt.started_at, attempt.ended_at)
        attempt.error = redact(error)[:1000] if error else None
        attempt.counts = int_counts(counts or {})
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
            "host": host(),
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
        return int_counts(json.loads(path.read_text(encoding="utf-8")))
    except Exception:
        return {}


def _project_root() -> Path:
    from stages.rules.config import project_root

    return project_root()
