"""What every stage does around its work: logging to the console and to
logs/<stage>/<engine>.log, turning a PipelineError into one readable line and exit code 1."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

from stages.errors import PipelineError

log = logging.getLogger("stages")


def engine_parser(stage: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m stages.{stage}", description=description)
    parser.add_argument("--engine", required=True, help="a key of `engines` in params.yaml")
    return parser


def run_stage(
    stage: str, engine: str, work: Callable[[], None], *, log_root: Path | None = None
) -> int:
    """Run `work` for one engine with logging; return the process exit code."""
    label = f"{stage}@{engine}"
    _configure_logging(stage, engine, log_root)
    started = time.monotonic()
    log.info("%s: started", label)
    try:
        work()
    except PipelineError as exc:
        log.error("%s failed: %s", label, exc)
        return 1
    except KeyboardInterrupt:
        log.error("%s: interrupted", label)
        return 130
    except Exception:
        log.exception("%s: unexpected error (a bug; please report it with this log)", label)
        return 2
    log.info("%s: done in %.2f s", label, time.monotonic() - started)
    return 0


def _configure_logging(stage: str, engine: str, log_root: Path | None) -> None:
    from stages.config import project_root

    root = logging.getLogger()
    root.setLevel(logging.INFO)
    # botocore announces where it found credentials at INFO: noise, and too close to secrets.
    for chatty in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(console)
    try:
        folder = (log_root or project_root() / "logs") / stage
        folder.mkdir(parents=True, exist_ok=True)
        file = logging.FileHandler(folder / f"{engine}.log", encoding="utf-8")
    except (OSError, PipelineError):
        return  # a read-only checkout still runs; the console keeps the log
    file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(file)
