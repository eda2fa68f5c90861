"""The status grid's cells: one engine's stage each, judged from DVC's view, the markers, the
run history, the heartbeats and the database findings.

DVC is the judge of what is up to date; the run history only explains. A stage is failed only
while its last attempt failed (or was killed) *and* DVC would run it again; once DVC considers
it up to date (the cause was fixed and the inputs are back as dvc.lock records them, the
run-cache restored its outputs, a by-hand run outside DVC or a forced re-run failed without
changing what DVC recorded), the failed attempt is history, shown in the cell's `note`; so is
one that a dependency changed after, or whose stage is stale only because of the ones before.
A database finding makes ingest (drift) or export (changed) stale, and what follows upstream
stale, in every view alike."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stages.observe import journal, progress, recorder
from stages.observe.dbview import CHANGED, DRIFT
from stages.observe.dvcview import DvcView, changed_after, relative, stale_reasons
from stages.observe.records import Attempt, parse_time, seconds_between
from stages.tools.pipeline import load_yaml

UP_TO_DATE, STALE, RUNNING, FAILED, UNKNOWN = "up to date", "stale", "running", "failed", "unknown"
STATES = (UP_TO_DATE, STALE, RUNNING, FAILED, UNKNOWN)
NEVER_RUN = "never run"
UPSTREAM = "upstream stale"
UPSTREAM_RUNNING = "upstream running"
KILLED = "stopped without recording an end (killed, or the machine went down)"
# The reasons of a cell made stale by its engine's database finding (stages.observe.dbview):
# DVC cannot see the database, so the cell whose run repairs the finding says why here.
LEADS_LOST = "leads lost in database"
DATABASE_CHANGED = "database changed"


@dataclass
class LastRun:
    """The latest run of one stage for one engine: all its attempts taken together."""

    started_at: str
    ended_at: str | None
    seconds: float | None
    attempts: int
    outcome: str
    host: str
    commit: str | None
    via: str
    error: str | None
    run_id: str = ""


@dataclass
class Cell:
    """One engine's stage: its state, why, and what its last run did."""

    stage: str
    engine: str
    state: str = UP_TO_DATE
    reasons: list[str] = field(default_factory=list)
    error: str | None = None
    progress: dict[str, Any] | None = None
    last_run: LastRun | None = None
    counts: dict[str, int] = field(default_factory=dict)
    summary: str = ""
    # A failed attempt that is history (DVC considers the stage up to date): when, how, where.
    note: str = ""

    @property
    def name(self) -> str:
        return f"{self.stage}@{self.engine}"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_markers(params: Any, engine: str) -> dict[str, dict[str, Any] | None]:
    """The markers of `engine`'s stages by stage kind (recorder.MARKERS), None where a marker
    is missing or not a JSON object."""
    return {
        stage: _read_json(params.path(kind, engine, suffix))
        for stage, (kind, suffix) in recorder.MARKERS.items()
    }


def _summary(
    stage: str, marker: dict[str, Any] | None, counts: dict[str, int], publish_to: str
) -> str:
    """What the stage made, in a few words: "22.0 KB", "281 leads, 5 rejected", "not published"."""
    data: dict[str, Any] = marker or counts
    if stage == "publish" and not marker and not publish_to:
        # publish declares no output, so a fresh clone has no record; with `publish.to`
        # empty it would have uploaded nothing anyway
        return "not published"
    if not data:
        return ""
    if stage == "download" and "bytes" in data:
        return progress.byte_size(int(data["bytes"]))
    if stage == "ingest" and "leads" in data:
        text = f"{int(data['leads']):,} leads"
        text += f", {int(data['retracted']):,} retracted" if data.get("retracted") else ""
        return text + (f", {int(data['rejected']):,} rejected" if data.get("rejected") else "")
    if stage == "export" and "rows" in data:
        return f"{int(data['rows']):,} rows"
    if stage == "publish" and "published" in data:
        return str(data.get("uri")) if data.get("published") else "not published"
    return ", ".join(f"{v:,} {k}" for k, v in list(counts.items())[:2])


