"""export@<engine> and publish@<engine>: workbooks from the database, drift refused, uploads."""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from datetime import UTC, datetime

import psycopg
import pytest
from openpyxl import load_workbook

from stages import export, ingest, publish
from stages.workbook import COLUMNS
from tests.support.faultproxy import Fault
from tests.support.pg import create_database
from tests.test_ingest import write_raw

SEEN = datetime(2026, 6, 1, 12, 30, tzinfo=UTC)


def loaded(project, engine="siteminder", text="direct-book.com/properties/b-hotel\na-hotel\n"):
    write_raw(project, engine, text, SEEN)
    assert ingest.main(["--engine", engine]) == 0


def workbook_path(project, engine="siteminder"):
    return project.root / "data/exports" / f"{engine}.xlsx"


def test_export_writes_the_engines_leads_in_order(project, database_url):
    loaded(project)
    assert export.main(["--engine", "siteminder"]) == 0
    sheet = load_workbook(workbook_path(project))["Leads"]
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == COLUMNS and COLUMNS[6] == "Property ID"
    assert [row[6] for row in rows[1:]] == ["a-hotel", "b-hotel"]
    assert rows[1][4] == "https://direct-book.com/properties/a-hotel"
    assert rows[1][5] == "SiteMinder" and rows[1][7] == "commoncrawl"
    assert rows[1][8] == SEEN.replace(tzinfo=None)
    metrics = json.loads((project.root / "data/exports/siteminder.json").read_text())
    assert (metrics["rows"], metrics["sheets"]) == (2, 1)


def test_re_export_of_unchanged_leads_is_byte_identical(project, database_url):
    loaded(project)
    assert export.main(["--engine", "siteminder"]) == 0
    first = workbook_path(project).read_bytes()
    assert export.main(["--engine", "siteminder"]) == 0
    assert workbook_path(project).read_bytes() == first


def test_rows_roll_over_to_more_sheets_by_params(project, database_url):
    project.edit_params(lambda p: p["export"].update(rows_per_sheet=2))
    loaded(project, text="a1\na2\na3\na4\na5\n")
    assert export.main(["--engine", "siteminder"]) == 0
    book = load_workbook(workbook_path(project))
    assert book.sheetnames == ["Leads", "Leads (2)", "Leads (3)"]
    assert [r[6] for r in book["Leads (3)"].iter_rows(min_row=2, values_only=True)] == ["a5"]


def test_the_source_tag_filter_comes_from_params(project, database_url):
    loaded(project)
    manual = project.root / "manual.txt"
    manual.write_text("only-manual\n")
    assert (
        ingest.main(["--engine", "siteminder", "--file", str(manual), "--source-tag", "manual"])
        == 0
    )
    assert export.main(["--engine", "siteminder"]) == 0
    ids = [
        r[6]
        for r in load_workbook(workbook_path(project))["Leads"].iter_rows(
            min_row=2, values_only=True
        )
    ]
    assert ids == ["a-hotel", "b-hotel"]
    project.edit_params(lambda p: p["export"].update(source_tag=""))
    assert export.main(["--engine", "siteminder"]) == 0
    ids = [
        r[6]
        for r in load_workbook(workbook_path(project))["Leads"].iter_rows(
            min_row=2, values_only=True
        )
    ]
    assert ids == ["a-hotel", "b-hotel", "only-manual"]


def test_an_engine_with_no_leads_gets_a_header_only_workbook(project, database_url):
    loaded(project, text="not a lead\n\n")
    assert export.main(["--engine", "siteminder"]) == 0
    rows = list(load_workbook(workbook_path(project))["Leads"].iter_rows(values_only=True))
    assert len(rows) == 1 and rows[0][0] == "Hotel"


def test_an_emptied_database_fails_the_export_and_keeps_the_old_workbook(
    project, database_url, capsys
):
    loaded(project)
    assert export.main(["--engine", "siteminder"]) == 0
    before = workbook_path(project).read_bytes()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("TRUNCATE hotel_booking_engines, hotels")
    assert export.main(["--engine", "siteminder"]) == 1
    error = capsys.readouterr().err
    assert "holds 0 leads but ingest left 2" in error
    assert "ingest@siteminder" in error
    assert workbook_path(project).read_bytes() == before


