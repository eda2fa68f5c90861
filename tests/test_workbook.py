"""The leads workbook: layout, safe text, sheet rollover, reproducible bytes, atomic writes.

Each workbook is read back twice: with openpyxl, and independently from the XLSX zip's XML, so a
bug shared by openpyxl's writer and reader cannot hide.
"""

from __future__ import annotations

import csv
import posixpath
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from xml.etree import ElementTree

import openpyxl
import pytest

from stages.errors import ConfigError, PipelineError
from stages.report import workbook as workbook_module
from stages.report.workbook import (
    COLUMNS,
    FIXED_TIMESTAMP,
    HEADER_FILL_COLOR,
    HEADER_FONT_COLOR,
    MAX_COLUMN_WIDTH,
    write_leads_workbook,
)

MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
PKG_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"
DCTERMS = "{http://purl.org/dc/terms/}"
CEST = timezone(timedelta(hours=2))
EXCEL_EPOCH = datetime(1899, 12, 30)


def lead(number: int, **changes: object) -> tuple:
    """One export row in COLUMNS order; keyword arguments replace fields by column name."""
    values = {
        "Hotel": f"Hotel {number}",
        "City": "Lisbon",
        "Country": "Portugal",
        "Website": f"https://hotel{number}.example",
        "Booking URL": f"https://hotels.cloudbeds.com/reservation/id{number}",
        "Booking Engine": "Cloudbeds",
        "Property ID": f"id{number}",
        "Sources": ["commoncrawl"],
        "First Seen": datetime(2024, 5, 1, 12, 0, tzinfo=CEST),
        "Last Seen": datetime(2024, 5, 2, 8, 30, tzinfo=UTC),
    }
    values.update({name.replace("_", " "): value for name, value in changes.items()})
    return tuple(values[column] for column in COLUMNS)


def column(name: str) -> int:
    return COLUMNS.index(name)


# --- reading the XLSX zip directly ------------------------------------------------------------


def xml_sheets(path: Path) -> dict[str, ElementTree.Element]:
    """Sheet name -> worksheet XML, resolved through workbook.xml and its relationships."""
    with zipfile.ZipFile(path) as archive:
        book = ElementTree.fromstring(archive.read("xl/workbook.xml"))
        rels = ElementTree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
        targets = {
            xml_attr(rel, "Id"): xml_attr(rel, "Target")
            for rel in rels.iter(f"{PKG_REL}Relationship")
        }
        sheets = {}
        for sheet in book.iter(f"{MAIN}sheet"):
            target = targets[xml_attr(sheet, f"{REL}id")]
            member = target.lstrip("/") if target.startswith("/") else posixpath.join("xl", target)
            sheets[xml_attr(sheet, "name")] = ElementTree.fromstring(archive.read(member))
        return sheets


def xml_find(element: ElementTree.Element, path: str) -> ElementTree.Element:
    found = element.find(path)
    assert found is not None, f"no {path}"
    return found


def xml_attr(element: ElementTree.Element, name: str) -> str:
    value = element.get(name)
    assert value is not None, f"no attribute {name} on {element.tag}"
    return value


def xml_text(element: ElementTree.Element, path: str) -> str:
    text = xml_find(element, path).text
    assert text is not None, f"no text in {path}"
    return text


def xml_cell_text(cell: ElementTree.Element) -> str | None:
    inline = cell.find(f"{MAIN}is/{MAIN}t")
    if inline is not None:
        return inline.text or ""
    number = cell.find(f"{MAIN}v")
    return None if number is None else number.text


def xml_rows(sheet: ElementTree.Element) -> list[list[str | None]]:
    return [[xml_cell_text(c) for c in row.iter(f"{MAIN}c")] for row in sheet.iter(f"{MAIN}row")]


def xml_cell(sheet: ElementTree.Element, ref: str) -> ElementTree.Element:
    found = sheet.find(f".//{MAIN}c[@r='{ref}']")
    assert found is not None, f"no cell {ref}"
    return found


def xml_styles(path: Path) -> ElementTree.Element:
    with zipfile.ZipFile(path) as archive:
        return ElementTree.fromstring(archive.read("xl/styles.xml"))


def xml_cell_format(path: Path, cell: ElementTree.Element) -> ElementTree.Element:
    """The <xf> of cellXfs that a cell's s attribute points at."""
    formats = xml_find(xml_styles(path), f"{MAIN}cellXfs").findall(f"{MAIN}xf")
    return formats[int(cell.get("s", "0"))]


def all_xml(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist() if name.endswith(".xml")}


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "exports" / "cloudbeds.xlsx"


