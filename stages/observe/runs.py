"""Pipeline runs: the attempts of one `dvc repro`, one CI job or one by-hand stage run, together.

The run history (stages.observe.history) records attempts; each carries `pipeline_run`, the id
of the run it belongs to, which `run_context()` derives once per stage process, first match wins:

1. `CRAWL_PIPELINE_RUN` in the environment (set by a wrapper that starts several `dvc repro`),
2. a CI job (GitHub Actions: repository, run id, attempt and job name; its URL is kept),
3. the `dvc repro` / `dvc exp run` process the stage runs under (its pid and start time, read
   from /proc, so every stage of that command agrees without any shared state),
4. otherwise the stage run itself (a by-hand `python -m stages.<stage>`).

`summarize()` and `detail()` turn attempts into what the dashboard's run list and timeline
show; nothing here writes anything.
"""

from __future__ import annotations

import os
import re
import socket
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

# stages.observe.history imports this module: reach it as a module, at call time.
from stages.observe import records
from stages.tools.dvcrun import RUN_VARIABLE

if TYPE_CHECKING:
    from stages.observe.records import Attempt

# Run ids appear in URLs (/api/runs/<id>): a foreign value is hashed into a uuid instead.
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")
_NAMESPACE = uuid.UUID("8d5c7f40-3a52-4c1e-9a55-6f0f1e7a2b10")
ANCESTORS = 8  # parent processes looked at for the `dvc` command: sh, uv, ... sit in between
OUTCOMES = ("running", "succeeded", "failed")


