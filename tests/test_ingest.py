"""ingest@<engine>: every line counted once, loads exact and idempotent, crashes harmless."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import psycopg

from stages import ingest
from stages.crawlgen import write_crawl_file
from tests.support.project import Project

ENGINES = ("cloudbeds", "mews", "rms", "siteminder")


def marker(project: Project, engine: str) -> dict:
    return json.loads((project.root / "data/ingest" / f"{engine}.json").read_text())


def leads(database_url: str, engine: str) -> dict[str, tuple]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT l.property_id, l.booking_url, l.sources, l.first_seen_at, l.last_seen_at,"
            " l.xmin::text FROM hotel_booking_engines l JOIN booking_engines e"
            " ON e.id = l.engine_id WHERE e.name = %s",
            [engine],
        ).fetchall()
    return {row[0]: row[1:] for row in rows}


def write_raw(project: Project, engine: str, text: str, modified: datetime) -> None:
    """What download@engine leaves: the file and the meta saying when the source changed."""
    raw = project.root / "data/raw"
    raw.mkdir(parents=True, exist_ok=True)
    (raw / f"{engine}.txt").write_text(text)
    (raw / f"{engine}.meta.json").write_text(json.dumps({"source_modified": modified.isoformat()}))


def test_counts_add_up_for_every_sample_engine(project, database_url):
    project.dvc("repro", *(f"ingest@{engine}" for engine in ENGINES))
    for engine in ENGINES:
        stats = marker(project, engine)
        assert stats["lines"] == stats["blank"] + stats["rejected"] + stats["valid"]
        assert stats["valid"] == stats["unique"] + stats["duplicates"]
        assert stats["unique"] == stats["inserted"] + stats["updated"] + stats["unchanged"]
        assert stats["rejected"] == sum(stats["rejected_by_reason"].values())
        assert stats["lines"] == 400 and stats["inserted"] > 100
        assert len(leads(database_url, engine)) == stats["unique"]
        rejects = (project.root / stats["rejects_file"]).read_text().splitlines()
        assert rejects[0] == "line\treason\ttext"
        assert len(rejects) - 1 == stats["rejected"]


def test_ids_keep_their_case_rule_and_get_canonical_urls(project, database_url):
    moment = datetime(2026, 1, 5, tzinfo=UTC)
    write_raw(
        project,
        "cloudbeds",
        "https://hotels.cloudbeds.com/reservation/AbC123?x=1\nhotels.cloudbeds.com/es/booking/abc123/\n",
        moment,
    )
    assert ingest.main(["--engine", "cloudbeds"]) == 0
    found = leads(database_url, "cloudbeds")
    assert sorted(found) == ["AbC123", "abc123"]  # case-sensitive ids are two leads
    assert found["AbC123"][0] == "https://hotels.cloudbeds.com/reservation/AbC123"
    assert found["AbC123"][1] == ["commoncrawl"]
    assert found["AbC123"][2] == found["AbC123"][3] == moment


def test_rerunning_the_same_file_changes_no_row(project, database_url):
    write_raw(
        project, "mews", (project.root / "data/sources/mews.txt").read_text(), datetime.now(UTC)
    )
    assert ingest.main(["--engine", "mews"]) == 0
    before = leads(database_url, "mews")
    assert ingest.main(["--engine", "mews"]) == 0
    again = marker(project, "mews")
    assert again["inserted"] == 0 and again["updated"] == 0
    assert again["unchanged"] == again["unique"] == len(before)
    assert leads(database_url, "mews") == before  # xmin included: no row was rewritten


def test_a_second_file_version_adds_new_ids_and_moves_last_seen(project, database_url):
    first = datetime(2026, 3, 1, tzinfo=UTC)
    write_raw(project, "siteminder", "direct-book.com/properties/alpha\nbeta\n", first)
    assert ingest.main(["--engine", "siteminder"]) == 0
    later = first + timedelta(days=7)
    write_raw(project, "siteminder", "beta\ngamma\n", later)
    assert ingest.main(["--engine", "siteminder"]) == 0
    stats = marker(project, "siteminder")
    assert (stats["inserted"], stats["updated"], stats["unchanged"]) == (1, 1, 0)
    found = leads(database_url, "siteminder")
    assert sorted(found) == ["alpha", "beta", "gamma"]  # nothing is deleted
    assert found["alpha"][3] == first
    assert (found["beta"][2], found["beta"][3]) == (first, later)
    assert found["gamma"][2] == later


def test_an_older_file_never_moves_last_seen_backwards(project, database_url):
    write_raw(project, "rms", "12345\n", datetime(2026, 5, 1, tzinfo=UTC))
    assert ingest.main(["--engine", "rms"]) == 0
    write_raw(project, "rms", "12345\n", datetime(2026, 4, 1, tzinfo=UTC))
    assert ingest.main(["--engine", "rms"]) == 0
    assert leads(database_url, "rms")["12345"][3] == datetime(2026, 5, 1, tzinfo=UTC)


def test_dry_run_previews_each_line_without_a_database(project, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    path = project.root / "preview.txt"
    path.write_text(
        "https://app.mews.com/distributor/0A0B0C0D-1111-2222-3333-444455556666\n\nevil.com/x\n"
    )
    assert ingest.main(["--engine", "mews", "--file", str(path), "--dry-run"]) == 0
    out, err = capsys.readouterr()
    records = [json.loads(line) for line in out.splitlines()]
    assert records == [
        {
            "line": 1,
            "id": "0a0b0c0d-1111-2222-3333-444455556666",
            "url": "https://app.mews.com/distributor/0a0b0c0d-1111-2222-3333-444455556666",
        },
        {"line": 3, "reject": "wrong_host"},
    ]
    assert '"lines": 3' in err and '"blank": 1' in err


def test_a_one_off_file_loads_with_its_own_tag_and_leaves_the_pipeline_alone(
    project, database_url, capsys
):
    path = project.root / "manual.txt"
    path.write_text("direct-book.com/properties/OneOff\n")
    assert (
        ingest.main(["--engine", "siteminder", "--file", str(path), "--source-tag", "manual"]) == 0
    )
    assert leads(database_url, "siteminder")["oneoff"][1] == ["manual"]
    assert not (project.root / "data/ingest/siteminder.json").exists()
    assert json.loads(capsys.readouterr().out)["inserted"] == 1


def test_a_missing_raw_file_says_which_stage_to_run(project, database_url, capsys):
    assert ingest.main(["--engine", "rms"]) == 1
    assert "run `dvc repro download@rms` first" in capsys.readouterr().err


def _copy_started(database_url: str) -> bool:
    with psycopg.connect(database_url) as conn:
        return bool(
            conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'crawl-pipeline'"
                " AND query LIKE 'COPY%%' AND state = 'active'"
            ).fetchone()[0]
        )


def test_killing_an_ingest_midway_leaves_the_earlier_state(project, database_url, tmp_path):
    write_raw(project, "rms", "111\n222\n", datetime(2026, 1, 1, tzinfo=UTC))
    assert ingest.main(["--engine", "rms"]) == 0
    before, before_marker = leads(database_url, "rms"), marker(project, "rms")
    big = tmp_path / "big.txt"
    write_crawl_file(project.params_engine("rms"), big, 3_000_000)
    os.replace(big, project.root / "data/raw/rms.txt")
    process = subprocess.Popen(
        [sys.executable, "-m", "stages.ingest", "--engine", "rms"],
        cwd=project.root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not _copy_started(database_url) and time.monotonic() < deadline:
        assert process.poll() is None, "the ingest finished before it could be killed"
        time.sleep(0.05)
    time.sleep(0.3)  # well inside the COPY
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    assert leads(database_url, "rms") == before
    assert marker(project, "rms") == before_marker


def test_two_engines_ingest_at_the_same_time(project, database_url):
    for engine in ("cloudbeds", "mews"):
        source = project.root / "data/sources" / project.params["engines"][engine]["file"]
        write_raw(project, engine, source.read_text(), datetime(2026, 2, 2, tzinfo=UTC))
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "stages.ingest", "--engine", engine],
            cwd=project.root,
            stderr=subprocess.PIPE,
            text=True,
        )
        for engine in ("cloudbeds", "mews")
    ]
    for run in runs:
        _, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
    for engine in ("cloudbeds", "mews"):
        assert len(leads(database_url, engine)) == marker(project, engine)["inserted"] > 0


def test_returning_to_an_earlier_input_runs_the_load_again(project, database_url):
    """The run-cache must never restore an ingest marker instead of loading the database."""
    source = project.root / "data/sources/mews.txt"
    original = source.read_text()
    project.dvc("repro", "ingest@mews")
    source.write_text(original + "app.mews.com/distributor/99999999-8888-7777-6666-555555555555\n")
    project.dvc("repro", "ingest@mews")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("TRUNCATE hotel_booking_engines, hotels, ingest_loads")
    source.write_text(original)
    output = project.dvc("repro", "ingest@mews").stdout
    assert "Running stage 'ingest@mews'" in output
    assert "run-cache" not in output
    assert len(leads(database_url, "mews")) == marker(project, "mews")["unique"] > 0


def test_stage_modules_import_no_heavy_libraries():
    probe = (
        "import sys, stages.ingest, stages.download, stages.export, stages.publish;"
        "print(sorted(m for m in ('psycopg','openpyxl','botocore','dvc') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.stdout.strip() == "[]"