# --- layout -----------------------------------------------------------------------------------


@pytest.mark.unit
def test_header_row_names_the_columns(out: Path) -> None:
    write_leads_workbook(out, [lead(1)])

    assert [c.value for c in openpyxl.load_workbook(out)["Leads"][1]] == list(COLUMNS)
    assert xml_rows(xml_sheets(out)["Leads"])[0] == list(COLUMNS)


@pytest.mark.unit
def test_header_is_bold_white_on_blue(out: Path) -> None:
    write_leads_workbook(out, [lead(1)])

    for cell in openpyxl.load_workbook(out)["Leads"][1]:
        assert cell.font.b
        assert cell.font.color.rgb == HEADER_FONT_COLOR
        assert cell.fill.fill_type == "solid"
        assert cell.fill.fgColor.rgb == HEADER_FILL_COLOR
    styles = xml_styles(out)
    xf = xml_cell_format(out, xml_cell(xml_sheets(out)["Leads"], "A1"))
    font = xml_find(styles, f"{MAIN}fonts")[int(xml_attr(xf, "fontId"))]
    fill = xml_find(styles, f"{MAIN}fills")[int(xml_attr(xf, "fillId"))]
    assert font.find(f"{MAIN}b") is not None
    assert xml_find(font, f"{MAIN}color").get("rgb") == HEADER_FONT_COLOR
    assert xml_find(fill, f"{MAIN}patternFill").get("patternType") == "solid"
    assert xml_find(fill, f"{MAIN}patternFill/{MAIN}fgColor").get("rgb") == HEADER_FILL_COLOR


@pytest.mark.unit
def test_panes_are_frozen_below_the_header(out: Path) -> None:
    write_leads_workbook(out, [lead(1)])

    assert openpyxl.load_workbook(out)["Leads"].freeze_panes == "A2"
    pane = xml_find(xml_sheets(out)["Leads"], f".//{MAIN}sheetView/{MAIN}pane")
    assert pane.get("topLeftCell") == "A2"
    assert pane.get("state") == "frozen"
    assert pane.get("ySplit") == "1"


@pytest.mark.unit
def test_autofilter_covers_the_header_and_every_row(out: Path) -> None:
    write_leads_workbook(out, [lead(n) for n in range(5)])

    assert openpyxl.load_workbook(out)["Leads"].auto_filter.ref == "A1:J6"
    assert xml_find(xml_sheets(out)["Leads"], f"{MAIN}autoFilter").get("ref") == "A1:J6"


@pytest.mark.unit
def test_column_widths_fit_the_widest_value_up_to_a_cap(out: Path) -> None:
    write_leads_workbook(out, [lead(1, Hotel="H" * 200, City="Lisboa"), lead(2, City="Porto")])

    widths = openpyxl.load_workbook(out)["Leads"].column_dimensions
    assert widths["A"].width == MAX_COLUMN_WIDTH
    assert widths["B"].width == len("Lisboa") + 2
    assert widths["F"].width == len("Booking Engine") + 2  # the header is the widest
    cols = {
        c.get("min"): float(xml_attr(c, "width"))
        for c in xml_sheets(out)["Leads"].iter(f"{MAIN}col")
    }
    assert cols["1"] == MAX_COLUMN_WIDTH
    assert cols["2"] == len("Lisboa") + 2


