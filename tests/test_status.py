"""`python -m stages.observe.status`: the grid of engines by stages, stale reasons, failures,
progress, database drift and the exit code, against a project the real pipeline has run in."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psycopg
import pytest

from stages.observe import recorder, status
from stages.observe.snapshot import collect
from tests.support.faultproxy import Fault
from tests.support.pipeline import ENGINES, pipeline_copy, ran_pipeline
from tests.support.project import REPO
from tests.support.views import read_views


@pytest.fixture(scope="module")
def ran(project_template, pg_server, tmp_path_factory):
    with ran_pipeline(project_template, pg_server, tmp_path_factory.mktemp("status")) as pipeline:
        yield pipeline


@pytest.fixture
def pipeline(ran, pg_server, tmp_path, monkeypatch):
    """A copy of the project the pipeline ran in, with a copy of its database (DATABASE_URL)."""
    yield from pipeline_copy(ran, pg_server, tmp_path, monkeypatch)


def cells(snapshot):
    return {cell["name"]: cell for cell in snapshot["cells"]}


def marker(project, engine):
    return json.loads((project.root / f"data/ingest/{engine}.json").read_text())


def test_after_a_full_run_every_cell_is_up_to_date_and_status_exits_0(pipeline, capsys):
    assert status.main([]) == 0
    out = capsys.readouterr().out
    assert "Everything is up to date (8 stages)." in out
    grid = out.split("Database")[0]
    for engine in ENGINES:
        [row] = [line for line in grid.splitlines() if line.startswith(engine)]
        assert row.split()[1:] == ["up", "to", "date"] * 4
        assert f"{marker(pipeline, engine)['leads']:,} leads" in grid
    assert "x1" in grid  # last run: one attempt


def engine_rows(text: str, engines=ENGINES) -> dict[str, list[str]]:
    """The grid's lines of each engine, by engine: from its name to the blank line after."""
    rows: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line[:1].strip() and line.split()[0] in engines:
            current = rows.setdefault(line.split()[0], [])
        elif not line.strip():
            current = None
        if current is not None:
            current.append(line)
    return rows


def test_after_a_full_run_each_engine_is_three_lines_like_the_readme_sample(pipeline, capsys):
    assert status.main([]) == 0
    rows = engine_rows(capsys.readouterr().out)
    assert sorted(rows) == sorted(ENGINES)
    for lines in rows.values():
        # state, when and how long, what it made: no empty line of reasons between
        assert len(lines) == 3 and all(line.strip() for line in lines), lines
        assert lines[1].split()[-1] == "x1" and lines[2].endswith("not published"), lines
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    sample = next(block for block in readme.split("```") if "\nengine  " in block)
    assert len(engine_rows(sample, ["cloudbeds"])["cloudbeds"]) == 3  # the sample's too


def test_a_fresh_clone_without_publish_records_still_says_not_published(pipeline, capsys):
    # publish declares no output: a clone whose dvc.lock says up to date has no record
    for record in (pipeline.root / "data/published").glob("*.json"):
        record.unlink()
    status.main([])
    rows = engine_rows(capsys.readouterr().out)
    assert all(lines[-1].endswith("not published") for lines in rows.values()), rows


def test_json_output_has_a_cell_per_engine_and_stage_with_its_last_run(pipeline, capsys):
    assert status.main(["--json"]) == 0
    snapshot = json.loads(capsys.readouterr().out)
    assert snapshot["ok"] is True
    assert snapshot["stages"] == ["download", "ingest", "export", "publish"]
    assert snapshot["graph"]["edges"] == [
        ["download", "ingest"],
        ["ingest", "export"],
        ["export", "publish"],
    ]
    found = cells(snapshot)
    assert len(found) == 8
    ingest = found["ingest@rms"]
    assert ingest["state"] == "up to date"
    assert ingest["last_run"]["outcome"] == "succeeded" and ingest["last_run"]["via"] == "dvc"
    assert ingest["counts"]["leads"] == marker(pipeline, "rms")["leads"]
    assert snapshot["totals"]["leads"] == sum(marker(pipeline, e)["leads"] for e in ENGINES)


