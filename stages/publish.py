"""publish@<engine>: upload data/exports/<engine>.xlsx to `publish.to` as <engine>_leads.xlsx.

data/published/<engine>.json records what is live (URI, ETag, size, time) or that nothing was
published because `publish.to` is empty. DVC re-runs this stage only when the workbook's bytes
change, so an unchanged workbook is never uploaded twice.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from stages.runner import engine_parser, run_stage

STAGE = "publish"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def publish(engine_name: str) -> None:
    from stages.errors import PipelineError
    from stages.rules.config import load_params
    from stages.store import s3
    from stages.store.files import write_json

    params = load_params()
    engine = params.engine(engine_name)
    workbook = params.files(engine.name).workbook
    if not workbook.is_file():
        raise PipelineError(f"{workbook.name} is missing; run `dvc repro export@{engine.name}`.")
    settings = params.publish
    record: dict[str, object] = {"engine": engine.name, "workbook_bytes": workbook.stat().st_size}
    if not settings.to:
        record.update(published=False, uri=None, reason="publish.to is empty in params.yaml")
    else:
        target = s3.resolve(settings.to, f"{engine.name}_leads.xlsx", params.root)
        assert isinstance(target, s3.S3Object)  # config allows only s3:// or remote:// here
        uploaded = s3.upload(
            workbook,
            target,
            content_type=XLSX_TYPE,
            policy=settings.retry_policy,
            timeout=settings.timeout,
            label=f"{STAGE}@{engine.name}",
        )
        record.update(published=True, uri=s3.describe(target), **uploaded)
    record["time"] = datetime.now(UTC).isoformat(timespec="seconds")
    write_json(params.files(engine.name).published, record)


def main(argv: list[str] | None = None) -> int:
    parser = engine_parser(STAGE, "Upload one engine's workbook to `publish.to`.")
    args = parser.parse_args(argv)
    return run_stage(STAGE, args.engine, lambda: publish(args.engine))


if __name__ == "__main__":
    sys.exit(main())
