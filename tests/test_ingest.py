"""ingest@<engine>: every line counted once, loads exact and idempotent, crashes harmless."""

from __future__ import annotations

import codecs
import contextlib
import gzip
import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from stages import ingest
from stages.store import db
from stages.tools.crawlgen import write_crawl_file
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


def test_counts_add_up_for_every_sample_engine(project, database_url):
    project.dvc("repro", *(f"ingest@{engine}" for engine in ENGINES))
    for engine in ENGINES:
        stats = marker(project, engine)
        assert stats["lines"] == stats["blank"] + stats["rejected"] + stats["accepted_lines"]
        assert stats["valid"] >= stats["accepted_lines"]  # a Mews line may name several ids
        assert stats["valid"] == stats["unique"] + stats["duplicates"]
        assert stats["unique"] == stats["inserted"] + stats["updated"] + stats["unchanged"]
        assert stats["rejected"] == sum(stats["rejected_by_reason"].values())
        assert stats["lines"] == 400 and stats["inserted"] > 100
        assert len(leads(database_url, engine)) == stats["unique"]
        rejects = (project.root / stats["rejects_file"]).read_text().splitlines()
        assert rejects[0] == "line\treason\ttext"
        # Besides rejected lines, URLs and list items without an id on accepted lines.
        misses = stats["urls_without_id"] + stats["list_items_without_id"]
        assert len(rejects) - 1 == stats["rejected"] + misses


def test_ids_keep_their_case_rule_and_get_canonical_urls(project, database_url):
    moment = datetime(2026, 1, 5, tzinfo=UTC)
    project.write_raw(
        "cloudbeds",
        "https://hotels.cloudbeds.com/reservation/AbC123?utm_source=x\n"
        "hotels.cloudbeds.com/es/reservas/abc123/\n",
        moment,
    )
    assert ingest.main(["--engine", "cloudbeds"]) == 0
    found = leads(database_url, "cloudbeds")
    assert sorted(found) == ["AbC123", "abc123"]  # case-sensitive ids are two leads
    assert found["AbC123"][0] == "https://hotels.cloudbeds.com/reservation/AbC123"
    assert found["AbC123"][1] == ["commoncrawl"]
    assert found["AbC123"][2] == found["AbC123"][3] == moment