def test_a_changed_source_shows_source_changed_and_stales_what_follows(pipeline):
    with (pipeline.root / "data/sources/mews.txt").open("a") as source:
        source.write("https://app.mews.com/distributor/0f6e6f9a-5d2b-4c1e-9b7a-2d4c8e1f3a5b\n")
    snapshot = collect().to_json()
    found = cells(snapshot)
    assert found["download@mews"]["state"] == "stale"
    assert found["download@mews"]["reasons"] == ["source changed"]
    for stage in ("ingest", "export", "publish"):
        assert found[f"{stage}@mews"]["reasons"] == ["upstream stale"]
    assert {found[f"{s}@rms"]["state"] for s in snapshot["stages"]} == {"up to date"}
    assert status.main([]) == 1


def test_changed_engine_params_are_named_as_the_reason(pipeline):
    pipeline.edit_params(lambda p: p["engines"]["rms"].update(display_name="RMS"))
    found = cells(collect().to_json())
    assert found["download@rms"]["state"] == "up to date"  # it reads only engines.rms.file
    assert found["ingest@rms"]["reasons"] == ["params changed (engines.rms)"]


def test_changed_stage_code_is_named_as_the_reason(pipeline):
    with (pipeline.root / "stages/publish.py").open("a") as code:
        code.write("\n# a change\n")
    found = cells(collect().to_json())
    assert found["publish@mews"]["reasons"] == ["code changed"]
    assert found["export@mews"]["state"] == "up to date"


def test_a_new_engine_is_stale_because_it_never_ran(pipeline, project_template):
    cloudbeds = project_template.params["engines"]["cloudbeds"]
    pipeline.edit_params(lambda p: p["engines"].update(cloudbeds=cloudbeds))
    found = cells(collect().to_json())
    for stage in ("download", "ingest", "export", "publish"):
        assert found[f"{stage}@cloudbeds"]["reasons"] == ["never run"]


def test_a_failed_stage_shows_as_failed_with_its_error(pipeline, capsys):
    (pipeline.root / "data/sources/rms.txt").unlink()
    assert pipeline.stage("download", "--engine", "rms").returncode == 1
    assert status.main([]) == 1
    out = capsys.readouterr().out
    assert "1 failed" in out
    [line] = [line for line in out.splitlines() if line.strip().startswith("download@rms:")]
    assert "rms.txt does not exist" in line and "source.root" in line
    cell = cells(collect().to_json())["download@rms"]
    assert cell["state"] == "failed" and "rms.txt does not exist" in cell["error"]
    assert cell["last_run"]["outcome"] == "failed"


def test_emptying_the_database_shows_drift_for_each_engine(pipeline, capsys):
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("TRUNCATE hotel_booking_engines")
    snapshot = collect().to_json()
    drift = {d["engine"]: d for d in snapshot["drift"]}
    for engine in ENGINES:
        assert drift[engine]["state"] == "drift"
        expected = marker(pipeline, engine)["leads"]
        assert f"holds 0 leads but ingest left {expected}" in drift[engine]["message"]
    assert snapshot["ok"] is False
    assert status.main([]) == 1
    assert "database drift for mews, rms" in capsys.readouterr().out


def test_a_running_stage_shows_its_progress(pipeline, capsys):
    run = recorder.StageRun.begin("export", "mews")
    assert run is not None  # the project root is set
    try:
        run.progress("export@mews: rows", 40, 100, "rows")
        cell = cells(collect().to_json())["export@mews"]
        assert cell["state"] == "running"
        assert cell["progress"]["fraction"] == 0.4
        assert cell["progress"]["label"] == "export@mews: rows"
        status.main([])
        assert "running 40%" in capsys.readouterr().out
    finally:
        run.finish("succeeded", counts={})


def test_status_changes_nothing_and_starts_no_database(pipeline, monkeypatch):
    monkeypatch.delenv("DATABASE_URL")

    def files():
        return {
            path: (path.stat().st_mtime_ns, path.stat().st_size)
            for path in pipeline.root.rglob("*")
            if path.is_file() and ".dvc/tmp" not in path.as_posix()
        }

    before = files()
    snapshot = collect().to_json()
    assert files() == before
    assert not (pipeline.root / ".pgdata").exists()
    assert snapshot["database"]["state"] == "unchecked"
    assert {d["state"] for d in snapshot["drift"]} == {"unchecked"}


