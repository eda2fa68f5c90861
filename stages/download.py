"""download@<engine>: copy the engine's crawl file from `source.root` to data/raw/<engine>.txt.

Writes data/raw/<engine>.meta.json (a DVC metric): where the file came from, its size, ETag
or MD5, when the source last changed (the ingest's "seen at"), attempts and seconds.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime

from stages.runner import engine_parser, run_stage

STAGE = "download"


def download(engine_name: str) -> None:
    from stages import storage
    from stages.config import load_params
    from stages.files import write_json

    params = load_params()
    engine = params.engine(engine_name)
    source = storage.resolve(params.source_root, engine.file, params.root)
    started = time.monotonic()
    result = storage.fetch(
        source,
        params.path("raw", engine.name, ".txt"),
        policy=params.source.retry_policy,
        timeout=params.source.timeout,
        label=f"{STAGE}@{engine.name}",
    )
    write_json(
        params.path("raw", engine.name, ".meta.json"),
        {
            "source": storage.describe(source, params.root),
            "bytes": result.size,
            "md5": result.md5,
            "etag": result.etag,
            "source_modified": result.modified.isoformat(),
            "downloaded_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "attempts": result.attempts,
            "seconds": round(time.monotonic() - started, 3),
        },
    )


def main(argv: list[str] | None = None) -> int:
    parser = engine_parser(STAGE, "Download one engine's crawl file to data/raw/<engine>.txt.")
    args = parser.parse_args(argv)
    return run_stage(STAGE, args.engine, lambda: download(args.engine))


if __name__ == "__main__":
    sys.exit(main())
