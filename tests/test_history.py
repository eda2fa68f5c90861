"""Run history: every attempt is recorded in logs/history.jsonl (and stage_runs with a database),
including retried attempts, failures, and stages that were terminated or killed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import psycopg
import pytest

from stages import download, ingest
from stages.observe import history, journal, records
from stages.observe.cells import KILLED
from stages.observe.gitcommit import git_commit
from stages.observe.snapshot import collect
from tests.support.faultproxy import Fault
from tests.support.pg import forget_database


@pytest.fixture(autouse=True)
def no_database_unless_asked(monkeypatch):
    """History must not depend on a developer's PG* settings; tests that want one ask for it."""
    forget_database(monkeypatch)


def attempts(project, stage=None):
    found = journal.read_history(project.root / "logs")
    return [a for a in found if stage in (None, a.stage)]


def raw_lines(project):
    return [
        json.loads(line) for line in (project.root / "logs/history.jsonl").read_text().splitlines()
    ]


def use_s3_source(project, bucket, endpoint_url):
    for spec in project.params["engines"].values():
        bucket.put(
            f"crawls/{spec['file']}", (project.root / "data/sources" / spec["file"]).read_bytes()
        )
    project.add_s3_remote("crawls", f"s3://{bucket.name}/crawls", endpoint_url)
    project.edit_params(lambda p: p["source"].update(root="remote://crawls"))


def wait_for(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_a_stage_records_its_start_at_once_and_its_end_with_counts(project):
    assert download.main(["--engine", "mews"]) == 0
    start, end = raw_lines(project)
    assert start["outcome"] == "running" and start["ended_at"] is None
    assert end["outcome"] == "succeeded" and end["run_id"] == start["run_id"]
    [attempt] = attempts(project)
    assert (attempt.stage, attempt.engine, attempt.attempt) == ("download", "mews", 1)
    assert attempt.counts["bytes"] == (project.root / "data/sources/mews.txt").stat().st_size
    assert attempt.host and attempt.seconds is not None and attempt.ended_at
    assert not list((project.root / "logs/running").iterdir())  # the heartbeat is gone


def test_a_retried_attempt_appears_with_its_attempt_number(project, s3_bucket, fault_proxy):
    use_s3_source(project, s3_bucket, fault_proxy.endpoint_url)
    fault_proxy.plan(Fault.status(503, "SlowDown"), Fault.status(500, "InternalError"))
    assert download.main(["--engine", "rms"]) == 0
    recorded = attempts(project)
    assert [(a.attempt, a.outcome) for a in recorded] == [
        (1, "retried"),
        (2, "retried"),
        (3, "succeeded"),
    ]
    assert len({a.run_id for a in recorded}) == 1
    assert "SlowDown" in recorded[0].error and "InternalError" in recorded[1].error
    assert recorded[2].error is None


def test_a_failed_stage_records_the_first_line_of_its_error(project):
    (project.root / "data/sources/rms.txt").unlink()
    assert download.main(["--engine", "rms"]) == 1
    [attempt] = attempts(project)
    assert attempt.outcome == "failed"
    assert "rms.txt does not exist" in attempt.error and "\n" not in attempt.error


def test_a_killed_stage_leaves_its_start_and_status_shows_it_failed(
    project, s3_bucket, fault_proxy
):
    use_s3_source(project, s3_bucket, fault_proxy.endpoint_url)
    project.edit_params(lambda p: p["source"].update(timeout=60))
    fault_proxy.plan(Fault.stall(60, method="GET"))  # the download hangs until it is killed
    stage = subprocess.Popen(
        [sys.executable, "-m", "stages.download", "--engine", "mews"],
        cwd=project.root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    heartbeat = project.root / "logs/running/download@mews.json"
    try:
        wait_for(lambda: any(r.method == "GET" for r in fault_proxy.requests))
        assert json.loads(heartbeat.read_text())["pid"] == stage.pid
    finally:
        stage.kill()
        stage.wait()
    [attempt] = attempts(project)
    assert attempt.outcome == "running"  # the start survived; the end was never written
    cell = cell_of(collect(project.root).to_json(), "download@mews")
    assert cell["state"] == "failed" and cell["error"] == KILLED


def test_sigterm_records_the_stage_as_failed_and_removes_the_heartbeat(
    project, s3_bucket, fault_proxy
):
    use_s3_source(project, s3_bucket, fault_proxy.endpoint_url)
    project.edit_params(lambda p: p["source"].update(timeout=60))
    fault_proxy.plan(Fault.stall(60, method="GET"))
    stage = subprocess.Popen(
        [sys.executable, "-m", "stages.download", "--engine", "mews"],
        cwd=project.root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: any(r.method == "GET" for r in fault_proxy.requests))
        stage.send_signal(signal.SIGTERM)
        assert stage.wait(30) == 130
    finally:
        stage.kill()
    [attempt] = attempts(project)
    assert attempt.outcome == "failed" and attempt.error == "terminated (SIGTERM)"
    assert not (project.root / "logs/running/download@mews.json").exists()
    assert not list((project.root / "data/raw").glob(".mews.txt.*"))  # no temp file left


def test_with_a_database_every_attempt_is_also_in_stage_runs(
    project, database_url, s3_bucket, fault_proxy
):
    use_s3_source(project, s3_bucket, fault_proxy.endpoint_url)
    fault_proxy.plan(Fault.reset())
    assert download.main(["--engine", "siteminder"]) == 0
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT stage, engine, attempt, outcome, host, counts FROM stage_runs ORDER BY attempt"
        ).fetchall()
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("download", "siteminder", 1, "retried"),
        ("download", "siteminder", 2, "succeeded"),
    ]
    assert rows[1][4] and rows[1][5]["bytes"] > 0


