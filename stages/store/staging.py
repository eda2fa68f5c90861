"""The staging of a load: the ids of one crawl file COPYed into a temp table, lead_staging, in
large text blocks, before stages.store.leads merges them with set-based SQL.

Whole text blocks, escaped with a few replaces over the block, keep Python's cost per id low:
the COPY text was the largest single item of a load's Python time (BENCHMARKS.md, figure 1).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, cast

from stages.rules.crawl_tally import Found as Found

if TYPE_CHECKING:
    import psycopg

# Ids per COPY write: large blocks keep Python's per-call cost low, and memory stays flat.
COPY_BLOCK = 65_536
# COPY text format gives \, tab, newline and carriage return a meaning; crawl ids never hold
# them, but an id that does must arrive intact rather than split or mangled.
COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
# The same as replaces, backslash first so the escapes' own backslashes stay single.
ESCAPE_ORDER = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))


@dataclass(frozen=True)
class CopyBlocks:
    """Staged rows already written as COPY text (stages.store.split_parse): (text, rows in it)
    per block, each block ending in a newline."""

    blocks: Iterable[tuple[str, int]]


def stage_rows(cur: psycopg.Cursor, ids: Iterable[str] | Iterable[Found] | CopyBlocks) -> int:
    """COPY `ids` into a new temp table lead_staging (dropped at commit); return how many were
    copied. `ids` is consumed inside the COPY, never held in memory. A staged row per id a
    line named is (property_id, line number, booking URL, evidence) (`Found`); a repeat of an
    id already staged may carry "" for both: the first line of each id decides."""
    cur.execute(
        'CREATE TEMP TABLE lead_staging (property_id text COLLATE "C" NOT NULL,'
        " line bigint NOT NULL, booking_url text NOT NULL, evidence text NOT NULL)"
        " ON COMMIT DROP"
    )
    with cur.copy("COPY lead_staging FROM STDIN") as copy:
        return _copy_ids(copy, ids)


def _copy_ids(copy: psycopg.Copy, ids: Iterable[str] | Iterable[Found] | CopyBlocks) -> int:
    """Write `ids` to the COPY in large text blocks; return how many were written."""
    written = 0
    blocks = ids.blocks if isinstance(ids, CopyBlocks) else copy_text_blocks(ids)
    for block, rows in blocks:
        copy.write(block)
        written += rows
    return written


def copy_text_blocks(ids: Iterable[str] | Iterable[Found]) -> Iterator[tuple[str, int]]:
    """`ids` as COPY text for lead_staging: (block, ids in it) per COPY_BLOCK ids, each block
    ending in a newline. `ids` is consumed block by block, never held whole."""
    written = 0
    remaining = iter(ids)
    while block := list(islice(remaining, COPY_BLOCK)):
        rows: list[Found]
        if type(block[0]) is str:  # bare ids: the evidence is the id, the URL the template
            bare = cast(list[str], block)
            rows = [(i, written + n, "", i) for n, i in enumerate(bare, start=1)]
        else:
            rows = cast(list[Found], block)
        text = "\n".join([f"{i}\t{n}\t{u}\t{e}" for i, n, u, e in rows])
        # One scan per special character over the whole block is far cheaper than per row.
        if (
            text.count("\n") != len(rows) - 1
            or text.count("\t") != 3 * len(rows)
            or "\\" in text
            or "\r" in text
        ):
            text = _escaped_block(rows)
        yield text + "\n", len(rows)
        written += len(rows)


def _escaped_block(rows: list[Found]) -> str:
    """`rows` as COPY text with their special characters escaped.

    One backslash in a block is enough to send it here, and nearly every block has some:
    about 1 line in 120 of a real crawl keeps an id beside a control character or an invalid
    UTF-8 byte, which its evidence holds as a backslash escape. So the block is escaped with a
    few whole-text replaces, not per field (about 1 us a row against 5.8 us field by field):
    fields are joined with NUL and rows with SOH, which evidence never holds (`evidence_text`
    escapes control characters), and become tabs and newlines after the escaping.
    """
    text = "\x01".join([f"{i}\x00{n}\x00{u}\x00{e}" for i, n, u, e in rows])
    if text.count("\x00") == 3 * len(rows) and text.count("\x01") == len(rows) - 1:
        for char, escape in ESCAPE_ORDER:
            text = text.replace(char, escape)
        return text.replace("\x00", "\t").replace("\x01", "\n")
    return "\n".join(  # an id or URL holding NUL or SOH: field by field
        "\t".join(
            (
                i.translate(COPY_ESCAPES),
                str(n),
                u.translate(COPY_ESCAPES),
                e.translate(COPY_ESCAPES),
            )
        )
        for i, n, u, e in rows
    )
