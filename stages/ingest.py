"""ingest@<engine>: crawl lines of data/raw/<engine>.txt -> hotel leads in PostgreSQL.

Every line lands in exactly one bucket: blank, rejected (with a reason, in
data/ingest/<engine>.rejects.tsv) or accepted; an accepted line names one id or several (Mews
`<uuid>;<uuid>`), so lines and ids are counted apart. Ids stream straight into one COPY and
one set-based merge in a single transaction, so a crash leaves the database as it was.
data/ingest/<engine>.json holds the counts and the database fingerprint export checks.

A load that looks like a dropped crawl (too many lines rejected, or far fewer ids than the
engine's previous load) fails before committing; `ingest.max_rejected_share` and
`ingest.min_previous_share` set the limits, `--accept` lets one by-hand run through.

By hand: `--file F` loads a one-off file (nothing under data/ changes); `--dry-run` shows
what each line would become without touching any database.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from stages.runner import engine_parser, path_option, run_stage

STAGE = "ingest"
if TYPE_CHECKING:
    from stages.rules.config import Engine, Params
    from stages.rules.crawl import LineParser, Reject, UnreadableFile
    from stages.rules.crawl_tally import LineTally
    from stages.store import leads


def ingest(
    engine_name: str, file: Path | None, source_tag: str | None, accept: bool = False
) -> dict[str, object]:
    """Load `engine_name`'s crawl file (or `file`, by hand) into PostgreSQL; return its stats.

    A run by hand writes its rejects under logs/ingest/ and no marker or metrics. Raises
    PipelineError for a missing or unreadable file, a file that looks like a lost crawl (unless
    `accept`), and database failures that outlast `ingest`'s retries."""
    from stages.errors import PipelineError
    from stages.report import metrics
    from stages.rules.config import load_params
    from stages.rules.crawl import LineParser, UnreadableFile
    from stages.rules.crawl_tally import LineTally
    from stages.store import db, loads
    from stages.store.files import atomic_output, write_json

    params = load_params()
    engine = params.engine(engine_name)
    tag = source_tag if source_tag is not None else params.ingest.source_tag
    by_hand = file is not None
    path = _crawl_file(engine.name, file or params.files(engine.name).raw, by_hand)
    seen_at = _seen_at(params.files(engine.name).source, path, by_hand)
    rejects_path = _rejects_path(params, engine.name, path, by_hand)
    started = time.monotonic()
    with atomic_output(rejects_path, "w") as rejects:
        tally = LineTally(rejects, progress=_reading)
        guard = None
        if not accept:
            guard = loads.collapse_guard(
                engine.name, tally, params.ingest, file=str(path), by_hand=by_hand
            )
        processes = params.ingest.parse_processes
        load = _Load(
            engine, path, LineParser(engine), tag, seen_at, by_hand, tally, guard, processes
        )
        try:
            loaded = db.retrying(
                params.ingest.retry_policy,
                load.once,
                describe=f"{STAGE}@{engine.name}: loading {path.name}",
            )
        except UnreadableFile as exc:
            raise PipelineError(_unreadable(path, exc)) from None
    stats = {
        "engine": engine.name,
        "source_tag": tag,
        "seen_at": seen_at.isoformat(),
        **tally.summary(),
        **loaded.counts(),
        "rules": loaded.rules.counts(),
        "seconds": round(time.monotonic() - started, 3),
        "database": loaded.fingerprint,
        "rejects_file": str(rejects_path.relative_to(params.root)),
    }
    if not by_hand:
        write_json(params.files(engine.name).marker, stats)
        metrics.record_load(params, engine, path, stats)
    return stats


@dataclass
class _Load:
    """One load of a crawl file: what `once` needs for each attempt (stages.store.db.retrying)."""

    engine: Engine
    path: Path
    parser: LineParser
    source_tag: str
    seen_at: datetime
    by_hand: bool
    tally: LineTally
    guard: Callable[[int, int | None], None] | None
    processes: int  # ingest.parse_processes: 0 is one per CPU, for a large plain file

    def once(self) -> leads.LoadResult:
        """One attempt, in one transaction: the load and its line counts (stages.store.loads)
        commit together."""
        from stages.observe.progress import phase
        from stages.store import db, leads, loads

        with db.connect() as conn, conn.transaction(), contextlib.ExitStack() as merging:

            def then_merge(staged: Iterator[Any]) -> Iterator[Any]:
                yield from staged
                # The ids are in: what load_leads does next is the set-based merge.
                merging.enter_context(phase(f"merge {self.engine.name} leads into PostgreSQL"))

            result = leads.load_leads(
                conn,
                self.engine,
                self._staged(then_merge),
                source_tag=self.source_tag,
                seen_at=self.seen_at,
                by_hand=self.by_hand,
                before_commit=self.guard,
            )
            counts = {**self.tally.summary(), "retracted": result.retracted}
            loads.record_line_counts(conn, result.load_id, counts)
            return result

    def _staged(self, then: Callable[[Iterator[Any]], Iterator[Any]]) -> Any:
        """The file's staged rows, or their COPY text from several processes for a large
        plain file (stages.store.split_parse); `then` wraps what is read."""
        from stages.rules.crawl import UnreadableFile, open_crawl
        from stages.store import split_parse
        from stages.store.staging import CopyBlocks

        try:
            with open_crawl(self.path) as stream:
                plain = isinstance(stream, io.BufferedReader)  # read as it is, not decoded
        except UnreadableFile:
            plain = False  # the reading below raises it
        processes = split_parse.parse_processes(self.processes, self.path, plain)
        if processes == 1:
            return then(self.tally.found(self.path, self.parser))
        report = _reading(f"read {self.path.name}")
        blocks = split_parse.parsed_blocks(self.path, self.engine, self.tally, processes, report)
        return CopyBlocks(then(blocks))


