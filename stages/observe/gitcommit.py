"""The commit a checkout is at, for the run history, read from git's files instead of a `git`
process: every stage records it, and starting git cost a stage more than the rest of its
history bookkeeping.

What is read is what `git rev-parse HEAD` reads (gitrepository-layout(5)): the `.git` folder, or
the `.git` file of a linked worktree or submodule (`gitdir: <path>`), whose `commondir` file
names the folder that holds the shared refs; HEAD there, a symbolic ref (`ref: refs/heads/x`)
or a detached commit; the ref as a loose file, else its line in `packed-refs`. A repository
whose refs are in the reftable format (git 2.45+) has no such files and is asked with `git`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_COMMIT = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$")  # SHA-1, or SHA-256 repositories
_MAX_SYMBOLIC_DEPTH = 5  # git's own limit on refs pointing at refs


def git_commit(root: Path) -> str | None:
    """HEAD's commit of the checkout holding `root`, or None outside git, before the first
    commit, or when git's files cannot be read."""
    try:
        git_dir = _git_dir(root.resolve())
        if git_dir is None:
            return None
        common = git_dir
        if (git_dir / "commondir").is_file():
            common = (git_dir / (git_dir / "commondir").read_text().strip()).resolve()
        if (common / "reftable").is_dir():
            return _ask_git(root)
        return _resolve(git_dir, common, "HEAD")
    except (OSError, UnicodeDecodeError):
        return None


def _git_dir(folder: Path) -> Path | None:
    """The git folder of the checkout holding `folder`, looking upwards as git does."""
    for candidate in (folder, *folder.parents):
        dot_git = candidate / ".git"
        if dot_git.is_dir():
            return dot_git
        if dot_git.is_file():  # a linked worktree or a submodule
            text = dot_git.read_text(encoding="utf-8").strip()
            if not text.startswith("gitdir:"):
                return None
            return (candidate / text.removeprefix("gitdir:").strip()).resolve()
    return None


def _resolve(git_dir: Path, common: Path, ref: str) -> str | None:
    """The commit `ref` names: HEAD and per-worktree refs live in `git_dir`, the rest in
    `common` (loose files first, then packed-refs); None for a branch with no commit yet."""
    for _ in range(_MAX_SYMBOLIC_DEPTH):
        text = _loose(git_dir, common, ref)
        if text is None:
            return _packed(common, ref)
        if not text.startswith("ref:"):
            return text if _COMMIT.match(text) else None
        ref = text.removeprefix("ref:").strip()
    return None


def _loose(git_dir: Path, common: Path, ref: str) -> str | None:
    for folder in (git_dir, common):
        path = folder / ref
        if path.is_file():
            return path.read_text(encoding="utf-8").strip()
    return None


def _packed(common: Path, ref: str) -> str | None:
    path = common / "packed-refs"
    if not path.is_file():
        return None
    for line in path.read_text(encoding="utf-8").splitlines():
        commit, _, name = line.partition(" ")
        if name == ref and _COMMIT.match(commit):
            return commit
    return None


def _ask_git(root: Path) -> str | None:
    import subprocess  # only for the reftable format, which has no files to read

    try:
        done = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=2,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None
