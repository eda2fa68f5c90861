"""Write hotel leads to an Excel workbook: streaming, safe to open, byte-for-byte reproducible.

The workbook is written as SpreadsheetML text straight into the zip: each row becomes one XML
string and streams into its sheet's zip entry as it arrives, so memory stays flat however many
leads there are, and a cell costs a few string operations (openpyxl's write-only mode builds
and styles an object per cell and was several times slower; see BENCHMARKS.md). Only the first
`LOOKAHEAD_ROWS` rows of each sheet are held, to size the columns. The parts around the sheets
(styles, workbook, relationships) are fixed text, modelled on what openpyxl writes.

Text is written so that no spreadsheet evaluates it, and the same rows always give the same
bytes (fixed document and zip timestamps), so re-exporting unchanged leads leaves DVC's hash
alone.
"""

from __future__ import annotations

import math
import os
import re
import secrets
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import chain, islice
from pathlib import Path
from typing import IO, Any

from stages.errors import ConfigError, PipelineError

COLUMNS = (
    "Hotel",
    "City",
    "Country",
    "Website",
    "Booking URL",
    "Booking Engine",
    "Property ID",
    "Sources",
    "First Seen",
    "Last Seen",
)
SHEET_TITLE = "Leads"
MAX_ROWS_PER_SHEET = 1_048_575  # Excel's 1,048,576 rows less the header row
LOOKAHEAD_ROWS = 1_000  # rows per sheet held back to size the columns
MAX_COLUMN_WIDTH = 60
MAX_CELL_TEXT = 32_767  # Excel refuses a workbook with a longer cell
HEADER_FONT_COLOR = "FFFFFFFF"
HEADER_FILL_COLOR = "FF1F4E78"  # Excel's "Blue, Accent 1, darker 50%"
DATETIME_FORMAT = "yyyy-mm-dd h:mm:ss"
DATETIME_DISPLAY_WIDTH = len("yyyy-mm-dd hh:mm:ss")
ROWS_PER_WRITE = 512  # rendered rows joined into one write to the zip stream
# zlib level: 3 compresses sheet XML about 3x faster than the default 6, for a file about
# 15 % larger (measured on 200,000 leads: 0.25 s and 9.0 MB against 0.73 s and 7.8 MB).
COMPRESS_LEVEL = 3

# Every timestamp the file carries; 1980-01-01 is the earliest a zip entry can hold.
FIXED_TIMESTAMP = datetime(1980, 1, 1)
_ZIP_DATE_TIME = FIXED_TIMESTAMP.timetuple()[:6]
_NO_ROW = object()  # end of the row iterator

# A cell starting with one of these is a formula (or becomes one when edited) in Excel,
# LibreOffice or Google Sheets, so it is written as text with a quote prefix. Line breaks are
# stored as LF (a bare CR reads back as LF from one XML reader and as CR from another), so a
# leading CR is caught as a leading LF.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\n")
# Text a spreadsheet could take for an error value; quote-prefixed like a formula.
_ERROR_CODES = frozenset(("#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A"))
# Characters XML 1.0 cannot carry: C0 controls but tab/LF/CR, surrogates, U+FFFE and U+FFFF.
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

# Excel counts days from 1899-12-30 (1900 date system); times are fractions of a day.
_EXCEL_EPOCH = datetime(1899, 12, 30)
_EXCEL_EPOCH_UTC = datetime.fromisoformat("1899-12-30T00:00:00+00:00")
_DAY = timedelta(days=1)
_CELL_CACHE_SIZE = 4_096  # distinct values remembered per column and sheet

# Cell formats (the `s` attribute): indexes into cellXfs of STYLES_XML.
_HEADER_STYLE, _DATETIME_STYLE, _QUOTED_STYLE = 1, 2, 3
_LETTERS = tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ"[: len(COLUMNS)])

_MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
_XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'


@dataclass(frozen=True)
class WorkbookStats:
    """What one workbook write produced."""

    rows: int
    sheets: int
    bytes: int


