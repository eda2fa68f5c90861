"""`python -m stages.observe.dashboard`: the live page in a real headless Chromium, its JSON
endpoint, and what it refuses (remote hosts without --allow-remote, foreign Host headers, secrets,
HTML)."""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from stages.errors import ConfigError
from stages.observe import dashboard, recorder
from stages.observe.snapshot import collect
from tests.support.browser import dashboard_page
from tests.support.pg import forget_database, url_for_database
from tests.support.pipeline import ENGINES, ran_pipeline
from tests.support.project import REPO
from tests.support.views import dashboard_server

# A crawl file name a careless crawler could produce: it ends up in an error message.
HOSTILE_FILE = "<img src=x onerror=window.pwned=1>.txt"
PASSWORD = "hunter2-dashboard"
SCREENSHOT = REPO / "test-artifacts" / "dashboard.png"


def with_password(url: str) -> str:
    """`url` with PASSWORD in it; the test server trusts local connections, so it still works."""
    parts = urlsplit(url)
    if parts.password:
        return url  # a real password already: the assertions look for it instead
    netloc = f"{parts.username or 'postgres'}:{PASSWORD}@{parts.hostname or ''}"
    netloc += f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture(scope="module")
def shown(project_template, pg_server, tmp_path_factory):
    """A project the pipeline ran in, then: download@mews failed with HTML in its error,
    rms's leads deleted behind DVC's back, publish@rms running at 40%; and a dashboard on it."""
    folder = tmp_path_factory.mktemp("dashboard")
    with (
        ran_pipeline(project_template, pg_server, folder) as ran,
        pytest.MonkeyPatch.context() as env,
    ):
        project = ran.project
        url = with_password(url_for_database(pg_server, ran.database))
        forget_database(env)
        env.setenv("DATABASE_URL", url)
        env.chdir(project.root)
        project.edit_params(lambda p: p["engines"]["mews"].update(file=HOSTILE_FILE))
        assert project.stage("download", "--engine", "mews").returncode == 1
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "DELETE FROM hotel_booking_engines USING booking_engines AS e"
                " WHERE engine_id = e.id AND e.name = 'rms'"
            )
        running = recorder.StageRun.begin("publish", "rms")
        assert running is not None  # the project root is set
        running.progress("publish@rms: upload", 40, 100, "B")
        try:
            with dashboard_server(project.root) as server:
                yield project, server
        finally:
            running.finish("succeeded", counts={})


def opened_page(shown, tmp_path_factory, ready, folder):
    """Chromium on the dashboard `shown` serves, once the page's script says `ready`."""
    _, server = shown
    with dashboard_page(server.url, tmp_path_factory.mktemp(folder), ready) as page:
        yield page


@pytest.fixture(scope="module")
def page(shown, tmp_path_factory):
    ready = "document.body.dataset.ready === '1'"
    yield from opened_page(shown, tmp_path_factory, ready, "chromium")


def state_of(page, selector):
    return page.evaluate(f"document.querySelector({json.dumps(selector)}).dataset.state")


def text_of(page, selector):
    return page.evaluate(f"document.querySelector({json.dumps(selector)}).innerText")


def get(server, path, host=None):
    request = urllib.request.Request(server.url.rstrip("/") + path)
    if host:
        request.add_header("Host", host)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, dict(response.headers), response.read().decode("utf-8")


def test_the_page_shows_each_engine_with_the_state_of_each_stage(page):
    SCREENSHOT.unlink(missing_ok=True)
    page.screenshot(SCREENSHOT)
    assert SCREENSHOT.read_bytes().startswith(b"\x89PNG")
    grid = text_of(page, "#status-grid")
    for engine in ENGINES:
        assert engine in grid
    assert state_of(page, '[data-cell="download@mews"]') == "failed"
    assert state_of(page, '[data-cell="ingest@mews"]') == "stale"
    assert "params changed (engines.mews)" in text_of(page, '[data-cell="ingest@mews"]')
    # rms's leads were deleted behind DVC's back: the ingest that reloads them is stale.
    assert state_of(page, '[data-cell="ingest@rms"]') == "stale"
    assert "leads lost in database" in text_of(page, '[data-cell="ingest@rms"]')
    assert state_of(page, '[data-cell="export@rms"]') == "stale"
    assert state_of(page, '[data-cell="download@rms"]') == "up to date"
    assert state_of(page, '[data-cell="publish@rms"]') == "running"
    assert "1 failed, 1 running" in text_of(page, "#totals")


def test_a_failed_stage_shows_its_error_as_text_never_as_html(page):
    cell = text_of(page, '[data-cell="download@mews"]')
    assert f"{HOSTILE_FILE} does not exist" in cell
    failures = text_of(page, "#failures")
    assert "download@mews" in failures and f"{HOSTILE_FILE} does not exist" in failures
    assert page.evaluate("document.querySelectorAll('img').length") == 0
    assert page.evaluate("window.pwned === undefined")


