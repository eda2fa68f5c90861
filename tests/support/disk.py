"""Disks that fail: a folder on a full or read-only file system, for one command only.

As root with mount rights, the command runs in its own mount namespace (`unshare -m`) where a
tiny or read-only tmpfs is mounted over the folder; nothing outside that process sees it and
nothing is left mounted. Without those rights a full disk is approximated by a file size
limit (`prlimit --fsize`, which fails writes with EFBIG), and a read-only folder is skipped.
"""

from __future__ import annotations

import functools
import shlex
import shutil
import subprocess
from pathlib import Path


@functools.cache
def can_mount() -> bool:
    """Whether `unshare -m` may mount a tmpfs here (root in a sandbox that allows it)."""
    if not shutil.which("unshare"):
        return False
    probe = "d=$(mktemp -d) && mount -t tmpfs -o size=4k tmpfs $d && umount $d; rmdir $d"
    return subprocess.run(["unshare", "-m", "sh", "-c", probe], capture_output=True).returncode == 0


def on_full_disk(folder: Path, command: list[str], *, size_kib: int = 16) -> list[str]:
    """`command` run with `folder` on a file system of `size_kib` KiB (or with file writes
    limited to that size when mounts are not allowed)."""
    folder.mkdir(parents=True, exist_ok=True)
    if can_mount():
        mount = f"mount -t tmpfs -o size={size_kib}k tmpfs {shlex.quote(str(folder))}"
        return ["unshare", "-m", "sh", "-c", f"{mount} && exec {shlex.join(command)}"]
    return ["prlimit", f"--fsize={size_kib * 1024}", *command]


def on_read_only_folder(folder: Path, command: list[str]) -> list[str]:
    """`command` run with `folder` read-only (an empty read-only tmpfs over it)."""
    folder.mkdir(parents=True, exist_ok=True)
    mount = f"mount -t tmpfs -o ro,size=4k tmpfs {shlex.quote(str(folder))}"
    return ["unshare", "-m", "sh", "-c", f"{mount} && exec {shlex.join(command)}"]
