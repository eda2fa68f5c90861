"""The log of one stage attempt, for the dashboard: `logs/<stage>/<engine>.log`, sliced.

The stage runner appends every run of a stage to one log file per stage and engine; each
attempt records where its lines start (`Attempt.log_offset`), so an attempt's log runs from
its offset to the next attempt's. Only names the pipeline knows are looked up, so no request
reaches a path outside `logs/`. Secrets are removed again on the way out (the stages already
redact what they log; a log written by older code may not be).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from stages.observe.records import Attempt
from stages.store.secrets import redact

NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,99}$")
MAX_BYTES = 4 << 20  # an attempt's log longer than this is served from its end


class LogNotFound(LookupError):
    """No such stage, engine, attempt or log file; the message says which."""


@dataclass(frozen=True)
class AttemptLog:
    """The text of one attempt's log and the attempt (None: the whole file, no record)."""

    text: str
    attempt: Attempt | None
    truncated: bool


def log_file(
    logs: Path, stage: str, engine: str, stages: Iterable[str], engines: Iterable[str]
) -> Path:
    """`logs/<stage>/<engine>.log` when `stage` and `engine` are names the pipeline knows.

    Raises LogNotFound for an unknown name (checked against `stages`/`engines`, never used as a
    path before that) or a log that does not exist.
    """
    if not NAME.match(stage) or stage not in set(stages):
        raise LogNotFound(f"unknown stage {stage!r}")
    if not NAME.match(engine) or engine not in set(engines):
        raise LogNotFound(f"unknown engine {engine!r}")
    path = logs / stage / f"{engine}.log"
    if not path.resolve().is_relative_to(logs.resolve()) or not path.is_file():
        raise LogNotFound(f"no log for {stage}@{engine} yet")
    return path


def attempt_log(
    path: Path, stage: str, engine: str, attempts: Iterable[Attempt], which: str | None
) -> AttemptLog:
    """The log of one attempt of `stage`@`engine` in `path`.

    `which` is None (the latest attempt), "<n>" (attempt n of the latest run of the stage) or
    "<stage run id>.<n>" (as the run timeline links it). Attempts recorded without an offset
    (before offsets existed) get the whole file. Raises LogNotFound for an unknown attempt.
    """
    mine = [a for a in attempts if a.stage == stage and a.engine == engine]
    chosen = _choose(mine, which)
    size = path.stat().st_size
    if chosen is None or chosen.log_offset is None:
        if which is not None and chosen is None:
            raise LogNotFound(f"no attempt {which!r} of {stage}@{engine}")
        start, end = 0, size
    else:
        start = chosen.log_offset
        later = [
            a.log_offset
            for a in mine
            if a.log_offset is not None and a.log_offset > start and a.host == chosen.host
        ]
        end = min([*later, size])
        if start > size:
            raise LogNotFound(f"the log of {stage}@{engine} was replaced since that attempt")
    truncated = end - start > MAX_BYTES
    start = max(start, end - MAX_BYTES)
    with path.open("rb") as handle:
        handle.seek(start)
        data = handle.read(end - start)
    return AttemptLog(redact(data.decode("utf-8", "replace")), chosen, truncated)


def _choose(attempts: list[Attempt], which: str | None) -> Attempt | None:
    if not attempts:
        return None
    latest = max(attempts, key=lambda a: (a.started_at, a.attempt))
    if which is None or which == "":
        return latest
    if which.isdigit():
        return next(
            (a for a in attempts if a.run_id == latest.run_id and a.attempt == int(which)), None
        )
    run_id, _, number = which.rpartition(".")
    if not number.isdigit():
        return None
    return next((a for a in attempts if a.run_id == run_id and a.attempt == int(number)), None)
