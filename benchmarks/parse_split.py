"""Figure 1's Python share: what ingest's per-line work costs in one process, and the best a
parse split over several processes could make of it on this machine.

    uv run python -m benchmarks.parse_split --lines 1000000 --processes 2 --repeat 3

The work is ingest's own, without a database: every line of the crawl file that
`benchmarks.ingest` loads (the same generated file) through `LineTally.found` (parse, tally,
booking URL and evidence of each new id) and into COPY text blocks, written to a sink that
only counts bytes. One process reads the whole file; the split case gives each of N forked
workers one byte range of it, cut at line ends and written to files before the clock, so the
ranges cost no more to read than the whole. Fork start-up counts (it is a few ms); a worker
started by spawn would add its imports, about 0.2 s. Interleaved rounds, wall seconds.

The figure bounds target 1 of issue 15: a first load is at least the floor (the server's
share, `benchmarks.ingest`) plus the Python share that nothing overlaps; with the parse split,
that is the split case's time.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
from pathlib import Path

from benchmarks import common, timing


class _ByteSink:
    """Stands in for the COPY: counts the text it is given."""

    def __init__(self) -> None:
        self.chars = 0

    def write(self, text: str) -> None:
        self.chars += len(text)


def python_share(engine_name: str, crawl: Path) -> int:
    """Run ingest's per-line work over `crawl`; return the COPY text's length in characters."""
    from stages.rules.crawl_tally import LineTally
    from stages.rules.config import load_params
    from stages.rules.crawl import LineParser
    from stages.store.staging import copy_text_blocks

    parser = LineParser(load_params(common.REPO).engine(engine_name))
    sink = _ByteSink()
    for block, _ in copy_text_blocks(LineTally().found(crawl, parser)):
        sink.write(block)
    return sink.chars


def byte_ranges(crawl: Path, parts: int, folder: Path) -> list[Path]:
    """`crawl` cut into `parts` files of about equal size, each ending at a line end."""
    data = crawl.read_bytes()
    cuts = [0]
    for part in range(1, parts):
        cuts.append(data.index(b"\n", len(data) * part // parts) + 1)
    cuts.append(len(data))
    files = []
    for part, (start, end) in enumerate(zip(cuts, cuts[1:], strict=False)):
        path = folder / f"part-{part}.txt"
        path.write_bytes(data[start:end])
        files.append(path)
    return files


def run(args: argparse.Namespace) -> list[timing.Figure]:
    timing.print_header(
        f"ingest's Python share of {args.lines:,} {args.engine} lines:"
        f" {args.processes} processes against 1"
    )
    crawl = common.crawl_file(args.engine, args.lines)
    with common.scratch("parse-split") as folder:
        parts = byte_ranges(crawl, args.processes, folder)
        context = multiprocessing.get_context("fork")

        def split() -> None:
            with context.Pool(args.processes) as pool:
                pool.starmap(python_share, [(args.engine, part) for part in parts])

        results = timing.interleaved(
            [("one process", lambda: python_share(args.engine, crawl)), ("split", split)],
            args.repeat,
            warmup=not args.no_warmup,
        )
    what = f"ingest's Python share, {args.lines:,} lines, in {args.processes} processes"
    return [timing.compare("1", what, results["split"], results["one process"])]


def main(argv: list[str] | None = None) -> int:
    parser = timing.command("benchmarks.parse_split", __doc__, repeat=3)
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines in the crawl file")
    parser.add_argument("--engine", default="cloudbeds", help="engine whose lines to generate")
    parser.add_argument("--processes", type=int, default=2, help="workers of the split case")
    return timing.run_command(parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
