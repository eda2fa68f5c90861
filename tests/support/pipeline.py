"""A project the whole pipeline has run in, on its own database: shared by the status and
dashboard tests, which look at the results of one real `dvc repro`."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.pg import create_database, drop_database, forget_database
from tests.support.project import Project

ENGINES = ("mews", "rms")  # two engines show per-engine differences at half the run time


@dataclass
class RanPipeline:
    project: Project
    database: str


@contextmanager
def ran_pipeline(
    template: Project,
    pg_server: str,
    folder: Path,
    engines: tuple[str, ...] = ENGINES,
    *,
    committed: bool = False,
) -> Iterator[RanPipeline]:
    """`dvc repro` of the whole pipeline for `engines` in a copy of `template`, on a new
    database, dropped on exit; `committed`: the copy is committed to git first, as a user's
    checkout is."""
    root = folder / "project"
    shutil.copytree(template.root, root, symlinks=True)
    project = Project(root)
    project.edit_params(lambda p: p.update(engines={e: p["engines"][e] for e in engines}))
    if committed:
        project.commit("The project as checked out")
    name, url = create_database(pg_server, "ran")
    try:
        with pytest.MonkeyPatch.context() as env:
            forget_database(env)
            env.setenv("DATABASE_URL", url)
            project.dvc("repro")
        yield RanPipeline(project, name)
    finally:
        drop_database(pg_server, name)


def pipeline_copy(
    ran: RanPipeline, pg_server: str, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Project]:
    """For a fixture: a copy of the project `ran` ran in, under `folder`, on a copy of its
    database (DATABASE_URL set, the working folder the copy's root); the database is dropped
    after the test."""
    root = folder / "project"
    shutil.copytree(ran.project.root, root, symlinks=True)
    name, url = create_database(pg_server, "copy", template=ran.database)
    forget_database(monkeypatch)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.chdir(root)
    yield Project(root)
    drop_database(pg_server, name)
