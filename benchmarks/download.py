"""Figure 3: download@<engine> of a large S3 object against boto3's managed download_file.

    uv run python -m benchmarks.download --mb 200 --repeat 5

The object (a generated crawl file of about `--mb` MB) lives on moto's S3-protocol server,
run on 127.0.0.1 in a process of its own. Ours is the stage as DVC runs it (`python -m
stages.download --engine E` with `source.root: s3://...`): one streamed GET, MD5 on the fly,
an atomic, fsynced output. The baseline is `benchmarks/boto_download.py`: boto3's
`download_file` with its default parallel ranged GETs. Both are timed as whole processes.
A third line, one GET read into nothing, shows what the server itself can send. Target: ours
>= 0.8x the baseline's throughput.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks import common, timing
from tests.support.project import Project

ENGINE = "cloudbeds"
BYTES_PER_LINE = 57.4  # cloudbeds lines as stages.tools.crawlgen writes them, line end included
TARGET = 0.8
BUCKET = "bench-crawls"

_RAW_GET = """
import sys, botocore.session
from botocore.config import Config
client = botocore.session.Session().create_client(
    "s3", config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}))
body = client.get_object(Bucket=sys.argv[1], Key=sys.argv[2])["Body"]
while body.read(1 << 20):
    pass
"""


def run(args: argparse.Namespace) -> list[timing.Figure]:
    timing.print_header(f"download of about {args.mb} MB from moto vs boto3 download_file")
    lines = max(int(args.mb * 1e6 / BYTES_PER_LINE), 1)
    source = common.crawl_file(ENGINE, lines)
    size = source.stat().st_size
    key = f"crawls/{source.name}"
    with common.s3_server() as endpoint, common.scratch("download") as folder:
        project = _project_reading_from_s3(endpoint, folder, source, key, args.stages)
        env = common.s3_env(endpoint)
        results = timing.interleaved(
            _cases(project, folder, key, env), args.repeat, warmup=not args.no_warmup
        )
        downloaded = project / "data" / "raw" / f"{ENGINE}.txt"
        assert downloaded.stat().st_size == size, "the stage downloaded a different size"
        return _figures(results, size)


def _project_reading_from_s3(
    endpoint: str, folder: Path, source: Path, key: str, stages_from: Path | None
) -> Path:
    """A project copy whose ENGINE reads `source`, uploaded to s3://BUCKET/`key` on moto."""
    client = common.s3_client(endpoint)
    client.create_bucket(Bucket=BUCKET)
    client.upload_file(str(source), BUCKET, key)
    size = source.stat().st_size
    print(f"# object s3://{BUCKET}/{key}: {size / 1e6:.1f} MB at {endpoint}", flush=True)
    project = common.stage_project(folder / "project", stages_from=stages_from)

    def point_at_bucket(params: dict) -> None:
        params["source"]["root"] = f"s3://{BUCKET}/crawls"
        params["engines"][ENGINE]["file"] = source.name

    Project(project).edit_params(point_at_bucket)
    return project


def _cases(
    project: Path, folder: Path, key: str, env: dict[str, str]
) -> list[tuple[str, timing.Case]]:
    """The stage, boto3's download_file, and one GET read into nothing: the timed commands."""

    def ours() -> timing.Measured:
        return timing.run_measured(
            [common.PYTHON, "-m", "stages.download", "--engine", ENGINE], cwd=project, env=env
        )

    def baseline() -> timing.Measured:
        return timing.run_measured(
            [common.PYTHON, "-m", "benchmarks.boto_download", BUCKET, key]
            + [str(folder / "boto.txt")],
            cwd=common.REPO,
            env=env,
        )

    def raw_get() -> timing.Measured:
        return timing.run_measured([common.PYTHON, "-c", _RAW_GET, BUCKET, key], env=env)

    return [
        ("ours (stages.download)", ours),
        ("boto3 download_file", baseline),
        ("one GET read into nothing", raw_get),
    ]


def _figures(results: dict[str, timing.Series], size: int) -> list[timing.Figure]:
    return [
        timing.compare(
            "3",
            f"download of {size / 1e6:.0f} MB from moto",
            results["ours (stages.download)"],
            results["boto3 download_file"],
            min_ratio=TARGET,
            throughput_bytes=size,
        ),
        timing.compare(
            "3",
            "  the same, ours vs one GET read into nothing",
            results["ours (stages.download)"],
            results["one GET read into nothing"],
            throughput_bytes=size,
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = timing.command("benchmarks.download", __doc__, repeat=5, stages="a proposal")
    parser.add_argument("--mb", type=float, default=200, help="object size in MB (about)")
    return timing.run_command(parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
