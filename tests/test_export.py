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
from stages.report.workbook import COLUMNS
from tests.support.faultproxy import Fault
from tests.support.pg import create_database

SEEN = datetime(2026, 6, 1, 12, 30, tzinfo=UTC)


def loaded(project, engine="siteminder", text="direct-book.com/properties/b-hotel\na-hotel\n"):
    project.write_raw(engine, text, SEEN)
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
    loaded(project, text="".join(f"hotel{n}direct\n" for n in range(1, 6)))
    assert export.main(["--engine", "siteminder"]) == 0
    book = load_workbook(workbook_path(project))
    assert book.sheetnames[:3] == ["Leads", "Leads (2)", "Leads (3)"]
    assert [r[6] for r in book["Leads (3)"].iter_rows(min_row=2, values_only=True)] == [
        "hotel5direct"
    ]


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
    loaded(project, text="\n\n")  # junk alone would now fail ingest's rejected-share guard
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


@pytest.mark.parametrize(
    ("stage", "name", "message"),
    [
        (export, "export", "siteminder.json is missing; run `dvc repro --downstream --force"),
        (publish, "publish", "siteminder.xlsx is missing; run `dvc repro export@siteminder`"),
    ],
    ids=["export", "publish"],
)
def test_a_stage_failure_names_the_stage_once(project, database_url, capsys, stage, name, message):
    assert stage.main(["--engine", "siteminder"]) == 1
    [line] = [line for line in capsys.readouterr().err.splitlines() if " failed: " in line]
    assert line.startswith(f"{name}@siteminder failed: {message}"), line
    assert line.count(f"{name}@siteminder") == 1, line


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