def test_the_graph_colours_each_stage_by_its_state(page):
    nodes = page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('#pipeline-graph [data-node]')]"
        ".map(g => [g.dataset.node, g.dataset.state]))"
    )
    assert len(nodes) == 8
    assert nodes["download@mews"] == "failed" and nodes["download@rms"] == "up to date"
    assert nodes["ingest@rms"] == "stale"  # its leads were deleted behind DVC's back
    fill = "document.querySelector('[data-node=\"download@mews\"] rect').getAttribute('fill')"
    assert page.evaluate(fill) == "#fde8e6"
    assert page.evaluate("document.querySelectorAll('#pipeline-graph line').length") == 6


def test_leads_per_engine_are_drawn_with_their_counts(shown, page):
    project, _ = shown
    chart = page.evaluate(
        "[...document.querySelectorAll('#leads-chart .lead-count')].map(t => t.textContent)"
    )
    expected = [
        f"{json.loads((project.root / f'data/ingest/{e}.json').read_text())['leads']:,}"
        for e in ENGINES
    ]
    assert chart == expected
    assert page.evaluate("document.querySelectorAll('#leads-chart polyline').length") == 2


def test_a_running_stage_shows_its_progress(page):
    assert "40%" in text_of(page, '[data-running="publish@rms"]')
    assert "running 40%" in text_of(page, '[data-cell="publish@rms"]')


def test_a_running_stage_is_a_running_run_whose_bar_grows_live(shown, page):
    _, server = shown
    code, found = get_json(server, "/api/runs?outcome=running")
    assert code == 200 and len(found["runs"]) == 1
    (running,) = found["runs"]
    assert (running["stages"], running["engines"], running["ended_at"]) == (
        ["publish"],
        ["rms"],
        None,
    )
    page.evaluate(f"document.querySelector('#runs-table tr[data-run=\"{running['id']}\"]').click()")
    page.wait_for(
        "document.querySelector('#timeline-chart rect[data-outcome=\"running\"]') !== null"
    )
    axis_end = "[...document.querySelectorAll('#timeline-chart text')][4].textContent"
    before = page.evaluate(axis_end)
    page.wait_for(f"{axis_end} !== {json.dumps(before)}")  # the next refresh, a later "now"


def test_drift_shows_for_the_engine_whose_leads_were_deleted(page):
    assert state_of(page, '[data-drift="rms"]') == "drift"
    assert "holds 0 leads" in text_of(page, '[data-drift="rms"]')
    assert state_of(page, '[data-drift="mews"]') == "ok"


def test_the_database_password_is_never_shown(shown, page):
    _, server = shown
    password = urlsplit(os.environ.get("DATABASE_URL", "")).password or PASSWORD
    assert password not in page.evaluate("document.documentElement.outerHTML")
    assert password not in get(server, "/api/status")[2]
    assert "***" in text_of(page, "#drift")


def test_the_json_endpoint_serves_the_snapshot_the_page_shows(shown, page):
    project, server = shown
    code, headers, body = get(server, "/api/status")
    assert code == 200 and headers["Content-Type"] == "application/json"
    served = {cell["name"]: cell["state"] for cell in json.loads(body)["cells"]}
    shown_states = page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('[data-cell]')]"
        ".map(td => [td.dataset.cell, td.dataset.state]))"
    )
    assert served == shown_states
    assert served == {c["name"]: c["state"] for c in collect(project.root).to_json()["cells"]}


def test_the_page_loads_nothing_from_other_origins(shown, page):
    _, server = shown
    _, headers, html = get(server, "/")
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    # The one URL in the page is the SVG namespace, an identifier that is never fetched.
    assert re.findall(r"https?://[^\s\"'<>]+", html) == ["http://www.w3.org/2000/svg"]
    origin = server.url.rstrip("/")
    resources = page.evaluate("performance.getEntriesByType('resource').map(r => r.name)")
    assert resources and all(name.startswith(origin) for name in resources)


def test_requests_naming_another_host_are_refused(shown):
    _, server = shown
    with pytest.raises(urllib.error.HTTPError) as refused:
        get(server, "/api/status", host="attacker.example")
    assert refused.value.code == 421


def test_a_non_loopback_host_needs_allow_remote(shown):
    project, _ = shown
    with pytest.raises(ConfigError, match="--allow-remote"):
        dashboard.make_server(project.root, "0.0.0.0", 0)
    server = dashboard.make_server(project.root, "0.0.0.0", 0, allow_remote=True)
    server.server_close()


# --- runs, timeline, logs, trends -------------------------------------------------------------

