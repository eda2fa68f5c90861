"""The run history file of a checkout, `logs/history.jsonl` (one JSON line per record of an
`Attempt`; a later line for the same (run_id, attempt) supersedes an earlier one), and the
heartbeats of running stages, `logs/running/<stage>@<engine>.json` (pid, attempt, progress)."""

from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path
from typing import Any

from stages.observe.records import Attempt, merge
from stages.store.files import pid_alive

LOGS_FOLDER = "logs"
HISTORY_FILE = "history.jsonl"
RUNNING_FOLDER = "running"
# Reading only the end of a long history keeps status fast; older runs are still in the file.
READ_TAIL_BYTES = 16 << 20


def heartbeat_path(logs: Path, stage: str, engine: str) -> Path:
    """Where the heartbeat of `stage`@`engine` lives under the logs folder."""
    return logs / RUNNING_FOLDER / f"{stage}@{engine}.json"


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
        local = beat.get("host") == host()
        beat["alive"] = pid_alive(int(beat.get("pid") or 0)) if local else True
        found.append(beat)
    return found


_cached_host: str | None = None


def host() -> str:
    """This machine's name (cached)."""
    global _cached_host
    if _cached_host is None:
        _cached_host = socket.gethostname()
    return _cached_host
