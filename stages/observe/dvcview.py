"""What DVC says about each stage: `dvc status` through DVC's Python API, in words.

DVC is the judge of what is up to date. This module asks it once for every stage (a stage a
running DVC command holds is "busy", not an error), turns its change lists into reasons a user
reads ("source changed", "params changed (engines.rms)", "outputs missing"), and tells whether
what DVC reports changed came after a stage's last attempt (then a failure of that attempt is
history, stages.observe.cells)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stages.errors import ConfigError, first_line
from stages.observe import journal
from stages.observe.records import Attempt, parse_time
from stages.rules.config import load_params
from stages.store import s3
from stages.store.secrets import redact
from stages.tools import dvcstate
from stages.tools.pipeline import load_yaml


@dataclass
class DvcView:
    """What DVC says: the changes of each stale stage, the busy stages, or why it could not say."""

    changes: dict[str, list[Any]] = field(default_factory=dict)
    busy: set[str] = field(default_factory=set)
    error: str | None = None
    damaged: list[str] = field(default_factory=list)


def dvc_view(root: Path) -> DvcView:
    """`dvc status` for every stage, through DVC's API; a stage whose files a running DVC
    command holds is reported busy instead of failing the whole status.

    A dvc.lock or rwlock a killed dvc left damaged makes every dvc command fail: that is
    reported (with the repair command) instead of DVC's validation error; a sound dvc.lock is
    kept as the last good copy (stages.tools.dvcstate.save_good_copy)."""
    damaged = dvcstate.damage(root)
    if damaged:
        return DvcView(error=dvcstate.explain(damaged), damaged=[str(d) for d in damaged])
    dvcstate.save_good_copy(root)
    try:
        from dvc.lock import LockError
        from dvc.repo import Repo, lock_repo
    except ImportError as exc:
        return DvcView(error=f"DVC is not installed ({exc}); run `uv sync`.")
    view = DvcView()
    try:
        with Repo(str(root)) as repo, lock_repo(repo):
            for stage in repo.index.stages:
                try:
                    found = stage.status()
                except LockError:
                    view.busy.add(stage.name)
                    continue
                for changes in found.values():
                    view.changes[stage.name] = changes
    except LockError:
        view.error = "another DVC command holds the repository lock; try again in a moment"
    except Exception as exc:
        view.error = f"dvc status failed: {redact(first_line(exc))}"
        fix = s3.explain_dvc_failure(exc, _source_remote(root))
        if fix:
            view.error += f"; {fix}"
    return view


def _source_remote(root: Path) -> str | None:
    """The DVC remote `source.root` names (remote://<name>), for the fix of an S3 error; None
    when it names none or params.yaml is unusable (status reports that on its own)."""
    try:
        source_root = load_params(root).source_root
    except ConfigError:
        return None
    if not source_root.startswith("remote://"):
        return None
    return source_root.removeprefix("remote://").partition("/")[0]


def stale_reasons(changes: list[Any], root: Path, source_root: str, outputs: set[str]) -> list[str]:
    """DVC's change list of one stage, in words: source/params/code/input changed, ..."""
    reasons: list[str] = []

    def add(reason: str) -> None:
        if reason not in reasons:
            reasons.append(reason)

    for change in changes:
        if isinstance(change, str):  # "changed command", "always changed"
            add(
                {"always changed": "always runs"}.get(
                    change, change.replace("changed ", "") + " changed"
                )
            )
            continue
        if not isinstance(change, dict):
            continue
        for kind, entries in change.items():
            if kind == "changed outs":
                states = set(entries.values()) if isinstance(entries, dict) else set()
                add("outputs missing" if states <= {"deleted"} else "outputs changed")
            elif kind == "changed deps" and isinstance(entries, dict):
                for path, state in entries.items():
                    add(_dep_reason(path, state, root, source_root, outputs))
            elif kind == "changed command":
                add("command changed")
            else:
                add(kind.replace("changed ", "") + " changed")
    return reasons


def _dep_reason(path: str, state: Any, root: Path, source_root: str, outputs: set[str]) -> str:
    if isinstance(state, dict):
        return f"params changed ({', '.join(sorted(state))})"
    where = relative(path, root)
    if "://" in path or source_root.startswith("remote://"):
        is_source = "://" in path
    else:
        is_source = where == source_root or where.startswith(source_root.rstrip("/") + "/")
    if is_source:
        return "source missing" if state == "deleted" else "source changed"
    if where in outputs:
        return "input missing" if state == "deleted" else "input changed"
    return "code changed"


def relative(path: str, root: Path) -> str:
    """A path DVC printed (relative to the working directory inside the repo, else to the
    repo root) relative to the repo root, with / separators."""
    candidate = Path(path)
    if not candidate.is_absolute():
        cwd = Path.cwd()
        candidate = (cwd if cwd.is_relative_to(root) else root) / candidate
    try:
        return Path(os.path.normpath(candidate)).relative_to(root).as_posix()
    except ValueError:
        return path


def inputs_fingerprint(root: Path) -> tuple[Any, ...]:
    """A cheap signature (sizes and times) of the local files `dvc status` and the run history
    depend on: while it stays the same, an earlier DvcView is still right (S3 sources aside)."""
    lock = load_yaml(root / "dvc.lock").get("stages") or {}
    paths = {"dvc.yaml", "dvc.lock", "params.yaml", f"{journal.LOGS_FOLDER}/{journal.HISTORY_FILE}"}
    for spec in lock.values():
        for entry in [*(spec.get("deps") or []), *(spec.get("outs") or [])]:
            if isinstance(entry, dict) and entry.get("path") and "://" not in entry["path"]:
                paths.add(entry["path"])
    signature: list[Any] = []
    for name in sorted(paths):
        signature.append((name, *stat(root / name)))
        if (root / name).is_dir():
            for folder, _, files in os.walk(root / name):
                signature.extend((folder, f, *stat(Path(folder) / f)) for f in sorted(files))
    return tuple(signature)


def stat(path: Path) -> tuple[int, int]:
    """(modification time in ns, size in bytes) of `path`; (0, -1) when it cannot be read."""
    try:
        found = path.stat()
    except OSError:
        return (0, -1)
    return (found.st_mtime_ns, found.st_size)


def changed_after(changes: list[Any], root: Path, last: Attempt | None) -> bool:
    """Whether a local dependency that DVC reports changed for a stage (a file or folder,
    params.yaml for params) changed after the stage's last attempt ended: then the stage was
    not tried on what it has now, and that attempt's failure is history. Outputs do not
    count: the attempt itself writes beside them (and a killed one records no end).

    A missing path counts by the time of the folder that held it (removing a file sets its
    folder's modification time); S3 objects, the command and unknown times count as before."""
    moment = parse_time(last.ended_at or last.started_at) if last else None
    if moment is None:
        return False
    paths: list[str] = []
    for change in changes:
        if not isinstance(change, dict):
            continue
        for kind, entries in change.items():
            if kind == "changed deps" and isinstance(entries, dict):
                paths.extend(str(path) for path in entries)
    cutoff = moment.timestamp()
    return any(
        _changed_at(root / relative(path, root)) > cutoff for path in paths if "://" not in path
    )


def _changed_at(path: Path) -> float:
    """When `path` last changed (seconds since the epoch): a folder by its newest entry, a
    missing path by its nearest existing folder; 0 when nothing can say."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            break
    else:
        return 0.0
    times = [stat(candidate)[0]]
    if candidate == path and path.is_dir():
        for folder, _, files in os.walk(path):
            times.append(stat(Path(folder))[0])
            times.extend(stat(Path(folder) / name)[0] for name in files)
    return max(times) / 1e9