@pytest.mark.unit
def test_column_widths_come_from_the_lookahead_rows_only(
    out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Sizing from a bounded look-ahead is what keeps memory flat: later rows cannot widen a column.
    monkeypatch.setattr(workbook_module, "LOOKAHEAD_ROWS", 2)
    write_leads_workbook(out, [lead(1), lead(2), lead(3, City="Lisbon Metropolitan Area")])

    assert openpyxl.load_workbook(out)["Leads"].column_dimensions["B"].width == len("Lisbon") + 2


# --- values -----------------------------------------------------------------------------------


@pytest.mark.unit
def test_rows_keep_their_order_and_values(out: Path) -> None:
    rows = [lead(n, Sources=["commoncrawl", "manual"]) for n in (3, 1, 2)]
    write_leads_workbook(out, rows)

    sheet = openpyxl.load_workbook(out)["Leads"]
    assert [r[0] for r in sheet.iter_rows(min_row=2, values_only=True)] == [
        "Hotel 3",
        "Hotel 1",
        "Hotel 2",
    ]
    first = [c.value for c in sheet[2]]
    assert first[: column("Sources")] == list(rows[0][: column("Sources")])
    assert first[column("Sources")] == "commoncrawl, manual"
    assert [r[0] for r in xml_rows(xml_sheets(out)["Leads"])[1:]] == [
        "Hotel 3",
        "Hotel 1",
        "Hotel 2",
    ]


@pytest.mark.unit
def test_seen_dates_are_excel_date_numbers_in_utc(out: Path) -> None:
    write_leads_workbook(out, [lead(1)])

    first_seen = openpyxl.load_workbook(out)["Leads"]["I2"]
    assert first_seen.is_date
    assert first_seen.value == datetime(2024, 5, 1, 10, 0)  # 12:00 at +02:00
    cell = xml_cell(xml_sheets(out)["Leads"], "I2")
    assert cell.get("t") == "n"
    expected_serial = (datetime(2024, 5, 1, 10, 0) - EXCEL_EPOCH) / timedelta(days=1)
    assert float(xml_text(cell, f"{MAIN}v")) == pytest.approx(expected_serial, abs=1e-9)
    number_format_id = xml_cell_format(out, cell).get("numFmtId")
    formats = {
        f.get("numFmtId"): xml_attr(f, "formatCode") for f in xml_styles(out).iter(f"{MAIN}numFmt")
    }
    assert "yyyy" in formats[number_format_id]
    assert "mm:ss" in formats[number_format_id]


@pytest.mark.unit
def test_naive_seen_dates_are_taken_as_utc(out: Path) -> None:
    write_leads_workbook(out, [lead(1, First_Seen=datetime(2024, 5, 1, 12, 0))])

    assert openpyxl.load_workbook(out)["Leads"]["I2"].value == datetime(2024, 5, 1, 12, 0)


FORMULA_LOOKING = [
    "=1+1",
    "+1+1",
    "-1+1",
    "@SUM(A1:A2)",
    "\t=1+1",
    "\r=1+1",
    "\n=1+1",
    '=HYPERLINK("x")',
]


@pytest.mark.unit
def test_formula_looking_text_is_stored_as_text_never_as_a_formula(out: Path) -> None:
    rows = [lead(n, Hotel=text, City=text) for n, text in enumerate(FORMULA_LOOKING)]
    rows.append(lead(99, Sources=["=cmd|' /C calc'!A0"]))
    write_leads_workbook(out, rows)

    for name, xml in all_xml(out).items():
        assert b"<f>" not in xml and b"<f " not in xml, f"formula element in {name}"
    sheet = openpyxl.load_workbook(out)["Leads"]
    for row_number, text in enumerate(FORMULA_LOOKING, start=2):
        cell = sheet.cell(row_number, 1)
        assert cell.data_type == "s"
        assert cell.value == text.replace("\r", "\n")  # line breaks are stored as LF
        assert cell.quotePrefix
    sheet_xml = xml_sheets(out)["Leads"]
    assert xml_cell(sheet_xml, "A2").get("t") == "inlineStr"
    assert xml_cell_format(out, xml_cell(sheet_xml, "A2")).get("quotePrefix") == "1"
    assert sheet.cell(len(rows) + 1, column("Sources") + 1).value == "=cmd|' /C calc'!A0"


@pytest.mark.unit
def test_error_code_text_is_stored_as_text(out: Path) -> None:
    write_leads_workbook(out, [lead(1, Hotel="#N/A")])

    cell = openpyxl.load_workbook(out)["Leads"]["A2"]
    assert (cell.value, cell.data_type) == ("#N/A", "s")
    assert xml_cell(xml_sheets(out)["Leads"], "A2").get("t") == "inlineStr"


@pytest.mark.unit
def test_characters_xml_forbids_are_removed(out: Path) -> None:
    dirty = "Ho\x00t\x08e\x0bl\x1f \ud800Sea\ufffe\uffffside\tSpa\nInn"
    write_leads_workbook(out, [lead(1, Hotel=dirty, Sources=["common\x01crawl"])])

    expected = "Hotel Seaside\tSpa\nInn"
    sheet = openpyxl.load_workbook(out)["Leads"]
    assert sheet["A2"].value == expected
    assert sheet["H2"].value == "commoncrawl"
    assert xml_cell_text(xml_cell(xml_sheets(out)["Leads"], "A2")) == expected


@pytest.mark.unit
def test_line_breaks_are_stored_as_lf(out: Path) -> None:
    write_leads_workbook(out, [lead(1, Hotel="Sea\r\nside\rInn")])

    assert openpyxl.load_workbook(out)["Leads"]["A2"].value == "Sea\nside\nInn"
    assert xml_cell_text(xml_cell(xml_sheets(out)["Leads"], "A2")) == "Sea\nside\nInn"


@pytest.mark.unit
def test_a_row_of_the_wrong_length_is_rejected(out: Path) -> None:
    with pytest.raises(ValueError, match="expected 10"):
        write_leads_workbook(out, [lead(1)[:9]])


# --- sheets -----------------------------------------------------------------------------------


@pytest.mark.unit
def test_rows_past_the_sheet_limit_continue_on_numbered_sheets(out: Path) -> None:
    stats = write_leads_workbook(out, [lead(n) for n in range(7)], rows_per_sheet=3)

    assert (stats.rows, stats.sheets) == (7, 3)
    book = openpyxl.load_workbook(out)
    assert book.sheetnames == ["Leads", "Leads (2)", "Leads (3)"]
    hotels = [
        [r[0] for r in book[name].iter_rows(min_row=2, values_only=True)]
        for name in book.sheetnames
    ]
    assert hotels == [
        ["Hotel 0", "Hotel 1", "Hotel 2"],
        ["Hotel 3", "Hotel 4", "Hotel 5"],
        ["Hotel 6"],
    ]
    for name in book.sheetnames:
        assert [c.value for c in book[name][1]] == list(COLUMNS)
        assert book[name].freeze_panes == "A2"
        assert book[name]["A1"].font.b
        assert book[name].column_dimensions["A"].width == len("Hotel 0") + 2
    xml = xml_sheets(out)
    assert list(xml) == ["Leads", "Leads (2)", "Leads (3)"]
    assert [xml_rows(s)[0] for s in xml.values()] == [list(COLUMNS)] * 3
    assert [xml_find(s, f"{MAIN}autoFilter").get("ref") for s in xml.values()] == [
        "A1:J4",
        "A1:J4",
        "A1:J2",
    ]


@pytest.mark.unit
def test_a_full_last_sheet_adds_no_empty_sheet(out: Path) -> None:
    stats = write_leads_workbook(out, [lead(n) for n in range(6)], rows_per_sheet=3)

    assert stats.sheets == 2
    assert openpyxl.load_workbook(out).sheetnames == ["Leads", "Leads (2)"]


@pytest.mark.unit
def test_no_rows_give_a_header_only_workbook(out: Path) -> None:
    stats = write_leads_workbook(out, iter(()))

    assert (stats.rows, stats.sheets) == (0, 1)
    book = openpyxl.load_workbook(out)
    assert book.sheetnames == ["Leads"]
    assert list(book["Leads"].iter_rows(values_only=True)) == [COLUMNS]
    assert xml_rows(xml_sheets(out)["Leads"]) == [list(COLUMNS)]
    assert xml_find(xml_sheets(out)["Leads"], f"{MAIN}autoFilter").get("ref") == "A1:J1"


@pytest.mark.unit
@pytest.mark.parametrize("rows_per_sheet", [0, 1_048_576])
def test_rows_per_sheet_outside_excels_limit_is_a_config_error(
    out: Path, rows_per_sheet: int
) -> None:
    with pytest.raises(ConfigError, match="export.rows_per_sheet"):
        write_leads_workbook(out, [lead(1)], rows_per_sheet=rows_per_sheet)
    assert not out.exists()


@pytest.mark.unit
def test_stats_count_rows_sheets_and_bytes(out: Path) -> None:
    stats = write_leads_workbook(out, (lead(n) for n in range(4)), rows_per_sheet=2)

    assert (stats.rows, stats.sheets, stats.bytes) == (4, 2, out.stat().st_size)


# --- reproducible bytes -----------------------------------------------------------------------


@pytest.mark.unit
def test_the_same_rows_give_byte_identical_files(tmp_path: Path) -> None:
    rows = [lead(n, Hotel="=1+1" if n == 2 else f"Hotel {n}") for n in range(50)]
    first, second = tmp_path / "first.xlsx", tmp_path / "second.xlsx"
    write_leads_workbook(first, rows, rows_per_sheet=20)
    write_leads_workbook(second, rows, rows_per_sheet=20)

    assert first.read_bytes() == second.read_bytes()


@pytest.mark.unit
def test_the_file_carries_fixed_timestamps_not_the_clock(out: Path) -> None:
    # Whatever the clock says when this runs, no entry may carry it: that is what makes two
    # exports seconds or years apart identical.
    write_leads_workbook(out, [lead(n) for n in range(3)], rows_per_sheet=2)

    with zipfile.ZipFile(out) as archive:
        entries = archive.infolist()
        core = ElementTree.fromstring(archive.read("docProps/core.xml"))
    assert {entry.date_time for entry in entries} == {FIXED_TIMESTAMP.timetuple()[:6]}
    stamp = FIXED_TIMESTAMP.isoformat() + "Z"
    assert xml_text(core, f"{DCTERMS}created") == stamp
    assert xml_text(core, f"{DCTERMS}modified") == stamp


# --- atomic writes ----------------------------------------------------------------------------


def rows_that_fail_after(count: int) -> Iterator[tuple]:
    yield from (lead(n) for n in range(count))
    raise ConnectionError("server closed the connection")


@pytest.mark.unit
def test_a_failed_write_leaves_the_previous_workbook_and_no_temp_file(
    out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_leads_workbook(out, [lead(1)])
    previous = out.read_bytes()
    # openpyxl buffers each sheet in a temp file; send those here to see that none is left.
    sheet_buffers = tmp_path / "sheet-buffers"
    sheet_buffers.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(sheet_buffers))

    with pytest.raises(ConnectionError):
        write_leads_workbook(out, rows_that_fail_after(5), rows_per_sheet=3)

    assert out.read_bytes() == previous
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]
    assert list(sheet_buffers.iterdir()) == []