def exported_sheets(project, database_url, update):
    """The worksheets' XML by file name, of the workbook export writes after `update` ran."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(update)
    assert export.main(["--engine", "siteminder"]) == 0
    with zipfile.ZipFile(workbook_path(project)) as archive:
        names = [n for n in archive.namelist() if n.startswith("xl/worksheets/sheet")]
        return {name: archive.read(name).decode() for name in names}


def test_formula_looking_leads_are_stored_as_text(project, database_url):
    loaded(project)
    update = 'UPDATE hotels SET name = \'=HYPERLINK("http://evil.example","x")\''
    sheet = exported_sheets(project, database_url, update)["xl/worksheets/sheet1.xml"]
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


# --- what changed: New, Not seen, Summary ------------------------------------------------------

WEEKS = [datetime(2026, 6, day, 4, 17, tzinfo=UTC) for day in (1, 8, 15)]
# Three weekly crawls of SiteMinder: a hotel leaves after week 1, one after week 2, one arrives
# in week 2 and one in week 3; each crawl holds a line that is no lead.
CRAWLS = [
    "direct-book.com/properties/harbourviewdirect\n"
    "https://book-directonline.com/properties/seasidehoteldirect\n"
    "https://direct-book.com/properties/gardenpalacedirect\n"
    "https://example.com/not-a-booking-page\n",
    "https://book-directonline.com/properties/seasidehoteldirect\n"
    "https://direct-book.com/properties/gardenpalacedirect\n"
    "https://direct-book.com/properties/alpinelodgedirect\n"
    "ftp://direct-book.com/properties/x\n",
    "https://book-directonline.com/properties/seasidehoteldirect\n"
    "https://direct-book.com/properties/alpinelodgedirect\n"
    "https://direct-book.com/properties/baysidesuitesdirect\n"
    "https://example.com/not-a-booking-page\n",
]


def load_weeks(project, weeks=3):
    for crawl, week in zip(CRAWLS[:weeks], WEEKS, strict=False):
        project.write_raw("siteminder", crawl, week)
        assert ingest.main(["--engine", "siteminder"]) == 0
    assert export.main(["--engine", "siteminder"]) == 0
    return load_workbook(workbook_path(project))


def sheet_rows(book, title):
    return list(book[title].iter_rows(values_only=True))


def test_the_workbook_adds_new_not_seen_and_summary_sheets_after_the_leads(project, database_url):
    book = load_weeks(project)
    assert book.sheetnames == ["Leads", "New", "Not seen", "Summary"]


def test_new_lists_the_leads_first_seen_in_the_latest_load(project, database_url):
    rows = sheet_rows(load_weeks(project), "New")
    assert rows[0][8:] == ("First Seen (UTC)", "Last Seen (UTC)")
    assert [row[6] for row in rows[1:]] == ["baysidesuitesdirect"]
    assert rows[1][8] == WEEKS[2].replace(tzinfo=None)  # a real date, in UTC


def test_not_seen_lists_leads_missing_from_the_latest_two_loads_newest_first(project, database_url):
    # harbourview left after week 1; gardenpalace was last seen in week 2, one of the last two.
    rows = sheet_rows(load_weeks(project), "Not seen")
    assert [(row[6], row[9]) for row in rows[1:]] == [
        ("harbourviewdirect", WEEKS[0].replace(tzinfo=None))
    ]


def test_not_seen_counts_the_loads_params_name(project, database_url):
    project.edit_params(lambda p: p["export"].update(not_seen_loads=1))
    rows = sheet_rows(load_weeks(project), "Not seen")
    assert [row[6] for row in rows[1:]] == ["gardenpalacedirect", "harbourviewdirect"]


def test_not_seen_is_empty_until_there_are_enough_loads(project, database_url):
    rows = sheet_rows(load_weeks(project, weeks=1), "Not seen")
    assert rows == [rows[0]] and rows[0][6] == "Property ID"


def test_summary_has_one_row_per_load_with_its_figures(project, database_url):
    rows = sheet_rows(load_weeks(project), "Summary")
    assert rows[0] == export.SUMMARY_COLUMNS
    # crawl date, lines, leads, new, not seen, rejected, retracted
    figures = rows[1:]
    assert figures == [
        (WEEKS[0].replace(tzinfo=None), 4, 3, 3, 0, 1, 0),
        (WEEKS[1].replace(tzinfo=None), 4, 4, 1, 1, 1, 0),
        (WEEKS[2].replace(tzinfo=None), 4, 5, 1, 2, 1, 0),
    ]


def test_the_export_metrics_count_new_and_not_seen_rows(project, database_url):
    load_weeks(project)
    metrics = json.loads((project.root / "data/exports/siteminder.json").read_text())
    assert (metrics["rows"], metrics["new"], metrics["not_seen"]) == (5, 1, 1)


def test_a_re_export_with_new_sheets_is_byte_identical(project, database_url):
    load_weeks(project)
    first = workbook_path(project).read_bytes()
    assert export.main(["--engine", "siteminder"]) == 0
    assert workbook_path(project).read_bytes() == first


def test_formula_looking_text_in_the_new_sheet_is_stored_as_text(project, database_url):
    load_weeks(project)
    update = "UPDATE hotels SET name = '=1+2', city = '@SUM(A1)'"
    sheets = list(exported_sheets(project, database_url, update).values())
    assert len(sheets) == 4
    assert all("<f>" not in sheet and "<f " not in sheet for sheet in sheets)
    assert sheet_rows(load_workbook(workbook_path(project)), "New")[1][:2] == ("=1+2", "@SUM(A1)")


def test_a_bad_not_seen_loads_value_names_the_key(project, database_url, capsys):
    loaded(project)
    project.edit_params(lambda p: p["export"].update(not_seen_loads="two"))
    assert export.main(["--engine", "siteminder"]) == 1
    error = capsys.readouterr().err
    assert "`export.not_seen_loads`" in error and not workbook_path(project).exists()


@pytest.mark.skipif(not shutil.which("soffice"), reason="LibreOffice (soffice) is not installed")
def test_libreoffice_reads_every_sheet_of_the_exported_workbook(project, database_url, tmp_path):
    book = load_weeks(project)
    subprocess.run(
        [
            "soffice",
            "--headless",
            f"-env:UserInstallation=file://{tmp_path}/lo",
            "--convert-to",
            "xlsx",
            "--outdir",
            str(tmp_path / "converted"),
            str(workbook_path(project)),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    again = load_workbook(tmp_path / "converted" / "siteminder.xlsx")
    assert again.sheetnames == book.sheetnames
    for title in book.sheetnames:
        assert sheet_rows(again, title) == sheet_rows(book, title), title


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
