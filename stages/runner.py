"""What every stage does around its work: logging to the console and to
logs/<stage>/<engine>.log, recording each attempt in the run history (stages.observe.history),
turning a PipelineError into one readable line and exit code 1, and looking after DVC's state
files (stages.tools.dvcstate): a copy of each sound dvc.lock it starts with, a warning with the
repair command when one is damaged."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from stages.errors import PipelineError, explain_os_error, first_line, sigterm_as_interrupt
from stages.observe import alerts, recorder
from stages.store.retry import add_retry_listener
from stages.store.secrets import RedactingFormatter
from stages.tools import dvcstate

log = logging.getLogger("stages")


def engine_parser(stage: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m stages.{stage}", description=description)
    parser.add_argument("--engine", required=True, help="a key of `engines` in params.yaml")
    return parser


def path_option(text: str) -> Path:
    """argparse `type` for a path option: an empty value (`--file ""`) is refused as empty,
    where Path("") would quietly mean the current folder."""
    if not text:
        raise argparse.ArgumentTypeError("is empty; give a path")
    return Path(text)


def run_stage(
    stage: str,
    engine: str,
    work: Callable[[], object],
    *,
    log_root: Path | None = None,
    record: bool = True,
) -> int:
    """Run `work` for one engine with logging and run history; return the process exit code.

    `work` may return a mapping of counts for the history; otherwise the counts are read from
    the stage's marker. Every retry a retry loop announces (stages.store.retry.notify_retry) ends
    the current attempt as "retried" and starts the next one. `record=False` keeps a run that
    changes nothing (a dry run) out of the history.
    """
    label = f"{stage}@{engine}"
    _configure_logging(stage, engine, log_root)
    _look_after_dvc_state()
    run = recorder.StageRun.begin(stage, engine, logs=log_root) if record else None
    remove_listener = add_retry_listener(run.retried) if run else lambda: None
    started = time.monotonic()
    log.info("%s: started", label)
    outcome, error, counts, code = "failed", None, None, 2
    try:
        with sigterm_as_interrupt():
            result = work()
        outcome, code = "succeeded", 0
        counts = result if isinstance(result, Mapping) else None
    except PipelineError as exc:
        message = _without_label(str(exc), label)
        log.error("%s failed: %s", label, message)
        error, code = _without_label(first_line(exc), label), 1
    except KeyboardInterrupt as exc:
        log.error("%s: interrupted", label)
        error, code = str(exc) or "interrupted", 130
    except Exception as exc:
        machine = explain_os_error(exc)  # disk full, read-only folder: not a bug
        if machine:
            log.error("%s failed: %s", label, machine)
            error, code = machine, 1
        else:
            log.exception("%s: unexpected error (a bug; please report it with this log)", label)
            error = f"{type(exc).__name__}: {first_line(exc)}"
    finally:
        remove_listener()
        if run:
            run.finish(outcome, error=error, counts=counts)
    if code not in (0, 130) and record:  # an interrupt is someone's decision, not news
        alerts.stage_failed(stage, engine, error, attempt=run.current.attempt if run else 1)
    if code == 0:
        log.info("%s: done in %.2f s", label, time.monotonic() - started)
    return code


def _without_label(message: str, label: str) -> str:
    """`message` without a leading "<stage>@<engine>: ": the runner names the stage once, in
    front of every error, and a retry's description names it too, for its log lines."""
    return message.removeprefix(f"{label}: ")


def _look_after_dvc_state() -> None:
    """Under `dvc repro`, DVC has just read dvc.lock: keep it as the last good copy. Run by
    hand, say so when DVC's state files are damaged (dvc would fail on them), with the fix.

    Under dvc nothing is judged: another `dvc repro` beside this one may be rewriting the files
    this very moment, and our own dvc still runs, so a repair would have to wait anyway."""
    from stages.rules.config import project_root

    try:
        root = project_root()
    except PipelineError:
        return
    if os.environ.get("DVC_STAGE"):
        dvcstate.save_good_copy(root)
        return
    found = dvcstate.damage(root)
    if found and not dvcstate.dvc_processes(root):
        log.warning("warning: %s", dvcstate.explain(found))
    elif not found:
        dvcstate.save_good_copy(root)


def _configure_logging(stage: str, engine: str, log_root: Path | None) -> None:
    from stages.rules.config import project_root

    root = logging.getLogger()
    root.setLevel(logging.INFO)
    # botocore announces where it found credentials at INFO: noise, and too close to secrets.
    for chatty in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(RedactingFormatter("%(message)s"))
    root.addHandler(console)
    try:
        folder = (log_root or project_root() / "logs") / stage
        folder.mkdir(parents=True, exist_ok=True)
        file = logging.FileHandler(folder / f"{engine}.log", encoding="utf-8")
    except (OSError, PipelineError):
        return  # a read-only checkout still runs; the console keeps the log
    file.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(file)
