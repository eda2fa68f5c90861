"""The status snapshot: everything `python -m stages.observe.status` and the dashboard show, as
one typed object (`Snapshot`), built by `collect()` and turned into the JSON both print by
`Snapshot.to_json()`.

It reads DVC's view (stages.observe.dvcview), dvc.yaml, dvc.lock, the stage markers, the run
history, the heartbeats and the database (stages.observe.dbview, in a thread beside DVC's work)
and changes nothing but the last good copy of dvc.lock (stages.tools.dvcstate)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stages.observe import journal, records
from stages.observe.cells import (
    FAILED,
    RUNNING,
    STALE,
    STATES,
    UNKNOWN,
    UP_TO_DATE,
    Cell,
    build_cells,
    read_markers,
)
from stages.observe.dbview import CHANGED, DRIFT, DatabaseView, Finding, database_view
from stages.observe.dvcview import DvcView, dvc_view
from stages.observe.records import Attempt
from stages.tools import dvcstate
from stages.tools.pipeline import pipeline_graph

if TYPE_CHECKING:
    from stages.rules.config import Params

TREND_POINTS = 30  # ingests per engine on the leads trend
RECENT_FAILURES = 10  # failed or retried attempts listed
DATABASE_WAIT = 15.0  # seconds the snapshot waits for the database before showing it unchecked


@dataclass
class EngineSummary:
    """An engine's name, its name for people, and its latest ingest's and export's figures."""

    name: str
    display_name: str
    leads: int | None
    rejected: int | None
    rows: int | None


@dataclass
class Totals:
    """Sums over every engine's markers, and how many cells are in each state."""

    leads: int
    rejected: int
    lines: int
    rows_exported: int
    published: int
    states: dict[str, int]


@dataclass
class Failure:
    """A failed or retried attempt; `current` when it is why a cell is failed now."""

    current: bool
    stage: str
    engine: str
    run_id: str
    attempt: int
    outcome: str
    at: str | None
    error: str
    host: str


@dataclass
class Snapshot:
    """Where the pipeline stands. `ok` is True when every cell is up to date, no engine's
    database drifted or changed after its export, and DVC could be read: status's exit code."""

    project: str
    root: Path
    generated_at: str
    ok: bool
    headline: str
    dvc_error: str | None
    engines: list[EngineSummary]
    graph: dict[str, Any]  # stages.tools.pipeline.pipeline_graph
    cells: list[Cell]
    database: DatabaseView
    drift: list[Finding]  # one per engine, in params order
    totals: Totals
    failures: list[Failure]  # newest first
    damaged: list[str]  # DVC state files a killed dvc left damaged
    trend: dict[str, list[dict[str, Any]]]  # engine -> trends() points, oldest first

    @property
    def stages(self) -> list[str]:
        """The stage kinds, in dvc.yaml order."""
        return list(self.graph["stages"])

    def to_json(self) -> dict[str, Any]:
        """The snapshot as the JSON `status --json` and the dashboard's /api/status give."""
        cells = [asdict(cell) | {"name": cell.name} for cell in self.cells]
        return {
            "project": self.project,
            "root": str(self.root),
            "generated_at": self.generated_at,
            "ok": self.ok,
            "headline": self.headline,
            "dvc_error": self.dvc_error,
            "engines": [asdict(engine) for engine in self.engines],
            "stages": self.stages,
            "graph": self.graph,
            "cells": cells,
            "database": {
                "state": self.database.state,
                "label": self.database.label,
                "message": self.database.message,
            },
            "drift": [asdict(finding) for finding in self.drift],
            "totals": asdict(self.totals),
            "running": [cell for cell in cells if cell["state"] == RUNNING],
            "failures": [asdict(failure) for failure in self.failures],
            "dvc_state": {"damaged": self.damaged, "repair": dvcstate.REPAIR_COMMAND},
            "trend": self.trend,
        }


def collect(
    root: Path | None = None, *, start_db: bool = False, dvc: DvcView | None = None
) -> Snapshot:
    """The snapshot of the project at `root` (default: the one holding the working directory).

    `dvc` is a DvcView computed earlier (the dashboard reuses one while nothing changed);
    `start_db` starts the embedded PostgreSQL when it is not running, to check drift.
    Raises ConfigError when params.yaml is unusable."""
    from stages.rules.config import load_params, project_root

    root = (root or project_root()).resolve()
    params = load_params(root)
    graph = pipeline_graph(root)
    markers = {engine: read_markers(params, engine) for engine in params.engines}
    # The database round trips overlap DVC's work.
    database_read = _database_in_background(root, params, markers, start_db)
    dvc = dvc or dvc_view(root)
    logs = root / journal.LOGS_FOLDER
    local = journal.read_history(logs)
    beats = journal.read_heartbeats(logs)
    database = database_read()

    everything = records.merge([*database.runs, *local])
    drift = [database.findings.get(engine) or Finding(engine) for engine in params.engines]
    states_by_engine = {finding.engine: finding.state for finding in drift}
    cells = build_cells(
        root, params, graph, dvc, markers, local, everything, beats, states_by_engine
    )
    states = Counter(cell.state for cell in cells)
    drifted = [finding for finding in drift if finding.state in (DRIFT, CHANGED)]
    return Snapshot(
        project=root.name,
        root=root,
        generated_at=records.now_iso(),
        ok=states[UP_TO_DATE] == len(cells) and not drifted and dvc.error is None,
        headline=_headline(states, drift, dvc.error, len(cells)),
        dvc_error=dvc.error,
        engines=[_engine_summary(e, markers[e.name]) for e in params.engines.values()],
        graph=graph,
        cells=cells,
        database=database,
        drift=drift,
        totals=_totals(markers, states),
        failures=_failures(everything, cells),
        damaged=dvc.damaged,
        trend=trends(everything, params.engines),
    )


