"""DVC's own state files: check them, keep the last good dvc.lock, repair them.

    python -m stages.tools.dvcstate check          # exit 1 and one line per damaged file
    python -m stages.tools.dvcstate repair         # = python -m stages.observe.status --repair
    python -m stages.tools.dvcstate run ARGS ...   # `dvc ARGS` run the safe way (CI uses it)
    python -m stages.tools.dvcstate prune-lock     # drop entries of stages no longer declared

Repair, only when no dvc process works in the project (else it says which pid to wait for):
- a damaged rwlock is removed: it only names pids of dead processes then, and DVC treats a
  missing rwlock as "nothing locked";
- a damaged dvc.lock is replaced by the last good copy (.dvc/tmp/dvc.lock.last-good, taken
  whenever a valid dvc.lock is seen), else by the committed one (git HEAD), else removed. Any
  older dvc.lock is safe, because DVC checks every hash it records against the workspace: an
  entry that no longer matches makes its stage re-run, it never makes a stale stage look up to
  date. Restoring rather than dropping only saves work: without a dvc.lock every stage of every
  engine runs again (ingest then changes nothing, publish uploads the same bytes again). The
  damaged file is kept as .dvc/tmp/dvc.lock.damaged for inspection.

Stopping dvc without damage is stages.tools.dvcrun; dropping entries of removed stages is
stages.tools.dvcprune. The command above dispatches to both.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages.errors import PipelineError
from stages.rules.config import project_root

LOCKFILE = "dvc.lock"
RWLOCK = ".dvc/tmp/rwlock"
REPO_LOCK = ".dvc/tmp/lock"
LAST_GOOD = ".dvc/tmp/dvc.lock.last-good"
DAMAGED = ".dvc/tmp/dvc.lock.damaged"
REPAIR_COMMAND = "uv run python -m stages.observe.status --repair"


@dataclass(frozen=True)
class Damage:
    """One damaged DVC state file: its path relative to the project and what is wrong."""

    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.path} {self.problem}"


class DvcBusy(PipelineError):
    """A dvc process still works in the project, so its state files must not be touched:
    `what` says which, `then` is the command to run once it is done."""

    def __init__(self, what: str, then: str):
        super().__init__(f"{what}; let it finish or stop it with Ctrl-C, then run `{then}`.")


# --- checks -----------------------------------------------------------------------------------


def lockfile_damage(root: Path) -> Damage | None:
    """What is wrong with `root`/dvc.lock (None: absent or sound).

    Sound means: ends with a newline (DVC's dump always does; a write cut short almost never
    ends on one), parses as YAML, and has DVC's shape (schema 2.0; per stage a `cmd`; deps and
    outs lists of mappings with a path and a hash). A file cut exactly at a line end that still
    has this shape only lacks stage entries, which makes those stages run again.
    """
    try:
        if _is_last_good(root, (root / LOCKFILE).stat()):
            return None  # the very file that was checked when it was copied: no parse again
    except OSError:
        pass  # absent or unreadable: _state_bytes tells which
    data = _state_bytes(root, LOCKFILE)
    if not isinstance(data, bytes):
        return data
    problem = lockfile_problem(data)
    return Damage(LOCKFILE, problem) if problem else None


def lockfile_problem(data: bytes) -> str | None:
    """Why `data` is not a complete dvc.lock, in a few words; None when it is one."""
    import yaml

    if not data.strip():
        return "is empty"
    if not data.endswith(b"\n"):
        return "is cut short"
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        parsed = yaml.load(data, Loader=loader)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        return f"is not valid YAML{line}"
    if not isinstance(parsed, dict) or not isinstance(parsed.get("stages", {}), dict):
        return "is not a dvc.lock (no `stages` mapping)"
    for name, entry in (parsed.get("stages") or {}).items():
        if not isinstance(entry, dict) or "cmd" not in entry:
            return f"has a broken entry for stage {name}"
        for key in ("deps", "outs"):
            items = entry.get(key, [])
            if not isinstance(items, list) or not all(_hashed(item) for item in items):
                return f"has a broken `{key}` list for stage {name}"
        if not isinstance(entry.get("params", {}), dict):
            return f"has broken `params` for stage {name}"
    return None


def _hashed(item: Any) -> bool:
    return isinstance(item, dict) and isinstance(item.get("path"), str) and len(item) >= 2


def rwlock_damage(root: Path) -> Damage | None:
    """What is wrong with `root`/.dvc/tmp/rwlock (None: absent or in DVC's format)."""
    data = _state_bytes(root, RWLOCK)
    if not isinstance(data, bytes):
        return data
    if not data.strip():
        return Damage(RWLOCK, "is empty")
    try:
        parsed = json.loads(data)
    except ValueError:
        return Damage(RWLOCK, "is not valid JSON (cut short)")
    if not _rwlock_shape(parsed):
        return Damage(RWLOCK, "is not in DVC's rwlock format")
    return None


def _state_bytes(root: Path, name: str) -> bytes | Damage | None:
    """The bytes of DVC's state file `name`: None when it is absent, a Damage when unreadable."""
    try:
        return (root / name).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return Damage(name, f"cannot be read ({exc.strerror})")


def _rwlock_shape(data: Any) -> bool:
    """dvc.rwlock.SCHEMA: {"write": {path: info}, "read": {path: [info]}}, info {pid, cmd}."""

    def info(value: Any) -> bool:
        return (
            isinstance(value, dict)
            and isinstance(value.get("pid"), int)
            and isinstance(value.get("cmd"), str)
        )

    if not isinstance(data, dict) or set(data) - {"read", "write"}:
        return False
    write, read = data.get("write", {}), data.get("read", {})
    return (
        isinstance(write, dict)
        and all(info(v) for v in write.values())
        and isinstance(read, dict)
        and all(isinstance(v, list) and all(info(i) for i in v) for v in read.values())
    )


def damage(root: Path) -> list[Damage]:
    """Every damaged DVC state file in the project at `root` ([] when all is sound)."""
    return [found for found in (lockfile_damage(root), rwlock_damage(root)) if found]


def explain(found: Sequence[Damage]) -> str:
    """One line: what is damaged, why that happens, and the one command that repairs it."""
    what = "; ".join(str(d) for d in found)
    return (
        f"{what} (a dvc process was stopped while writing it), so every dvc command fails; "
        f"run `{REPAIR_COMMAND}` (it restores the last good dvc.lock once no dvc process runs)."
    )


# --- the last good dvc.lock -------------------------------------------------------------------


def save_good_copy(root: Path) -> bool:
    """Copy a sound dvc.lock to .dvc/tmp/dvc.lock.last-good (atomically); True when copied.

    Cheap when nothing changed: the copy keeps dvc.lock's size and mtime, so an unchanged file
    is recognised by one stat each. Never raises (a read-only checkout just keeps no copy).
    """
    source, copy = root / LOCKFILE, root / LAST_GOOD
    try:
        found = source.stat()
        if _is_last_good(root, found):
            return False
        data = source.read_bytes()
        if lockfile_problem(data) is not None:
            return False
        copy.parent.mkdir(parents=True, exist_ok=True)
        temporary = copy.with_name(f".{copy.name}.{os.getpid()}.tmp")
        temporary.write_bytes(data)
        os.utime(temporary, ns=(found.st_atime_ns, found.st_mtime_ns))
        temporary.replace(copy)
        return True
    except (OSError, ValueError):
        return False


def _is_last_good(root: Path, lockfile: os.stat_result) -> bool:
    """Whether dvc.lock (its stat `lockfile`) is the file last kept as the good copy: the copy
    keeps its size and mtime, and any write to dvc.lock (DVC's, or one cut short) moves the
    mtime."""
    try:
        kept = (root / LAST_GOOD).stat()
    except FileNotFoundError:
        return False
    return (kept.st_size, kept.st_mtime_ns) == (lockfile.st_size, lockfile.st_mtime_ns)


# --- who is running -----------------------------------------------------------------------------


def dvc_processes(root: Path) -> list[int]:
    """Pids of live dvc processes (`dvc ...`, `python -m dvc ...`) working in `root`."""
    import psutil

    root = root.resolve()
    found = []
    for process in psutil.process_iter(["pid", "cmdline", "cwd"]):
        info = process.info
        if info["pid"] == os.getpid() or not _is_dvc(info.get("cmdline") or []):
            continue
        cwd = info.get("cwd")
        if cwd is None or Path(cwd) == root or Path(cwd).is_relative_to(root):
            found.append(info["pid"])  # an unreadable cwd might be ours: count it
    return found


def _is_dvc(cmdline: Sequence[str]) -> bool:
    """`dvc ...`, `python .../bin/dvc ...`, `uv run dvc ...` or `python -m dvc ...`."""
    head = list(cmdline[:4])
    if any(os.path.basename(arg) == "dvc" for arg in head):
        return True
    return any(a == "-m" and b == "dvc" for a, b in zip(head, head[1:], strict=False))


@contextlib.contextmanager
def repo_lock(root: Path, then: str = REPAIR_COMMAND) -> Iterator[None]:
    """Hold DVC's repository lock (the flock on .dvc/tmp/lock DVC's zc.lockfile takes), so no
    dvc command starts meanwhile; raises DvcBusy (saying to run `then` afterwards) when a dvc
    process holds it."""
    path = root / REPO_LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DvcBusy(f"A dvc command holds {REPO_LOCK} in {root}", then) from None
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# --- repair -------------------------------------------------------------------------------------


def refuse_while_dvc_runs(root: Path, then: str) -> None:
    """Raise DvcBusy, naming the pids and saying to run `then` afterwards, while dvc works in
    `root`: its state may be half-written right now."""
    busy = dvc_processes(root)
    if busy:
        raise DvcBusy(f"dvc is still running in {root} (pid {', '.join(map(str, busy))})", then)


def repair(root: Path) -> list[str]:
    """Repair damaged DVC state files in `root`; return what was done, one sentence each.

    Raises DvcBusy (naming the pids) when a dvc process works in the project: its state may be
    half-written right now, and only a finished dvc leaves files that can be judged.
    """
    refuse_while_dvc_runs(root, REPAIR_COMMAND)
    done: list[str] = []
    with repo_lock(root):
        if rwlock_damage(root):
            (root / RWLOCK).unlink()
            done.append(f"removed the damaged {RWLOCK} (it only named dvc processes that died)")
        found = lockfile_damage(root)
        if found:
            done.append(_restore_lockfile(root, found))
        else:
            save_good_copy(root)
    return done


def _restore_lockfile(root: Path, found: Damage) -> str:
    lockfile, damaged = root / LOCKFILE, root / DAMAGED
    damaged.parent.mkdir(parents=True, exist_ok=True)
    os.replace(lockfile, damaged)
    kept = f"the damaged file is kept as {DAMAGED}"
    last_good = root / LAST_GOOD
    with contextlib.suppress(OSError):
        if lockfile_problem(last_good.read_bytes()) is None:
            write_atomically(lockfile, last_good.read_bytes())
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(last_good.stat().st_mtime))
            return (
                f"{LOCKFILE} {found.problem}: restored the last good copy (of {stamp}); "
                f"stages run since then run again; {kept}"
            )
    committed = _committed_lockfile(root)
    if committed is not None:
        write_atomically(lockfile, committed)
        return (
            f"{LOCKFILE} {found.problem}: restored the committed version (git HEAD); stages "
            f"run since that commit run again; {kept}"
        )
    return (
        f"{LOCKFILE} {found.problem} and there is no good copy: removed it, so the next "
        f"`dvc repro` runs every stage again (the run-cache restores what it can); {kept}"
    )


