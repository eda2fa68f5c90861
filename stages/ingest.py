"""ingest@<engine>: crawl lines of data/raw/<engine>.txt -> hotel leads in PostgreSQL.

Every line lands in exactly one bucket: blank, rejected (with a reason, in
data/ingest/<engine>.rejects.tsv) or valid. Valid ids stream straight into one COPY and one
set-based merge in a single transaction, so a crash leaves the database as it was.
data/ingest/<engine>.json holds the counts and the database fingerprint export checks.

By hand: `--file F` loads a one-off file (nothing under data/ changes); `--dry-run` shows
what each line would become without touching any database.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING

from stages.runner import engine_parser, run_stage

STAGE = "ingest"
PROGRESS_EVERY = 100_000  # lines between progress reports: cheap next to parsing

if TYPE_CHECKING:
    from stages.crawl import LineParser, Reject


class LineTally:
    """Sorts every line of a crawl file into exactly one bucket: blank, rejected or valid."""

    def __init__(self, rejects: IO[str] | None = None):
        self.rejects = rejects
        self.reset()

    def reset(self) -> None:
        self.lines = self.blank = self.valid = 0
        self.rejected: Counter[str] = Counter()
        if self.rejects:
            self.rejects.seek(0)
            self.rejects.truncate()
            self.rejects.write("line\treason\ttext\n")

    def outcomes(self, path: Path, parser: LineParser) -> Iterator[tuple[int, str | Reject]]:
        """(line number, accepted id or the Reject) for each non-blank line, counting them."""
        from stages.crawl import BLANK, iter_lines, safe_text
        from stages.progress import Progress

        self.reset()
        progress = Progress(f"read {path.name}", unit="lines")
        size = max(path.stat().st_size, 1)
        with path.open("rb") as handle:
            for number, raw in enumerate(iter_lines(handle), start=1):
                self.lines = number
                if not number % PROGRESS_EVERY:
                    progress.update(number, fraction=handle.tell() / size)
                outcome = parser.parse(raw)
                if type(outcome) is str:
                    self.valid += 1
                    yield number, outcome
                elif outcome is BLANK:
                    self.blank += 1
                else:
                    self.rejected[outcome.value] += 1
                    if self.rejects:
                        text = "(longer than the line limit)" if raw is None else safe_text(raw)
                        self.rejects.write(f"{number}\t{outcome.value}\t{text}\n")
                    yield number, outcome
        progress.finish(self.lines)

    def valid_ids(self, path: Path, parser: LineParser) -> Iterator[str]:
        return (found for _, found in self.outcomes(path, parser) if type(found) is str)

    def summary(self) -> dict[str, object]:
        return {
            "lines": self.lines,
            "blank": self.blank,
            "rejected": sum(self.rejected.values()),
            "rejected_by_reason": dict(sorted(self.rejected.items())),
            "valid": self.valid,
        }


def ingest(engine_name: str, file: Path | None, source_tag: str | None) -> dict[str, object]:
    from stages import db, leads, loads, metrics
    from stages.config import load_params
    from stages.crawl import LineParser
    from stages.files import atomic_output, write_json
    from stages.progress import phase

    params = load_params()
    engine = params.engine(engine_name)
    tag = source_tag if source_tag is not None else params.ingest.source_tag
    by_hand = file is not None
    path = file or params.path("raw", engine.name, ".txt")
    if not path.is_file():
        from stages.errors import PipelineError

        hint = "check the path" if by_hand else f"run `dvc repro download@{engine.name}` first"
        raise PipelineError(f"{STAGE}@{engine.name}: {path} does not exist; {hint}.")
    seen_at = _seen_at(params.path("raw", engine.name, ".meta.json"), path, by_hand)
    rejects_path = (
        params.root / "logs" / STAGE / f"{engine.name}.{path.name}.rejects.tsv"
        if by_hand
        else params.path("ingest", engine.name, ".rejects.tsv")
    )
    parser = LineParser(engine)
    started = time.monotonic()
    with atomic_output(rejects_path, "w") as rejects:
        tally = LineTally(rejects)

        def load_once() -> leads.LoadResult:
            # One transaction: the load and its line counts (stages.loads) commit together.
            with db.connect() as conn, conn.transaction(), contextlib.ExitStack() as merging:

                def ids() -> Iterator[str]:
                    yield from tally.valid_ids(path, parser)
                    # The ids are in: what load_leads does next is the set-based merge.
                    merging.enter_context(phase(f"merge {engine.name} leads into PostgreSQL"))

                result = leads.load_leads(conn, engine, ids(), source_tag=tag, seen_at=seen_at)
                loads.record_line_counts(conn, result.load_id, tally.summary())
                return result

        loaded = db.retrying(
            params.ingest.retry_policy,
            load_once,
            describe=f"{STAGE}@{engine.name}: loading {path.name}",
        )
    stats = {
        "engine": engine.name,
        "source_tag": tag,
        "seen_at": seen_at.isoformat(),
        **tally.summary(),
        **loaded.counts(),
        "seconds": round(time.monotonic() - started, 3),
        "database": loaded.fingerprint,
        "rejects_file": str(rejects_path.relative_to(params.root)),
    }
    if not by_hand:
        write_json(params.path("ingest", engine.name, ".json"), stats)
        metrics.record_load(params, engine, path, stats)
    return stats


def _seen_at(meta: Path, path: Path, by_hand: bool) -> datetime:
    """When the crawl was made: the source's modification time recorded by download.

    Using the source's time, not the clock, makes a re-run of the same file change no row."""
    if not by_hand and meta.is_file():
        recorded = json.loads(meta.read_text(encoding="utf-8")).get("source_modified")
        if recorded:
            return datetime.fromisoformat(recorded)
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


def dry_run(engine_name: str, file: Path | None, out: IO[str]) -> dict[str, object]:
    """Print one JSON object per non-blank line: the id and URL it becomes, or why not."""
    from stages.config import load_params
    from stages.crawl import LineParser

    params = load_params()
    engine = params.engine(engine_name)
    path = file or params.path("raw", engine.name, ".txt")
    tally = LineTally()
    for number, found in tally.outcomes(path, LineParser(engine)):
        if type(found) is str:
            record = {"line": number, "id": found, "url": engine.canonical_url(found)}
        else:
            record = {"line": number, "reject": found.value}
        out.write(json.dumps(record) + "\n")
    return tally.summary()


def main(argv: list[str] | None = None) -> int:
    parser = engine_parser(STAGE, "Load one engine's crawl file into PostgreSQL as hotel leads.")
    parser.add_argument("--file", type=Path, help="load this file instead (outside DVC)")
    parser.add_argument("--source-tag", help="tag for `sources` (default: ingest.source_tag)")
    parser.add_argument(
        "--dry-run", action="store_true", help="print what each line becomes; no database"
    )
    args = parser.parse_args(argv)

    def work() -> None:
        if args.dry_run:
            summary = dry_run(args.engine, args.file, sys.stdout)
            print(json.dumps(summary), file=sys.stderr)
            return
        stats = ingest(args.engine, args.file, args.source_tag)
        if args.file:
            print(json.dumps(stats, indent=2, default=str))

    return run_stage(STAGE, args.engine, work, record=not args.dry_run)


if __name__ == "__main__":
    sys.exit(main())