def write_leads_workbook(
    path: Path, rows: Iterable[Sequence[Any]], *, rows_per_sheet: int = MAX_ROWS_PER_SHEET
) -> WorkbookStats:
    """Write `rows` (tuples in `COLUMNS` order) to the workbook at `path`, atomically.

    Sources is a list of str, joined with ", "; First/Last Seen are datetimes, stored in UTC
    (a naive datetime is taken as UTC). Past `rows_per_sheet` rows the leads continue on
    "Leads (2)", "Leads (3)", ... The file at `path` is replaced only once the new workbook is
    complete and on disk; if anything fails, including the row iterator, it is left untouched.
    """
    if not 1 <= rows_per_sheet <= MAX_ROWS_PER_SHEET:
        raise ConfigError(
            f"params.yaml: `export.rows_per_sheet` is {rows_per_sheet}; set it between 1 and "
            f"{MAX_ROWS_PER_SHEET} (Excel's row limit less the header)."
        )
    path = Path(path)
    temp_path, descriptor = _create_temp_file(path)
    try:
        with os.fdopen(descriptor, "wb") as out:
            written, sheets = _write_workbook(out, rows, rows_per_sheet, path)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp_path, path)
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)
    return WorkbookStats(rows=written, sheets=sheets, bytes=path.stat().st_size)


def _create_temp_file(path: Path) -> tuple[Path, int]:
    """A new file beside `path`, so the final rename stays on one file system."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp_path = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        # 0o666 less the umask: the workbook gets the permissions of any other output.
        return temp_path, os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise PipelineError(
            f"Cannot write the workbook {path}: {exc.strerror or exc}; check that the folder "
            "is writable."
        ) from exc


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _write_workbook(
    out: IO[bytes], rows: Iterable[Sequence[Any]], rows_per_sheet: int, path: Path
) -> tuple[int, int]:
    """Write the zip: the sheets as the rows arrive, then the parts that list them."""
    remaining = iter(rows)
    sheet_rows: list[int] = []  # data rows per sheet
    archive = zipfile.ZipFile(
        out, "w", zipfile.ZIP_DEFLATED, allowZip64=True, compresslevel=COMPRESS_LEVEL
    )
    with archive:
        while True:
            first = next(remaining, _NO_ROW)
            if first is _NO_ROW and sheet_rows:
                break
            rows_here = (
                islice(chain((first,), remaining), rows_per_sheet) if first is not _NO_ROW else ()
            )
            number = len(sheet_rows) + 1
            sheet_rows.append(_write_sheet(archive, number, rows_here, rows_per_sheet, path))
        titles = [_sheet_title(number) for number in range(1, len(sheet_rows) + 1)]
        for name, text in _package_parts(titles, sheet_rows):
            archive.writestr(_entry(name), text.encode("utf-8"))
    return sum(sheet_rows), len(sheet_rows)


def _sheet_title(number: int) -> str:
    return SHEET_TITLE if number == 1 else f"{SHEET_TITLE} ({number})"


def _entry(name: str) -> zipfile.ZipInfo:
    """A zip entry with a fixed timestamp, mode and creator system, whatever the machine."""
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    # Entries made from a ZipInfo keep its own level, not the archive's; the attribute is
    # public as `compress_level` from Python 3.13, which keeps this name as an alias.
    info._compresslevel = COMPRESS_LEVEL
    info.create_system = 3  # Unix, so that the mode below means the same everywhere
    info.external_attr = 0o644 << 16
    return info


def _write_sheet(
    archive: zipfile.ZipFile,
    number: int,
    rows: Iterable[Sequence[Any]],
    rows_per_sheet: int,
    path: Path,
) -> int:
    """Stream one sheet's XML into the zip; return how many data rows it holds."""
    cells = _CellWriter()
    rendered = (cells.row(line, row) for line, row in enumerate(rows, start=2))
    # Column widths precede the rows in the sheet XML: size them from the first rows.
    lookahead = list(islice(rendered, LOOKAHEAD_ROWS))
    widths = _column_widths(values for values, _ in lookahead)
    # Zip64 lifts the 2 GiB entry limit but old Excel versions cannot read it: use it only
    # when this sheet may come near the limit, judging by the first rows.
    average = sum(len(xml) for _, xml in lookahead) / max(len(lookahead), 1)
    big = average * rows_per_sheet * 2 > zipfile.ZIP64_LIMIT
    count = 0
    try:
        with archive.open(_entry(f"xl/worksheets/sheet{number}.xml"), "w", force_zip64=big) as raw:
            raw.write(_sheet_head(widths).encode("utf-8"))
            batch: list[str] = []
            for _, xml in chain(lookahead, rendered):
                count += 1
                batch.append(xml)
                if len(batch) == ROWS_PER_WRITE:
                    raw.write("".join(batch).encode("utf-8"))
                    batch.clear()
            batch.append(_sheet_tail(count))
            raw.write("".join(batch).encode("utf-8"))
    except RuntimeError as exc:
        if "zip64" not in str(exc).lower():
            raise
        raise PipelineError(
            f"Sheet {_sheet_title(number)!r} of {path} holds over 2 GiB of text; lower "
            "`export.rows_per_sheet` in params.yaml."
        ) from exc
    return count