def test_rerunning_the_same_file_changes_no_row(project, database_url):
    project.write_raw(
        "mews", (project.root / "data/sources/mews.txt").read_text(), datetime.now(UTC)
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
    project.write_raw("siteminder", "direct-book.com/properties/alpha\nbeta\n", first)
    assert ingest.main(["--engine", "siteminder"]) == 0
    later = first + timedelta(days=7)
    project.write_raw("siteminder", "beta\ngamma\n", later)
    assert ingest.main(["--engine", "siteminder"]) == 0
    stats = marker(project, "siteminder")
    assert (stats["inserted"], stats["updated"], stats["unchanged"]) == (1, 1, 0)
    found = leads(database_url, "siteminder")
    assert sorted(found) == ["alpha", "beta", "gamma"]  # nothing is deleted
    assert found["alpha"][3] == first
    assert (found["beta"][2], found["beta"][3]) == (first, later)
    assert found["gamma"][2] == later


def test_an_older_file_never_moves_last_seen_backwards(project, database_url):
    project.write_raw("rms", "12345\n", datetime(2026, 5, 1, tzinfo=UTC))
    assert ingest.main(["--engine", "rms"]) == 0
    project.write_raw("rms", "12345\n", datetime(2026, 4, 1, tzinfo=UTC))
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


def test_a_dry_run_of_a_missing_file_fails_with_one_line(project, tmp_path, capsys):
    missing = tmp_path / "nonexistent.txt"
    assert ingest.main(["--engine", "rms", "--file", str(missing), "--dry-run"]) == 1
    err = capsys.readouterr().err
    assert f"{missing} does not exist; check the path." in err and "Traceback" not in err


def test_an_empty_file_option_is_called_empty(project, capsys):
    with pytest.raises(SystemExit) as exited:
        ingest.main(["--engine", "cloudbeds", "--file", "", "--dry-run"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "argument --file: is empty; give a path" in err and "folder" not in err


def test_a_folder_given_as_the_file_is_called_a_folder(project, tmp_path, capsys):
    assert ingest.main(["--engine", "rms", "--file", str(tmp_path), "--dry-run"]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path} is a folder, not a crawl file" in err and "does not exist" not in err


def _copy_started(database_url: str) -> bool:
    with psycopg.connect(database_url) as conn:
        return bool(
            db.scalar(
                conn,
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'crawl-pipeline'"
                " AND query LIKE 'COPY%%' AND state = 'active'",
            )
        )


def test_killing_an_ingest_midway_leaves_the_earlier_state(project, database_url, tmp_path):
    project.write_raw("rms", "1234\n2345\n", datetime(2026, 1, 1, tzinfo=UTC))
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
    workers: set[int] = set()  # a file this large is parsed by several processes
    while not workers and time.monotonic() < deadline:
        workers = _children(process.pid)
        time.sleep(0.05)
    time.sleep(0.3)  # the workers are parsing
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    assert leads(database_url, "rms") == before
    assert marker(project, "rms") == before_marker
    deadline = time.monotonic() + 30
    while _alive(workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert workers and not _alive(workers), "a parse worker outlived its killed ingest"


def _children(pid: int) -> set[int]:
    """The processes whose parent is `pid` (Linux /proc)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rpartition(")")[2].split()
            if int(fields[1]) == pid:
                found.add(int(stat.parent.name))
    return found


def _alive(pids: set[int]) -> bool:
    """Whether any of `pids` still runs (a zombie counts as gone)."""
    for pid in pids:
        with contextlib.suppress(OSError):
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
            if state != "Z":
                return True
    return False


def test_two_engines_ingest_at_the_same_time(project, database_url):
    for engine in ("cloudbeds", "mews"):
        source = project.root / "data/sources" / project.params["engines"][engine]["file"]
        project.write_raw(engine, source.read_text(), datetime(2026, 2, 2, tzinfo=UTC))
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


# --- real crawl files: encodings, formats, several ids per line ------------------------------

REAL_LINES = (
    "https://us2.cloudbeds.com/pt-br/reservas/Qw3rTy?currency=usd\n"
    '$booking="https://hotels.cloudbeds.com/reservation/Zx9Wv8";\n'
    "https://hotels.cloudbeds.com/booking/rooms\n"
    "\n"
    "hotels.cloudbeds.com/es/reservation/Mn4Bv7/guests\n"
    "Lk8Jh6\n"
)


def tar_of(text: bytes) -> bytes:
    """A tar archive (ustar) holding one crawl file of `text`."""
    import io
    import tarfile

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        member = tarfile.TarInfo("rms.txt")
        member.size = len(text)
        archive.addfile(member, io.BytesIO(text))
    return out.getvalue()


def loaded_leads(project, database_url, engine, data: bytes) -> dict[str, tuple]:
    raw = project.root / "data/raw" / f"{engine}.txt"
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_bytes(data)
    assert ingest.main(["--engine", engine]) == 0
    return {key: value[:2] for key, value in leads(database_url, engine).items()}


@pytest.mark.parametrize(
    "kind", ["utf-16", "utf-16-be", "utf-32", "gzip", "utf-16-le", "gzip-in-gzip"]
)
def test_a_utf16_utf32_or_gzip_file_loads_the_same_leads_as_its_utf8_original(
    project, database_url, kind
):
    original = loaded_leads(project, database_url, "cloudbeds", REAL_LINES.encode())
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("TRUNCATE hotel_booking_engines, hotels, ingest_loads CASCADE")
    if kind == "gzip":
        data = gzip.compress(REAL_LINES.encode())
    elif kind == "gzip-in-gzip":  # a .gz gzipped again by an upload tool
        data = gzip.compress(gzip.compress(REAL_LINES.encode()))
    else:
        bom = codecs.BOM_UTF16_BE if kind == "utf-16-be" else b""
        data = bom + REAL_LINES.encode(kind)
    assert loaded_leads(project, database_url, "cloudbeds", data) == original
    assert sorted(original) == ["Lk8Jh6", "Mn4Bv7", "Qw3rTy", "Zx9Wv8"]
    assert marker(project, "cloudbeds")["rejected_by_reason"] == {"no_id": 1}


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b"PK\x03\x04\x14\x00\x00\x00", "a zip archive"),
        (random.Random(5).randbytes(1 << 16), "binary data"),
        (tar_of(b"12345\n67890\n"), "a tar archive"),
    ],
)
def test_an_unreadable_file_fails_with_one_line_naming_engine_file_and_format(
    project, database_url, capsys, data, named
):
    project.write_raw("rms", "", datetime(2026, 1, 1, tzinfo=UTC))
    (project.root / "data/raw/rms.txt").write_bytes(data)
    assert ingest.main(["--engine", "rms"]) == 1
    message = [line for line in capsys.readouterr().err.splitlines() if "failed" in line]
    assert len(message) == 1
    assert message[0].startswith("ingest@rms failed: ") and "data/raw/rms.txt" in message[0]
    assert message[0].count("ingest@rms") == 1, message[0]  # the stage is named once
    assert named in message[0]
    assert leads(database_url, "rms") == {}


def test_a_damaged_gzip_file_fails_with_one_line(project, database_url, capsys):
    project.write_raw("rms", "", datetime(2026, 1, 1, tzinfo=UTC))
    whole = gzip.compress(b"12345\n" * 50_000)
    (project.root / "data/raw/rms.txt").write_bytes(whole[: len(whole) // 2])
    assert ingest.main(["--engine", "rms"]) == 1
    assert "damaged gzip" in capsys.readouterr().err
    assert leads(database_url, "rms") == {}


def test_a_line_naming_several_ids_counts_as_one_line_and_several_ids(project, database_url):
    a, b, c = (f"{n}a2e6e1d-0a5b-4c53-9c6a-ab1e00c9d9c7" for n in "123")
    text = f"https://app.mews.com/distributor/{a};{b}\nhttps://app.mews.com/distributor?ids={c}\n"
    project.write_raw("mews", text + "junk\n", datetime(2026, 1, 1, tzinfo=UTC))
    assert ingest.main(["--engine", "mews"]) == 0
    stats = marker(project, "mews")
    assert (stats["lines"], stats["accepted_lines"], stats["rejected"]) == (3, 2, 1)
    assert (stats["valid"], stats["unique"], stats["inserted"]) == (3, 3, 3)
    assert "accepted_lines" in stats["counting"]
    found = leads(database_url, "mews")
    assert found[a][0] == f"https://app.mews.com/distributor/{a}"
    assert found[b][0] == f"https://app.mews.com/distributor/{b}"


def test_dry_run_prints_one_object_per_id_and_several_may_share_a_line(project, capsys):
    a, b = (f"{n}a2e6e1d-0a5b-4c53-9c6a-ab1e00c9d9c7" for n in "12")
    path = project.root / "preview.txt"
    path.write_text(f"https://app.mews.com/distributor/{a};{b}\nnope\n")
    assert ingest.main(["--engine", "mews", "--file", str(path), "--dry-run"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert records == [
        {"line": 1, "id": a, "url": f"https://app.mews.com/distributor/{a}"},
        {"line": 1, "id": b, "url": f"https://app.mews.com/distributor/{b}"},
        {"line": 2, "reject": "malformed_id"},
    ]


def test_a_lead_keeps_the_booking_url_its_first_line_gave(project, database_url):
    text = (
        "https://ibe12.rmscloud.com/7A1B2C3D4E5F6071/1?utm_source=google\n"
        "https://bookings.rmscloud.com/Search/Index/7A1B2C3D4E5F6071/90/\n"
        "4321\n"
    )
    project.write_raw("rms", text, datetime(2026, 1, 1, tzinfo=UTC))
    assert ingest.main(["--engine", "rms"]) == 0
    found = leads(database_url, "rms")
    assert found["7A1B2C3D4E5F6071"][0] == "https://ibe12.rmscloud.com/7A1B2C3D4E5F6071/1"
    assert found["4321"][0] == "https://bookings.rmscloud.com/Search/Index/4321/1/"


# --- a load that drops the crawl must not look healthy ---------------------------------------


def failure_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if "failed" in line]
    assert len(lines) == 1
    return lines[0]


def test_a_file_of_only_junk_fails_before_commit_naming_figures_reasons_and_the_way_out(
    project, database_url, capsys
):
    project.write_raw("siteminder", "seaside\n", datetime(2026, 1, 1, tzinfo=UTC))
    assert ingest.main(["--engine", "siteminder"]) == 0
    before, before_marker = leads(database_url, "siteminder"), marker(project, "siteminder")
    junk = "https://www.booking.com/hotel/x.html\n" * 5 + "https://direct-book.com/hotels/x\n" * 3
    project.write_raw("siteminder", junk + "sea side\n", datetime(2026, 2, 1, tzinfo=UTC))
    assert ingest.main(["--engine", "siteminder"]) == 1
    message = failure_line(capsys)
    assert "ingest@siteminder" in message and "9 of 9 non-blank lines rejected" in message
    assert "wrong_host 5, no_id 3, text_word 1" in message
    assert "ingest.max_rejected_share" in message and "--accept" in message
    assert leads(database_url, "siteminder") == before
    assert marker(project, "siteminder") == before_marker


def test_a_by_hand_load_of_junk_names_its_file_and_the_command_that_accepts_it(
    project, database_url, capsys, tmp_path
):
    junk = tmp_path / "my crawl.txt"
    junk.write_text("https://www.booking.com/hotel/x.html\n" * 4, encoding="utf-8")

    assert ingest.main(["--engine", "mews", "--file", str(junk)]) == 1

    message = failure_line(capsys)
    assert f"nothing loaded from {junk}:" in message
    accept = f"python -m stages.ingest --engine mews --file '{junk}' --accept"
    assert f"`{accept}`" in message
    assert ingest.main(["--engine", "mews", "--file", str(junk), "--accept"]) == 0


def test_far_fewer_ids_than_the_previous_load_fails_unless_accepted(project, database_url, capsys):
    project.write_raw(
        "rms",
        "".join(f"{n}\n" for n in range(1000, 1010)),
        datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert ingest.main(["--engine", "rms"]) == 0
    project.write_raw("rms", "1000\n1001\n", datetime(2026, 2, 1, tzinfo=UTC))
    assert ingest.main(["--engine", "rms"]) == 1
    message = failure_line(capsys)
    assert "2 unique ids" in message and "previous load's 10" in message
    assert "ingest.min_previous_share" in message
    assert ingest.main(["--engine", "rms", "--accept"]) == 0
    assert marker(project, "rms")["unique"] == 2


def test_the_params_values_accept_a_rejected_share_on_purpose(project, database_url):
    project.edit_params(lambda p: p["ingest"].update(max_rejected_share=1))
    project.write_raw("rms", "12345\nnot rms\nnope/x\n", datetime(2026, 1, 1, tzinfo=UTC))
    assert ingest.main(["--engine", "rms"]) == 0
    assert marker(project, "rms")["rejected"] == 2


# --- rule changes reach stored rows: re-normalised, merged, re-derived, retracted ------------


def test_changing_id_case_merges_both_spellings_into_one_lead(project, database_url):
    project.edit_params(lambda p: p["engines"]["siteminder"].update(id_case="preserve"))
    first = datetime(2026, 1, 1, tzinfo=UTC)
    project.write_raw("siteminder", "SeasideLodge\nseasidelodge\nharbour\n", first)
    assert ingest.main(["--engine", "siteminder"]) == 0
    assert sorted(leads(database_url, "siteminder")) == ["SeasideLodge", "harbour", "seasidelodge"]
    project.edit_params(lambda p: p["engines"]["siteminder"].update(id_case="lower"))
    project.write_raw("siteminder", "harbour\n", first + timedelta(days=7))
    assert ingest.main(["--engine", "siteminder", "--accept"]) == 0
    found = leads(database_url, "siteminder")
    assert sorted(found) == ["harbour", "seasidelodge"]
    stats = marker(project, "siteminder")
    assert stats["rules"]["renamed"] == 1 and stats["rules"]["merged"] == 1
    assert stats["rules"]["rows_changed"] == 1 and stats["leads"] == 2


def test_changing_booking_url_re_derives_the_stored_urls(project, database_url):
    project.write_raw("rms", "4321\n5678\n", datetime(2026, 1, 1, tzinfo=UTC))
    assert ingest.main(["--engine", "rms"]) == 0
    template = "https://bookings8.rmscloud.com/Search/Index/{id}/1/"
    project.edit_params(lambda p: p["engines"]["rms"].update(booking_url=template))
    project.write_raw("rms", "4321\n5678\n", datetime(2026, 1, 8, tzinfo=UTC))
    assert ingest.main(["--engine", "rms"]) == 0
    found = leads(database_url, "rms")
    assert found["4321"][0] == "https://bookings8.rmscloud.com/Search/Index/4321/1/"
    assert marker(project, "rms")["rules"]["urls"] == 2


def old_cloudbeds_rules(params: dict) -> None:
    """The first release's rules: /booking/<id> was a property, ids 2 to 10 characters."""
    params["engines"]["cloudbeds"]["url_patterns"] = [
        "^[^/]+(?:/[A-Za-z]{2}(?:[-_][A-Za-z]{2})?)?/(?:reservation|booking)/(?P<id>[^/]+)$"
    ]
    params["engines"]["cloudbeds"]["id_pattern"] = "[A-Za-z0-9]{2,10}"


def test_leads_a_fixed_rule_no_longer_finds_are_retracted_and_leave_the_workbook(
    project, database_url
):
    from openpyxl import load_workbook

    from stages import export

    fixed = project.params["engines"]["cloudbeds"]
    project.edit_params(old_cloudbeds_rules)
    crawl = (
        "https://hotels.cloudbeds.com/booking/rooms\n"
        "https://hotels.cloudbeds.com/booking/prepare\n"
        "https://hotels.cloudbeds.com/reservation/Qw3rTy\n"
        "https://hotels.cloudbeds.com/booking/Zx9Wv8\n"
    )
    project.write_raw("cloudbeds", crawl, datetime(2026, 1, 1, tzinfo=UTC))
    assert ingest.main(["--engine", "cloudbeds"]) == 0
    assert sorted(leads(database_url, "cloudbeds")) == ["Qw3rTy", "Zx9Wv8", "prepare", "rooms"]
    project.edit_params(lambda p: p["engines"].update(cloudbeds=fixed))
    project.write_raw("cloudbeds", "Qw3rTy\n", datetime(2026, 1, 8, tzinfo=UTC))
    assert ingest.main(["--engine", "cloudbeds", "--accept"]) == 0
    stats = marker(project, "cloudbeds")
    assert stats["rules"]["retracted"] == 3 and stats["retracted"] == 3
    assert stats["leads"] == 4  # kept, not deleted
    assert export.main(["--engine", "cloudbeds"]) == 0
    book = load_workbook(project.root / "data/exports/cloudbeds.xlsx", read_only=True)
    for name in ("Leads", "New", "Not seen"):  # a retracted lead is in no list of leads
        ids = [row[6] for row in book[name].iter_rows(min_row=2, values_only=True)]
        assert set(ids) <= {"Qw3rTy"}, name
    assert [row[6] for row in book["Leads"].iter_rows(min_row=2, values_only=True)] == ["Qw3rTy"]


# Lines whose stored evidence holds what must be escaped to be stored as text: a leading tab,
# a Latin-1 byte in the discarded query, a backslash, a zero-width space.
AWKWARD_LINES = (
    b"\thttps://hotels.cloudbeds.com/reservation/Qw3rTy?utm_source=google\n"
    b"https://hotels.cloudbeds.com/reservation/Hp0Jgx?q=caf\xe9\n"
    b"https://hotels.cloudbeds.com/reservation/Mn4Bv7?path=C:\\x41\\n\n"
    b"https://hotels.cloudbeds.com/reservation/Zz8Yy7\xe2\x80\x8b\n"
)


@pytest.mark.parametrize(
    "change",
    [
        lambda engine: engine.update(id_case="upper"),
        lambda engine: engine.update(booking_url=engine["booking_url"] + "?lang=en"),
    ],
    ids=["id_case", "booking_url"],
)
def test_a_rule_change_reads_escaped_evidence_as_the_line_it_was(project, database_url, change):
    raw = project.root / "data/raw"
    project.write_raw("cloudbeds", "", datetime(2026, 1, 1, tzinfo=UTC))
    (raw / "cloudbeds.txt").write_bytes(AWKWARD_LINES)
    assert ingest.main(["--engine", "cloudbeds"]) == 0
    first = sorted(leads(database_url, "cloudbeds"))
    assert {"Qw3rTy", "Hp0Jgx", "Mn4Bv7"} <= set(first)
    project.edit_params(lambda p: change(p["engines"]["cloudbeds"]))
    assert ingest.main(["--engine", "cloudbeds"]) == 0
    rules = marker(project, "cloudbeds")["rules"]
    assert rules["retracted"] == 0 and rules["checked"] == len(first)
    assert len(leads(database_url, "cloudbeds")) == len(first)  # renamed in place, none added


def test_a_retracted_lead_seen_again_is_un_retracted_with_the_new_line(project, database_url):
    fixed = project.params["engines"]["cloudbeds"]
    project.edit_params(old_cloudbeds_rules)
    project.write_raw(
        "cloudbeds",
        "https://hotels.cloudbeds.com/booking/Zx9Wv8\nQw3rTy\n",
        datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert ingest.main(["--engine", "cloudbeds"]) == 0
    project.edit_params(lambda p: p["engines"].update(cloudbeds=fixed))
    project.write_raw("cloudbeds", "Qw3rTy\n", datetime(2026, 1, 8, tzinfo=UTC))
    assert ingest.main(["--engine", "cloudbeds", "--accept"]) == 0
    assert marker(project, "cloudbeds")["retracted"] == 1
    again = "https://us2.cloudbeds.com/reservation/Zx9Wv8\nQw3rTy\n"
    project.write_raw("cloudbeds", again, datetime(2026, 1, 15, tzinfo=UTC))
    assert ingest.main(["--engine", "cloudbeds"]) == 0
    stats = marker(project, "cloudbeds")
    assert (stats["retracted"], stats["unretracted"]) == (0, 1)
    assert leads(database_url, "cloudbeds")["Zx9Wv8"][0] == (
        "https://us2.cloudbeds.com/reservation/Zx9Wv8"
    )


def test_unchanged_rules_read_no_stored_evidence(project, database_url):
    project.write_raw("rms", "4321\n", datetime(2026, 1, 1, tzinfo=UTC))
    assert ingest.main(["--engine", "rms"]) == 0
    assert marker(project, "rms")["rules"]["checked"] == 0  # a new engine has nothing stored
    project.write_raw("rms", "4321\n", datetime(2026, 1, 8, tzinfo=UTC))
    assert ingest.main(["--engine", "rms"]) == 0
    assert marker(project, "rms")["rules"] == {
        "checked": 0,
        "rows_changed": 0,
        "urls": 0,
        "renamed": 0,
        "merged": 0,
        "retracted": 0,
        "unretracted": 0,
    }


def test_a_url_that_gives_no_id_beside_one_that_does_is_counted_and_listed(project, database_url):
    text = (
        "https://hotels.cloudbeds.com/reservation/Qw3rTy https://hotels.cloudbeds.com/booking/rooms\n"
        "https://hotels.cloudbeds.com/reservation/Zx9Wv8\n"
    )
    project.write_raw("cloudbeds", text, datetime(2026, 1, 1, tzinfo=UTC))
    assert ingest.main(["--engine", "cloudbeds"]) == 0
    stats = marker(project, "cloudbeds")
    assert (stats["accepted_lines"], stats["rejected"], stats["urls_without_id"]) == (2, 0, 1)
    rejects = (project.root / "data/ingest/cloudbeds.rejects.tsv").read_text().splitlines()
    assert rejects[1:] == ["1\turl:no_id\thttps://hotels.cloudbeds.com/booking/rooms"]


def test_an_item_of_an_id_list_that_is_no_id_is_counted_and_listed(project, database_url):
    uuid = "6e2a6e1d-0a5b-4c53-9c6a-ab1e00c9d9c7"
    project.write_raw(
        "mews",
        f"https://app.mews.com/distributor/{uuid};zzz\n",
        datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert ingest.main(["--engine", "mews"]) == 0
    stats = marker(project, "mews")
    assert (stats["accepted_lines"], stats["valid"], stats["list_items_without_id"]) == (1, 1, 1)
    rejects = (project.root / "data/ingest/mews.rejects.tsv").read_text().splitlines()
    assert rejects[1:] == ["1\titem:malformed_id\tzzz"]
