"""Alerts to a chat webhook (stages.observe.alerts): what is sent, when, and that nothing else
changes.

The webhook is a real HTTP server on 127.0.0.1 (tests/support/webhook.py); the stages run as
real processes, as `dvc repro` runs them.
"""

from __future__ import annotations

import json

import psycopg
import pytest

from stages.observe import alerts, status
from tests.support.pg import forget_database
from tests.support.webhook import SECRET_PATH, closed_port_url

GITHUB_SCHEDULE = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_REPOSITORY": "acme/crawl-pipeline",
    "GITHUB_RUN_ID": "7301234567",
    "GITHUB_RUN_ATTEMPT": "1",
    "GITHUB_JOB": "reproduce",
    "GITHUB_EVENT_NAME": "schedule",
}
RUN_LINK = "https://github.com/acme/crawl-pipeline/actions/runs/7301234567"


@pytest.fixture
def database_down(project, monkeypatch):
    """mews downloaded; DATABASE_URL names a server that refuses connections."""
    forget_database(monkeypatch)
    assert project.stage("download", "--engine", "mews").returncode == 0
    port = closed_port_url().split(":")[2].split("/")[0]
    monkeypatch.setenv("DATABASE_URL", f"postgresql://leads@127.0.0.1:{port}/leads")
    return project


def everything_written(project, result) -> str:
    logs = project.root / "logs"
    files = [p.read_text(errors="replace") for p in logs.rglob("*") if p.is_file()]
    return "\n".join([result.stdout, result.stderr, *files])


def test_a_failed_ingest_posts_one_message_naming_the_stage_the_error_and_the_fix(
    database_down, webhook, monkeypatch
):
    monkeypatch.setenv(alerts.WEBHOOK_VARIABLE, webhook.url)
    result = database_down.stage("ingest", "--engine", "mews")

    assert result.returncode == 1
    assert len(webhook.messages) == 1
    text = webhook.texts[0]
    assert "ingest@mews failed" in text and "attempt 2" in text
    assert "Cannot connect to" in text and "failed after 2 attempt(s)" in text
    assert "`uv run dvc repro ingest@mews`" in text


def test_the_webhook_url_is_never_printed_or_stored(database_down, webhook, monkeypatch):
    monkeypatch.setenv(alerts.WEBHOOK_VARIABLE, webhook.url)
    webhook.status = 500
    result = database_down.stage("ingest", "--engine", "mews")

    written = everything_written(database_down, result)
    assert "alert not delivered: the webhook answered HTTP 500" in result.stderr
    assert SECRET_PATH not in written and "s3cr3tW3bh00kT0k3n" not in written


def test_nothing_is_sent_when_the_variable_is_unset(database_down, webhook, monkeypatch):
    monkeypatch.delenv(alerts.WEBHOOK_VARIABLE, raising=False)
    result = database_down.stage("ingest", "--engine", "mews")

    assert result.returncode == 1 and webhook.messages == []
    assert "alert" not in result.stderr


def test_a_webhook_that_is_down_leaves_the_stage_outcome_as_it_was(database_down, monkeypatch):
    monkeypatch.delenv(alerts.WEBHOOK_VARIABLE, raising=False)
    without = database_down.stage("ingest", "--engine", "mews")
    monkeypatch.setenv(alerts.WEBHOOK_VARIABLE, closed_port_url())
    down = database_down.stage("ingest", "--engine", "mews")

    assert down.returncode == without.returncode == 1
    last_line = [line for line in down.stderr.splitlines() if "ingest@mews failed" in line]
    assert last_line and last_line[-1].split(": ", 1)[1] in without.stderr
    assert "alert not delivered: " in down.stderr and "Connection refused" in down.stderr
    assert SECRET_PATH not in down.stderr


def test_a_stage_that_fails_in_a_scheduled_ci_run_links_the_run(project, webhook, monkeypatch):
    for name, value in GITHUB_SCHEDULE.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(alerts.WEBHOOK_VARIABLE, webhook.url)
    project.edit_params(lambda p: p["engines"]["rms"].update(file="rms-missing.txt"))
    result = project.stage("download", "--engine", "rms")

    assert result.returncode == 1
    (text,) = webhook.texts
    assert "download@rms failed" in text and "in CI (ci:schedule)" in text
    assert "rms-missing.txt" in text and f"Run: {RUN_LINK}" in text
    assert "re-run the failed CI job" in text


def test_a_download_failing_outside_ci_sends_nothing(project, webhook, monkeypatch):
    for name in ("GITHUB_ACTIONS", "CI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(alerts.WEBHOOK_VARIABLE, webhook.url)
    project.edit_params(lambda p: p["engines"]["rms"].update(file="rms-missing.txt"))

    assert project.stage("download", "--engine", "rms").returncode == 1
    assert webhook.messages == []


def test_status_alerts_database_drift_once_per_finding(
    project, database_url, webhook, monkeypatch, capsys
):
    assert project.stage("download", "--engine", "rms").returncode == 0
    assert project.stage("ingest", "--engine", "rms").returncode == 0
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM hotel_booking_engines")
    monkeypatch.setenv(alerts.WEBHOOK_VARIABLE, webhook.url)

    assert status.main(["--json"]) == 1
    assert status.main(["--json"]) == 1

    (text,) = webhook.texts
    assert "database drift for rms" in text
    assert "dvc repro --downstream --force ingest@rms" in text
    first = capsys.readouterr().out.split("\n}\n")[0] + "}"
    assert {d["engine"]: d["state"] for d in json.loads(first)["drift"]}["rms"] == "drift"
