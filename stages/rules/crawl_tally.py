"""Every line of a crawl file in exactly one bucket: blank, rejected (with its reason) or
accepted, with the ids it names; what ingest stages and counts.

A tally reads a whole file (`open_crawl` decodes it) or one `Span` of a plain file: the lines
between two line ends, numbered as in the whole file, which is how stages.store.split_parse
parses a large file in several processes. Lines and ids are counted apart (`COUNTING`).
"""

from __future__ import annotations

import io
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO, Protocol, cast

from stages.rules.crawl_files import iter_lines

if TYPE_CHECKING:
    from stages.rules.crawl import LineParser
    from stages.rules.crawl_outcome import Reject

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
REJECTS_HEADER = "line\treason\ttext\n"
# The counts of a tally, as `counts` gives them and `add` takes them.
_COUNTS = ("lines", "blank", "accepted", "valid", "urls_without_id", "list_items_without_id")

# One staged row per id a line named: (property_id, line number, booking URL, evidence); a
# repeat of an id already staged carries "" for both (stages.store.staging.Found).
Found = tuple[str, int, str, str]


class ProgressReport(Protocol):
    """What a tally reports its reading to (stages.observe.progress.Progress)."""

    def update(self, done: int, *, fraction: float | None = None) -> None: ...

    def finish(self, done: int | None = None) -> None: ...


@dataclass(frozen=True)
class Span:
    """Bytes `start` to `end` of a plain crawl file: whole lines, the first numbered
    `first_line` as in the whole file."""

    start: int
    end: int
    first_line: int


class LineTally:
    """Sorts every line of a crawl file into exactly one bucket: blank, rejected or accepted.

    `rejects`, when given, receives one TSV row per rejected line (and per URL or list item
    an accepted line held without an id), after a header unless `header` is False (a span's
    rows, appended to a whole file's). `progress(label)` starts the report of a reading.
    """

    def __init__(
        self,
        rejects: IO[str] | None = None,
        *,
        header: bool = True,
        progress: Callable[[str], ProgressReport] | None = None,
    ):
        self.rejects = rejects
        self.header = header
        self.progress = progress
        self.reset()

    def reset(self) -> None:
        self.at = 0
        self.lines = self.blank = self.accepted = self.valid = self.urls_without_id = 0
        self.list_items_without_id = 0
        self.rejected: Counter[str] = Counter()
        if self.rejects:
            self.rejects.seek(0)
            self.rejects.truncate()
            if self.header:
                self.rejects.write(REJECTS_HEADER)

    def counts(self) -> dict[str, object]:
        """The tally's counts, for `add` (plain values: they cross a process boundary)."""
        return {**{name: getattr(self, name) for name in _COUNTS}, "rejected": dict(self.rejected)}

    def add(self, counts: dict[str, object]) -> None:
        """Add another tally's `counts` (of another span of the same file) to this one."""
        for name in _COUNTS:
            setattr(self, name, getattr(self, name) + cast(int, counts[name]))
        self.rejected.update(cast("dict[str, int]", counts["rejected"]))

    def outcomes(
        self, path: Path, parser: LineParser, span: Span | None = None
    ) -> Iterator[tuple[int, str | tuple[str, ...] | Reject, bytes | None]]:
        """(line number, id(s) or the Reject, raw line) per non-blank line, counting them.

        Reads the whole file through `open_crawl`, or only `span` of it (a plain file's bytes,
        read as they are). Raises UnreadableFile for a file `open_crawl` cannot read, also when
        a gzip file turns out damaged half-way.
        """
        import zlib

        from stages.rules.crawl import BLANK, UnreadableFile, open_crawl, safe_text

        self.reset()
        misses, item_misses = parser.misses, parser.item_misses
        first = span.first_line if span else 1
        try:
            with open_crawl(path) if span is None else _span_of(path, span) as handle:
                report = self.progress(f"read {path.name}") if self.progress and not span else None
                position, size = _position(handle), max(path.stat().st_size, 1)
                number = first - 1
                for number, raw in enumerate(iter_lines(handle), start=first):
                    self.at = number  # the line being read, numbered as in the whole file
                    if report and not number % PROGRESS_EVERY:
                        report.update(number, fraction=position() / size)
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
                self.lines = number - first + 1
        except (EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError subclass
            raise UnreadableFile(f"a damaged gzip file ({exc})") from None
        except OSError as exc:
            if type(exc).__name__ != "BadGzipFile":
                raise
            raise UnreadableFile(f"a damaged gzip file ({exc})") from None
        if report:
            report.finish(self.lines)

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

    def found(self, path: Path, parser: LineParser, span: Span | None = None) -> Iterator[Found]:
        """A staged row per id: (id, line number, booking URL, evidence), "" for a repeat."""
        from stages.rules.crawl import evidence_text

        seen: set[str] = set()
        booking_url = parser.booking_url
        for number, outcome, raw in self.outcomes(path, parser, span):
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


class _SpanReader(io.RawIOBase):
    """The bytes of one span of a file, read as if they were the whole file."""

    def __init__(self, handle: BinaryIO, span: Span):
        handle.seek(span.start)
        self._handle = handle
        self._left = span.end - span.start

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        size = min(len(buffer), self._left)
        if size <= 0:
            return 0
        count = self._handle.readinto(buffer[:size])  # type: ignore[attr-defined]
        self._left -= count
        return count

    def close(self) -> None:
        self._handle.close()
        super().close()


def _span_of(path: Path, span: Span) -> BinaryIO:
    return io.BufferedReader(_SpanReader(path.open("rb"), span), buffer_size=1 << 20)


def _position(handle: IO[bytes]) -> Callable[[], int]:
    """How far into the file on disk reading is (compressed bytes for gzip), for progress."""
    try:
        fd = handle.fileno()
    except (OSError, AttributeError, io.UnsupportedOperation):
        return lambda: 0
    return lambda: os.lseek(fd, 0, os.SEEK_CUR)