def _reading(label: str) -> Any:
    """The progress report of reading a crawl file (stages.observe.progress)."""
    from stages.observe.progress import Progress

    return Progress(label, unit="lines")


def _rejects_path(params: Params, engine: str, path: Path, by_hand: bool) -> Path:
    """data/ingest/<engine>.rejects.tsv; a run by hand writes beside its logs instead."""
    if by_hand:
        return params.root / "logs" / STAGE / f"{engine}.{path.name}.rejects.tsv"
    return params.files(engine).rejects


def _unreadable(path: Path, exc: UnreadableFile) -> str:
    """Why `path` is no crawl file and the fix; the runner names the stage in front."""
    return (
        f"{path} is {exc.format}, not a crawl file (text, gzip, or UTF-16/32); "
        "replace the source file with the crawl's text and run again."
    )


def _seen_at(meta: Path, path: Path, by_hand: bool) -> datetime:
    """When the crawl was made: the source's modification time recorded by download.

    Using the source's time, not the clock, makes a re-run of the same file change no row."""
    if not by_hand and meta.is_file():
        recorded = json.loads(meta.read_text(encoding="utf-8")).get("source_modified")
        if recorded:
            return datetime.fromisoformat(recorded)
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


def _crawl_file(engine: str, path: Path, by_hand: bool) -> Path:
    """`path` if it is a file; else PipelineError naming the path and the fix (the runner names
    the stage and engine in front)."""
    from stages.errors import PipelineError

    if path.is_dir():
        raise PipelineError(f"{path} is a folder, not a crawl file; give the file in it.")
    if not path.is_file():
        hint = "check the path" if by_hand else f"run `dvc repro download@{engine}` first"
        raise PipelineError(f"{path} does not exist; {hint}.")
    return path


def dry_run(engine_name: str, file: Path | None, out: IO[str]) -> dict[str, object]:
    """Print one JSON object per id found (several may share a line) or per rejected line."""
    from stages.errors import PipelineError
    from stages.rules.config import load_params
    from stages.rules.crawl import LineParser, UnreadableFile
    from stages.rules.crawl_tally import LineTally

    params = load_params()
    engine = params.engine(engine_name)
    path = _crawl_file(engine.name, file or params.files(engine.name).raw, bool(file))
    parser = LineParser(engine)
    tally = LineTally(progress=_reading)
    try:
        for number, found, _ in tally.outcomes(path, parser):
            if type(found) is str or type(found) is tuple:
                for property_id in (found,) if type(found) is str else found:
                    url = parser.booking_url(property_id)
                    record = {"line": number, "id": property_id, "url": url}
                    out.write(json.dumps(record) + "\n")
            else:
                reason = cast("Reject", found).value
                out.write(json.dumps({"line": number, "reject": reason}) + "\n")
    except UnreadableFile as exc:
        raise PipelineError(_unreadable(path, exc)) from None
    return tally.summary()


def main(argv: list[str] | None = None) -> int:
    parser = engine_parser(STAGE, "Load one engine's crawl file into PostgreSQL as hotel leads.")
    parser.add_argument("--file", type=path_option, help="load this file instead (outside DVC)")
    parser.add_argument("--source-tag", help="tag for `sources` (default: ingest.source_tag)")
    parser.add_argument(
        "--dry-run", action="store_true", help="print what each line becomes; no database"
    )
    parser.add_argument(
        "--accept",
        action="store_true",
        help="load even if the file looks like a lost crawl (ingest.max_rejected_share, "
        "ingest.min_previous_share)",
    )
    args = parser.parse_args(argv)

    def work() -> None:
        if args.dry_run:
            summary = dry_run(args.engine, args.file, sys.stdout)
            print(json.dumps(summary), file=sys.stderr)
            return
        stats = ingest(args.engine, args.file, args.source_tag, args.accept)
        if args.file:
            print(json.dumps(stats, indent=2, default=str))

    return run_stage(STAGE, args.engine, work, record=not args.dry_run)


if __name__ == "__main__":
    sys.exit(main())