def _runs(attempts: Iterable[Attempt]) -> dict[tuple[str, str], list[Attempt]]:
    """The attempts of the latest run of each (stage, engine), in attempt order."""
    runs: dict[str, list[Attempt]] = defaultdict(list)
    for attempt in attempts:
        runs[attempt.run_id].append(attempt)
    latest: dict[tuple[str, str], list[Attempt]] = {}
    for attempts_of_run in runs.values():
        attempts_of_run.sort(key=lambda a: a.attempt)
        first = attempts_of_run[0]
        key = (first.stage, first.engine)
        known = latest.get(key)
        if known is None or _start(first) >= _start(known[0]):
            latest[key] = attempts_of_run
    return latest


def _start(attempt: Attempt) -> datetime:
    return parse_time(attempt.started_at) or datetime.fromtimestamp(0, UTC)


def _last_run(attempts: list[Attempt]) -> LastRun:
    first, last = attempts[0], attempts[-1]
    return LastRun(
        started_at=first.started_at,
        ended_at=last.ended_at,
        seconds=seconds_between(first.started_at, last.ended_at),
        attempts=last.attempt,
        outcome=last.outcome,
        host=last.host,
        commit=last.commit,
        via=last.via,
        error=last.error,
        run_id=first.run_id,
    )


def build_cells(
    root: Path,
    params: Any,
    graph: dict[str, Any],
    dvc: DvcView,
    markers: dict[str, dict[str, dict[str, Any] | None]],
    local: list[Attempt],
    everything: list[Attempt],
    beats: list[dict[str, Any]],
    findings: dict[str, str] | None = None,
) -> list[Cell]:
    """Every engine's cells, engines in params order, stages in dvc.yaml order.

    `markers` are each engine's markers by stage kind (read_markers); `local` this checkout's
    attempts and `everything` those merged with the database's; `beats` the heartbeats;
    `findings` each engine's database finding state (stages.observe.dbview)."""
    lock = load_yaml(root / "dvc.lock").get("stages") or {}
    inputs = _Inputs(
        root=root,
        params=params,
        dvc=dvc,
        locked=set(lock),
        outputs={
            relative(path, root)
            for spec in lock.values()
            for path in (out.get("path") for out in spec.get("outs", []) if isinstance(out, dict))
            if path
        },
        local_runs=_runs(local),
        any_runs=_runs(everything),
        live={(b["stage"], b["engine"]): b for b in beats if b.get("alive")},
        findings=findings or {},
    )
    upstream = defaultdict(list)
    for a, b in graph["edges"]:
        upstream[b].append(a)
    cells: dict[tuple[str, str], Cell] = {}
    for engine in params.engines:
        for stage in graph["stages"]:  # dvc.yaml order: upstream stages come first
            before = [cells[(u, engine)] for u in upstream[stage]]
            marker = markers[engine].get(stage)
            cells[(stage, engine)] = _cell(stage, engine, marker, before, inputs)
    return list(cells.values())


@dataclass
class _Inputs:
    """What every cell is judged from, read once per snapshot."""

    root: Path
    params: Any
    dvc: DvcView
    locked: set[str]  # the stages dvc.lock records
    outputs: set[str]  # their outputs, relative to the root
    local_runs: dict[tuple[str, str], list[Attempt]]
    any_runs: dict[tuple[str, str], list[Attempt]]
    live: dict[tuple[str, str], dict[str, Any]]  # heartbeats of running stages
    findings: dict[str, str]


def _cell(
    stage: str, engine: str, marker: dict[str, Any] | None, before: list[Cell], inputs: _Inputs
) -> Cell:
    """One cell; `before` holds the cells of the stages that feed it, judged already."""
    cell = Cell(stage=stage, engine=engine)
    key = (stage, engine)
    run = inputs.local_runs.get(key) or inputs.any_runs.get(key)
    if run:
        cell.last_run = _last_run(run)
        cell.counts = dict(run[-1].counts)
    cell.summary = _summary(stage, marker, cell.counts, inputs.params.publish.to)
    beat = inputs.live.get(key)
    upstream_running = any(c.state == RUNNING for c in before)
    busy = cell.name in inputs.dvc.busy
    if beat or (busy and not upstream_running):
        cell.state, cell.progress = RUNNING, _progress(beat)
        return cell
    if busy:
        # DVC holds this stage's inputs because the stage before it is writing them.
        cell.state, cell.reasons = STALE, [UPSTREAM_RUNNING]
        return cell
    _judge(cell, inputs.root, inputs.params, inputs.dvc, inputs.locked, inputs.outputs)
    # A failed attempt is why the cell is failed only while DVC would run this stage itself
    # again, and nothing it reports changed has changed since.
    local_run = inputs.local_runs.get(key)
    current = cell.state != UP_TO_DATE and not changed_after(
        inputs.dvc.changes.get(cell.name, []), inputs.root, local_run[-1] if local_run else None
    )
    _database_finding(cell, inputs.findings.get(engine))
    if cell.state == UP_TO_DATE and any(c.state != UP_TO_DATE for c in before):
        cell.state, cell.reasons = STALE, [UPSTREAM_RUNNING if upstream_running else UPSTREAM]
    if local_run and local_run[-1].outcome != "succeeded":
        _failed_attempt(cell, local_run[-1], current=current)
    return cell


