"""Figure 4: `dvc repro` when nothing changed, against `dvc status` on the same project.

    uv run python -m benchmarks.repro --engines 4 50 --repeat 5

For each engine count, a throw-away git + DVC project with that many engines (generated crawl
files of `--lines` lines) runs the whole pipeline once on a private PostgreSQL; then `dvc
repro` (which must find nothing to do) and `dvc status` are timed, interleaved. Target: repro
<= 1.2x status.
"""

from __future__ import annotations

import argparse
import sys

from benchmarks import common, timing

TARGET = 1.2


def run(args: argparse.Namespace) -> list[timing.Figure]:
    timing.print_header("no-op dvc repro vs dvc status")
    with common.databases(args.pg) as databases:
        return [measure(engines, args, databases) for engines in args.engines]


def measure(engines: int, args: argparse.Namespace, databases: common.Databases) -> timing.Figure:
    with common.scratch(f"repro{engines}") as folder:
        root = common.pipeline_project(folder / "project", engines, args.lines)
        env = common.child_env(DATABASE_URL=databases.fresh(databases.migrated()))
        first = common.dvc(root, "repro", env=env)
        print(
            f"# {engines} engines, {args.lines:,} lines each: the first full run took "
            f"{first.seconds:.1f} s ({4 * engines} stages)",
            flush=True,
        )

        def repro() -> timing.Measured:
            measured = common.dvc(root, "repro", env=env)
            if "up to date" not in measured.output:
                raise RuntimeError(f"dvc repro did work:\n{measured.output}")
            return measured

        def status() -> timing.Measured:
            return common.dvc(root, "status", env=env)

        results = timing.interleaved(
            [("dvc repro (no-op)", repro), ("dvc status", status)],
            args.repeat,
            warmup=not args.no_warmup,
        )
        return timing.compare(
            "4",
            f"no-op dvc repro, {engines} engines ({4 * engines} stages)",
            results["dvc repro (no-op)"],
            results["dvc status"],
            max_ratio=TARGET,
        )


def main(argv: list[str] | None = None) -> int:
    parser = timing.command("benchmarks.repro", __doc__, repeat=5, pg=True)
    parser.add_argument("--engines", type=int, nargs="+", default=[4, 50], help="engine counts")
    parser.add_argument("--lines", type=int, default=2_000, help="lines per crawl file")
    return timing.run_command(parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