def _sheet_head(widths: Sequence[int]) -> str:
    cols = "".join(
        f'<col min="{index}" max="{index}" width="{width}" customWidth="1"/>'
        for index, width in enumerate(widths, start=1)
    )
    header = "".join(
        f'<c r="{letter}1" s="{_HEADER_STYLE}" t="inlineStr"><is><t>{_escape(title)}</t></is></c>'
        for letter, title in zip(_LETTERS, COLUMNS, strict=True)
    )
    return (
        f'{_XML_DECLARATION}<worksheet xmlns="{_MAIN_NS}">'
        '<sheetPr><outlinePr summaryBelow="1" summaryRight="1"/><pageSetUpPr/></sheetPr>'
        # Frozen below the header row, so the column names stay in view while scrolling.
        '<sheetViews><sheetView workbookViewId="0">'
        '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
        '<selection pane="bottomLeft" activeCell="A1" sqref="A1"/>'
        "</sheetView></sheetViews>"
        '<sheetFormatPr baseColWidth="8" defaultRowHeight="15"/>'
        f'<cols>{cols}</cols><sheetData><row r="1">{header}</row>'
    )


def _sheet_tail(data_rows: int) -> str:
    # The filter covers the header and every data row; it is written after the rows.
    return (
        f'</sheetData><autoFilter ref="{_filter_range(data_rows)}"/>'
        '<pageMargins left="0.75" right="0.75" top="1" bottom="1" header="0.5" footer="0.5"/>'
        "</worksheet>"
    )


def _filter_range(data_rows: int, absolute: bool = False) -> str:
    if absolute:
        return f"$A$1:${_LETTERS[-1]}${data_rows + 1}"
    return f"A1:{_LETTERS[-1]}{data_rows + 1}"


class _CellWriter:
    """Renders rows as SpreadsheetML. Each column remembers the cells of the values it has seen,
    up to a bound: engines, sources, places and timestamps repeat over many rows."""

    def __init__(self) -> None:
        self._seen: list[dict[Any, str]] = [{} for _ in COLUMNS]

    def row(self, number: int, row: Sequence[Any]) -> tuple[Sequence[Any], str]:
        """(`row`, its XML as row `number` of the sheet)."""
        if len(row) != len(COLUMNS):
            raise ValueError(
                f"A lead row has {len(row)} values, expected {len(COLUMNS)}: {COLUMNS}."
            )
        parts = [f'<row r="{number}">']
        for letter, seen, value in zip(_LETTERS, self._seen, row, strict=True):
            if value is None:
                continue
            kind = type(value)
            # Only exact str, datetime and list values are remembered: 1, 1.0 and True are
            # equal dict keys but different cells.
            key = (
                value if kind is str or kind is datetime else tuple(value) if kind is list else None
            )
            try:
                cell = None if key is None else seen.get(key)
            except TypeError:  # a list holding something unhashable
                key = cell = None
            if cell is None:
                cell = _cell(value)
                if key is not None and len(seen) < _CELL_CACHE_SIZE:
                    seen[key] = cell
            if cell:
                parts.append(f'<c r="{letter}{number}"{cell}')
        parts.append("</row>")
        return row, "".join(parts)


