"""Crawl lines made safe: stored evidence that gives back the very bytes, and printable text.

`evidence_text`/`evidence_line` keep the line that made a lead (stages/store/leads.py reads it
again when the rules change); `booking_page` is the page a lead's line names; `safe_text` makes a
line fit for a TSV cell or a terminal.
"""

from __future__ import annotations

import re

from stages.rules.crawl_query import kept_query
from stages.rules.crawl_text import CONTROL_BYTES

_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
_EVIDENCE_ESCAPE = re.compile(r"\\(?:[\\tnr]|x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8})")
_EVIDENCE_CODES = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}


def evidence_text(raw: bytes) -> str:
    """A crawl line as text PostgreSQL can store and `evidence_line` turns back into the same
    bytes: a backslash is doubled, an invalid UTF-8 byte becomes \\xNN, any other character
    that is not printable \\t, \\n, \\r, \\uNNNN or \\UNNNNNNNN (NUL included, which a
    text column cannot hold). Readable where the line is, unlike a byte dump.
    """
    if raw.isascii() and raw.translate(None, CONTROL_BYTES + b"\\") == raw:
        return raw.decode("ascii")  # the common line: nothing to escape
    text = raw.decode("utf-8", "surrogateescape")
    return "".join(
        "\\\\" if char == "\\" else char if char.isprintable() else _escape(char, True)
        for char in text
    )


def evidence_line(text: str) -> bytes:
    """The bytes of the line `evidence_text` gave `text` for."""

    def unescape(match: re.Match[str]) -> str:
        code = match[0][1:]
        if code in _EVIDENCE_CODES:
            return _EVIDENCE_CODES[code]
        value = int(code[1:], 16)
        return chr(0xDC00 + value) if code[0] == "x" else chr(value)

    if "\\" in text:
        text = _EVIDENCE_ESCAPE.sub(unescape, text)
    return text.encode("utf-8", "surrogateescape")


def safe_text(raw: bytes, limit: int = 200) -> str:
    """`raw` made safe for a TSV cell or a terminal, at most `limit` characters long.

    Invalid UTF-8 bytes become \\xNN; control, format and separator characters (tab, NUL,
    bidi overrides, ...) become \\t, \\xNN, \\uNNNN; a cut is marked with a trailing '…'.
    """
    head = raw[: limit * 4]  # enough bytes for `limit` characters
    text = head.decode("utf-8", "surrogateescape")
    if len(head) == len(raw) and len(text) <= limit and text.isprintable():
        return text
    pieces = [char if char.isprintable() else _escape(char) for char in text]
    if len(head) == len(raw) and sum(map(len, pieces)) <= limit:
        return "".join(pieces)
    kept: list[str] = []
    size = 0
    for piece in pieces:  # whole escapes only, leaving room for the marker
        if size + len(piece) > limit - 1:
            break
        kept.append(piece)
        size += len(piece)
    return "".join(kept) + "…"


def _escape(char: str, evidence: bool = False) -> str:
    """One character as an escape: \\t \\n \\r, \\xNN for a byte that was not UTF-8 (and, for
    `safe_text`, any code below 0x100), else \\uNNNN or \\UNNNNNNNN. `evidence_line` reads
    \\xNN back as a byte, so evidence writes a code below 0x100 as \\u00NN."""
    code = ord(char)
    if char in _ESCAPES:
        return _ESCAPES[char]
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100 and not evidence:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def booking_page(match: re.Match[str], query: str, property_id: str) -> str:
    """The https page a url pattern's `match` (in "<host><path>") and the URL's `query` name,
    with `property_id` (case-normalised) in the id's place, up to the end of the match, and
    the query a booking URL keeps (`kept_query`)."""
    target = match.string
    page = target[: match.start("id")] + property_id + target[match.end("id") : match.end()]
    if query:
        page += "?" + query
    if "?" in page:
        page, _, query = page.partition("?")
        query = kept_query(query)
        if query:
            page += "?" + query
    return "https://" + page
