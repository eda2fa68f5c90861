"""Pipeline runs (stages.observe.runs): which run an attempt belongs to, and what a run adds
up to."""

from __future__ import annotations

import pytest

from stages.observe import runs, runtable
from stages.observe.records import Attempt
from stages.store import db

GITHUB = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_REPOSITORY": "acme/crawl-pipeline",
    "GITHUB_RUN_ID": "7301234567",
    "GITHUB_RUN_ATTEMPT": "2",
    "GITHUB_JOB": "reproduce (rms)",
    "GITHUB_EVENT_NAME": "workflow_dispatch",
}


def attempt(stage_run, number, outcome, start, end, *, stage="ingest", engine="rms", run="r1"):
    return Attempt(
        run_id=stage_run,
        attempt=number,
        stage=stage,
        engine=engine,
        outcome=outcome,
        started_at=f"2026-06-01T04:{start}+00:00",
        ended_at=f"2026-06-01T04:{end}+00:00" if end else None,
        error="S3 answered 503 SlowDown" if outcome in ("failed", "retried") else None,
        host="runner-7",
        pipeline_run=run,
        trigger="dvc repro",
    )


@pytest.mark.unit
def test_a_ci_job_is_one_run_linked_to_its_ci_run():
    context = runs.run_context("stage-run-1", GITHUB)
    assert context["pipeline_run"] == "gh-7301234567-2-reproduce-rms-"
    assert (
        context["ci_url"]
        == "https://github.com/acme/crawl-pipeline/actions/runs/7301234567/attempts/2"
    )
    assert context["trigger"] == "ci:workflow_dispatch"


@pytest.mark.unit
def test_a_wrapper_groups_its_dvc_processes_by_environment_variable():
    context = runs.run_context("stage-run-1", {runs.RUN_VARIABLE: "parallel-2026-06-01T04:17"})
    assert context == {
        "pipeline_run": "parallel-2026-06-01T04:17",
        "ci_url": None,
        "trigger": "wrapper",
    }


@pytest.mark.unit
def test_a_run_id_unfit_for_a_url_is_replaced_by_a_stable_uuid():
    first = runs.run_context("a", {runs.RUN_VARIABLE: "../../etc/passwd"})["pipeline_run"]
    again = runs.run_context("b", {runs.RUN_VARIABLE: "../../etc/passwd"})["pipeline_run"]
    assert first == again and runs.SAFE_ID.match(first) and "/" not in first


@pytest.mark.unit
def test_a_stage_run_by_hand_is_a_run_of_its_own():
    context = runs.run_context("0d6c1f7e-1b8a-4c55-9a43-5f2d8c1e0a77", {})
    assert context["pipeline_run"] == "0d6c1f7e-1b8a-4c55-9a43-5f2d8c1e0a77"
    assert context["trigger"] == "by hand"


@pytest.mark.unit
def test_a_run_whose_retry_succeeded_succeeded_with_one_retry():
    found = runs.run_list(
        [
            attempt("d1", 1, "retried", "17:00.000", "17:05.000", stage="download"),
            attempt("d1", 2, "succeeded", "17:07.000", "17:09.000", stage="download"),
            attempt("i1", 1, "succeeded", "17:10.000", "17:20.000"),
        ]
    )
    assert [(r["outcome"], r["retries"], r["attempts"], r["seconds"]) for r in found] == [
        ("succeeded", 1, 3, 20.0)
    ]


@pytest.mark.unit
def test_a_stage_that_stopped_without_an_end_fails_its_run_unless_it_is_still_alive():
    stopped = [attempt("i1", 1, "running", "17:10.000", None)]
    assert runs.run_list(stopped)[0]["outcome"] == "failed"
    assert "stopped without recording an end" in runs.run_list(stopped)[0]["error"]
    alive = runs.run_list(stopped, alive={"i1"})[0]
    assert (alive["outcome"], alive["ended_at"], alive["error"]) == ("running", None, None)


@pytest.mark.unit
def test_attempts_recorded_before_runs_existed_are_each_their_own_run():
    old = [attempt("i1", 1, "succeeded", "17:10.000", "17:20.000", run=None)]
    old[0].pipeline_run = None
    assert [r["id"] for r in runs.run_list(old)] == ["i1"]


def test_stage_runs_keeps_the_run_its_link_and_the_log_offset(database_url):
    recorded = attempt(
        "0d6c1f7e-1b8a-4c55-9a43-5f2d8c1e0a77", 1, "failed", "17:00.000", "17:01.000"
    )
    recorded.ci_url, recorded.log_offset = (
        "https://github.com/acme/crawl-pipeline/actions/runs/7",
        4096,
    )
    runtable.write_table(database_url, [recorded])
    with db.connect(database_url, migrate=False) as conn:
        (read,) = runtable.read_table(conn)
    assert (read.pipeline_run, read.ci_url, read.trigger, read.log_offset) == (
        "r1",
        "https://github.com/acme/crawl-pipeline/actions/runs/7",
        "dvc repro",
        4096,
    )


def test_stage_runs_of_a_database_before_migration_0004_still_read(database_url):
    with db.connect(database_url) as conn:
        conn.execute("ALTER TABLE stage_runs DROP COLUMN pipeline_run, DROP COLUMN log_offset")
        conn.execute(
            "INSERT INTO stage_runs (run_id, attempt, stage, engine, outcome, started_at, host)"
            " VALUES ('0d6c1f7e-1b8a-4c55-9a43-5f2d8c1e0a77', 1, 'ingest', 'rms', 'succeeded',"
            " now(), 'runner-7')"
        )
        (read,) = runtable.read_table(conn)
    assert (read.pipeline_run, read.log_offset) == (None, None)