def test_without_a_database_history_starts_no_postgresql(project):
    assert download.main(["--engine", "mews"]) == 0
    assert attempts(project)
    assert not (project.root / ".pgdata").exists()


def test_an_unreachable_database_never_fails_the_stage(project, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:9/none?connect_timeout=1")
    assert download.main(["--engine", "mews"]) == 0
    assert [a.outcome for a in attempts(project)] == ["succeeded"]


def test_a_database_password_never_reaches_the_history(project, monkeypatch):
    assert download.main(["--engine", "mews"]) == 0
    monkeypatch.setenv("DATABASE_URL", "postgresql://lead:hunter2@127.0.0.1:9/leads")
    assert ingest.main(["--engine", "mews"]) == 1
    [failed] = attempts(project, "ingest")[-1:]
    assert failed.outcome == "failed" and "127.0.0.1" in failed.error
    assert "hunter2" not in (project.root / "logs/history.jsonl").read_text()


@pytest.mark.unit
def test_a_later_start_line_never_hides_the_end_of_an_attempt():
    start = records.Attempt("r", 1, "ingest", "mews", "running", "2026-01-01T00:00:00+00:00")
    end = records.Attempt(
        "r", 1, "ingest", "mews", "failed", start.started_at, ended_at="2026-01-01T00:00:05+00:00"
    )
    assert [a.outcome for a in records.merge([start, end])] == ["failed"]
    assert [a.outcome for a in records.merge([end, start])] == ["failed"]


def test_the_history_command_lists_recent_attempts_newest_first(project, capsys):
    (project.root / "data/sources/rms.txt").unlink()
    download.main(["--engine", "mews"])
    download.main(["--engine", "rms"])
    capsys.readouterr()
    assert history.main(["--limit", "5"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "download@rms" in out[0] and "failed" in out[0]
    assert "rms.txt does not exist" in out[1]
    assert "download@mews" in out[2] and "succeeded" in out[2]


def cell_of(snapshot, name):
    return next(c for c in snapshot["cells"] if c["name"] == name)


def test_the_retry_listener_is_removed_after_the_stage(project):
    from stages.store import retry

    before = list(retry._listeners)
    assert download.main(["--engine", "mews"]) == 0
    assert retry._listeners == before


# --- the commit an attempt records (read from git's files, not a git process) ---------------


def git(folder, *args: str) -> str:
    """Run git in `folder` as a user would; its output, stripped."""
    identity = ("-c", "user.name=Pipeline Test", "-c", "user.email=test@example.com")
    done = subprocess.run(
        ["git", *identity, "-C", str(folder), *args], check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def test_the_commit_recorded_is_the_one_git_names_loose_packed_or_detached(tmp_path):
    git(tmp_path, "init", "--quiet", "--initial-branch=main")
    assert git_commit(tmp_path) is None  # no commit yet
    git(tmp_path, "commit", "--quiet", "--allow-empty", "-m", "first")
    assert git_commit(tmp_path) == git(tmp_path, "rev-parse", "HEAD")  # a loose ref
    git(tmp_path, "pack-refs", "--all")
    assert not (tmp_path / ".git/refs/heads/main").exists()
    assert git_commit(tmp_path / "data") == git(tmp_path, "rev-parse", "HEAD")  # packed-refs
    git(tmp_path, "commit", "--quiet", "--allow-empty", "-m", "second")  # loose beats packed
    assert git_commit(tmp_path) == git(tmp_path, "rev-parse", "HEAD")
    git(tmp_path, "checkout", "--quiet", "--detach", "HEAD~1")
    assert git_commit(tmp_path) == git(tmp_path, "rev-parse", "HEAD")


def test_a_linked_worktree_records_its_own_branchs_commit(tmp_path):
    main, linked = tmp_path / "main", tmp_path / "linked"
    git(tmp_path, "init", "--quiet", "--initial-branch=main", str(main))
    git(main, "commit", "--quiet", "--allow-empty", "-m", "first")
    git(main, "worktree", "add", "--quiet", "-b", "feature", str(linked))
    git(linked, "commit", "--quiet", "--allow-empty", "-m", "on the feature branch")
    assert (linked / ".git").is_file()  # gitdir: .../main/.git/worktrees/linked
    assert git_commit(linked) == git(linked, "rev-parse", "HEAD")
    assert git_commit(main) == git(main, "rev-parse", "HEAD") != git_commit(linked)


def test_a_folder_outside_git_records_no_commit(tmp_path):
    assert git_commit(tmp_path) is None
