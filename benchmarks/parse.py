"""The parse hot loop: `LineParser.parse` per line, this tree against the first release.

    uv run python -m benchmarks.parse --lines 200000 --repeat 5

Issue 11 wants the hot loop within 1.3x of the first release's (commit 6993ab0). Both trees
parse the very same lines: what the first release's generator writes (its `stages.tools.crawlgen`,
default seed, cached in $BENCH_CACHE), so the old rules see only shapes they were made for.
Each tree runs in a long-lived child process of its own (its `stages/` and `params.yaml`),
holding each engine's lines in memory; the rounds alternate old, new, old, new, ... and each
is one pass of `parse` over the lines, timed as the child's CPU time (`time.process_time`),
so start-up, file reading and the other processes on a shared machine stay out. Shown per
engine: the best round of each side (noise only ever adds time) in ns per line, the ratio
new / old of the best rounds and of the medians; target <= 1.30x on the best rounds.

`--old PATH` times another tree as the baseline (the smoke test uses this tree itself, as a
shallow clone holds no 6993ab0). `--instructions N` counts instead of timing: valgrind's
instructions per line over the first N lines, the same in every run however busy the machine
(about 15 s per engine and tree for 20,000 lines).
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks import common, timing

FIRST_RELEASE = "6993ab0"
TARGET_RATIO = 1.3
ENGINES = ("cloudbeds", "mews", "rms", "siteminder")

# Runs in a tree's folder with that tree's package first on sys.path. Asked "<engine>\t<path>",
# it answers the CPU seconds of one pass of parse over that file's lines (read once, kept).
_CHILD = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
try:
    from stages.rules.config import load_params
    from stages.rules.crawl import LineParser, iter_lines
except ModuleNotFoundError:  # the first release's flat layout
    from stages.config import load_params
    from stages.crawl import LineParser, iter_lines

engines = load_params(Path(sys.argv[1])).engines
held = {}
for request in sys.stdin:
    name, path = request.rstrip("\\n").split("\\t")
    if (name, path) not in held:
        with open(path, "rb") as handle:
            held[name, path] = (LineParser(engines[name]).parse, list(iter_lines(handle)))
    parse, lines = held[name, path]
    start = time.process_time()
    for raw in lines:
        parse(raw)
    print(time.process_time() - start, flush=True)
"""

# Writes `lines` lines of the tree's own generator (default seed) for one engine.
_GENERATE = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
try:
    from stages.rules.config import load_params
    from stages.tools.crawlgen import write_crawl_file
except ModuleNotFoundError:  # the first release's flat layout
    from stages.config import load_params
    from stages.crawlgen import write_crawl_file

engine = load_params(Path(sys.argv[1])).engine(sys.argv[2])
write_crawl_file(engine, Path(sys.argv[4]), int(sys.argv[3]))
"""


class Tree:
    """A child process parsing with one tree's `stages/` and `params.yaml`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.process = subprocess.Popen(
            [common.PYTHON, "-c", _CHILD, str(root)],
            cwd=root,
            env=common.child_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def seconds(self, engine: str, path: Path) -> float:
        """CPU seconds of one pass of `parse` over the lines of `path`."""
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(f"{engine}\t{path}\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            raise RuntimeError(f"the parser child of {self.root} exited {self.process.wait()}")
        return float(answer)

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait()


def old_tree(folder: Path, ref: str) -> Path:
    """The project files of `ref` (git archive of this repository) under `folder`."""
    archive = subprocess.run(
        ["git", "-C", str(common.REPO), "archive", ref], check=True, capture_output=True
    ).stdout
    folder.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def lines_file(tree: Path, tag: str, engine: str, lines: int) -> Path:
    """`lines` lines of `tree`'s generator for `engine`, written once into the cache."""
    path = common.CACHE / f"parse-{tag}-{engine}-{lines}.txt"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [common.PYTHON, "-c", _GENERATE, str(tree), engine, str(lines), str(path)],
            cwd=tree,
            env=common.child_env(),
            check=True,
        )
    return path


