"""A throw-away copy of this project, for tests that run stages or `dvc` for real."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COPIED = (
    "dvc.yaml",
    "params.yaml",
    ".dvcignore",
    ".gitignore",
    "stages",
    "data/sources",
    *(f"data/{folder}/.gitignore" for folder in ("raw", "ingest", "exports", "published")),
)


@dataclass
class Project:
    root: Path
    # The environment commands run with; None: this process's, with the venv first on PATH.
    env: dict[str, str] | None = None

    @property
    def params(self) -> dict[str, Any]:
        return yaml.safe_load((self.root / "params.yaml").read_text(encoding="utf-8"))

    def params_engine(self, name: str):
        """The validated Engine `name` of this project's params.yaml."""
        from stages.rules.config import load_params

        return load_params(self.root).engine(name)

    def edit_params(self, change: Callable[[dict[str, Any]], None]) -> None:
        params = self.params
        change(params)
        text = yaml.safe_dump(params, sort_keys=False)
        (self.root / "params.yaml").write_text(text, encoding="utf-8")

    def run(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess:
        """Run a command in the project the way DVC would: venv first on PATH."""
        if self.env is not None:
            env = self.env
        else:
            env = dict(os.environ)
            env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
            env.pop("CRAWL_PIPELINE_ROOT", None)
        result = subprocess.run(
            args, cwd=self.root, env=env, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
            )
        return result

    def dvc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run(sys.executable, "-m", "dvc", *args, check=check)

    def stage(self, module: str, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        return self.run(sys.executable, "-m", f"stages.{module}", *args, check=check)

    def raw(self, engine: str) -> bytes:
        """The crawl file download@engine left in data/raw."""
        return (self.root / "data/raw" / f"{engine}.txt").read_bytes()

    def source_meta(self, engine: str) -> dict[str, Any]:
        """The source's identity download@engine recorded (what ingest depends on)."""
        return json.loads((self.root / "data/raw" / f"{engine}.meta.json").read_text())

    def write_raw(self, engine: str, text: str, modified: datetime) -> None:
        """What download@engine leaves: the file and the meta saying when the source changed."""
        raw = self.root / "data/raw"
        raw.mkdir(parents=True, exist_ok=True)
        (raw / f"{engine}.txt").write_text(text)
        meta = {"source_modified": modified.isoformat()}
        (raw / f"{engine}.meta.json").write_text(json.dumps(meta))

    def commit(self, message: str) -> None:
        """`git add -A` and commit, as a user who runs the pipeline and commits its record."""
        self.run("git", "add", "-A")
        self.run(
            "git", "-c", "user.name=Pipeline Test", "-c", "user.email=test@example.com",
            "commit", "--quiet", "--allow-empty", "-m", message,
        )  # fmt: skip

    def git_status(self) -> list[str]:
        """`git status --porcelain` lines: what a user would see as changed or new."""
        return self.run("git", "status", "--porcelain").stdout.splitlines()

    def ran_stages(self, output: str) -> list[str]:
        """The stages a `dvc repro` output says it ran."""
        return [
            line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")
        ]

    def add_s3_remote(self, name: str, url: str, endpoint_url: str) -> None:
        """What `dvc remote add` + `dvc remote modify endpointurl` write, without two DVC starts."""
        from configobj import ConfigObj

        config = ConfigObj(str(self.root / ".dvc" / "config"))
        config[f'remote "{name}"'] = {"url": url, "endpointurl": endpoint_url}
        config.write()


def copy_project(destination: Path, *, stages_from: Path | None = None) -> Project:
    """Copy the pipeline's files into `destination`: a project whose stages run by hand, with
    no git or DVC. `stages_from` is another copy of the stages package to use (a proposed
    change, for a benchmark) instead of this checkout's."""
    destination.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        source = stages_from if name == "stages" and stages_from else REPO / name
        target = destination / name
        if source.is_dir():
            ignore = shutil.ignore_patterns("__pycache__")
            shutil.copytree(source, target, ignore=ignore, dirs_exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return Project(destination)


def make_project(destination: Path) -> Project:
    """Copy the pipeline's files into `destination` and make it a git + DVC repository."""
    project = copy_project(destination)
    project.run("git", "init", "--quiet")
    project.dvc("init", "--quiet")
    project.dvc("config", "core.analytics", "false")
    return project


def _fast_retries(params: dict[str, Any]) -> None:
    for section in ("source", "ingest", "publish"):
        params[section]["retry_delay"] = 0.01
    for section in ("source", "publish"):  # the sections that have a timeout
        params[section]["timeout"] = 2


@pytest.fixture(scope="session")
def project_template(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """One git + DVC initialised copy per session; each test gets a copy of it (DVC is slow to
    start, so `git init` and `dvc init` run once)."""
    template = make_project(tmp_path_factory.mktemp("template") / "project")
    template.edit_params(_fast_retries)
    return template


@pytest.fixture
def project(project_template: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    """A fresh copy of the project with fast retries, and the working directory inside it."""
    root = tmp_path / "project"
    shutil.copytree(project_template.root, root, symlinks=True)
    monkeypatch.chdir(root)
    return Project(root)
