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
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, cast

from stages.runner import engine_parser, path_option, run_stage

STAGE = "ingest"
PROGRESS_EVERY = 100_000  # lines between progress reports: cheap next to parsing
# Ids whose URL and evidence were already staged: a repeat sends neither. Bounded (cleared
# when full), so memory stays flat; an id seen again after a clear is merely staged twice.
SEEN_CACHE = 1 << 16
COUNTING = (
    "lines = blank + rejected + accepted_lines; valid = ids on accepted lines (a line may"
    " name several) = unique + duplicates; unique = inserted + updated + unchanged;"
    " urls_without_id = URLs of the engine's hosts that gave no id on accepted lines (listed"
    " in the rejects file as url:<reason>); list_items_without_id = items of an id list"
    " (`<uuid>;zzz`) that were no id, on accepted lines (listed as item:malformed_id)"
)

if TYPE_CHECKING:
    from stages.rules.config import Engine, Params
    from stages.rules.crawl import LineParser, Reject, UnreadableFile
    from stages.store import leads
    from stages.store.staging import Found


class LineTally:
    """Sorts every line of a crawl file into exactly one bucket: blank, rejected or accepted."""

    def __init__(self, rejects: IO[str] | None = None):
        self.rejects = rejects
        self.reset()

    def reset(self) -> None:
        self.lines = self.blank = self.accepted = self.valid = self.urls_without_id = 0
        self.list_items_without_id = 0
        self.rejected: Counter[str] = Counter()
        if self.rejects:
            self.rejects.seek(0)
            self.rejects.truncate()
            self.rejects.write("line\treason\ttext\n")

    def outcomes(
        self, path: Path, parser: LineParser
    ) -> Iterator[tuple[int, str | tuple[str, ...] | Reject, bytes | None]]:
        """(line number, id(s) or the Reject, raw line) per non-blank line, counting them.

        Raises UnreadableFile for a file `open_crawl` cannot read, also when a gzip file
        turns out damaged half-way.
        """
        import zlib

        from stages.observe.progress import Progress
        from stages.rules.crawl import BLANK, UnreadableFile, iter_lines, open_crawl, safe_text

        self.reset()
        misses, item_misses = parser.misses, parser.item_misses
        progress = Progress(f"read {path.name}", unit="lines")
        size = max(path.stat().st_size, 1)
        try:
            with open_crawl(path) as handle:
                position = _position(handle)
                for number, raw in enumerate(iter_lines(handle), start=1):
                    self.lines = number
                    if not number % PROGRESS_EVERY:
                        progress.update(number, fraction=position() / size)
                    outcome = parser.parse(raw)
                    if type(outcome) is str or type(outcome) is tuple:
                        self.accepted += 1
                        self.valid += 1 if type(outcome) is str else len(outcome)
                        if parser.misses != misses:  # a URL beside others gave no id
                            misses = parser.misses
                            self._missed(number, parser.missed)
                        if parser.item_misses != item_misses:  # `<uuid>;zzz`: zzz is no id
                            item_misses = parser.item_misses
                            self._missed_items(number, parser.missed_items)
                        yield number, outcome, raw
                    elif outcome is BLANK:
                        self.blank += 1
                    else:
                        reason = cast("Reject", outcome).value  # the one kind left
                        self.rejected[reason] += 1
                        if self.rejects:
                            text = "(longer than the line limit)" if raw is None else safe_text(raw)
                            self.rejects.write(f"{number}\t{reason}\t{text}\n")
                        yield number, outcome, raw
        except (EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError subclass
            raise UnreadableFile(f"a damaged gzip file ({exc})") from None
        except OSError as exc:
            if type(exc).__name__ != "BadGzipFile":
                raise
            raise UnreadableFile(f"a damaged gzip file ({exc})") from None
        progress.finish(self.lines)

    def _missed(self, number: int, missed: list[tuple[Reject, str]]) -> None:
        """Count the URLs of an accepted line that gave no id, and list them as rejects."""
        from stages.rules.crawl import safe_text

        self.urls_without_id += len(missed)
        if self.rejects:
            for reason, url in missed:
                text = safe_text(url.encode("utf-8", "surrogatepass"))
                self.rejects.write(f"{number}\turl:{reason.value}\t{text}\n")

    def _missed_items(self, number: int, items: list[str]) -> None:
        """Count the items of an accepted line's id list that were no id, and list them."""
        from stages.rules.crawl import safe_text

        self.list_items_without_id += len(items)
        if self.rejects:
            for item in items:
                text = safe_text(item.encode("utf-8", "surrogatepass"))
                self.rejects.write(f"{number}\titem:malformed_id\t{text}\n")

    def found(self, path: Path, parser: LineParser) -> Iterator[Found]:
        """A staged row per id: (id, line number, booking URL, evidence), "" for a repeat."""
        from stages.rules.crawl import evidence_text

        seen: set[str] = set()
        booking_url = parser.booking_url
        for number, outcome, raw in self.outcomes(path, parser):
            # Only an over-long line is not read, and it is always rejected.
            if type(outcome) is str:
                assert raw is not None
                if outcome in seen:
                    yield outcome, number, "", ""
                    continue
                if len(seen) >= SEEN_CACHE:
                    seen.clear()
                seen.add(outcome)
                yield outcome, number, booking_url(outcome), evidence_text(raw)
            elif type(outcome) is tuple:
                assert raw is not None
                evidence = evidence_text(raw)
                for property_id in outcome:
                    yield property_id, number, booking_url(property_id), evidence

    def summary(self) -> dict[str, object]:
        return {
            "lines": self.lines,
            "blank": self.blank,
            "rejected": sum(self.rejected.values()),
            "rejected_by_reason": dict(sorted(self.rejected.items())),
            "accepted_lines": self.accepted,
            "valid": self.valid,
            "urls_without_id": self.urls_without_id,
            "list_items_without_id": self.list_items_without_id,
            "counting": COUNTING,
        }


def _position(handle: IO[bytes]) -> Callable[[], int]:
    """How far into the file on disk reading is (compressed bytes for gzip), for progress."""
    import os

    try:
        fd = handle.fileno()
    except (OSError, AttributeError, io.UnsupportedOperation):
        return lambda: 0
    return lambda: os.lseek(fd, 0, os.SEEK_CUR)


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
        tally = LineTally(rejects)
        guard = None if accept else loads.collapse_guard(engine.name, tally, params.ingest)
        load = _Load(engine, path, LineParser(engine), tag, seen_at, by_hand, tally, guard)
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

    def once(self) -> leads.LoadResult:
        """One attempt, in one transaction: the load and its line counts (stages.store.loads)
        commit together."""
        from stages.observe.progress import phase
        from stages.store import db, leads, loads

        with db.connect() as conn, conn.transaction(), contextlib.ExitStack() as merging:

            def found() -> Iterator[Found]:
                yield from self.tally.found(self.path, self.parser)
                # The ids are in: what load_leads does next is the set-based merge.
                merging.enter_context(phase(f"merge {self.engine.name} leads into PostgreSQL"))

            result = leads.load_leads(
                conn,
                self.engine,
                found(),
                source_tag=self.source_tag,
                seen_at=self.seen_at,
                by_hand=self.by_hand,
                before_commit=self.guard,
            )
            counts = {**self.tally.summary(), "retracted": result.retracted}
            loads.record_line_counts(conn, result.load_id, counts)
            return result


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

    params = load_params()
    engine = params.engine(engine_name)
    path = _crawl_file(engine.name, file or params.files(engine.name).raw, bool(file))
    parser = LineParser(engine)
    tally = LineTally()
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
