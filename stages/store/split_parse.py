"""The COPY text of a large crawl file, parsed by several processes at once.

Parsing is ingest's own Python work: about 7 s of CPU per 1,000,000 realistic lines, next to
the server's 4-13 s of merge (BENCHMARKS.md, figure 1), and one process holds one core. So a
plain file (read as it is: not gzip, not UTF-16/32) of at least SPLIT_MIN_BYTES is cut at
line ends into one span per worker process; each worker parses its span with the engine's
rules (stages.rules.crawl_tally) and sends COPY text blocks (stages.store.staging), which the
parent writes into its one COPY as they come. Their order does not matter: each row carries
its line number, and the merge keeps the first line of each id (stages.store.leads). The
workers' counts and rejects are added to the parent's tally in span order, so the counts and
the rejects file are those of one reading.

Workers are spawned, not forked: the parent holds a database connection in a transaction,
which a forked child would share. They stop when the parent stops reading (an error, a
signal): the parent terminates them; if the parent is killed outright, a worker exits at its
next write to the closed pipe.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import shutil
import sys
import tempfile
from collections.abc import Generator
from pathlib import Path
from typing import Any

from stages.rules.config import Engine
from stages.rules.crawl_tally import LineTally, ProgressReport, Span

# Below this size a file is parsed in the parent: starting a worker (about 0.2 s: Python and
# the rules' imports) would cost more than it saves. 32 MiB is about 500,000 crawl lines.
SPLIT_MIN_BYTES = 32 << 20
# COPY blocks in flight from the workers to the parent: memory stays flat (a block is about
# 7 MB of text) while no worker waits on a parent busy writing one.
QUEUED_PER_WORKER = 2
_BOM = b"\xef\xbb\xbf"
_POLL_SECONDS = 1.0  # how often a parent waiting for a block checks its workers are alive


def parse_processes(setting: int, path: Path, plain: bool) -> int:
    """How many processes parse `path`: 1 for a file below SPLIT_MIN_BYTES or one `open_crawl`
    decodes (`plain` False: gzip, UTF-16/32), else `setting`, or with 0 one per CPU this
    process may run on (os.sched_getaffinity, where the platform has it)."""
    if not plain or path.stat().st_size < SPLIT_MIN_BYTES:
        return 1
    if setting:
        return setting
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else os.cpu_count() or 1


def line_spans(path: Path, parts: int, chunk_size: int = 8 << 20) -> tuple[list[Span], int]:
    """`path` cut into at most `parts` spans of about equal size, each ending at a line end
    (after a `\\n`), numbered as `iter_lines` numbers the whole file's lines (line ends
    `\\n`, `\\r\\n` and a lone `\\r`). No span but the first starts with a UTF-8 BOM, which
    `iter_lines` drops only at a file's start. Memory stays flat: the file is read in chunks."""
    size = path.stat().st_size
    cuts = [0]
    with path.open("rb") as handle:
        for part in range(1, parts):
            cut = _line_end_after(handle, max(size * part // parts, cuts[-1]), chunk_size)
            if cut >= size:
                break
            if cut > cuts[-1]:
                cuts.append(cut)
        cuts.append(size)
        spans, first = [], 1
        for start, end in zip(cuts, cuts[1:], strict=False):
            spans.append(Span(start, end, first))
            first += _lines_in(handle, start, end, chunk_size)
    return spans, first - 1


def _line_end_after(handle: Any, offset: int, chunk_size: int) -> int:
    """The offset just past the first `\\n` at or after `offset` whose next line does not
    start with a BOM; the file's size when there is none."""
    handle.seek(offset)
    position = offset
    while chunk := handle.read(chunk_size):
        at = chunk.find(b"\n")
        while at >= 0:
            handle.seek(position + at + 1)
            if handle.read(len(_BOM)) != _BOM:
                return position + at + 1
            at = chunk.find(b"\n", at + 1)
        position += len(chunk)
        handle.seek(position)
    return position


def _lines_in(handle: Any, start: int, end: int, chunk_size: int) -> int:
    """How many lines `iter_lines` reads in bytes `start` to `end`, which end at a line end
    (or the file's end)."""
    handle.seek(start)
    lines = 0
    left = end - start
    previous = b""
    while left > 0:
        chunk = handle.read(min(chunk_size, left))
        left -= len(chunk)
        # \r\n is one line end: count \n and \r, less each \r\n (also one split over chunks).
        lines += chunk.count(b"\n") + chunk.count(b"\r") - chunk.count(b"\r\n")
        if previous == b"\r" and chunk[:1] == b"\n":
            lines -= 1
        previous = chunk[-1:]
    if end > start and previous not in (b"\n", b"\r"):
        lines += 1  # the file's last line, without a line end
    return lines


def parsed_blocks(
    path: Path,
    engine: Engine,
    tally: LineTally,
    processes: int,
    progress: ProgressReport | None = None,
) -> Generator[tuple[str, int], None, None]:
    """COPY text blocks of `path`'s ids (stages.store.staging.copy_text_blocks) from
    `processes` workers, each parsing one span, in the order they are ready: (text, ids in
    it). When all have ended, `tally` holds the counts and rejects of the whole file. Raises
    RuntimeError naming the span when a worker fails or dies; the other workers are stopped
    whenever the caller stops reading."""
    spans, total = line_spans(path, processes)
    context = multiprocessing.get_context("spawn")
    blocks: Any = context.Queue(maxsize=QUEUED_PER_WORKER * len(spans))
    with tempfile.TemporaryDirectory(prefix="split-parse-") as folder:
        rejects = [Path(folder) / f"{n}.tsv" for n in range(len(spans))]
        workers = [
            context.Process(
                target=_parse_span,
                args=(engine, str(path), span, str(rejects[n]), n, blocks),
                name=f"parse {path.name} span {n}",
                daemon=True,
            )
            for n, span in enumerate(spans)
        ]
        for worker in workers:
            worker.start()
        try:
            counts = yield from _drain(blocks, workers, spans, progress, total)
        finally:
            for worker in workers:
                if worker.is_alive():
                    worker.terminate()
                worker.join()
            blocks.close()
        tally.reset()
        for n in range(len(spans)):
            tally.add(counts[n])
            if tally.rejects:
                with rejects[n].open(encoding="utf-8") as part:
                    shutil.copyfileobj(part, tally.rejects)
    if progress:
        progress.finish(tally.lines)


def _drain(
    blocks: Any,
    workers: list[Any],
    spans: list[Span],
    progress: ProgressReport | None,
    total: int,
) -> Generator[tuple[str, int], None, dict[int, dict[str, object]]]:
    """Yield the workers' blocks until every one has sent its counts; return the counts."""
    counts: dict[int, dict[str, object]] = {}
    gone: set[int] = set()
    lines = [0] * len(spans)
    while len(counts) < len(workers):
        try:
            message = blocks.get(timeout=_POLL_SECONDS)
        except queue.Empty:
            # A worker gone without its counts: what it sent last (its error) is read first,
            # at the next poll; then it is called stopped.
            ended = {n for n, worker in enumerate(workers) if worker.exitcode is not None}
            for n in (ended & gone) - counts.keys():
                raise RuntimeError(
                    f"the process parsing {_where(spans[n])} stopped (exit code "
                    f"{workers[n].exitcode}) before it finished"
                ) from None
            gone = ended
            continue
        kind, n, payload = message
        if kind == "block":
            text, rows, read = payload
            lines[n] = read
            if progress:
                progress.update(sum(lines), fraction=sum(lines) / max(total, 1))
            yield text, rows
        elif kind == "counts":
            counts[n] = payload
        else:
            raise RuntimeError(f"the process parsing {_where(spans[n])} failed: {payload}")
    return counts


def _where(span: Span) -> str:
    return f"bytes {span.start}-{span.end} (from line {span.first_line})"


def _parse_span(
    engine: Engine, path: str, span: Span, rejects: str, number: int, blocks: Any
) -> None:
    """A worker's body: parse `span` of `path` and send its COPY blocks, then its counts; any
    exception is sent as one line instead."""
    from stages.rules.crawl import LineParser
    from stages.store.staging import copy_text_blocks

    parent = os.getppid()
    try:
        with open(rejects, "w", encoding="utf-8") as handle:
            tally = LineTally(handle, header=False)
            rows = tally.found(Path(path), LineParser(engine), span)
            for text, count in copy_text_blocks(rows):
                read = tally.at - span.first_line + 1
                _send(blocks, ("block", number, (text, count, read)), parent)
        _send(blocks, ("counts", number, tally.counts()), parent)
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group: the parent stops too
        sys.exit(1)
    except Exception as exc:  # sent to the parent, which raises it as one line
        _send(blocks, ("error", number, f"{type(exc).__name__}: {exc}"), parent)
        sys.exit(1)


def _send(blocks: Any, message: tuple[str, int, Any], parent: int) -> None:
    """Put `message` on the queue, waiting while it is full; exit if the parent is gone (killed
    outright: nobody reads the queue, and a worker must not wait for ever)."""
    while True:
        try:
            blocks.put(message, timeout=_POLL_SECONDS)
            return
        except queue.Full:
            if os.getppid() != parent:
                blocks.cancel_join_thread()  # what is still buffered has no reader
                sys.exit(1)