def test_during_dvc_repro_the_running_stage_and_the_one_waiting_on_it_are_told_apart(
    project, s3_bucket, fault_proxy
):
    for spec in project.params["engines"].values():
        s3_bucket.put(
            f"crawls/{spec['file']}", (project.root / "data/sources" / spec["file"]).read_bytes()
        )
    project.add_s3_remote("crawls", f"s3://{s3_bucket.name}/crawls", fault_proxy.endpoint_url)
    project.edit_params(lambda p: p["source"].update(root="remote://crawls", timeout=60))
    fault_proxy.plan(Fault.stall(60, method="GET", path=f"/{s3_bucket.name}/crawls/mews.txt"))
    repro = subprocess.Popen(
        [sys.executable, "-m", "dvc", "repro", "--single-item", "download@mews"],
        cwd=project.root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        heartbeat = project.root / "logs/running/download@mews.json"
        deadline = time.monotonic() + 60
        while not (heartbeat.exists() and fault_proxy.requests) and repro.poll() is None:
            assert time.monotonic() < deadline, "download@mews never started"
            time.sleep(0.1)
        found = cells(collect().to_json())
    finally:
        os.killpg(repro.pid, signal.SIGTERM)
        repro.wait(30)
    assert found["download@mews"]["state"] == "running"
    assert found["ingest@mews"]["state"] == "stale"
    assert found["ingest@mews"]["reasons"] == ["upstream running"]
    assert found["download@rms"]["reasons"] == ["never run"]


# --- a failed attempt is history once DVC considers the stage up to date (issue 12, item 6) ---


def repro(project, *targets):
    done = project.dvc("repro", *targets, check=False)
    return done.returncode, done.stdout + done.stderr


def assert_shown_failed(project, name):
    """`name` is failed in the JSON, the text grid and /api/status, and DVC lists it stale."""
    views = read_views(project)
    assert views.json[name] == "failed", views.text_output
    assert views.agree(), views


def assert_failure_is_history(project, name, expect_in_repro):
    """`dvc repro` reports `expect_in_repro` and `dvc status` nothing; every view then shows
    every cell up to date, `name`'s failed attempt as its note and as a past failure."""
    code, text = repro(project)
    assert code == 0 and expect_in_repro in text, text
    views = read_views(project)
    assert views.dvc_stale == set()
    assert views.agree(), views
    assert set(views.json.values()) == {"up to date"}
    assert views.snapshot["ok"] is True
    cell = cells(views.snapshot)[name]
    assert "the last attempt" in cell["note"] and "is history" in cell["note"]
    assert f"Failed before, up to date now:\n  {name}: up to date; the last attempt" in (
        views.text_output
    )
    assert "Failed:" not in views.text_output
    listed = [f for f in views.snapshot["failures"] if f"{f['stage']}@{f['engine']}" == name]
    assert all(f["current"] is False for f in listed)
    return cell


def test_a_stage_that_failed_on_bad_params_is_up_to_date_once_the_params_are_fixed(pipeline):
    before = pipeline.params["publish"]["to"]
    # A mistyped DVC remote: valid in form, so only publish finds out.
    pipeline.edit_params(lambda p: p["publish"].update(to="remote://no-such-share/leads"))
    code, text = repro(pipeline, "publish@rms")
    assert code != 0 and "no-such-share" in text, text
    assert_shown_failed(pipeline, "publish@rms")
    pipeline.edit_params(lambda p: p["publish"].update(to=before))
    cell = assert_failure_is_history(pipeline, "publish@rms", "Data and pipelines are up to date")
    assert "(under dvc," in cell["note"] and "no-such-share" in cell["note"]


def test_a_killed_stage_whose_input_went_back_is_up_to_date_after_the_next_repro(pipeline):
    # The example was a run-cache restore; since downloads persist their outputs (a
    # failed download keeps the last good file) no stage of ours is run-cached any more, so
    # going back to the earlier input runs the download again: the failure is history all the same.
    source = pipeline.root / "data/sources/rms.txt"
    original, born = source.read_bytes(), source.stat()
    source.write_bytes(original + b"https://bookings.rmscloud.com/Search/Index/27731/1\n")
    code, text = repro(pipeline, "download@rms")
    assert code == 0, text
    source.write_bytes(original + b"https://bookings.rmscloud.com/Search/Index/27732/1\n")
    dvc = subprocess.Popen(
        [sys.executable, "-m", "dvc", "repro", "download@rms"],
        cwd=pipeline.root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    heartbeat = pipeline.root / "logs/running/download@rms.json"
    deadline = time.monotonic() + 60
    while not heartbeat.exists():
        assert time.monotonic() < deadline and dvc.poll() is None, "download@rms never started"
        time.sleep(0.02)
    os.kill(json.loads(heartbeat.read_text())["pid"], signal.SIGKILL)
    assert dvc.wait(60) != 0

    assert_shown_failed(pipeline, "download@rms")
    # The crawl file as the run before the last one had it, its time included: with a new
    # time the ingest runs again, moves every lead's last seen date, and the workbook (which
    # DVC keeps) is rightly stale.
    source.write_bytes(original)
    os.utime(source, ns=(born.st_atime_ns, born.st_mtime_ns))
    code, text = repro(pipeline)
    assert code == 0 and "Running stage 'download@rms'" in text, text
    views = read_views(pipeline)
    assert views.dvc_stale == set() and views.agree(), views
    assert set(views.json.values()) == {"up to date"}
    assert views.snapshot["ok"] is True
    assert "Failed:" not in views.text_output


def test_a_failed_by_hand_run_outside_dvc_is_history_when_dvc_is_up_to_date(pipeline):
    source = pipeline.root / "data/sources/rms.txt"
    aside = source.rename(source.with_suffix(".away"))
    assert pipeline.stage("download", "--engine", "rms").returncode == 1

    assert_shown_failed(pipeline, "download@rms")
    aside.rename(source)
    cell = assert_failure_is_history(pipeline, "download@rms", "Data and pipelines are up to date")
    assert "(by hand," in cell["note"] and "rms.txt does not exist" in cell["note"]
    assert "logs/download/rms.log" in cell["note"]


def test_a_failed_forced_re_run_is_history_once_the_database_is_back(pipeline, monkeypatch):
    working = os.environ["DATABASE_URL"]
    monkeypatch.setenv("DATABASE_URL", "postgresql://leads@127.0.0.1:9/leads?connect_timeout=2")
    code, text = repro(pipeline, "--force", "--single-item", "export@rms")
    assert code != 0, text
    monkeypatch.setenv("DATABASE_URL", working)
    # The failed run did not touch dvc.lock: DVC considers export@rms up to date at once.
    cell = assert_failure_is_history(pipeline, "export@rms", "Data and pipelines are up to date")
    assert "(under dvc," in cell["note"]


# --- the database moved on after the export (issue 12: one truth in every view) --------------

ONE_OFF_RMS = (
    "https://ibe17.rmscloud.com/80417/1\n"
    "https://bookings.rmscloud.com/Search/Index/80418/1/?lang=en\n"
    '<a href="https://ibe8.rmscloud.com/80419/1">Book now</a>\n'
)


def export_marker(project, engine):
    return json.loads((project.root / f"data/exports/{engine}.json").read_text())


def test_a_by_hand_load_that_adds_leads_makes_every_view_call_the_export_stale(pipeline, capsys):
    before = marker(pipeline, "rms")["leads"]
    one_off = pipeline.root / "one-off-rms.txt"
    one_off.write_text(ONE_OFF_RMS)
    # --accept: a one-off file holds far fewer ids than a crawl, which the guard would stop.
    loaded = pipeline.stage("ingest", "--engine", "rms", "--file", str(one_off), "--accept")
    assert loaded.returncode == 0, loaded.stderr
    assert json.loads(loaded.stdout)["inserted"] == 3

    views = read_views(pipeline)
    assert views.json == views.text == views.api
    assert views.dvc_stale == set()  # DVC cannot see the database
    found = cells(views.snapshot)
    assert found["export@rms"]["state"] == "stale"
    assert found["export@rms"]["reasons"] == ["database changed"]
    assert found["publish@rms"]["reasons"] == ["upstream stale"]
    assert {found[f"{s}@mews"]["state"] for s in views.snapshot["stages"]} == {"up to date"}
    drift = {d["engine"]: d for d in views.snapshot["drift"]}
    assert drift["rms"]["state"] == "changed" and drift["mews"]["state"] == "ok"
    message = drift["rms"]["message"]
    assert f"{before + 3:,} leads to list now, the workbook lists {before:,}" in message
    assert "the latest by hand" in message
    assert "`dvc repro --downstream --force export@rms`" in message
    assert views.snapshot["ok"] is False
    assert "database changed after export for rms" in views.snapshot["headline"]
    assert "changed  Engine rms: database" in views.text_output

    code, text = repro(pipeline, "--downstream", "--force", "export@rms")
    assert code == 0, text
    views = read_views(pipeline)
    assert views.agree() and set(views.json.values()) == {"up to date"}, views.text_output
    assert views.snapshot["ok"] is True
    recorded = export_marker(pipeline, "rms")
    assert recorded["rows"] == recorded["database"]["leads"] == before + 3
    assert status.main([]) == 0


def test_a_by_hand_load_of_known_leads_makes_the_export_stale_too(pipeline):
    known = (pipeline.root / "data/sources/rms.txt").read_text().splitlines()[:2]
    one_off = pipeline.root / "seen-again.txt"
    one_off.write_text("\n".join(known) + "\n")  # last seen moves on; no lead is added
    loaded = pipeline.stage("ingest", "--engine", "rms", "--file", str(one_off), "--accept")
    assert loaded.returncode == 0, loaded.stderr
    assert json.loads(loaded.stdout)["inserted"] == 0
    snapshot = collect().to_json()
    assert cells(snapshot)["export@rms"]["reasons"] == ["database changed"]
    drift = {d["engine"]: d for d in snapshot["drift"]}
    assert drift["rms"]["state"] == "changed"
    assert "1 load since, the latest by hand" in drift["rms"]["message"]


def test_leads_deleted_from_the_database_make_ingest_stale_and_what_follows(pipeline, capsys):
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute(
            "DELETE FROM hotel_booking_engines WHERE property_id IN (SELECT property_id"
            " FROM hotel_booking_engines l JOIN booking_engines e ON e.id = l.engine_id"
            " WHERE e.name = 'mews' ORDER BY property_id LIMIT 2)"
        )
    views = read_views(pipeline)
    assert views.json == views.text == views.api
    found = cells(views.snapshot)
    assert found["ingest@mews"]["reasons"] == ["leads lost in database"]
    assert found["export@mews"]["reasons"] == ["upstream stale"]
    assert found["publish@mews"]["reasons"] == ["upstream stale"]
    drift = {d["engine"]: d for d in views.snapshot["drift"]}
    assert drift["mews"]["state"] == "drift"
    assert "`dvc repro --downstream --force ingest@mews`" in drift["mews"]["message"]
    assert status.main([]) == 1


# --- an old failure never speaks for a newer state (issue 12: one truth) ---------------------


def assert_stale_with_history(views, name, reasons, old_error):
    """`name` is stale for `reasons` in every view, its fixed failure only its note."""
    assert views.json == views.text == views.api
    cell = cells(views.snapshot)[name]
    assert (cell["state"], cell["reasons"], cell["error"]) == ("stale", reasons, None)
    assert old_error in cell["note"] and "is history" in cell["note"]
    assert "Failed:" not in views.text_output
    assert f"Failed before, stale for another reason:\n  {name}: stale" in views.text_output
    listed = [f for f in views.snapshot["failures"] if f"{f['stage']}@{f['engine']}" == name]
    assert listed and all(f["current"] is False for f in listed)


def test_a_fixed_failure_is_not_shown_again_when_the_source_goes_missing(pipeline):
    before = pipeline.params["publish"]["to"]
    pipeline.edit_params(lambda p: p["publish"].update(to="remote://no-such-share/leads"))
    code, text = repro(pipeline, "publish@rms")
    assert code != 0 and "no-such-share" in text, text
    pipeline.edit_params(lambda p: p["publish"].update(to=before))
    code, text = repro(pipeline)
    assert code == 0 and "Data and pipelines are up to date" in text, text

    (pipeline.root / "data/sources/rms.txt").unlink()
    views = read_views(pipeline)
    assert cells(views.snapshot)["download@rms"]["reasons"] == ["source missing"]
    assert_stale_with_history(views, "publish@rms", ["upstream stale"], "no-such-share")
    assert "1 failed" not in views.snapshot["headline"]


def test_a_fixed_failure_is_not_shown_again_when_the_source_changes_later(pipeline):
    source = pipeline.root / "data/sources/rms.txt"
    aside = source.rename(source.with_suffix(".away"))
    assert pipeline.stage("download", "--engine", "rms").returncode == 1
    aside.rename(source)
    code, text = repro(pipeline)
    assert code == 0 and "Data and pipelines are up to date" in text, text

    with source.open("a") as crawl:
        crawl.write("https://bookings.rmscloud.com/Search/Index/80420/1\n")
    views = read_views(pipeline)
    assert_stale_with_history(views, "download@rms", ["source changed"], "rms.txt does not exist")
    assert views.agree(), views
