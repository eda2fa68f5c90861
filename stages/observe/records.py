"""Run history records: `Attempt`, one try of one stage for one engine, as the history file
(stages.observe.journal) and the stage_runs table (stages.observe.runtable) hold it, and how
records of the same attempt from both are merged."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

OUTCOMES = ("running", "succeeded", "failed", "retried")


def now_iso() -> str:
    """Now, in UTC, as the ISO text records hold (milliseconds)."""
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


def seconds_between(start: str | None, end: str | None) -> float | None:
    """Seconds from `start` to `end` (ISO timestamps of records), to the millisecond; None
    unless both are readable."""
    started, ended = parse_time(start), parse_time(end)
    return round((ended - started).total_seconds(), 3) if started and ended else None


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


def merge(records: Iterable[Attempt]) -> list[Attempt]:
    """One record per (run_id, attempt), oldest start first; an ended record beats a running one."""
    merged: dict[tuple[str, int], Attempt] = {}
    for record in records:
        known = merged.get(record.key)
        if known is None or known.outcome == "running" or record.outcome != "running":
            merged[record.key] = record
    return sorted(merged.values(), key=lambda a: (parse_time(a.started_at) or EPOCH, a.attempt))


EPOCH = datetime.fromtimestamp(0, UTC)  # the start of an attempt whose start is unreadable


def int_counts(data: Mapping[str, Any]) -> dict[str, int]:
    """The integer counts of a marker or record by name (booleans and `seconds` left out)."""
    return {
        str(key): int(value)
        for key, value in data.items()
        if isinstance(value, int | float) and not isinstance(value, bool) and key != "seconds"
    }