def test_a_different_database_fails_the_export(
    project, database_url, pg_server, monkeypatch, capsys
):
    loaded(project)
    _, empty = create_database(pg_server)
    monkeypatch.setenv("DATABASE_URL", empty)
    assert export.main(["--engine", "siteminder"]) == 1
    error = capsys.readouterr().err
    assert "export@siteminder" in error and "ingest@siteminder" in error
    assert not workbook_path(project).exists()


def test_formula_looking_leads_are_stored_as_text(project, database_url):
    loaded(project)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute('UPDATE hotels SET name = \'=HYPERLINK("http://evil.example","x")\'')
    assert export.main(["--engine", "siteminder"]) == 0
    with zipfile.ZipFile(workbook_path(project)) as archive:
        sheet = archive.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet and "<f " not in sheet
    assert "=HYPERLINK" in sheet


@pytest.mark.skipif(not shutil.which("soffice"), reason="LibreOffice (soffice) is not installed")
def test_libreoffice_opens_the_exported_workbook(project, database_url, tmp_path):
    loaded(project)
    assert export.main(["--engine", "siteminder"]) == 0
    subprocess.run(
        [
            "soffice",
            "--headless",
            f"-env:UserInstallation=file://{tmp_path}/lo",
            "--convert-to",
            "csv",
            "--outdir",
            str(tmp_path),
            str(workbook_path(project)),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    csv = (tmp_path / "siteminder.csv").read_text()
    assert "https://direct-book.com/properties/a-hotel" in csv


def test_publish_without_a_target_records_that_nothing_was_published(project, database_url):
    loaded(project)
    assert export.main(["--engine", "siteminder"]) == 0
    assert publish.main(["--engine", "siteminder"]) == 0
    record = json.loads((project.root / "data/published/siteminder.json").read_text())
    assert record["published"] is False and record["uri"] is None


def test_publish_uploads_the_workbook_through_a_fault(
    project, database_url, s3_bucket, fault_proxy
):
    loaded(project)
    assert export.main(["--engine", "siteminder"]) == 0
    project.add_s3_remote("leads", f"s3://{s3_bucket.name}/HotelLeadGen", fault_proxy.endpoint_url)
    project.edit_params(lambda p: p["publish"].update(to="remote://leads/booking-engines"))
    fault_proxy.plan(Fault.status(503, "SlowDown", method="PUT"))
    assert publish.main(["--engine", "siteminder"]) == 0
    key = "HotelLeadGen/booking-engines/siteminder_leads.xlsx"
    assert s3_bucket.get(key) == workbook_path(project).read_bytes()
    assert s3_bucket.head(key)["ContentType"] == publish.XLSX_TYPE
    record = json.loads((project.root / "data/published/siteminder.json").read_text())
    assert record["uri"] == f"s3://{s3_bucket.name}/{key}"
    assert record["attempts"] == 2 and record["etag"] == s3_bucket.head(key)["ETag"].strip('"')


def test_publish_to_a_missing_bucket_fails_at_once(project, database_url, s3_bucket, capsys):
    loaded(project)
    assert export.main(["--engine", "siteminder"]) == 0
    project.add_s3_remote("leads", "s3://no-such-bucket/x", s3_bucket.endpoint_url)
    project.edit_params(lambda p: p["publish"].update(to="remote://leads"))
    assert publish.main(["--engine", "siteminder"]) == 1
    assert "NoSuchBucket" in capsys.readouterr().err
    assert not (project.root / "data/published/siteminder.json").exists()


def test_a_publish_target_that_is_not_s3_is_a_config_error(project, capsys):
    project.edit_params(lambda p: p["publish"].update(to="/tmp/leads"))
    assert publish.main(["--engine", "siteminder"]) == 1
    assert "`publish.to`" in capsys.readouterr().err