def _committed_lockfile(root: Path) -> bytes | None:
    try:
        shown = subprocess.run(
            ["git", "show", f"HEAD:{LOCKFILE}"], cwd=root, capture_output=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if shown.returncode != 0 or lockfile_problem(shown.stdout) is not None:
        return None
    return shown.stdout


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` as one rename of an fsynced temp file beside it."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)


def repair_if_idle(root: Path) -> list[str]:
    """Before starting dvc: repair damaged state if no dvc runs; [] when nothing was damaged.

    Raises DvcBusy (with the repair command) when the state is damaged and dvc still runs."""
    return repair(root) if damage(root) else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stages.tools.dvcstate",
        description="Check or repair DVC's state files (dvc.lock, .dvc/tmp/rwlock), drop "
        "dvc.lock entries of stages dvc.yaml no longer declares (prune-lock), or run dvc so "
        "that stopping it never damages them.",
    )
    parser.add_argument("action", choices=("check", "repair", "run", "prune-lock"))
    parser.add_argument("dvc_args", nargs=argparse.REMAINDER, help="for run: dvc's arguments")
    args = parser.parse_args(argv)
    # Imported here: dvcrun and dvcprune build on this module, which the runner imports alone.
    from stages.tools.dvcprune import prune_lockfile
    from stages.tools.dvcrun import run_dvc

    try:
        root = project_root()
        if args.action == "run":
            return run_dvc(root, args.dvc_args)
        if args.action == "check":
            found = damage(root)
            if found:
                print(f"dvcstate: {explain(found)}", file=sys.stderr)
                return 1
            save_good_copy(root)
            print("dvcstate: dvc.lock and the rwlock are sound")
            return 0
        if args.action == "prune-lock":
            pruned = prune_lockfile(root)
            if pruned:
                names = ", ".join(pruned)
                print(f"dvcstate: dropped {len(pruned)} stale dvc.lock entries: {names}")
            else:
                print("dvcstate: nothing to prune: dvc.lock holds only stages dvc.yaml declares")
            return 0
        done = repair(root)
    except PipelineError as exc:
        print(f"dvcstate: {exc}", file=sys.stderr)
        return 1
    for line in done or ["nothing to repair: dvc.lock and the rwlock are sound"]:
        print(f"dvcstate: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
