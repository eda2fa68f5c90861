"""Drop the dvc.lock entries of stages dvc.yaml no longer declares (`dvcstate prune-lock`).

DVC updates the dvc.lock entries of the stages it runs and never drops the others
(dvc/dvcfile.py Lockfile.dump_stages in DVC 3.67; treeverse/dvc#5293, whose fix #5304 was
closed unmerged; `dvc remove` cannot take foreach stages, #8210), so a removed
engine's `download@E` ... `publish@E` stay in dvc.lock for good, and `dvc repro` parses and
rewrites them after every stage. `prune-lock` drops every entry whose stage dvc.yaml no longer
declares, under the same rules as the repair (no dvc running, DVC's repository lock held, an
atomic write in DVC's own YAML layout, so DVC's next write changes nothing else).
"""

from __future__ import annotations

from pathlib import Path

from stages.errors import PipelineError
from stages.tools.dvcstate import (
    LOCKFILE,
    REPAIR_COMMAND,
    lockfile_damage,
    refuse_while_dvc_runs,
    repo_lock,
    save_good_copy,
    write_atomically,
)
from stages.tools.pipeline import declared_stages

PRUNE_COMMAND = "uv run python -m stages.tools.dvcstate prune-lock"


def _refuse_damaged(root: Path) -> None:
    found = lockfile_damage(root)
    if found:
        raise PipelineError(
            f"{found}, so it cannot be pruned; run `{REPAIR_COMMAND}` first, then "
            f"`{PRUNE_COMMAND}`."
        )


def prune_lockfile(root: Path) -> list[str]:
    """Drop the dvc.lock entries of stages dvc.yaml no longer declares; return their names
    ([] when there were none, so a second run changes nothing).

    The rest of dvc.lock is written back as DVC itself writes it (its ruamel round trip), so
    the remaining entries keep their bytes, atomically, and the last good copy is refreshed.
    Raises DvcBusy when a dvc process works in the project or holds its lock, and
    PipelineError when dvc.lock is damaged (repair first) or dvc.yaml cannot be read.
    """
    from dvc.utils.serialize import dumps_yaml, parse_yaml_for_update

    refuse_while_dvc_runs(root, PRUNE_COMMAND)
    path = root / LOCKFILE
    if not path.exists():
        return []
    _refuse_damaged(root)  # before DVC reads it, which fails on a damaged one
    declared = declared_stages(root, then=f"`{PRUNE_COMMAND}`")
    with repo_lock(root, then=PRUNE_COMMAND):
        _refuse_damaged(root)
        data = parse_yaml_for_update(path.read_text(encoding="utf-8"), str(path))
        entries = data.get("stages") or {}
        stale = [name for name in entries if name not in declared]
        if not stale:
            return []
        for name in stale:
            del entries[name]
        write_atomically(path, dumps_yaml(data).encode("utf-8"))
    save_good_copy(root)
    return stale
