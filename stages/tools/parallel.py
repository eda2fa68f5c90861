"""Run several engines' chains side by side: one `dvc repro` process per engine, N at a time.

    python -m stages.tools.parallel [--jobs 2] [--pull] [ENGINE ...]  # default: every engine
    python -m stages.tools.parallel --list [ENGINE ...]   # the engines as a JSON list (a CI matrix)
    python -m stages.tools.parallel --stages [ENGINE ...] # their stage names (dvc targets)

DVC runs the stages of one `dvc repro` one after another, but several `dvc repro` processes may
share a workspace: DVC releases its repo lock while a stage's command runs (per-path locks keep
two stages off the same output) and takes it again to record the result in dvc.lock. Each
process is started with `--wait-for-lock`, so it waits its turn for that instead of giving up
after three seconds. This module only starts those processes and says how each one ended.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from stages.errors import PipelineError, sigterm_as_interrupt
from stages.rules.config import Params, load_params
from stages.tools import dvcstate
from stages.tools.dvcrun import RUN_VARIABLE, SafeStopper
from stages.tools.pipeline import engine_stages


def repro_command(params: Params, engine: str, *, pull: bool = False) -> list[str]:
    """The `dvc repro` that brings `engine`'s chain up to date, safe beside others like it.

    With `pull`, DVC fetches from the default remote what another machine already did: missing
    inputs, and the outputs of run-cache hits (`dvc pull --run-cache` alone fetches only the
    outputs dvc.lock names, which a fresh CI runner does not have). Raises ConfigError for an
    engine params.yaml does not have."""
    params.engine(engine)  # an unknown engine fails here, naming the engines there are
    command = [sys.executable, "-m", "dvc", "--wait-for-lock", "repro"]
    return [*command, *(["--pull"] if pull else []), *engine_stages(params.root, engine)]


@dataclass
class ChainResult:
    engine: str
    exit_code: int
    seconds: float


class _Chains:
    """The `dvc repro` processes of one run_chains call: started N at a time, output prefixed
    with the engine, and stopped together without signalling dvc itself."""

    def __init__(self, params: Params, engines: list[str], *, pull: bool):
        self.root = params.root
        self.commands = {engine: repro_command(params, engine, pull=pull) for engine in engines}
        self.printing = threading.Lock()
        self.starting = threading.Lock()
        self.running: dict[str, subprocess.Popen[str]] = {}
        self.stopping = threading.Event()
        # One pipeline run on the dashboard for all the chains (stages.observe.runs groups by it).
        self.env = dict(os.environ)
        self.env[RUN_VARIABLE] = self.env.get(RUN_VARIABLE) or f"parallel-{uuid.uuid4()}"

    def run(self, engine: str) -> ChainResult:
        """Run `engine`'s chain to its end, printing its lines as `[engine] line`."""
        started = time.monotonic()
        with self.starting:
            if self.stopping.is_set():
                return ChainResult(engine, 130, 0.0)
            # Its own session: a terminal's Ctrl-C reaches only us, and we stop dvc safely.
            process = subprocess.Popen(
                self.commands[engine],
                cwd=self.root,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                errors="replace",
                start_new_session=True,
                env=self.env,
            )
            self.running[engine] = process
        with process:
            assert process.stdout is not None
            for line in process.stdout:
                with self.printing:
                    print(f"[{engine}] {line}", end="", flush=True)
        return ChainResult(engine, process.returncode, time.monotonic() - started)

    def stop(self) -> None:
        """Start no more chains and stop the running ones' stages; dvc then exits by itself."""
        with self.starting:
            self.stopping.set()
            started = list(self.running.values())
        print("parallel: stopping the running stages; dvc then exits by itself", file=sys.stderr)
        SafeStopper(started).stop()


def run_chains(
    params: Params, engines: list[str], jobs: int, *, pull: bool = False
) -> list[ChainResult]:
    """Run each engine's chain in its own `dvc repro`, at most `jobs` at once; output lines are
    prefixed with the engine so interleaved logs stay readable.

    Damaged DVC state (a dvc killed mid-write earlier) is repaired first, when no dvc runs.
    Interrupted (Ctrl-C, or SIGTERM when a CI job is cancelled), it never signals dvc itself
    (a dvc killed while it rewrites dvc.lock or its rwlock leaves them empty): it stops the
    stage each `dvc repro` runs (stages.tools.dvcrun.SafeStopper), the stage removes its
    temporary files and rolls its transaction back, and each dvc exits through its own cleanup.
    """
    for line in dvcstate.repair_if_idle(params.root):
        print(f"parallel: {line}", file=sys.stderr)
    chains = _Chains(params, engines, pull=pull)
    pool = ThreadPoolExecutor(max_workers=max(jobs, 1))
    with sigterm_as_interrupt():
        try:
            return list(pool.map(chains.run, engines))
        except KeyboardInterrupt:
            chains.stop()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            dvcstate.save_good_copy(params.root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stages.tools.parallel",
        description="Bring several engines' chains up to date at once, one `dvc repro` each.",
    )
    parser.add_argument("engines", nargs="*", help="engines to run (default: all in params.yaml)")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="processes at once (default 2)")
    parser.add_argument(
        "--pull", action="store_true", help="reuse other machines' work (dvc repro --pull)"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--list", action="store_true", help="print the engines as a JSON list")
    mode.add_argument("--stages", action="store_true", help="print the engines' stage names")
    args = parser.parse_args(argv)
    try:
        params = load_params()
        engines = list(dict.fromkeys(args.engines)) or list(params.engines)
        for engine in engines:
            params.engine(engine)  # an unknown engine fails before anything runs
        if args.list:
            print(json.dumps(engines))
            return 0
        if args.stages:
            for engine in engines:
                print("\n".join(engine_stages(params.root, engine)))
            return 0
        results = run_chains(params, engines, args.jobs, pull=args.pull)
    except PipelineError as exc:
        print(f"parallel: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "parallel: interrupted; run again to resume where each chain stopped.", file=sys.stderr
        )
        return 130
    for result in results:
        outcome = "ok" if result.exit_code == 0 else f"FAILED (exit {result.exit_code})"
        print(f"{result.engine}: {outcome} in {result.seconds:.1f} s")
    failed = [r.engine for r in results if r.exit_code != 0]
    if failed:
        print(
            f"parallel: {', '.join(failed)} failed; read the [engine] lines above, fix the cause "
            "and run again: finished stages are kept.",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
