"""Write hotel leads to an Excel workbook: streaming, safe to open, byte-for-byte reproducible.

Rows stream through openpyxl's write-only mode, so memory stays flat however many leads there
are; only the first `LOOKAHEAD_ROWS` rows of each sheet are held, to size the columns. Text is
written so that no spreadsheet evaluates it, and the same rows always give the same bytes
(fixed document and zip timestamps), so re-exporting unchanged leads leaves DVC's hash alone.
"""

from __future__ import annotations

import contextlib
import os
import re
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain, islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from stages.errors import ConfigError, PipelineError
from stages.store.files import atomic_output

if TYPE_CHECKING:
    from openpyxl.worksheet._write_only import WriteOnlyWorksheet

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
HEADER_FONT_COLOR = "FFFFFFFF"
HEADER_FILL_COLOR = "FF1F4E78"  # Excel's "Blue, Accent 1, darker 50%"
DATETIME_DISPLAY_WIDTH = len("yyyy-mm-dd hh:mm:ss")

# Every timestamp the file carries; 1980-01-01 is the earliest a zip entry can hold.
FIXED_TIMESTAMP = datetime(1980, 1, 1)
_ZIP_DATE_TIME = FIXED_TIMESTAMP.timetuple()[:6]

# A cell starting with one of these is a formula (or becomes one when edited) in Excel,
# LibreOffice or Google Sheets, so it is written as text with a quote prefix. Line breaks are
# stored as LF (a bare CR reads back as LF from one XML writer and as CR from another), so a
# leading CR is caught as a leading LF.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\n")
# openpyxl would turn these strings into error cells rather than text.
_ERROR_CODES = frozenset(("#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A"))
# Characters XML 1.0 cannot carry: C0 controls but tab/LF/CR, surrogates, U+FFFE and U+FFFF.
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@dataclass(frozen=True)
class Sheet:
    """A sheet after the leads: its title, column titles and rows (tuples in column order).

    Values follow the Leads rules (text never a formula, datetimes stored in UTC); say so in
    the column title of a date ("First Seen (UTC)"). More than `rows_per_sheet` rows continue
    on "<title> (2)", ...
    """

    title: str
    columns: tuple[str, ...]
    rows: Iterable[Sequence[Any]]


@dataclass(frozen=True)
class WorkbookStats:
    """What one workbook write produced: lead rows and Leads sheets, the file's size, and the
    rows of each further sheet by title."""

    rows: int
    sheets: int
    bytes: int
    extra_rows: dict[str, int] = field(default_factory=dict)


def write_leads_workbook(
    path: Path,
    rows: Iterable[Sequence[Any]],
    *,
    rows_per_sheet: int = MAX_ROWS_PER_SHEET,
    extra_sheets: Sequence[Sheet] = (),
) -> WorkbookStats:
    """Write `rows` (tuples in `COLUMNS` order) to the workbook at `path`, atomically.

    Sources is a list of str, joined with ", "; First/Last Seen are datetimes, stored in UTC
    (a naive datetime is taken as UTC). Past `rows_per_sheet` rows the leads continue on
    "Leads (2)", "Leads (3)", ... `extra_sheets` follow, in order; the Leads sheets are the same
    bytes with or without them. The file at `path` is replaced only once the new workbook is
    complete and on disk; if anything fails, including a row iterator, it is left untouched.
    """
    if not 1 <= rows_per_sheet <= MAX_ROWS_PER_SHEET:
        raise ConfigError(
            f"params.yaml: `export.rows_per_sheet` is {rows_per_sheet}; set it between 1 and "
            f"{MAX_ROWS_PER_SHEET} (Excel's row limit less the header)."
        )
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PipelineError(
            f"Cannot write the workbook {path}: {exc.strerror or exc}; check that the folder "
            "is writable."
        ) from exc
    with atomic_output(path) as out:
        written, sheets, extra = _write_workbook(out, rows, rows_per_sheet, extra_sheets)
    return WorkbookStats(rows=written, sheets=sheets, bytes=path.stat().st_size, extra_rows=extra)


def _write_workbook(
    out: Any, rows: Iterable[Sequence[Any]], rows_per_sheet: int, extra_sheets: Sequence[Sheet]
) -> tuple[int, int, dict[str, int]]:
    from openpyxl import Workbook
    from openpyxl.writer.excel import ExcelWriter

    workbook = Workbook(write_only=True)
    workbook.properties.creator = "crawl-pipeline"
    workbook.properties.created = FIXED_TIMESTAMP
    workbook.properties.modified = FIXED_TIMESTAMP
    archive = None
    try:
        written, sheets = _write_sheets(workbook, SHEET_TITLE, COLUMNS, iter(rows), rows_per_sheet)
        extra = {
            sheet.title: _write_sheets(
                workbook, sheet.title, sheet.columns, iter(sheet.rows), rows_per_sheet
            )[0]
            for sheet in extra_sheets
        }
        # ExcelWriter rather than workbook.save(): save() stamps `modified` with the clock.
        archive = _FixedTimeZipFile(out, "w", zipfile.ZIP_DEFLATED, allowZip64=True)
        ExcelWriter(workbook, archive).save()
    except BaseException:
        if archive is not None:
            # The output is discarded (disk full, say): without this the archive's __del__
            # writes to the closed file at exit and prints a traceback after the one-line error.
            archive.fp = None
        raise
    finally:
        _remove_sheet_buffers(workbook)
    return written, sheets, extra


