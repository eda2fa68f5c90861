"""Where the pipeline stands, per engine and stage: `python -m stages.observe.status [--json]`.

A grid of engines by stages; each cell is up to date, stale (and why, in words), running (with
progress) or failed (with the error's first line), plus its last run, duration, attempts and
counts. Below it the database per engine (drift: it lost what the ingest left; changed: it moved
on after the export, so the workbook is stale) and the totals. It reads `dvc status` (through
DVC's Python API), dvc.yaml, dvc.lock, the stage markers, the run history and the heartbeats,
and changes nothing but the last good copy of dvc.lock (stages.tools.dvcstate): it never starts the
embedded PostgreSQL unless asked to (--start-db). `--repair` repairs a dvc.lock or rwlock a
killed dvc left damaged.

DVC is the judge of what is up to date; the run history only explains. A stage is failed only
while its last attempt failed (or was killed) *and* DVC would run it again; once DVC considers
it up to date (the cause was fixed and the inputs are back as dvc.lock records them, the
run-cache restored its outputs, a by-hand run outside DVC or a forced re-run failed without
changing what DVC recorded), the failed attempt is history, shown in the cell's `note`; so is
one that a dependency changed after, or whose stage is stale only because of the ones before.
DVC cannot see the database: drift makes ingest stale, a change after the export makes export
stale (and what follows them upstream stale), in every view alike.

Exit code 0 when every stage is up to date and the database matches the markers, 1 otherwise,
so CI can gate on it. `collect()` builds the same snapshot for the dashboard
(stages.observe.dashboard).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from stages.errors import cli, first_line
from stages.observe import alerts, history, progress
from stages.observe.history import Attempt, parse_time
from stages.store import s3
from stages.store.secrets import redact
from stages.tools import dvcstate

UP_TO_DATE, STALE, RUNNING, FAILED, UNKNOWN = "up to date", "stale", "running", "failed", "unknown"
STATES = (UP_TO_DATE, STALE, RUNNING, FAILED, UNKNOWN)
NEVER_RUN = "never run"
UPSTREAM = "upstream stale"
UPSTREAM_RUNNING = "upstream running"
KILLED = "stopped without recording an end (killed, or the machine went down)"
# An engine's database finding (status's drift entries): "drift" when it lost what the
# ingest left, CHANGED when it moved on after the export. DVC cannot see either, so the cell
# whose run repairs it is stale for the REASON named here (stages.store.leads has the fix).
CHANGED = "changed"
LEADS_LOST = "leads lost in database"
DATABASE_CHANGED = "database changed"
TREND_POINTS = 30
RECENT_FAILURES = 10


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


# --- the pipeline as dvc.yaml declares it -----------------------------------------------------


def _load_yaml(path: Path) -> Any:
    """The YAML file at `path` as data; {} when it is missing or damaged (a dvc.lock a killed
    dvc cut short is reported by dvcstate, not here)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available: 10x faster
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=loader) or {}
    except (OSError, ValueError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def pipeline_graph(root: Path) -> dict[str, Any]:
    """The stage kinds run per engine (in dvc.yaml order) and which feeds which.

    An edge A -> B means an output of A (as written in dvc.yaml) is a dependency of B.
    """
    stages = _load_yaml(root / "dvc.yaml").get("stages") or {}
    kinds, outs, deps = [], {}, {}
    for name, spec in stages.items():
        if not isinstance(spec, dict) or "foreach" not in spec:
            continue  # one-off stages are not part of the per-engine grid
        body = spec.get("do") or {}
        kinds.append(name)
        outs[name] = {p for key in ("outs", "metrics", "plots") for p in _paths(body.get(key))}
        deps[name] = set(_paths(body.get("deps")))
    edges = [[a, b] for a in kinds for b in kinds if a != b and outs[a] & deps[b]]
    return {"stages": kinds, "edges": edges}


def _paths(entries: Any) -> Iterable[str]:
    for entry in entries or []:
        if isinstance(entry, str):
            yield entry
        elif isinstance(entry, dict):
            yield from (str(key) for key in entry)


# --- dvc status -------------------------------------------------------------------------------


@dataclass
class DvcView:
    """What DVC says: the changes of each stale stage, the busy stages, or why it could not say."""

    changes: dict[str, list[Any]] = field(default_factory=dict)
    busy: set[str] = field(default_factory=set)
    error: str | None = None
    damaged: list[str] = field(default_factory=list)


def dvc_view(root: Path) -> DvcView:
    """`dvc status` for every stage, through DVC's API; a stage whose files a running DVC
    command holds is reported busy instead of failing the whole status.

    A dvc.lock or rwlock a killed dvc left damaged makes every dvc command fail: that is
    reported (with the repair command) instead of DVC's validation error; a sound dvc.lock is
    kept as the last good copy (stages.tools.dvcstate.save_good_copy)."""
    damaged = dvcstate.damage(root)
    if damaged:
        return DvcView(error=dvcstate.explain(damaged), damaged=[str(d) for d in damaged])
    dvcstate.save_good_copy(root)
    try:
        from dvc.lock import LockError
        from dvc.repo import Repo, lock_repo
    except ImportError as exc:
        return DvcView(error=f"DVC is not installed ({exc}); run `uv sync`.")
    view = DvcView()
    try:
        with Repo(str(root)) as repo, lock_repo(repo):
            for stage in repo.index.stages:
                try:
                    found = stage.status()
                except LockError:
                    view.busy.add(stage.name)
                    continue
                for changes in found.values():
                    view.changes[stage.name] = changes
    except LockError:
        view.error = "another DVC command holds the repository lock; try again in a moment"
    except Exception as exc:
        view.error = f"dvc status failed: {redact(first_line(exc))}"
        fix = s3.explain_dvc_failure(exc, _source_remote(root))
        if fix:
            view.error += f"; {fix}"
    return view


def _source_remote(root: Path) -> str | None:
    """The DVC remote `source.root` names (remote://<name>), for the fix of an S3 error."""
    try:
        source_root = (_load_yaml(root / "params.yaml").get("source") or {}).get("root", "")
    except Exception:
        return None
    text = str(source_root)
    if not text.startswith("remote://"):
        return None
    return text.removeprefix("remote://").partition("/")[0]


def stale_reasons(changes: list[Any], root: Path, source_root: str, outputs: set[str]) -> list[str]:
    """DVC's change list of one stage, in words: source/params/code/input changed, ..."""
    reasons: list[str] = []

    def add(reason: str) -> None:
        if reason not in reasons:
            reasons.append(reason)

    for change in changes:
        if isinstance(change, str):  # "changed command", "always changed"
            add(
                {"always changed": "always runs"}.get(
                    change, change.replace("changed ", "") + " changed"
                )
            )
            continue
        if not isinstance(change, dict):
            continue
        for kind, entries in change.items():
            if kind == "changed outs":
                states = set(entries.values()) if isinstance(entries, dict) else set()
                add("outputs missing" if states <= {"deleted"} else "outputs changed")
            elif kind == "changed deps" and isinstance(entries, dict):
                for path, state in entries.items():
                    add(_dep_reason(path, state, root, source_root, outputs))
            elif kind == "changed command":
                add("command changed")
            else:
                add(kind.replace("changed ", "") + " changed")
    return reasons


def _dep_reason(path: str, state: Any, root: Path, source_root: str, outputs: set[str]) -> str:
    if isinstance(state, dict):
        return f"params changed ({', '.join(sorted(state))})"
    relative = _relative(path, root)
    if "://" in path or source_root.startswith("remote://"):
        is_source = "://" in path
    else:
        is_source = relative == source_root or relative.startswith(source_root.rstrip("/") + "/")
    if is_source:
        return "source missing" if state == "deleted" else "source changed"
    if relative in outputs:
        return "input missing" if state == "deleted" else "input changed"
    return "code changed"


def _relative(path: str, root: Path) -> str:
    """A path DVC printed (relative to the working directory inside the repo, else to the
    repo root) relative to the repo root, with / separators."""
    candidate = Path(path)
    if not candidate.is_absolute():
        cwd = Path.cwd()
        candidate = (cwd if cwd.is_relative_to(root) else root) / candidate
    try:
        return Path(os.path.normpath(candidate)).relative_to(root).as_posix()
    except ValueError:
        return path


# --- markers, history, heartbeats -------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _markers(params: Any, engine: str) -> dict[str, dict[str, Any] | None]:
    return {
        stage: _read_json(params.path(kind, engine, suffix))
        for stage, (kind, suffix) in history.MARKERS.items()
    }


def _summary(stage: str, marker: dict[str, Any] | None, counts: dict[str, int]) -> str:
    data: dict[str, Any] = marker or counts
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
    started, ended = parse_time(first.started_at), parse_time(last.ended_at)
    seconds = round((ended - started).total_seconds(), 3) if started and ended else None
    return LastRun(
        started_at=first.started_at,
        ended_at=last.ended_at,
        seconds=seconds,
        attempts=last.attempt,
        outcome=last.outcome,
        host=last.host,
        commit=last.commit,
        via=last.via,
        error=last.error,
        run_id=first.run_id,
    )


# --- the database -----------------------------------------------------------------------------


def database_view(
    root: Path,
    markers: dict[str, dict[str, Any] | None],
    *,
    start_db: bool,
    exports: dict[str, dict[str, Any] | None] | None = None,
    source_tag: str | None = None,
) -> dict[str, Any]:
    """Drift of each ingested engine and the stage_runs rows, without starting a server
    (unless `start_db`); never raises.

    `markers` are the ingest markers and `exports` the export markers by engine; an engine's
    drift is "drift" when the database lost what its ingest left (`leads.check_drift`),
    "changed" when it moved on after the export, so the workbook is stale
    (`leads.check_workbook`, with the export's `source_tag`), else "ok"."""
    view: dict[str, Any] = {
        "state": "unchecked",
        "label": "",
        "message": "",
        "drift": {},
        "runs": [],
    }
    try:
        url = history.available_database_url(root, start_embedded=start_db)
    except Exception as exc:
        view["message"] = redact(first_line(exc))
        return view
    if url is None:
        view["message"] = (
            "the embedded PostgreSQL (.pgdata) is not running and DATABASE_URL is not set; "
            "drift not checked (use --start-db to start it)"
        )
        return view
    from stages.store import db

    view["label"] = db.database_label(url)
    try:
        with history.connect_briefly(url, migrate=False) as conn:
            view["state"] = "reachable"
            view["runs"] = history.read_table(conn)
            for engine, marker in markers.items():
                exported = (exports or {}).get(engine)
                view["drift"][engine] = _drift(conn, engine, marker, exported, source_tag)
    except Exception as exc:
        # Only a server that cannot be reached is "unreachable"; a refused login or a missing
        # permission is reported as the error it is.
        view["state"] = "unreachable" if db.is_transient(exc) else "error"
        view["message"] = redact(first_line(exc))
    return view


def _drift(
    conn: Any,
    engine: str,
    marker: dict[str, Any] | None,
    exported: dict[str, Any] | None = None,
    source_tag: str | None = None,
) -> dict[str, Any]:
    import psycopg

    from stages.store import leads

    if marker is None:
        return {"state": "not ingested", "message": "no ingest marker yet"}
    ingested = marker.get("database") or {}
    try:
        with conn.transaction():
            problem = leads.check_drift(conn, engine, ingested)
            found = leads.lead_count(conn, engine)
            changed = None
            if not problem:
                recorded = (exported or {}).get("database")
                changed = leads.check_workbook(conn, engine, recorded, ingested, source_tag)
    except psycopg.errors.UndefinedTable:
        repair = leads.REPAIR_COMMAND.format(engine=engine)
        problem = (
            f"Engine {engine}: database {conn.info.dbname} has no pipeline tables (it was "
            f"replaced or re-created); run `{repair}` to load them again."
        )
        found = 0
    if problem:
        return {"state": "drift", "message": problem, "leads": found}
    if changed:
        return {"state": CHANGED, "message": changed, "leads": found}
    return {"state": "ok", "message": f"{found:,} leads; the workbook is current", "leads": found}


# --- the snapshot -----------------------------------------------------------------------------


def collect(
    root: Path | None = None, *, start_db: bool = False, dvc: DvcView | None = None
) -> dict[str, Any]:
    """Everything the status view and the dashboard show, as JSON-ready data.

    `dvc` is a DvcView computed earlier (the dashboard reuses one while nothing changed).
    """
    from stages.rules.config import load_params, project_root

    root = (root or project_root()).resolve()
    params = load_params(root)
    graph = pipeline_graph(root)
    markers = {engine: _markers(params, engine) for engine in params.engines}
    ingest_markers = {engine: found["ingest"] for engine, found in markers.items()}
    export_markers = {engine: found["export"] for engine, found in markers.items()}

    database: dict[str, Any] = {}
    worker = threading.Thread(
        target=lambda: database.update(
            database_view(
                root,
                ingest_markers,
                start_db=start_db,
                exports=export_markers,
                source_tag=params.export.source_tag or None,
            )
        ),
        name="status-database",
        daemon=True,
    )
    worker.start()  # the database round trips overlap DVC's work
    dvc = dvc or dvc_view(root)
    logs = root / history.LOGS_FOLDER
    local = history.read_history(logs)
    beats = history.read_heartbeats(logs)
    worker.join(15)

    everything = history.merge([*database.get("runs", []), *local])
    drift = [
        {"engine": engine, **database.get("drift", {}).get(engine, {"state": "unchecked"})}
        for engine in params.engines
    ]
    found = {d["engine"]: d["state"] for d in drift}
    cells = _cells(root, params, graph, dvc, markers, local, everything, beats, found)
    states = Counter(cell.state for cell in cells)
    drifted = [d["engine"] for d in drift if d["state"] in ("drift", CHANGED)]
    ok = states[UP_TO_DATE] == len(cells) and not drifted and dvc.error is None
    return {
        "project": root.name,
        "root": str(root),
        "generated_at": history.now_iso(),
        "ok": ok,
        "headline": _headline(states, drift, dvc.error, len(cells)),
        "dvc_error": dvc.error,
        "engines": [_engine_summary(e, markers[e.name]) for e in params.engines.values()],
        "stages": graph["stages"],
        "graph": graph,
        "cells": [asdict(cell) | {"name": cell.name} for cell in cells],
        "database": {
            "state": database.get("state", "unchecked"),
            "label": database.get("label", ""),
            "message": database.get("message", "not checked in time"),
        },
        "drift": drift,
        "totals": _totals(markers, states),
        "running": [asdict(c) | {"name": c.name} for c in cells if c.state == RUNNING],
        "failures": _failures(everything, cells),
        "dvc_state": {"damaged": dvc.damaged, "repair": dvcstate.REPAIR_COMMAND},
        "trend": _trend(everything, params.engines),
    }


def _engine_summary(engine: Any, markers: dict[str, dict[str, Any] | None]) -> dict[str, Any]:
    ingest, export = markers.get("ingest") or {}, markers.get("export") or {}
    return {
        "name": engine.name,
        "display_name": engine.display_name,
        "leads": ingest.get("leads"),
        "rejected": ingest.get("rejected"),
        "rows": export.get("rows"),
    }


def inputs_fingerprint(root: Path) -> tuple[Any, ...]:
    """A cheap signature (sizes and times) of the local files `dvc status` and the run history
    depend on: while it stays the same, an earlier DvcView is still right (S3 sources aside)."""
    lock = _load_yaml(root / "dvc.lock").get("stages") or {}
    paths = {"dvc.yaml", "dvc.lock", "params.yaml", f"{history.LOGS_FOLDER}/{history.HISTORY_FILE}"}
    for spec in lock.values():
        for entry in [*(spec.get("deps") or []), *(spec.get("outs") or [])]:
            if isinstance(entry, dict) and entry.get("path") and "://" not in entry["path"]:
                paths.add(entry["path"])
    signature: list[Any] = []
    for name in sorted(paths):
        signature.append((name, *_stat(root / name)))
        if (root / name).is_dir():
            for folder, _, files in os.walk(root / name):
                signature.extend((folder, f, *_stat(Path(folder) / f)) for f in sorted(files))
    return tuple(signature)


def _stat(path: Path) -> tuple[int, int]:
    try:
        found = path.stat()
    except OSError:
        return (0, -1)
    return (found.st_mtime_ns, found.st_size)


def _cells(
    root: Path,
    params: Any,
    graph: dict[str, Any],
    dvc: DvcView,
    markers: dict[str, dict[str, dict[str, Any] | None]],
    local: list[Attempt],
    everything: list[Attempt],
    beats: list[dict[str, Any]],
    database: dict[str, str] | None = None,
) -> list[Cell]:
    """Every engine's cells in dvc.yaml order; `database` holds each engine's drift state."""
    locked = set((_load_yaml(root / "dvc.lock").get("stages") or {}).keys())
    outputs = {
        _relative(path, root)
        for spec in (_load_yaml(root / "dvc.lock").get("stages") or {}).values()
        for path in (out.get("path") for out in spec.get("outs", []) if isinstance(out, dict))
        if path
    }
    local_runs, any_runs = _runs(local), _runs(everything)
    live = {(b["stage"], b["engine"]): b for b in beats if b.get("alive")}
    upstream = defaultdict(list)
    for a, b in graph["edges"]:
        upstream[b].append(a)
    cells: dict[tuple[str, str], Cell] = {}
    for engine in params.engines:
        for stage in graph["stages"]:  # dvc.yaml order: upstream stages come first
            cell = Cell(stage=stage, engine=engine)
            name = cell.name
            run = local_runs.get((stage, engine)) or any_runs.get((stage, engine))
            if run:
                cell.last_run = _last_run(run)
                cell.counts = dict(run[-1].counts)
            marker = markers[engine].get(stage)
            cell.summary = _summary(stage, marker, cell.counts)
            beat = live.get((stage, engine))
            local_run = local_runs.get((stage, engine))
            upstream_running = any(cells[(u, engine)].state == RUNNING for u in upstream[stage])
            if beat or (name in dvc.busy and not upstream_running):
                cell.state = RUNNING
                cell.progress = _progress(beat)
            elif name in dvc.busy:
                # DVC holds this stage's inputs because the stage before it is writing them.
                cell.state, cell.reasons = STALE, [UPSTREAM_RUNNING]
            else:
                _judge(cell, root, params, dvc, locked, outputs)
                # A failed attempt is why the cell is failed only while DVC would run this
                # stage itself again, and nothing it reports changed has changed since.
                current = cell.state != UP_TO_DATE and not _changed_after(
                    dvc.changes.get(name, []), root, local_run[-1] if local_run else None
                )
                _database_finding(cell, (database or {}).get(engine))
                if cell.state == UP_TO_DATE and any(
                    cells[(u, engine)].state != UP_TO_DATE for u in upstream[stage]
                ):
                    cell.state = STALE
                    cell.reasons = [UPSTREAM_RUNNING if upstream_running else UPSTREAM]
                if local_run and local_run[-1].outcome != "succeeded":
                    _failed_attempt(cell, local_run[-1], current=current)
            cells[(stage, engine)] = cell
    return list(cells.values())


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
    reason = {("ingest", "drift"): LEADS_LOST, ("export", CHANGED): DATABASE_CHANGED}.get(
        (cell.stage, finding or "")
    )
    if reason is not None and cell.state == UP_TO_DATE:
        cell.state, cell.reasons = STALE, [reason]


def _changed_after(changes: list[Any], root: Path, last: Attempt | None) -> bool:
    """Whether a local dependency that DVC reports changed for a stage (a file or folder,
    params.yaml for params) changed after the stage's last attempt ended: then the stage was
    not tried on what it has now, and that attempt's failure is history. Outputs do not
    count: the attempt itself writes beside them (and a killed one records no end).

    A missing path counts by the time of the folder that held it (removing a file sets its
    folder's modification time); S3 objects, the command and unknown times count as before."""
    moment = parse_time(last.ended_at or last.started_at) if last else None
    if moment is None:
        return False
    paths: list[str] = []
    for change in changes:
        if not isinstance(change, dict):
            continue
        for kind, entries in change.items():
            if kind == "changed deps" and isinstance(entries, dict):
                paths.extend(str(path) for path in entries)
    cutoff = moment.timestamp()
    return any(
        _changed_at(root / _relative(path, root)) > cutoff for path in paths if "://" not in path
    )


def _changed_at(path: Path) -> float:
    """When `path` last changed (seconds since the epoch): a folder by its newest entry, a
    missing path by its nearest existing folder; 0 when nothing can say."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            break
    else:
        return 0.0
    times = [_stat(candidate)[0]]
    if candidate == path and path.is_dir():
        for folder, _, files in os.walk(path):
            times.append(_stat(Path(folder))[0])
            times.extend(_stat(Path(folder) / name)[0] for name in files)
    return max(times) / 1e9


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
    when = _when(last.ended_at or last.started_at) or "an earlier run"
    ended = "failed" if last.outcome == "failed" else "was killed"
    log_file = f"{history.LOGS_FOLDER}/{cell.stage}/{cell.engine}.log"
    attempt = f"the last attempt ({how}, {when}) {ended}: {error} (see {log_file})"
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


def _headline(
    states: Counter[str], drift: list[dict[str, Any]], dvc_error: str | None, total: int
) -> str:
    if dvc_error:
        return f"Could not read dvc status: {dvc_error.rstrip('.')}."
    parts = [f"{states[s]} {s}" for s in (FAILED, RUNNING, STALE, UNKNOWN) if states[s]]
    for state, words in (("drift", "database drift"), (CHANGED, "database changed after export")):
        engines = [d["engine"] for d in drift if d["state"] == state]
        if engines:
            parts.append(f"{words} for {', '.join(engines)}")
    if not parts:
        return f"Everything is up to date ({total} stages)."
    return f"Not up to date: {'; '.join(parts)} (of {total} stages)."


def _totals(markers: dict[str, dict[str, dict[str, Any] | None]], states: Counter[str]) -> dict:
    def total(stage: str, key: str) -> int:
        return sum(int((m.get(stage) or {}).get(key) or 0) for m in markers.values())

    return {
        "leads": total("ingest", "leads"),
        "rejected": total("ingest", "rejected"),
        "lines": total("ingest", "lines"),
        "rows_exported": total("export", "rows"),
        "published": sum(1 for m in markers.values() if (m.get("publish") or {}).get("published")),
        "states": {state: states[state] for state in STATES},
    }


def _failures(attempts: list[Attempt], cells: list[Cell]) -> list[dict[str, Any]]:
    """The latest failed or retried attempts, newest first; `current` marks the ones that are
    why a cell is failed now (the rest is history)."""
    failing = {c.last_run.run_id for c in cells if c.state == FAILED and c.last_run}
    failed = [a for a in attempts if a.outcome in ("failed", "retried")]
    return [
        {
            "current": a.run_id in failing,
            "stage": a.stage,
            "engine": a.engine,
            "run_id": a.run_id,
            "attempt": a.attempt,
            "outcome": a.outcome,
            "at": a.ended_at or a.started_at,
            "error": a.error or "",
            "host": a.host,
        }
        for a in reversed(failed[-RECENT_FAILURES:])
    ]


def _trend(attempts: list[Attempt], engines: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """Leads per engine after each successful ingest, oldest first."""
    trend: dict[str, list[dict[str, Any]]] = {engine: [] for engine in engines}
    for a in attempts:
        succeeded = a.stage == "ingest" and a.outcome == "succeeded" and "leads" in a.counts
        if succeeded and a.engine in trend:
            trend[a.engine].append({"at": a.ended_at, "leads": a.counts["leads"]})
    return {engine: points[-TREND_POINTS:] for engine, points in trend.items()}


# --- the terminal view ------------------------------------------------------------------------

WIDTH = 26
COLORS = {UP_TO_DATE: "32", STALE: "33", RUNNING: "36", FAILED: "31", UNKNOWN: "35"}


def render_text(snapshot: dict[str, Any], *, color: bool = False) -> str:
    """The snapshot as the terminal grid, drift and totals."""

    def paint(text: str, state: str) -> str:
        return f"\033[{COLORS.get(state, '0')}m{text}\033[0m" if color else text

    stages, engines = snapshot["stages"], [e["name"] for e in snapshot["engines"]]
    cells = {(c["stage"], c["engine"]): c for c in snapshot["cells"]}
    name_width = max([len("engine"), *(len(e) for e in engines)]) + 2
    out = [f"{snapshot['project']}: {snapshot['headline']}", ""]
    out.append("engine".ljust(name_width) + "".join(s.ljust(WIDTH) for s in stages).rstrip())
    rule = "".join(("-" * (WIDTH - 2)).ljust(WIDTH) for _ in stages)
    out.append(("-" * (name_width - 2) + "  " + rule).rstrip())
    for engine in engines:
        rows = list(zip(*(_cell_lines(cells[(s, engine)]) for s in stages), strict=True))
        for number, row in enumerate(rows):
            line = (engine if number == 0 else "").ljust(name_width)
            for stage, text in zip(stages, row, strict=True):
                padded = _clip(text).ljust(WIDTH)
                line += paint(padded, cells[(stage, engine)]["state"]) if number == 0 else padded
            out.append(line.rstrip())
        out.append("")
    failures = [c for c in snapshot["cells"] if c["state"] == FAILED]
    if failures:
        out.append("Failed:")
        out.extend(f"  {c['name']}: {c['error']}" for c in failures)
        out.append("")
    for state, heading in ((UP_TO_DATE, "up to date now"), (STALE, "stale for another reason")):
        past = [c for c in snapshot["cells"] if c["state"] == state and c.get("note")]
        if past:
            out.append(f"Failed before, {heading}:")
            out.extend(f"  {c['name']}: {c['note']}" for c in past)
            out.append("")
    damaged = snapshot.get("dvc_state", {}).get("damaged")
    if damaged:
        out.append(f"DVC's state is damaged: {'; '.join(damaged)}.")
        out.append(f"  Repair it: {snapshot['dvc_state']['repair']}")
        out.append("")
    database = snapshot["database"]
    label = f" {database['label']}" if database["label"] else ""
    out.append(
        f"Database{label}: {database['state']}"
        + (f" ({database['message']})" if database["message"] else "")
    )
    for drift in snapshot["drift"]:
        state = drift["state"]
        shade = {"drift": FAILED, CHANGED: STALE, "ok": UP_TO_DATE}.get(state, UNKNOWN)
        line = f"  {drift['engine'].ljust(name_width)}{paint(state, shade)}"
        out.append(f"{line}  {drift.get('message', '')}".rstrip())
    totals = snapshot["totals"]
    states = ", ".join(f"{n} {s}" for s, n in totals["states"].items() if n)
    out.append("")
    out.append(
        f"Totals: {totals['leads']:,} leads, {totals['rows_exported']:,} rows exported, "
        f"{totals['rejected']:,} lines rejected, {totals['published']} published; "
        f"stages: {states}."
    )
    return "\n".join(out)


def _cell_lines(cell: dict[str, Any]) -> list[str]:
    state = cell["state"]
    first, detail = state, ""
    if state == STALE:
        detail = ", ".join(cell["reasons"])
    elif state in (FAILED, UNKNOWN):
        detail = cell["error"] or ", ".join(cell["reasons"])
    elif cell.get("note"):
        detail = "last try by hand failed" if "(by hand," in cell["note"] else "last try failed"
    elif state == RUNNING:
        progress = cell["progress"] or {}
        if progress.get("fraction") is not None:
            first = f"running {progress['fraction']:.0%}"
        detail = progress.get("label") or ""
        if progress.get("attempt") and progress["attempt"] > 1:
            detail = f"attempt {progress['attempt']} {detail}".strip()
    run = cell["last_run"]
    when = ""
    if run:
        when = _when(run["started_at"])
        if run["seconds"] is not None:
            when += f" {run['seconds']:.1f}s"
        when += f" x{run['attempts']}"
    return [first, detail, when, cell["summary"]]


def _when(value: str | None) -> str:
    moment = parse_time(value)
    if moment is None:
        return ""
    local = moment.astimezone()
    today = datetime.now().astimezone().date()
    return local.strftime("%H:%M:%S" if local.date() == today else "%Y-%m-%d %H:%M")


def _clip(text: str) -> str:
    return text if len(text) <= WIDTH - 2 else text[: WIDTH - 3] + "~"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stages.observe.status",
        description="Show every engine's stages: up to date, stale (why), running, failed; "
        "exit 1 unless everything is up to date.",
    )
    parser.add_argument("--json", action="store_true", help="print the snapshot as JSON")
    parser.add_argument(
        "--start-db",
        action="store_true",
        help="start the embedded PostgreSQL if needed, to check drift (otherwise untouched)",
    )
    parser.add_argument(
        "--repair",
        action="store_true",
        help="first repair a dvc.lock or .dvc/tmp/rwlock a killed dvc left damaged "
        "(only while no dvc process runs here), then show the status",
    )
    args = parser.parse_args(argv)
    from stages.errors import PipelineError
    from stages.rules.config import project_root

    try:
        if args.repair:
            done = dvcstate.repair(project_root())
            for line in done or ["nothing to repair: dvc.lock and the rwlock are sound"]:
                print(f"repair: {line}", file=sys.stderr)
        snapshot = collect(start_db=args.start_db)
    except PipelineError as exc:
        print(f"status: {exc}", file=sys.stderr)
        return 1
    alerts.drift_found(snapshot["drift"], Path(snapshot["root"]) / history.LOGS_FOLDER)
    if args.json:
        print(json.dumps(snapshot, indent=2, sort_keys=True))
    else:
        color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        print(render_text(snapshot, color=color))
    return 0 if snapshot["ok"] else 1


if __name__ == "__main__":
    sys.exit(cli(main))  # `... | head` ends it quietly
