"""download@<engine>: copy the engine's crawl file from `source.root` to data/raw/<engine>.txt.

Writes two small files beside it, split by what they are for:

- data/raw/<engine>.meta.json, the source's identity: where the file came from, its size and
  MD5, its ETag and VersionId on S3, and when the source last changed (the ingest's "seen at").
  Ingest depends on it, so it holds only facts that change the ingest's result: a download that
  fetched the same version again writes the same bytes and leaves ingest up to date.
- data/raw/<engine>.download.json, the run's facts: when, how long, how many attempts, how
  the bytes were verified. Not declared in dvc.yaml: nothing depends on it, DVC does not hash it.

All outputs are persisted in dvc.yaml and written atomically, so a failed download keeps the
last good files.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime

from stages.runner import engine_parser, run_stage

STAGE = "download"


def download(engine_name: str) -> None:
    from stages.observe.progress import Progress
    from stages.rules.config import load_params
    from stages.store import s3, storage
    from stages.store.files import write_json

    params = load_params()
    engine = params.engine(engine_name)
    source = s3.resolve(params.source_root, engine.file, params.root)
    started = time.monotonic()
    result = storage.fetch(
        source,
        params.files(engine.name).raw,
        policy=params.source.retry_policy,
        timeout=params.source.timeout,
        label=f"{STAGE}@{engine.name}",
        meter=lambda what, size: Progress(what, total=size, unit="B"),
    )
    identity = {
        "source": s3.describe(source, params.root),
        "bytes": result.size,
        "md5": result.md5,
        "etag": result.etag,
        "source_modified": result.modified.isoformat(),
    }
    if result.version_id:
        identity["version_id"] = result.version_id
    write_json(params.files(engine.name).source, identity)
    write_json(
        params.files(engine.name).download_record,
        {
            "bytes": result.size,
            "attempts": result.attempts,
            "verified": result.verified,
            "downloaded_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "seconds": round(time.monotonic() - started, 3),
        },
    )


def main(argv: list[str] | None = None) -> int:
    parser = engine_parser(STAGE, "Download one engine's crawl file to data/raw/<engine>.txt.")
    args = parser.parse_args(argv)
    return run_stage(STAGE, args.engine, lambda: download(args.engine))


if __name__ == "__main__":
    sys.exit(main())