def _cell(value: Any) -> str:
    """A cell's XML after its reference: ` t="inlineStr"><is>...</c>`; "" for no cell."""
    if type(value) is str:
        return _text_cell(value)
    if isinstance(value, datetime):
        return f' s="{_DATETIME_STYLE}" t="n"><v>{_excel_serial(value)!r}</v></c>'
    if isinstance(value, list | tuple):
        return _text_cell(", ".join(str(item) for item in value))
    if isinstance(value, bool):
        return f' t="b"><v>{int(value)}</v></c>'
    if isinstance(value, int | float | Decimal):
        number = float(value)
        if math.isnan(number) or math.isinf(number):
            return ""
        return f' t="n"><v>{number:.16g}</v></c>'
    if isinstance(value, date):
        midnight = datetime.combine(value, datetime.min.time())
        return f' s="{_DATETIME_STYLE}" t="n"><v>{_excel_serial(midnight)!r}</v></c>'
    return _text_cell(str(value))


def _text_cell(value: str) -> str:
    """An inline string cell that no spreadsheet reads as a formula or an error; "" if empty."""
    value = _clean_text(value)
    if not value:
        return ""
    quoted = value.startswith(FORMULA_TRIGGERS) or value in _ERROR_CODES
    style = f' s="{_QUOTED_STYLE}"' if quoted else ""
    # Without xml:space="preserve" a reader may drop leading and trailing whitespace.
    space = ' xml:space="preserve"' if value[0].isspace() or value[-1].isspace() else ""
    return f'{style} t="inlineStr"><is><t{space}>{_escape(value)}</t></is></c>'


def _clean_text(value: str) -> str:
    """`value` as a cell can hold it: no XML-forbidden characters, LF line breaks, at most
    MAX_CELL_TEXT characters."""
    if not value.isprintable():  # the common case skips the regex: printable text is clean
        value = _XML_FORBIDDEN.sub("", value)
        if "\r" in value:
            value = value.replace("\r\n", "\n").replace("\r", "\n")
    return value[:MAX_CELL_TEXT] if len(value) > MAX_CELL_TEXT else value


def _escape(text: str) -> str:
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


def _excel_serial(value: datetime) -> float:
    """Excel's day number of `value`: UTC wall-clock time for an aware datetime (Excel has no
    time zones), the time as it is for a naive one."""
    serial = (value - (_EXCEL_EPOCH if value.tzinfo is None else _EXCEL_EPOCH_UTC)) / _DAY
    # Excel believes 1900 was a leap year: days before 1900-03-01 are one lower.
    return serial - 1 if 1 <= serial < 61 else serial


def _column_widths(rows: Iterable[Sequence[Any]]) -> list[int]:
    widths = [len(title) for title in COLUMNS]
    for row in rows:
        for index, value in enumerate(row):
            widths[index] = max(widths[index], _display_width(value))
    return [min(width + 2, MAX_COLUMN_WIDTH) for width in widths]


def _display_width(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, datetime):
        return DATETIME_DISPLAY_WIDTH
    if isinstance(value, list | tuple):
        value = ", ".join(str(item) for item in value)
    text = _clean_text(value if isinstance(value, str) else str(value))
    return max(len(line) for line in text.split("\n"))


# --- the package parts around the sheets ------------------------------------------------------

STYLES_XML = f"""{_XML_DECLARATION}<styleSheet xmlns="{_MAIN_NS}">\
<numFmts count="1"><numFmt numFmtId="164" formatCode="{DATETIME_FORMAT}"/></numFmts>\
<fonts count="2">\
<font><sz val="11"/><name val="Calibri"/><family val="2"/></font>\
<font><b val="1"/><sz val="11"/><color rgb="{HEADER_FONT_COLOR}"/><name val="Calibri"/>\
<family val="2"/></font>\
</fonts>\
<fills count="3"><fill><patternFill patternType="none"/></fill>\
<fill><patternFill patternType="gray125"/></fill>\
<fill><patternFill patternType="solid"><fgColor rgb="{HEADER_FILL_COLOR}"/>\
<bgColor rgb="{HEADER_FILL_COLOR}"/></patternFill></fill></fills>\
<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>\
<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>\
<cellXfs count="4">\
<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>\
<xf numFmtId="0" fontId="1" fillId="2" borderId="0" xfId="0" applyFont="1" applyFill="1"/>\
<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>\
<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0" quotePrefix="1"/>\
</cellXfs>\
<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>\
</styleSheet>"""