def _judge(
    cell: Cell,
    root: Path,
    params: Any,
    dvc: DvcView,
    locked: set[str],
    outputs: set[str],
) -> None:
    """DVC's verdict on a stage that is not running: up to date, stale (why) or unknown."""
    if dvc.damaged:  # dvc.lock cannot be read, so "never run" would be a guess
        cell.state, cell.reasons = UNKNOWN, [dvc.error or ""]
    elif cell.name not in locked:
        cell.state, cell.reasons = STALE, [NEVER_RUN]
    elif cell.name in dvc.changes:
        cell.state = STALE
        cell.reasons = stale_reasons(dvc.changes[cell.name], root, params.source_root, outputs)
    elif dvc.error:
        cell.state, cell.reasons = UNKNOWN, [dvc.error]


def _database_finding(cell: Cell, finding: str | None) -> None:
    """Make the cell whose run repairs the engine's database finding stale for it (ingest for
    lost leads, export for a database that changed after the export) when DVC has it up to
    date; a stage DVC already runs again repairs it on the next `dvc repro` anyway."""
    reason = {("ingest", DRIFT): LEADS_LOST, ("export", CHANGED): DATABASE_CHANGED}.get(
        (cell.stage, finding or "")
    )
    if reason is not None and cell.state == UP_TO_DATE:
        cell.state, cell.reasons = STALE, [reason]


def _failed_attempt(cell: Cell, last: Attempt, *, current: bool) -> None:
    """The stage's last attempt failed or was killed: the cell is failed when that attempt is
    `current` (DVC would run the stage itself again, or cannot say, on what the attempt
    saw), else the attempt is history and becomes the cell's note beside its state now."""
    if last.outcome == "failed":
        # Stage errors start with "<stage>@<engine>: "; the cell says that already.
        error = (last.error or "").removeprefix(f"{cell.name}: ")
    else:  # "running" or "retried" with no live heartbeat: it never recorded an end
        error = KILLED
    if current:
        cell.state, cell.error = FAILED, error
        return
    how = "by hand" if last.via == "manual" else "under dvc"
    moment = when(last.ended_at or last.started_at) or "an earlier run"
    ended = "failed" if last.outcome == "failed" else "was killed"
    log_file = f"{journal.LOGS_FOLDER}/{cell.stage}/{cell.engine}.log"
    attempt = f"the last attempt ({how}, {moment}) {ended}: {error} (see {log_file})"
    if cell.state == UP_TO_DATE:
        cell.note = (
            f"up to date; {attempt}; DVC's record still matches the workspace, so it is history"
        )
    else:
        cell.note = (
            f"{cell.state} ({', '.join(cell.reasons)}); {attempt}; what DVC reports changed "
            "came after it, so it is history"
        )


def _progress(beat: dict[str, Any] | None) -> dict[str, Any] | None:
    if not beat:
        return None
    progress = dict(beat.get("progress") or {})
    done, total = progress.get("done"), progress.get("total")
    if isinstance(done, int | float) and isinstance(total, int | float) and total > 0:
        progress["fraction"] = round(min(done / total, 1.0), 4)
    progress.update(attempt=beat.get("attempt"), since=beat.get("started_at"))
    progress.setdefault("label", "")
    return progress


def when(value: str | None) -> str:
    """An ISO time as the grid shows it: local HH:MM:SS today, else YYYY-MM-DD HH:MM; "" when
    there is none."""
    moment = parse_time(value)
    if moment is None:
        return ""
    local = moment.astimezone()
    today = datetime.now().astimezone().date()
    return local.strftime("%H:%M:%S" if local.date() == today else "%Y-%m-%d %H:%M")