@pytest.mark.unit
def test_an_unwritable_destination_is_a_pipeline_error_naming_the_file(tmp_path: Path) -> None:
    blocker = tmp_path / "exports"
    blocker.write_text("a file where the exports folder should be")

    with pytest.raises(PipelineError, match="cloudbeds.xlsx"):
        write_leads_workbook(blocker / "cloudbeds.xlsx", [lead(1)])


# --- a real spreadsheet application -----------------------------------------------------------

SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")


@pytest.mark.skipif(SOFFICE is None, reason="LibreOffice (soffice) is not installed")
def test_libreoffice_reads_the_workbook_and_keeps_formula_looking_text_literal(
    out: Path, tmp_path: Path
) -> None:
    rows = [
        lead(1, Hotel="=1+1", City="+2+3", Country="-4+5", Website="@SUM(1,2)"),
        lead(2, Sources=["commoncrawl", "manual"]),
    ]
    write_leads_workbook(out, rows)
    assert SOFFICE is not None  # the skipif above

    csv_folder = tmp_path / "csv"
    subprocess.run(
        [
            SOFFICE,
            f"-env:UserInstallation=file://{tmp_path / 'lo-profile'}",
            "--headless",
            "--convert-to",
            "csv",
            "--outdir",
            str(csv_folder),
            str(out),
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    with open(csv_folder / "cloudbeds.csv", newline="", encoding="utf-8") as handle:
        table = list(csv.reader(handle))

    assert table[0] == list(COLUMNS)
    assert table[1][:4] == ["=1+1", "+2+3", "-4+5", "@SUM(1,2)"]
    assert table[1][column("First Seen")] == "2024-05-01 10:00:00"
    assert table[1][column("Last Seen")] == "2024-05-02 08:30:00"
    assert table[2][column("Hotel")] == "Hotel 2"
    assert table[2][column("Sources")] == "commoncrawl, manual"


# --- sheets after the leads -------------------------------------------------------------------


@pytest.mark.unit
def test_the_leads_sheet_is_the_same_bytes_with_or_without_further_sheets(tmp_path: Path) -> None:
    from stages.report.workbook import Sheet

    rows = [lead(1), lead(2, Hotel="=cmd|'/c calc'!A1")]
    alone, with_more = tmp_path / "alone.xlsx", tmp_path / "more.xlsx"
    write_leads_workbook(alone, rows)
    stats = write_leads_workbook(
        with_more,
        rows,
        extra_sheets=[
            Sheet("New", COLUMNS, [lead(2)]),
            Sheet("Summary", ("Crawl Date (UTC)", "Leads"), [(datetime(2026, 6, 1), 2)]),
        ],
    )

    with zipfile.ZipFile(alone) as a, zipfile.ZipFile(with_more) as b:
        assert a.read("xl/worksheets/sheet1.xml") == b.read("xl/worksheets/sheet1.xml")
    assert openpyxl.load_workbook(with_more).sheetnames == ["Leads", "New", "Summary"]
    assert (stats.rows, stats.sheets, stats.extra_rows) == (2, 1, {"New": 1, "Summary": 1})


@pytest.mark.unit
def test_a_further_sheet_rolls_over_like_the_leads(out: Path) -> None:
    from stages.report.workbook import Sheet

    write_leads_workbook(
        out, [lead(1)], rows_per_sheet=2, extra_sheets=[Sheet("New", COLUMNS, map(lead, range(5)))]
    )

    assert openpyxl.load_workbook(out).sheetnames == ["Leads", "New", "New (2)", "New (3)"]