_STAMP = FIXED_TIMESTAMP.isoformat() + "Z"
CORE_XML = f"""{_XML_DECLARATION}<cp:coreProperties \
xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" \
xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/" \
xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\
<dc:creator>crawl-pipeline</dc:creator>\
<dcterms:created xsi:type="dcterms:W3CDTF">{_STAMP}</dcterms:created>\
<dcterms:modified xsi:type="dcterms:W3CDTF">{_STAMP}</dcterms:modified>\
</cp:coreProperties>"""

APP_XML = f"""{_XML_DECLARATION}<Properties \
xmlns="http://schemas.openxmlformats.org/officeDocument/2006/extended-properties">\
<Application>crawl-pipeline</Application></Properties>"""

ROOT_RELS_XML = f"""{_XML_DECLARATION}<Relationships xmlns="{_PKG_REL_NS}">\
<Relationship Id="rId1" Type="{_REL_NS}/officeDocument" Target="xl/workbook.xml"/>\
<Relationship Id="rId2" \
Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties" \
Target="docProps/core.xml"/>\
<Relationship Id="rId3" Type="{_REL_NS}/extended-properties" Target="docProps/app.xml"/>\
</Relationships>"""

_SHEET_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"


def _package_parts(titles: Sequence[str], sheet_rows: Sequence[int]) -> Iterator[tuple[str, str]]:
    """(zip name, XML) of every part but the sheets, for sheets named `titles`."""
    numbers = range(1, len(titles) + 1)
    sheets = "".join(
        f'<sheet name="{_escape(title)}" sheetId="{n}" r:id="rId{n}"/>'
        for n, title in zip(numbers, titles, strict=True)
    )
    # Excel keeps each sheet's filter range as a hidden defined name as well.
    filters = "".join(
        f'<definedName name="_xlnm._FilterDatabase" localSheetId="{n - 1}" hidden="1">'
        f"'{_escape(title)}'!{_filter_range(count, absolute=True)}</definedName>"
        for n, title, count in zip(numbers, titles, sheet_rows, strict=True)
    )
    yield (
        "xl/workbook.xml",
        f'{_XML_DECLARATION}<workbook xmlns="{_MAIN_NS}" xmlns:r="{_REL_NS}">'
        '<workbookPr/><bookViews><workbookView activeTab="0"/></bookViews>'
        f"<sheets>{sheets}</sheets><definedNames>{filters}</definedNames>"
        '<calcPr calcId="124519" fullCalcOnLoad="1"/></workbook>',
    )
    rels = "".join(
        f'<Relationship Id="rId{n}" Type="{_REL_NS}/worksheet" Target="worksheets/sheet{n}.xml"/>'
        for n in numbers
    )
    styles_id = len(titles) + 1
    yield (
        "xl/_rels/workbook.xml.rels",
        f'{_XML_DECLARATION}<Relationships xmlns="{_PKG_REL_NS}">{rels}'
        f'<Relationship Id="rId{styles_id}" Type="{_REL_NS}/styles" Target="styles.xml"/>'
        "</Relationships>",
    )
    yield "xl/styles.xml", STYLES_XML
    yield "docProps/core.xml", CORE_XML
    yield "docProps/app.xml", APP_XML
    yield "_rels/.rels", ROOT_RELS_XML
    overrides = "".join(
        f'<Override PartName="/xl/worksheets/sheet{n}.xml" ContentType="{_SHEET_TYPE}"/>'
        for n in numbers
    )
    office = "application/vnd.openxmlformats-officedocument"
    yield (
        "[Content_Types].xml",
        f"{_XML_DECLARATION}"
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" '
        'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" '
        f'ContentType="{office}.spreadsheetml.sheet.main+xml"/>'
        f"{overrides}"
        '<Override PartName="/xl/styles.xml" '
        f'ContentType="{office}.spreadsheetml.styles+xml"/>'
        '<Override PartName="/docProps/core.xml" '
        'ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>'
        '<Override PartName="/docProps/app.xml" '
        f'ContentType="{office}.extended-properties+xml"/>'
        "</Types>",
    )
