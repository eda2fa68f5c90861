"""The seed's planned Prefect 3 flow, doing the pipeline's work through our stage commands.

    uv sync --group bench                              # Prefect is only in the `bench` group
    uv run python -m benchmarks.prefect_flow [--engines E ...]   # in a project folder

One task per stage kind; each task runs `python -m stages.<stage> --engine E` in the current
folder, so the work is exactly what `dvc repro` and the shell loop do. The plan's choices:
`ConcurrentTaskRunner` (Prefect 3's name for it is `ThreadPoolTaskRunner`; the old name is an
alias), every engine's chain submitted at once (download -> ingest -> export -> publish), and
retries with exponential backoff and jitter taken per stage from params.yaml (`source`,
`ingest`, `export`, `publish`: 2 retries from 60 s for download and publish, as planned). The
stages retry their own transient failures as well; in a benchmark nothing fails.

Prefect needs an API. With PREFECT_API_URL unset it starts its own temporary local server for
the run (ephemeral mode, SQLite under PREFECT_HOME): the benchmark sets PREFECT_HOME to a temp
folder, so nothing outside it is touched. The last line printed is the time of the flow's body,
from its first task's submission to its last task's end (without Python, Prefect's import, the
server's start-up and the flow run's bookkeeping around the body).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from stages.rules.config import load_params

STAGE_ORDER = ("download", "ingest", "export", "publish")
FLOW_SECONDS = "prefect flow seconds"  # the last line's prefix, read by benchmarks.versus_prefect


def run_stage(stage: str, engine: str) -> None:
    """`python -m stages.<stage> --engine <engine>` in the current folder; raises
    RuntimeError (which Prefect retries) with the command's output when it fails."""
    done = subprocess.run(
        [sys.executable, "-m", f"stages.{stage}", "--engine", engine],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{stage}@{engine} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )


def build_flow(root: Path):
    """The flow: one Prefect task per stage kind, retries per params.yaml section."""
    from prefect import flow, task
    from prefect.task_runners import ConcurrentTaskRunner
    from prefect.tasks import exponential_backoff

    params = load_params(root)
    sections = {
        "download": params.source,
        "ingest": params.ingest,
        "export": params.export,
        "publish": params.publish,
    }
    tasks = {
        stage: task(
            run_stage,
            name=stage,
            task_run_name="{stage}@{engine}",
            retries=section.retries,
            retry_delay_seconds=exponential_backoff(backoff_factor=section.retry_delay),
            retry_jitter_factor=0.5,
        )
        for stage, section in sections.items()
    }

    @flow(name="crawl-pipeline", task_runner=ConcurrentTaskRunner(), log_prints=False)
    def pipeline(engines: list[str]) -> float:
        started = time.perf_counter()  # the server is up and the flow run created by now
        ends = []
        for engine in engines:
            previous: Any = None  # a Prefect future once the first stage is submitted
            for stage in STAGE_ORDER:
                wait_for = [previous] if previous is not None else None
                previous = tasks[stage].submit(stage, engine, wait_for=wait_for)
            ends.append(previous)
        for end in ends:
            end.result()  # raises the first failure, which fails the flow
        return time.perf_counter() - started

    return pipeline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.prefect_flow", description=__doc__)
    parser.add_argument("--engines", nargs="*", help="engines to run (default: every engine)")
    args = parser.parse_args(argv)
    root = Path.cwd()
    engines = args.engines or list(load_params(root).engines)
    seconds = build_flow(root)(engines)
    print(f"{FLOW_SECONDS} {seconds:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