def run_context(stage_run_id: str, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """{pipeline_run, ci_url, trigger} for a stage process whose own run id is `stage_run_id`.

    `trigger` says what started the run: "ci:<event>" (schedule, push, workflow_dispatch, ...),
    "dvc repro", "dvc exp run", "wrapper" or "by hand". `ci_url` links the CI run (GitHub
    Actions) or is None. Never raises.
    """
    env = os.environ if environ is None else environ
    ci_url, ci_trigger, ci_key = _ci(env)
    explicit = env.get(RUN_VARIABLE, "").strip()
    if explicit:
        run, trigger = _safe_id(explicit), ci_trigger or "wrapper"
    elif ci_key:
        run, trigger = _safe_id(ci_key), ci_trigger or "ci"  # a CI key comes with its trigger
    else:
        found = _dvc_ancestor()
        if found:
            key, trigger = found
            run = str(uuid.uuid5(_NAMESPACE, f"{socket.gethostname()}:{key}"))
        else:
            run, trigger = stage_run_id, "by hand"
    return {"pipeline_run": run, "ci_url": ci_url, "trigger": trigger}


def log_offset(log_file: Path) -> int | None:
    """Where the next line of `log_file` will start (its size), or None when it is unreadable."""
    try:
        return log_file.stat().st_size
    except OSError:
        return None


def _safe_id(value: str) -> str:
    return value if SAFE_ID.match(value) else str(uuid.uuid5(_NAMESPACE, value))


def _ci(env: Mapping[str, str]) -> tuple[str | None, str | None, str | None]:
    """(url of the CI run, trigger, key of the CI job) from the CI's own variables."""
    if env.get("GITHUB_ACTIONS") == "true" and env.get("GITHUB_RUN_ID"):
        server = env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
        run_id, attempt = env["GITHUB_RUN_ID"], env.get("GITHUB_RUN_ATTEMPT", "1")
        url = f"{server}/{env.get('GITHUB_REPOSITORY', '')}/actions/runs/{run_id}"
        url += f"/attempts/{attempt}" if attempt != "1" else ""
        job = re.sub(r"[^A-Za-z0-9._-]+", "-", env.get("GITHUB_JOB", "job"))[:40]
        key = f"gh-{run_id}-{attempt}-{job}"
        return url, f"ci:{env.get('GITHUB_EVENT_NAME', 'unknown')}", key
    if env.get("CI", "").lower() in ("true", "1"):
        return None, "ci", None
    return None, None, None


def _dvc_ancestor() -> tuple[str, str] | None:
    """("<pid>:<start time>", "dvc repro" | "dvc exp run") of the DVC command above this
    process, from /proc (Linux); None elsewhere or when no DVC command started it."""
    pid = os.getppid()
    for _ in range(ANCESTORS):
        if pid <= 1:
            return None
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        words = [a.decode("utf-8", "replace") for a in args if a]
        # Fields after the command name, which may hold spaces and parentheses itself.
        fields = stat.rsplit(")", 1)[1].split()
        names = [Path(w).name for w in words[:3]]
        if "dvc" in names:
            rest = words[names.index("dvc") + 1 :]
            for command in ("repro", "exp"):
                if command in rest:
                    trigger = "dvc repro" if command == "repro" else "dvc exp run"
                    return f"{pid}:{fields[19]}", trigger  # field 22: start time in ticks
        pid = int(fields[1])
    return None


# --- runs from attempts ------------------------------------------------------------------------


def _when(value: str | None) -> datetime:
    return records.parse_time(value) or datetime.fromtimestamp(0, UTC)


def group(attempts: Iterable[Attempt]) -> dict[str, list[Attempt]]:
    """Attempts by pipeline run (an attempt recorded before runs existed is its own run)."""
    runs: dict[str, list[Attempt]] = defaultdict(list)
    for attempt in attempts:
        runs[attempt.pipeline_run or attempt.run_id].append(attempt)
    for found in runs.values():
        found.sort(key=lambda a: (_when(a.started_at), a.attempt))
    return runs


def summarize(
    run_id: str, attempts: list[Attempt], *, alive: set[str] | frozenset[str] = frozenset()
) -> dict[str, Any]:
    """One run as the run list shows it; `alive` holds the stage-run ids still running.

    outcome: running (a stage is still at work), failed (a stage's last attempt failed, or it
    stopped without recording an end) or succeeded (retries included: see `retries`).
    """
    by_stage: dict[str, list[Attempt]] = defaultdict(list)
    for attempt in attempts:
        by_stage[attempt.run_id].append(attempt)
    lasts = [max(found, key=lambda a: a.attempt) for found in by_stage.values()]
    running = any(a.outcome == "running" and a.run_id in alive for a in lasts)
    failed = [a for a in lasts if a.outcome == "failed" or a.outcome in ("running", "retried")]
    outcome = "running" if running else "failed" if failed else "succeeded"
    started = min(_when(a.started_at) for a in attempts)
    ends = [records.parse_time(a.ended_at) for a in attempts]
    ended = None if running or None in ends else max(e for e in ends if e)
    first = attempts[0]
    error = next((a.error for a in failed if a.error), None)
    if failed and error is None and not running:
        error = "stopped without recording an end (killed, or the machine went down)"
    return {
        "id": run_id,
        "started_at": started.isoformat(timespec="milliseconds"),
        "ended_at": ended.isoformat(timespec="milliseconds") if ended else None,
        "seconds": round((ended - started).total_seconds(), 3) if ended else None,
        "outcome": outcome,
        "hosts": sorted({a.host for a in attempts if a.host}),
        "ci": bool(first.ci_url) or (first.trigger or "").startswith("ci"),
        "ci_url": first.ci_url,
        "trigger": first.trigger or ("dvc repro" if first.via == "dvc" else "by hand"),
        "via": first.via,
        "commit": first.commit,
        "engines": sorted({a.engine for a in attempts}),
        "stages": sorted({a.stage for a in attempts}),
        "attempts": len(attempts),
        "retries": sum(1 for a in attempts if a.outcome == "retried"),
        "failed_stages": sorted(f"{a.stage}@{a.engine}" for a in failed if not running),
        "error": error if not running else None,
    }


def run_list(
    attempts: Iterable[Attempt],
    *,
    alive: set[str] | frozenset[str] = frozenset(),
    engine: str | None = None,
    stage: str | None = None,
    outcome: str | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Runs newest first, keeping those that touched `engine` / ran `stage` / ended `outcome`."""
    found = [summarize(key, mine, alive=alive) for key, mine in group(attempts).items()]
    chosen = [
        r
        for r in found
        if (engine is None or engine in r["engines"])
        and (stage is None or stage in r["stages"])
        and (outcome is None or r["outcome"] == outcome)
    ]
    chosen.sort(key=lambda r: r["started_at"], reverse=True)
    return chosen[:limit]


def attempts_of(attempts: Iterable[Attempt], run_id: str) -> list[Attempt]:
    """The attempts of pipeline run `run_id`."""
    return [a for a in attempts if (a.pipeline_run or a.run_id) == run_id]


def detail(
    run_id: str, attempts: Iterable[Attempt], *, alive: set[str] | frozenset[str] = frozenset()
) -> dict[str, Any] | None:
    """The run `run_id` with its attempts (stage, engine, attempt, start, end, outcome, error,
    log link), grouped by engine in the order they ran; None when no attempt names it."""
    mine = sorted(attempts_of(attempts, run_id), key=lambda a: (_when(a.started_at), a.attempt))
    if not mine:
        return None
    run = summarize(run_id, mine, alive=alive)
    run["timeline"] = [
        {
            "stage": a.stage,
            "engine": a.engine,
            "stage_run": a.run_id,
            "attempt": a.attempt,
            "started_at": a.started_at,
            "ended_at": a.ended_at,
            "seconds": a.seconds,
            "outcome": a.outcome if a.outcome != "running" or a.run_id in alive else "stopped",
            "error": a.error,
            "host": a.host,
            "log": f"/api/logs/{a.stage}/{a.engine}?attempt={a.run_id}.{a.attempt}",
        }
        for a in mine
    ]
    return run
