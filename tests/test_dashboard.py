"""`python -m stages.dashboard`: the live page in a real headless Chromium, its JSON endpoint,
and what it refuses (remote hosts without --allow-remote, foreign Host headers, secrets, HTML)."""

from __future__ import annotations

import json
import os
import re
import threading
import urllib.error
import urllib.request
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from stages import dashboard, history, status
from stages.errors import ConfigError
from tests.support.browser import Browser, chromium_path
from tests.support.pg import drop_database, url_for_database
from tests.support.pipeline import ENGINES, run_pipeline_once
from tests.support.project import REPO

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
    ran = run_pipeline_once(project_template, pg_server, tmp_path_factory.mktemp("dashboard"))
    project = ran.project
    url = with_password(url_for_database(pg_server, ran.database))
    with pytest.MonkeyPatch.context() as env:
        for variable in history.DATABASE_VARIABLES:
            env.delenv(variable, raising=False)
        env.setenv("DATABASE_URL", url)
        env.chdir(project.root)
        project.edit_params(lambda p: p["engines"]["mews"].update(file=HOSTILE_FILE))
        assert project.stage("download", "--engine", "mews").returncode == 1
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "DELETE FROM hotel_booking_engines USING booking_engines AS e"
                " WHERE engine_id = e.id AND e.name = 'rms'"
            )
        running = history.StageRun.begin("publish", "rms")
        running.progress("publish@rms: upload", 40, 100, "B")
        server = dashboard.make_server(project.root, "127.0.0.1", 0, refresh=1)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield project, server
        finally:
            server.shutdown()
            server.server_close()
            running.finish("succeeded", counts={})
            drop_database(pg_server, ran.database)


@pytest.fixture(scope="module")
def page(shown, tmp_path_factory):
    if chromium_path() is None:
        pytest.skip("no Chromium binary at /usr/bin/chromium; install it: apt-get install chromium")
    project, server = shown
    with Browser.launch(tmp_path_factory.mktemp("chromium")) as browser:
        page = browser.open(server.url)
        page.wait_for("document.body.dataset.ready === '1'")
        yield page


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
    assert state_of(page, '[data-cell="export@rms"]') == "up to date"
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
    assert nodes["download@mews"] == "failed" and nodes["ingest@rms"] == "up to date"
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
    assert served == {c["name"]: c["state"] for c in status.collect(project.root)["cells"]}


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