def _database_in_background(
    root: Path, params: Params, markers: dict[str, dict[str, dict[str, Any] | None]], start_db: bool
) -> Callable[[], DatabaseView]:
    """Start reading the database view in a thread; the function returned waits for it (at
    most DATABASE_WAIT seconds, then the view says it was not checked in time)."""
    found: list[DatabaseView] = []
    worker = threading.Thread(
        target=lambda: found.append(
            database_view(
                root,
                {engine: marks["ingest"] for engine, marks in markers.items()},
                start_db=start_db,
                exports={engine: marks["export"] for engine, marks in markers.items()},
                source_tag=params.export.source_tag or None,
            )
        ),
        name="status-database",
        daemon=True,
    )
    worker.start()

    def result() -> DatabaseView:
        worker.join(DATABASE_WAIT)
        return found[0] if found else DatabaseView(message="not checked in time")

    return result


def _engine_summary(engine: Any, markers: dict[str, dict[str, Any] | None]) -> EngineSummary:
    ingest, export = markers.get("ingest") or {}, markers.get("export") or {}
    return EngineSummary(
        name=engine.name,
        display_name=engine.display_name,
        leads=ingest.get("leads"),
        rejected=ingest.get("rejected"),
        rows=export.get("rows"),
    )


def _headline(states: Counter[str], drift: list[Finding], dvc_error: str | None, total: int) -> str:
    if dvc_error:
        return f"Could not read dvc status: {dvc_error.rstrip('.')}."
    parts = [f"{states[s]} {s}" for s in (FAILED, RUNNING, STALE, UNKNOWN) if states[s]]
    for state, words in ((DRIFT, "database drift"), (CHANGED, "database changed after export")):
        engines = [finding.engine for finding in drift if finding.state == state]
        if engines:
            parts.append(f"{words} for {', '.join(engines)}")
    if not parts:
        return f"Everything is up to date ({total} stages)."
    return f"Not up to date: {'; '.join(parts)} (of {total} stages)."


def _totals(markers: dict[str, dict[str, dict[str, Any] | None]], states: Counter[str]) -> Totals:
    def total(stage: str, key: str) -> int:
        return sum(int((m.get(stage) or {}).get(key) or 0) for m in markers.values())

    return Totals(
        leads=total("ingest", "leads"),
        rejected=total("ingest", "rejected"),
        lines=total("ingest", "lines"),
        rows_exported=total("export", "rows"),
        published=sum(1 for m in markers.values() if (m.get("publish") or {}).get("published")),
        states={state: states[state] for state in STATES},
    )


def _failures(attempts: list[Attempt], cells: list[Cell]) -> list[Failure]:
    """The latest failed or retried attempts, newest first; `current` marks the ones that are
    why a cell is failed now (the rest is history)."""
    failing = {c.last_run.run_id for c in cells if c.state == FAILED and c.last_run}
    failed = [a for a in attempts if a.outcome in ("failed", "retried")]
    return [
        Failure(
            current=a.run_id in failing,
            stage=a.stage,
            engine=a.engine,
            run_id=a.run_id,
            attempt=a.attempt,
            outcome=a.outcome,
            at=a.ended_at or a.started_at,
            error=a.error or "",
            host=a.host,
        )
        for a in reversed(failed[-RECENT_FAILURES:])
    ]


def trends(attempts: Iterable[Attempt], engines: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """Per engine, after each successful ingest (oldest first, the last TREND_POINTS): leads,
    new leads (inserted), retracted leads (0 when the ingest did not count any) and rejected
    lines, from the counts the ingest attempts recorded."""
    found: dict[str, list[dict[str, Any]]] = {engine: [] for engine in engines}
    for a in attempts:
        if a.stage != "ingest" or a.outcome != "succeeded" or a.engine not in found:
            continue
        if "leads" not in a.counts:
            continue
        found[a.engine].append(
            {
                "at": a.ended_at,
                "leads": a.counts["leads"],
                "new": a.counts.get("inserted", 0),
                "retracted": a.counts.get("retracted", 0),
                "rejected": a.counts.get("rejected", 0),
            }
        )
    return {engine: points[-TREND_POINTS:] for engine, points in found.items()}