def run(args: argparse.Namespace) -> list[timing.Figure]:
    timing.print_header(f"LineParser.parse, this tree vs {args.old or FIRST_RELEASE}")
    with common.scratch("parse") as folder:
        old_root = args.old or old_tree(folder / "old", FIRST_RELEASE)
        tag = "self" if args.old else FIRST_RELEASE
        files = {name: lines_file(old_root, tag, name, args.lines) for name in args.engines}
        if args.instructions:
            return [
                _counted(name, path, old_root, args.instructions) for name, path in files.items()
            ]
        trees = {"old": Tree(old_root), "new": Tree(common.REPO)}
        figures = []
        try:
            for name, path in files.items():
                cases = [(side, _timed(tree, name, path)) for side, tree in trees.items()]
                results = timing.interleaved(cases, args.repeat, warmup=not args.no_warmup)
                figures.append(_figure(name, results["new"], results["old"], args.lines))
        finally:
            for tree in trees.values():
                tree.close()
    return figures


# Parses the first `lines` lines of a file `passes` times in a tree, for valgrind to count.
_COUNT = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
try:
    from stages.rules.config import load_params
    from stages.rules.crawl import LineParser, iter_lines
except ModuleNotFoundError:  # the first release's flat layout
    from stages.config import load_params
    from stages.crawl import LineParser, iter_lines

parse = LineParser(load_params(Path(sys.argv[1])).engine(sys.argv[2])).parse
with open(sys.argv[3], "rb") as handle:
    lines = list(iter_lines(handle))[: int(sys.argv[4])]
for _ in range(int(sys.argv[5])):
    for raw in lines:
        parse(raw)
"""


def instructions_a_line(tree: Path, engine: str, path: Path, lines: int) -> float:
    """Instructions per parsed line in `tree`, counted by valgrind's cachegrind: a run of two
    passes over `lines` lines less a run of none (start-up and reading cancel out). Exact and
    repeatable, unlike CPU time on a shared machine; PYTHONHASHSEED is fixed and no byte code
    is written for the same reason."""
    counts = []
    for passes in (0, 2):
        command = ["valgrind", "--tool=cachegrind", "--cache-sim=no"]
        command += ["--cachegrind-out-file=/dev/null", common.PYTHON, "-c", _COUNT]
        command += [str(tree), engine, str(path), str(lines), str(passes)]
        # No byte code written: both runs read (or compile) the same, and cancel out.
        env = common.child_env(PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1")
        done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
        found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
        if done.returncode or not found:
            raise RuntimeError(f"valgrind failed in {tree}: {done.stderr[-500:]}")
        counts.append(int(found[1].replace(",", "")))
    return (counts[1] - counts[0]) / (2 * lines)


def _counted(engine: str, path: Path, old_root: Path, lines: int) -> timing.Figure:
    """The instruction-count figure of one engine: this tree against the baseline tree."""
    new = instructions_a_line(common.REPO, engine, path, lines)
    old = instructions_a_line(old_root, engine, path, lines)
    ratio = new / old
    figure = timing.Figure(
        "11",
        f"parse, {engine}, instructions a line ({lines:,} lines)",
        new,
        old,
        ratio,
        f"<= {TARGET_RATIO:.2f}x",
        ratio <= TARGET_RATIO,
        "instr",
    )
    print(figure.line(), flush=True)
    return figure


def _timed(tree: Tree, engine: str, path: Path) -> timing.Case:
    return lambda: tree.seconds(engine, path)


def _figure(engine: str, new: timing.Series, old: timing.Series, lines: int) -> timing.Figure:
    """ns per line of the best rounds, their ratio against TARGET_RATIO; medians in the note."""
    best_new = min(run.seconds for run in new.runs) / lines * 1e9
    best_old = min(run.seconds for run in old.runs) / lines * 1e9
    medians = statistics.median(r.seconds for r in new.runs) / statistics.median(
        r.seconds for r in old.runs
    )
    ratio = best_new / best_old
    figure = timing.Figure(
        "11",
        f"parse, {engine}, {lines:,} lines, best of {len(new.runs)}",
        best_new,
        best_old,
        ratio,
        f"<= {TARGET_RATIO:.2f}x",
        ratio <= TARGET_RATIO,
        "ns",
        f"ratio of medians {medians:.2f}x",
    )
    print(figure.line(), flush=True)
    return figure


def main(argv: list[str] | None = None) -> int:
    parser = timing.command("benchmarks.parse", __doc__, repeat=5)
    parser.add_argument("--lines", type=int, default=200_000, help="lines per engine")
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    parser.add_argument("--old", type=Path, help=f"baseline tree (default: {FIRST_RELEASE})")
    parser.add_argument(
        "--instructions",
        type=int,
        metavar="LINES",
        help="count instructions a line over this many lines with valgrind instead of timing",
    )
    return timing.run_command(parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