NEW_MEWS_LINE = "https://app.mews.com/distributor/0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d\n"


@pytest.fixture(scope="module")
def runs_shown(project_template, pg_server, tmp_path_factory):
    """Three `dvc repro` runs of one project and a dashboard on it: all of mews and rms; then,
    with a new line in the mews crawl and the database down, ingest@mews retried and failed;
    then, the database back, the same command finished mews's chain."""
    folder = tmp_path_factory.mktemp("runs")
    with (
        ran_pipeline(project_template, pg_server, folder) as ran,
        pytest.MonkeyPatch.context() as env,
    ):
        project = ran.project
        url = url_for_database(pg_server, ran.database)
        forget_database(env)
        env.chdir(project.root)
        source = project.root / "data/sources/mews.txt"
        source.write_text(source.read_text() + NEW_MEWS_LINE)
        env.setenv("DATABASE_URL", "postgresql://leads@127.0.0.1:9/leads")  # nothing listens
        assert project.dvc("repro", check=False).returncode != 0
        env.setenv("DATABASE_URL", url)
        project.dvc("repro")
        with dashboard_server(project.root) as server:
            yield project, server


@pytest.fixture(scope="module")
def runs_page(runs_shown, tmp_path_factory):
    ready = "document.body.dataset.runsReady === '1'"
    yield from opened_page(runs_shown, tmp_path_factory, ready, "chromium-runs")


def get_json(server, path):
    """(HTTP status, parsed JSON body) of a GET, error answers included."""
    try:
        code, headers, body = get(server, path)
    except urllib.error.HTTPError as exc:
        code, headers, body = exc.code, dict(exc.headers), exc.read().decode("utf-8")
    assert headers["Content-Type"] == "application/json", (path, body)
    return code, json.loads(body)


def the_failed_run(server):
    code, found = get_json(server, "/api/runs?outcome=failed")
    assert code == 200 and len(found["runs"]) == 1
    return found["runs"][0]


def test_the_runs_api_lists_each_dvc_repro_as_one_run_newest_first(runs_shown):
    _, server = runs_shown
    _, found = get_json(server, "/api/runs")
    runs = found["runs"]
    assert [r["outcome"] for r in runs] == ["succeeded", "failed", "succeeded"]
    assert [r["started_at"] for r in runs] == sorted((r["started_at"] for r in runs), reverse=True)
    first, failed, fixed = runs[::-1]
    assert first["engines"] == ["mews", "rms"] and first["attempts"] == 8
    assert failed["engines"] == ["mews"] and failed["stages"] == ["download", "ingest"]
    assert (failed["retries"], failed["failed_stages"]) == (1, ["ingest@mews"])
    assert "Cannot connect to" in failed["error"]
    assert fixed["stages"] == ["export", "ingest", "publish"]
    for run in runs:
        assert run["trigger"] == "dvc repro" and run["via"] == "dvc"
        assert run["hosts"] and run["ci"] is False and run["seconds"] > 0


def test_the_runs_api_filters_by_engine_stage_and_outcome(runs_shown):
    _, server = runs_shown
    assert len(get_json(server, "/api/runs?engine=rms")[1]["runs"]) == 1
    assert len(get_json(server, "/api/runs?engine=mews&stage=download")[1]["runs"]) == 2
    assert len(get_json(server, "/api/runs?stage=export&outcome=succeeded")[1]["runs"]) == 2
    assert get_json(server, "/api/runs?engine=nosuchengine")[1]["runs"] == []
    code, answer = get_json(server, "/api/runs?outcome=exploded")
    assert code == 400 and "outcome must be one of" in answer["error"]


def test_a_run_lists_its_attempts_with_start_end_outcome_and_number(runs_shown):
    _, server = runs_shown
    failed = the_failed_run(server)
    code, run = get_json(server, f"/api/runs/{failed['id']}")
    assert code == 200 and run["id"] == failed["id"]
    attempts = [(a["stage"], a["engine"], a["attempt"], a["outcome"]) for a in run["timeline"]]
    assert attempts == [
        ("download", "mews", 1, "succeeded"),
        ("ingest", "mews", 1, "retried"),
        ("ingest", "mews", 2, "failed"),
    ]
    for attempt in run["timeline"]:
        assert attempt["started_at"] <= attempt["ended_at"]


def test_the_log_of_each_attempt_is_its_own_part_of_the_stage_log(runs_shown):
    _, server = runs_shown
    _, run = get_json(server, f"/api/runs/{the_failed_run(server)['id']}")
    retried, failed = run["timeline"][1:]
    _, _, first = get(server, retried["log"])
    _, _, second = get(server, failed["log"])
    assert "ingest@mews: started" in first and "attempt 1 failed" in first
    assert "failed after 2 attempt(s)" not in first
    assert "failed after 2 attempt(s)" in second and "started" not in second
    _, _, latest = get(server, "/api/logs/ingest/mews")
    assert "ingest@mews: done in" in latest and "Connection refused" not in latest
    _, _, numbered = get(server, "/api/logs/ingest/mews?attempt=1")
    assert numbered == latest  # attempt 1 of the latest run: the one that succeeded


