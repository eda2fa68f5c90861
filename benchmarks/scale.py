"""Figure 8 (issue 15, target 3): what DVC costs per stage as engines are added.

    uv run python -m benchmarks.scale --engines 4 16 64 --lines 50

For each engine count, a throw-away git + DVC project whose params.yaml has that many engines
(past the four real ones, copies under new names: adding an engine is one params entry) and
generated crawl files of `--lines` lines, on a fresh database. Timed, in this order:

- the 4N stage commands in a shell loop, from clean (no orchestration: the work itself);
- `dvc repro` from clean, on a fresh copy and database;
- `dvc repro` again, with nothing to do (no-op);
- `dvc repro` after one engine's crawl file gained one new property (its 4 stages run).

DVC's cost per stage is (full repro - shell loop) / stages. Target: at the largest count it
is <= 1.3x that at the smallest. Each case runs `--repeat` times (default once, as the issue's
table): the no-op and one-engine cases interleave, the from-clean cases interleave.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks import common, timing
from benchmarks.pipeline import CleanRuns
from stages.rules.config import load_params

TARGET = 1.3
# New made-up property ids for the first engine (cloudbeds: 6 letters/digits): this prefix and
# a digit counting the ones added before.
NEW_PROPERTY = "Zq9Xw"


def run(args: argparse.Namespace) -> list[timing.Figure]:
    timing.print_header("DVC's cost per stage as engines are added")
    with common.databases(args.pg) as databases:
        rows = [measure(engines, args, databases) for engines in args.engines]
    print_table(rows)
    smallest, largest = rows[0], rows[-1]
    figure = timing.Figure(
        "8",
        f"DVC's cost per stage, {largest['engines']} vs {smallest['engines']} engines",
        largest["per_stage"],
        smallest["per_stage"],
        largest["per_stage"] / smallest["per_stage"] if smallest["per_stage"] > 0 else 0.0,
        f"<= {TARGET:.2f}x",
        largest["per_stage"] <= TARGET * smallest["per_stage"],
    )
    print(figure.line(), flush=True)
    return [figure]


def measure(engines: int, args: argparse.Namespace, databases: common.Databases) -> dict:
    """One row of the table for `engines` engines; prints it as it goes."""
    with common.scratch(f"scale{engines}") as folder:
        runs = CleanRuns(folder, args.lines, databases, engines)
        stages = 4 * len(runs.engines)
        load_before = timing.load_text()
        # The shell loop first: the last case leaves the copy that `dvc repro` brought up to
        # date, which the no-op and one-engine cases below start from.
        clean = timing.interleaved(
            [("loop", runs.stages_alone), ("repro", runs.repro)],
            args.repeat,
            warmup=False,
            before_each=runs.fresh,
        )
        changed_engine = runs.engines[0]

        def no_op() -> timing.Measured:
            measured = common.dvc(runs.root, "repro", env=runs.env)
            if "up to date" not in measured.output:
                raise RuntimeError(f"dvc repro did work:\n{measured.output}")
            return measured

        def one_engine_changed() -> timing.Measured:
            add_property(runs, changed_engine)
            measured = common.dvc(runs.root, "repro", env=runs.env)
            ran = [line for line in measured.output.splitlines() if line.startswith("Running")]
            if len(ran) != 4:
                raise RuntimeError(f"expected {changed_engine}'s 4 stages:\n{measured.output}")
            return measured

        again = timing.interleaved(
            [("no-op", no_op), ("one engine changed", one_engine_changed)],
            args.repeat,
            warmup=False,
        )
        if args.profile:
            add_property(runs, changed_engine)
            profile_repro(runs, args.profile / f"scale-{len(runs.engines)}.pstats")
        full, loop = clean["repro"].median, clean["loop"].median
        row = {
            "engines": len(runs.engines),
            "stages": stages,
            "full": full,
            "loop": loop,
            "per_stage": (full - loop) / stages,
            "no_op": again["no-op"].median,
            "one_changed": again["one engine changed"].median,
            "load": f"{load_before.removeprefix('load average ')} -> "
            f"{timing.load_text().removeprefix('load average ')}",
        }
        print(f"# {format_row(row)}", flush=True)
        return row


# Where DVC's time goes in one `dvc repro`, by the one function of DVC 3 that does each job
# (a function defined once, so nesting cannot count a job twice): the read-modify-write of
# dvc.lock after every stage (modify_yaml), the other reads of dvc.yaml and dvc.lock
# (FileMixin._load_yaml), the reads of params.yaml for templating and for each stage's params
# (load_path), and the stage commands themselves (cmd_run).
PROFILE_PARTS = {
    "dvc.lock rewrites": ("dvc/utils/serialize/_yaml.py", "modify_yaml"),
    "dvc.yaml and dvc.lock reads": ("dvc/dvcfile.py", "_load_yaml"),
    "params.yaml reads": ("dvc/utils/serialize/__init__.py", "load_path"),
    "stage commands (ours)": ("dvc/stage/run.py", "cmd_run"),
}


def profile_repro(runs: CleanRuns, out: Path) -> None:
    """Run `dvc repro` once under cProfile into `out` (a pstats file) and print, per part of
    PROFILE_PARTS, the cumulative seconds of its function (the parts need not add up to the
    whole: the rest is DVC collecting the stages and checking what changed)."""
    import pstats

    out.parent.mkdir(parents=True, exist_ok=True)
    command = [common.PYTHON, "-m", "cProfile", "-o", str(out), "-m", "dvc", "repro"]
    timing.run_measured(command, cwd=runs.root, env=runs.env)
    stats = pstats.Stats(str(out)).stats  # type: ignore[attr-defined]
    whole = max(cumulative for _, _, _, cumulative, _ in stats.values())
    engines = len(runs.engines)
    print(f"# profile of `dvc repro`, {engines} engines: {whole:.1f} s in all", flush=True)
    for part, (suffix, name) in PROFILE_PARTS.items():
        seconds = sum(
            value[3]
            for (file, _, function), value in stats.items()
            if function == name and file.endswith(suffix)
        )
        print(f"#   {part}: {seconds:.1f} s ({seconds / whole:.0%})", flush=True)


def add_property(runs: CleanRuns, engine_name: str) -> None:
    """Append one line naming a new property to `engine_name`'s crawl file (a new id each
    time, so ingest, export and publish all have work). The file is a hard link to the shared
    crawl cache for the four real engines: it is replaced, never written through."""
    engine = load_params(runs.root).engine(engine_name)
    source = runs.root / "data" / "sources" / engine.file
    text = source.read_text(encoding="utf-8")
    line = engine.booking_url.format(id=f"{NEW_PROPERTY}{text.count(NEW_PROPERTY)}")
    replacement = source.with_name(f".{source.name}.new")
    replacement.write_text(f"{text}{line}\n", encoding="utf-8")
    replacement.replace(source)


HEADER = (
    "| engines | stages | full `dvc repro` | same commands in a shell loop "
    "| DVC's cost per stage | no-op | one engine changed | load average |"
)


def format_row(row: dict) -> str:
    return (
        f"| {row['engines']} | {row['stages']} | {row['full']:.1f} s | {row['loop']:.1f} s "
        f"| {row['per_stage']:.2f} s | {row['no_op']:.1f} s | {row['one_changed']:.1f} s "
        f"| {row['load']} |"
    )


def print_table(rows: list[dict]) -> None:
    print("# table (Markdown)", flush=True)
    print(HEADER, flush=True)
    print("|---|---|---|---|---|---|---|---|", flush=True)
    for row in rows:
        print(format_row(row), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__)
    parser.add_argument("--engines", type=int, nargs="+", default=[4, 16, 64])
    parser.add_argument("--lines", type=int, default=50, help="lines per crawl file")
    parser.add_argument("--pg", help="PostgreSQL URL to create databases on (default: private)")
    parser.add_argument("--repeat", type=int, default=1, help="timed rounds per case")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="FOLDER",
        help="also profile one more one-engine-changed `dvc repro` per engine count "
        "(pstats files in FOLDER) and print where DVC's time goes",
    )
    return timing.run_command(parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
