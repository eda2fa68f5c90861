"""`python -m stages.observe.history`: recent stage attempts, newest first, from this
checkout's history file and the stage_runs table merged.

Every attempt of every stage is recorded by stages.observe.recorder: one record per try
(stage, engine, attempt number, start, end, outcome, counts, the error's first line, host, git
commit), in `logs/history.jsonl` (stages.observe.journal) and, when a database is in use, the
stage_runs table (stages.observe.runtable)."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys

from stages.errors import cli
from stages.observe.journal import LOGS_FOLDER, read_history
from stages.observe.records import EPOCH, merge, parse_time
from stages.observe.runtable import connect_briefly, read_table
from stages.rules.config import project_root


def main(argv: list[str] | None = None) -> int:
    """The command line: print the latest attempts (text or --json lines); always 0."""
    parser = argparse.ArgumentParser(
        prog="python -m stages.observe.history",
        description="List recent stage attempts from logs/history.jsonl and the stage_runs table.",
    )
    parser.add_argument("--engine", help="only this engine")
    parser.add_argument("--stage", help="only this stage kind (download, ingest, ...)")
    parser.add_argument("--limit", type=int, default=30, help="how many attempts (default 30)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args(argv)
    root = project_root()
    attempts = read_history(root / LOGS_FOLDER)
    with contextlib.suppress(Exception):
        from stages.store.db import available_database_url  # psycopg: only when it is used

        url = available_database_url(root)
        if url is not None:
            with connect_briefly(url, migrate=False) as conn:
                attempts = merge([*read_table(conn), *attempts])
    chosen = [
        a
        for a in reversed(attempts)
        if (args.engine in (None, a.engine)) and (args.stage in (None, a.stage))
    ][: args.limit]
    for a in chosen:
        if args.json:
            print(json.dumps(a.to_json(), sort_keys=True))
            continue
        seconds = f"{a.seconds:.1f}s" if a.seconds is not None else "-"
        when = (parse_time(a.started_at) or EPOCH).astimezone().strftime("%Y-%m-%d %H:%M:%S")
        line = f"{when}  {a.label:<22} #{a.attempt}  {a.outcome:<9} {seconds:>8}  {a.host}"
        line += f"  {(a.commit or '-')[:8]}"
        print(line + (f"\n    {a.error}" if a.error else ""))
    return 0


if __name__ == "__main__":
    sys.exit(cli(main))  # `... | head` ends it quietly