def _write_sheets(
    workbook: Any,
    base_title: str,
    columns: Sequence[str],
    rows: Iterator[Sequence[Any]],
    rows_per_sheet: int,
) -> tuple[int, int]:
    """Fill "<title>", "<title> (2)", ... with at most `rows_per_sheet` rows each; always one
    sheet. Returns (rows, sheets)."""
    written = sheets = 0
    while True:
        first = next(rows, None)  # a row is a sequence, so None is the end
        if first is None and sheets:
            return written, sheets
        sheets += 1
        title = base_title if sheets == 1 else f"{base_title} ({sheets})"
        sheet = workbook.create_sheet(title)
        sheet_rows = islice(chain((first,), rows), rows_per_sheet) if first is not None else ()
        cells = (_row_cells(sheet, columns, row) for row in sheet_rows)
        lookahead = list(islice(cells, LOOKAHEAD_ROWS))
        # Column widths and the frozen pane precede the rows in the sheet XML.
        _size_columns(sheet, columns, lookahead)
        sheet.freeze_panes = "A2"
        sheet.append(_header_cells(sheet, columns))
        sheet_count = 0
        for row in chain(lookahead, cells):
            sheet.append(row)
            sheet_count += 1
        # The filter covers the header and every data row; it is written after the rows.
        sheet.auto_filter.ref = f"A1:{_last_column(columns)}{sheet_count + 1}"
        written += sheet_count


def _last_column(columns: Sequence[str]) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(len(columns))


def _header_cells(sheet: WriteOnlyWorksheet, columns: Sequence[str]) -> list[Any]:
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font, PatternFill

    font = Font(name="Calibri", size=11, bold=True, color=HEADER_FONT_COLOR)
    fill = PatternFill(
        fill_type="solid", start_color=HEADER_FILL_COLOR, end_color=HEADER_FILL_COLOR
    )
    cells = []
    for title in columns:
        cell = WriteOnlyCell(sheet, value=title)
        cell.font = font
        cell.fill = fill
        cells.append(cell)
    return cells


def _row_cells(sheet: WriteOnlyWorksheet, columns: Sequence[str], row: Sequence[Any]) -> list[Any]:
    if len(row) != len(columns):
        raise ValueError(f"A row has {len(row)} values, expected {len(columns)}: {columns}.")
    return [_cell_value(sheet, value) for value in row]


def _cell_value(sheet: WriteOnlyWorksheet, value: Any) -> Any:
    if type(value) is str:
        return _text(sheet, value)
    if value is None:
        return None
    if isinstance(value, datetime):
        # Excel has no time zones: store the UTC wall-clock time.
        if value.tzinfo is not None:
            return value.astimezone(UTC).replace(tzinfo=None)
        return value
    if isinstance(value, list | tuple):
        return _text(sheet, ", ".join(str(item) for item in value))
    if isinstance(value, str):
        return _text(sheet, str(value))
    return value


def _text(sheet: WriteOnlyWorksheet, value: str) -> Any:
    """`value` as a text cell that no spreadsheet reads as a formula or an error."""
    value = _XML_FORBIDDEN.sub("", value)
    if "\r" in value:
        value = value.replace("\r\n", "\n").replace("\r", "\n")
    if not value.startswith(FORMULA_TRIGGERS) and value not in _ERROR_CODES:
        return value
    from openpyxl.cell import WriteOnlyCell

    cell = WriteOnlyCell(sheet, value=value)
    cell.data_type = "s"  # openpyxl made "=..." a formula and "#N/A" an error
    cell.quotePrefix = True  # and Excel keeps it text when the cell is edited
    return cell


def _size_columns(
    sheet: WriteOnlyWorksheet, columns: Sequence[str], lookahead: list[list[Any]]
) -> None:
    from openpyxl.utils import get_column_letter

    for index, title in enumerate(columns):
        widest = max([len(title), *(_display_width(row[index]) for row in lookahead)])
        letter = get_column_letter(index + 1)
        # Worksheet._setup gives a write-only sheet column_dimensions; types-openpyxl omits it.
        dimensions = sheet.column_dimensions  # type: ignore[attr-defined]
        dimensions[letter].width = min(widest + 2, MAX_COLUMN_WIDTH)


def _display_width(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, datetime):
        return DATETIME_DISPLAY_WIDTH
    text = str(getattr(value, "value", value))  # a text cell holds its text in .value
    return max(len(line) for line in text.splitlines() or [""])


def _remove_sheet_buffers(workbook: Any) -> None:
    """Remove openpyxl's per-sheet temp files that a failed write left behind."""
    for sheet in workbook.worksheets:
        if not sheet.closed:
            # Finish the sheet's XML stream now, while its file is open, not at garbage collection.
            with contextlib.suppress(Exception):
                sheet.close()
        writer = getattr(sheet, "_writer", None)
        if writer is not None and os.path.exists(writer.out):
            writer.cleanup()


class _FixedTimeZipFile(zipfile.ZipFile):
    """A zip whose entries carry a fixed timestamp instead of the clock or a temp file's mtime.

    ZipFile.write and ZipFile.writestr both hand their ZipInfo to open(..., "w"), so this is
    the one place to set it; entry order and compression stay as openpyxl chose them.
    """

    def open(
        self, name: Any, mode: Literal["r", "w"] = "r", pwd: bytes | None = None, **kwargs: Any
    ) -> Any:
        if mode == "w" and isinstance(name, zipfile.ZipInfo):
            name.date_time = _ZIP_DATE_TIME
            name.external_attr = 0o644 << 16
        return super().open(name, mode, pwd, **kwargs)
