"""Figure 1's Python share: what ingest's per-line work costs in one process, and in the
several processes ingest uses for a large file (stages.store.split_parse).

    uv run python -m benchmarks.parse_split --lines 1000000 --processes 2 --repeat 3

The work is ingest's own, without a database: every line of the crawl file that
`benchmarks.ingest` loads (the same generated file) through `LineTally.found` (parse, tally,
booking URL and evidence of each new id) into COPY text blocks, written to a sink that only
counts characters; against the same file through `split_parse.parsed_blocks`, whose spawned
workers do it span by span and send their blocks to this process. Start-up of the workers
counts. Interleaved rounds, wall seconds.

The figure bounds target 1 of issue 15: a first load is at least the floor (the server's
share, `benchmarks.ingest`) plus the Python share that nothing overlaps.
"""

from __future__ import annotations

import argparse
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
    from stages.rules.config import load_params
    from stages.rules.crawl import LineParser
    from stages.rules.crawl_tally import LineTally
    from stages.store.staging import copy_text_blocks

    parser = LineParser(load_params(common.REPO).engine(engine_name))
    sink = _ByteSink()
    for block, _ in copy_text_blocks(LineTally().found(crawl, parser)):
        sink.write(block)
    return sink.chars


def run(args: argparse.Namespace) -> list[timing.Figure]:
    from stages.rules.config import load_params
    from stages.rules.crawl_tally import LineTally
    from stages.store.split_parse import parsed_blocks

    timing.print_header(
        f"ingest's Python share of {args.lines:,} {args.engine} lines:"
        f" {args.processes} processes against 1"
    )
    crawl = common.crawl_file(args.engine, args.lines)
    engine = load_params(common.REPO).engine(args.engine)

    def split() -> None:
        sink = _ByteSink()
        for block, _ in parsed_blocks(crawl, engine, LineTally(), args.processes):
            sink.write(block)

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
