"""Removing an engine, then `python -m stages.tools.dvcstate prune-lock` (issue 15, "Also").

DVC never drops the dvc.lock entries of stages dvc.yaml no longer declares (treeverse/dvc#5293),
and rewrites them after every stage. These tests run the pipeline for two engines, remove one
from params.yaml as a user would, and check what the prune leaves: a clean `dvc status`, the
other engine's entries byte for byte, and a file DVC has no reason to rewrite.
"""

from __future__ import annotations

import pytest
import yaml

from stages.tools import dvcprune, dvcstate
from tests.support.dvckill import a_dvc_process_in
from tests.support.pipeline import pipeline_copy, ran_pipeline

KEPT, REMOVED = "mews", "rms"
REMOVED_STAGES = [f"{kind}@{REMOVED}" for kind in ("download", "ingest", "export", "publish")]


@pytest.fixture(scope="module")
def ran(project_template, pg_server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("prune")
    with ran_pipeline(project_template, pg_server, folder, engines=(KEPT, REMOVED)) as pipeline:
        yield pipeline


@pytest.fixture
def project(ran, pg_server, tmp_path, monkeypatch):
    """A copy of the project the pipeline ran in, with rms then removed from params.yaml."""
    for project in pipeline_copy(ran, pg_server, tmp_path, monkeypatch):
        project.edit_params(lambda params: params["engines"].pop(REMOVED))
        yield project


def lock_entries(project) -> dict:
    return yaml.safe_load((project.root / "dvc.lock").read_text())["stages"]


def entry_text(project, name: str) -> str:
    """The lines of dvc.lock that hold stage `name`'s entry, as written."""
    lines = (project.root / "dvc.lock").read_text().splitlines()
    start = lines.index(f"  {name}:")
    end = next(
        (i for i in range(start + 1, len(lines)) if not lines[i].startswith("    ")), len(lines)
    )
    return "\n".join(lines[start:end])


def test_dvc_keeps_a_removed_engines_entries_in_dvc_lock_after_a_run(project):
    assert "Data and pipelines are up to date" in project.dvc("repro").stdout

    assert set(REMOVED_STAGES) <= set(lock_entries(project))


def test_prune_lock_drops_the_removed_engines_four_stages_and_names_them(project):
    pruned = project.stage("tools.dvcstate", "prune-lock", check=True)

    assert f"dropped 4 stale dvc.lock entries: {', '.join(REMOVED_STAGES)}" in pruned.stdout
    assert sorted(lock_entries(project)) == sorted(
        f"{kind}@{KEPT}" for kind in ("download", "ingest", "export", "publish")
    )


def test_after_the_prune_dvc_status_is_clean_and_the_other_engines_entries_are_unchanged(
    project,
):
    kept = {name: entry_text(project, name) for name in lock_entries(project) if KEPT in name}

    dvcprune.prune_lockfile(project.root)

    assert project.dvc("status").stdout.strip() == "Data and pipelines are up to date."
    assert {name: entry_text(project, name) for name in kept} == kept


def test_a_pruned_dvc_lock_is_written_as_dvc_writes_it_so_a_no_op_repro_leaves_its_bytes(
    project,
):
    dvcprune.prune_lockfile(project.root)
    pruned = (project.root / "dvc.lock").read_bytes()

    assert "Data and pipelines are up to date" in project.dvc("repro").stdout
    assert (project.root / "dvc.lock").read_bytes() == pruned
    assert (project.root / dvcstate.LAST_GOOD).read_bytes() == pruned


def test_a_second_prune_finds_nothing_and_leaves_dvc_lock_untouched(project):
    dvcprune.prune_lockfile(project.root)
    before = (project.root / "dvc.lock").stat()

    again = project.stage("tools.dvcstate", "prune-lock", check=True)

    assert "nothing to prune" in again.stdout
    after = (project.root / "dvc.lock").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_the_prune_leaves_dvc_lock_alone_while_a_dvc_process_runs_in_the_project(project, tmp_path):
    before = (project.root / "dvc.lock").read_bytes()
    with a_dvc_process_in(project, tmp_path) as running:
        with pytest.raises(dvcstate.DvcBusy, match=f"pid {running.pid}.*prune-lock"):
            dvcprune.prune_lockfile(project.root)
        assert (project.root / "dvc.lock").read_bytes() == before


def test_a_damaged_dvc_lock_is_not_pruned_and_the_message_names_the_repair(project):
    lockfile = project.root / "dvc.lock"
    lockfile.write_bytes(lockfile.read_bytes()[:2000])  # cut short, as a killed dvc leaves it

    refused = project.stage("tools.dvcstate", "prune-lock")

    assert refused.returncode == 1
    assert "dvc.lock is cut short, so it cannot be pruned" in refused.stderr
    assert dvcstate.REPAIR_COMMAND in refused.stderr
    assert len(lockfile.read_bytes()) == 2000
