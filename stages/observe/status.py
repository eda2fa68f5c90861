"""Where the pipeline stands, per engine and stage: `python -m stages.observe.status [--json]`.

A grid of engines by stages; each cell is up to date, stale (and why, in words), running (with
progress) or failed (with the error's first line), plus its last run, duration, attempts and
counts. Below it the database per engine (drift: it lost what the ingest left; changed: it moved
on after the export, so the workbook is stale) and the totals. It reads `dvc status` (through
DVC's Python API), dvc.yaml, dvc.lock, the stage markers, the run history and the heartbeats,
and changes nothing but the last good copy of dvc.lock (stages.tools.dvcstate): it never starts the
embedded PostgreSQL unless asked to (--start-db). `--repair` repairs a dvc.lock or rwlock a
killed dvc left damaged.

DVC is the judge of what is up to date; the run history only explains (stages.observe.cells
says how a cell is judged).

Exit code 0 when every stage is up to date and the database matches the markers, 1 otherwise,
so CI can gate on it. The parts: dvc.yaml read by stages.tools.pipeline; in stages.observe,
`dvcview` (DVC's verdict in words), `dbview` (the database), `cells` (the grid's judgement),
`snapshot` (the typed snapshot the dashboard serves too) and `render` (the terminal view).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from stages.errors import cli
from stages.observe import alerts, journal
from stages.observe.render import render_text
from stages.observe.snapshot import collect
from stages.tools import dvcstate


def main(argv: list[str] | None = None) -> int:
    """The command line: print the status (text or --json); 0 when all is up to date, else 1."""
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
    alerts.drift_found(snapshot.drift, snapshot.root / journal.LOGS_FOLDER)
    if args.json:
        print(json.dumps(snapshot.to_json(), indent=2, sort_keys=True))
    else:
        color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        print(render_text(snapshot, color=color))
    return 0 if snapshot.ok else 1


if __name__ == "__main__":
    sys.exit(cli(main))  # `... | head` ends it quietly