def test_the_whole_log_downloads_as_a_file(runs_shown):
    project, server = runs_shown
    code, headers, body = get(server, "/logs/ingest/mews.log")
    assert code == 200 and headers["Content-Type"] == "text/plain; charset=utf-8"
    assert headers["Content-Disposition"] == 'attachment; filename="ingest-mews.log"'
    assert body == (project.root / "logs/ingest/mews.log").read_text()
    assert body.count("ingest@mews: started") == 3


@pytest.mark.parametrize(
    "path",
    [
        "/api/runs/no-such-run",
        "/api/logs/ingest/nosuchengine",
        "/api/logs/deploy/mews",
        "/api/logs/ingest/mews?attempt=7",
        "/api/logs/..%2F..%2Fetc/passwd",
        "/api/logs/ingest/..%2F..%2F..%2Fetc%2Fpasswd",
        "/logs/..%2Fhistory/mews.log",
        "/api/nothing-here",
    ],
)
def test_unknown_names_answer_404_with_a_json_error(runs_shown, path):
    _, server = runs_shown
    code, answer = get_json(server, path)
    assert code == 404 and answer["error"] and "root:" not in answer["error"]


def test_the_status_api_carries_trends_per_engine(runs_shown):
    project, server = runs_shown
    _, snapshot = get_json(server, "/api/status")
    mews = snapshot["trends"]["mews"]
    assert len(mews) == 2 and len(snapshot["trends"]["rms"]) == 1
    marker = json.loads((project.root / "data/ingest/mews.json").read_text())
    assert mews[-1] == {
        "at": mews[-1]["at"],
        "leads": marker["leads"],
        "new": 1,
        "retracted": 0,
        "rejected": marker["rejected"],
    }


def test_the_page_lists_runs_and_draws_a_run_timeline_with_its_retry(runs_page, runs_shown):
    _, server = runs_shown
    rows = runs_page.evaluate(
        "[...document.querySelectorAll('#runs-table tbody tr')].map(r => r.dataset.outcome)"
    )
    assert rows == ["succeeded", "failed", "succeeded"]
    runs_page.evaluate("document.querySelector('#runs-table tr[data-outcome=\"failed\"]').click()")
    runs_page.wait_for("document.body.dataset.timeline !== undefined")
    bars = runs_page.evaluate(
        "[...document.querySelectorAll('#timeline-chart rect.attempt')]"
        ".map(r => [r.dataset.attempt, r.dataset.outcome])"
    )
    assert bars == [
        ["download@mews#1", "succeeded"],
        ["ingest@mews#1", "retried"],
        ["ingest@mews#2", "failed"],
    ]
    assert "Cannot connect to" in text_of(runs_page, "#timeline")


def test_clicking_an_attempt_shows_the_tail_of_its_log_as_text(runs_page):
    runs_page.evaluate("document.querySelector('#runs-table tr[data-outcome=\"failed\"]').click()")
    runs_page.wait_for(
        "document.querySelector('#timeline-chart rect[data-outcome=\"retried\"]') !== null"
    )
    runs_page.evaluate(
        "document.querySelector('#timeline-chart rect[data-outcome=\"retried\"]')"
        ".dispatchEvent(new MouseEvent('click'))"
    )
    runs_page.wait_for("document.querySelector('#log-text') !== null")
    log_text = text_of(runs_page, "#log-text")
    assert "ingest@mews: loading mews.txt: attempt 1 failed" in log_text
    assert "failed after 2 attempt(s)" not in log_text
    link = runs_page.evaluate("document.querySelector('#log-download').getAttribute('href')")
    assert link == "logs/ingest/mews.log"


def test_the_failure_panel_links_to_the_failed_attempts_log(runs_page):
    runs_page.evaluate(
        "document.querySelector('[data-failure=\"ingest@mews\"] button[data-log]').click()"
    )
    runs_page.wait_for("(document.body.dataset.log || '').endsWith('.2')")
    assert "failed after 2 attempt(s)" in text_of(runs_page, "#log-text")


def test_the_trends_show_leads_new_retracted_and_rejected_per_engine(runs_page):
    series = runs_page.evaluate(
        "[...document.querySelectorAll('[data-trend=\"mews\"] polyline')]"
        ".map(p => p.dataset.series)"
    )
    assert series == ["leads", "new", "retracted", "rejected"]
    assert "2 loads" in text_of(runs_page, '[data-trend="mews"]')
