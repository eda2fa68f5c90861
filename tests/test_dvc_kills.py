"""A kill of `dvc` itself must not brick the workspace (issue 12, item 8).

DVC rewrites dvc.lock and .dvc/tmp/rwlock in place; SIGTERM or SIGKILL between the truncation
and the write leaves them empty and every dvc command fails. These tests reproduce that with a
real `dvc repro -f -s publish@rms`, then show the way back
(`python -m stages.observe.status --repair`) and that our own wrapper (`stages.tools.parallel`)
never causes it."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from stages.tools import dvcstate
from tests.support import dvckill
from tests.support.pipeline import pipeline_copy, ran_pipeline

STAGE = "publish@rms"
# Delays after the stage starts: during the stage, as it ends, while DVC hashes and writes.
DELAYS = (0.0, 0.4, 0.8, 1.4)


@pytest.fixture(scope="module")
def ran(project_template, pg_server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("kills")
    with ran_pipeline(project_template, pg_server, folder, engines=("rms",)) as pipeline:
        yield pipeline


@pytest.fixture
def project(ran, pg_server, tmp_path, monkeypatch):
    """A copy of the project the pipeline ran in (rms only), on a copy of its database."""
    yield from pipeline_copy(ran, pg_server, tmp_path, monkeypatch)


def published(project):
    record = json.loads((project.root / "data/published/rms.json").read_text())
    record.pop("time")
    return record


def locked_stages(project):
    """dvc.lock's entries, without the published marker's hash (it holds the run's time)."""
    import yaml

    stages = yaml.safe_load((project.root / "dvc.lock").read_text())["stages"]
    for out in stages[STAGE].get("outs", []):  # publish may have no declared output
        out.pop("md5"), out.pop("size")
    return stages


def assert_dvc_status_works(project):
    """`dvc status` through DVC's API in this process (a new dvc process costs seconds)."""
    from dvc.repo import Repo

    with Repo(str(project.root)) as repo:
        repo.status()


def interrupted(project, target, sig):
    """`dvc repro -f -s publish@rms`, sent `sig` while it rewrites `target`."""
    dvc = dvckill.start(project, "dvc", "repro", "-f", "-s", STAGE)
    caught = dvckill.kill_while_written(dvc, project.root / target, sig)
    dvc.wait(60)
    dvckill.wait_group_gone(dvc.pid)
    assert caught, f"dvc ended before it rewrote {target}"
    return dvc.returncode


def test_sigterm_while_dvc_writes_dvc_lock_is_repaired_by_the_one_command_status_prints(
    project,
):
    before = locked_stages(project)
    assert interrupted(project, "dvc.lock", signal.SIGTERM) == -signal.SIGTERM
    assert (project.root / "dvc.lock").read_bytes() == b""
    # DVC's own behaviour: every command fails from now on.
    broken = project.dvc("status", check=False)
    assert broken.returncode != 0 and "dvc.lock" in broken.stderr
    shown = project.stage("observe.status")
    assert shown.returncode == 1
    assert "dvc.lock is empty" in shown.stdout
    assert f"Repair it: {dvcstate.REPAIR_COMMAND}" in shown.stdout
    repaired = project.stage("observe.status", "--repair")
    assert "restored the last good copy" in repaired.stderr, repaired.stderr
    assert (project.root / dvcstate.DAMAGED).read_bytes() == b""
    assert locked_stages(project) == before
    code_and_text = project.dvc("repro")
    assert project.ran_stages(code_and_text.stdout) in ([], [STAGE])
    assert "Data and pipelines are up to date" in project.dvc("repro").stdout
    assert project.stage("observe.status").returncode == 0


def test_sigkill_while_dvc_writes_its_rwlock_is_repaired_by_removing_it(project):
    assert interrupted(project, dvcstate.RWLOCK, signal.SIGKILL) == -signal.SIGKILL
    assert (project.root / dvcstate.RWLOCK).read_bytes() == b""
    broken = project.dvc("status", check=False)
    assert broken.returncode != 0 and "RWLock-file" in broken.stderr
    assert ".dvc/tmp/rwlock is empty" in project.stage("observe.status").stdout
    repaired = project.stage("observe.status", "--repair")
    assert "removed the damaged .dvc/tmp/rwlock" in repaired.stderr, repaired.stderr
    project.dvc("status")
    project.dvc("repro")
    assert "Data and pipelines are up to date" in project.dvc("repro").stdout


def test_a_damaged_dvc_lock_without_a_good_copy_is_removed_so_dvc_runs_everything_again(
    project,
):
    (project.root / dvcstate.LAST_GOOD).unlink(missing_ok=True)
    lockfile = project.root / "dvc.lock"
    lockfile.write_bytes(lockfile.read_bytes()[:2000])  # cut short, as a kill leaves it
    done = dvcstate.repair(project.root)
    assert "is cut short and there is no good copy: removed it" in done[0]
    assert not lockfile.exists()
    ran = project.ran_stages(project.dvc("repro").stdout)
    assert "ingest@rms" in ran and "export@rms" in ran
    assert project.stage("observe.status").returncode == 0


def test_the_repair_leaves_everything_alone_while_a_dvc_process_runs_in_the_project(
    project, tmp_path
):
    (project.root / dvcstate.RWLOCK).write_bytes(b"")
    with dvckill.a_dvc_process_in(project, tmp_path) as running:
        with pytest.raises(dvcstate.DvcBusy, match=f"pid {running.pid}"):
            dvcstate.repair(project.root)
        assert (project.root / dvcstate.RWLOCK).read_bytes() == b""
    assert dvcstate.repair(project.root)
    assert not (project.root / dvcstate.RWLOCK).exists()


def test_dvc_killed_at_any_moment_of_a_stage_leaves_a_workspace_that_ends_as_undisturbed(
    project,
):
    workbook = (project.root / "data/exports/rms.xlsx").read_bytes()
    before, record = locked_stages(project), published(project)
    outcomes = []
    for number, (sig, delay) in enumerate(
        (sig, delay) for sig in (signal.SIGTERM, signal.SIGKILL) for delay in DELAYS
    ):
        dvc = dvckill.start(project, "dvc", "repro", "-f", "-s", STAGE)
        dvckill.wait_for_stage(project, dvc, STAGE)
        time.sleep(delay)
        # Alternately as `timeout` and a CI runner do (the group) and to dvc alone.
        if dvc.poll() is None:
            (os.killpg if number % 2 else os.kill)(dvc.pid, sig)
        dvc.wait(60)
        dvckill.wait_group_gone(dvc.pid)
        damaged = dvcstate.damage(project.root)
        outcomes.append((sig.name, delay, dvc.returncode, [str(d) for d in damaged]))
        if damaged:
            assert dvcstate.repair(project.root)
        assert_dvc_status_works(project)  # usable after each kill (and its repair)
    # Every kill was a real one, and at least one of each signal cut a stage short.
    assert any(code == -signal.SIGTERM for _, _, code, _ in outcomes), outcomes
    assert any(code == -signal.SIGKILL for _, _, code, _ in outcomes), outcomes
    project.dvc("repro")
    assert "Data and pipelines are up to date" in project.dvc("repro").stdout
    assert locked_stages(project) == before
    assert published(project) == record
    assert (project.root / "data/exports/rms.xlsx").read_bytes() == workbook
    assert project.stage("observe.status").returncode == 0, outcomes


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_stopping_stages_parallel_never_damages_dvc_state_and_the_next_run_resumes(project, sig):
    log = project.root / "parallel.log"
    lockfile = project.root / "dvc.lock"
    # On a loaded machine the whole chain can end before the stop lands; that run stopped
    # nothing, so the stop is tried again on a new change (at most three times).
    for attempt in range(3):
        for module in ("export", "publish"):  # both run again; the workbook stays the same
            with (project.root / f"stages/{module}.py").open("a") as code:
                code.write(f"\n# change {attempt}: this stage runs again\n")
        # Read before the start: a test process starved by a loaded machine must not miss the
        # rewrite after export@rms and stop the chain only at its end.
        before = lockfile.stat().st_mtime_ns
        parallel = dvckill.start(project, "stages.tools.parallel", "rms", output=log)
        # The worst moment: the instant dvc starts rewriting dvc.lock after export@rms.
        while parallel.poll() is None and lockfile.stat().st_mtime_ns == before:
            pass
        parallel.send_signal(sig)
        code = parallel.wait(120)
        if code != 0 or "rms: ok" not in log.read_text():
            break
    assert code == 130, log.read_text()
    dvckill.wait_group_gone(parallel.pid)
    assert dvcstate.damage(project.root) == []
    ran = project.ran_stages(project.dvc("repro").stdout)
    assert "export@rms" not in ran  # recorded before the stop
    assert "Data and pipelines are up to date" in project.dvc("repro").stdout
    assert project.stage("observe.status").returncode == 0
