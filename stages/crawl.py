"""Crawl-file lines to property ids: the reading and parsing rules every stage shares.

`iter_lines` streams a crawl file as raw lines with flat memory, `LineParser` turns one line
into an engine's property id or a reason code, and `safe_text` makes a line fit to print.

The engine rules are data (params.yaml `engines`); nothing here names an engine.

Outcome of `LineParser.parse`, one per physical line:

- a `str`: the accepted property id, case-normalised per `id_case`;
- `BLANK`: the line holds only whitespace (not a rejection; count it apart);
- a `Reject`: why the line was refused. The codes are fixed; checks run in this order and
  the first that fails names the reason: too_long, invalid_utf8, control_chars,
  unsupported_scheme, wrong_host, then the percent-decoded path (invalid_utf8 or
  control_chars again), no_id, malformed_id.

`Reject` and `Blank` are plain enums, not `str`, so `type(outcome) is str` means accepted.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from enum import Enum
from itertools import islice
from typing import BinaryIO
from urllib.parse import unquote

from stages.config import Engine

MAX_LINE_LENGTH = 2048
CHUNK_SIZE = 1 << 20
_BOM = b"\xef\xbb\xbf"


class Reject(Enum):
    """Why a line gave no property id. `value` is the code written to reject files."""

    TOO_LONG = "too_long"  # longer than max_length bytes
    INVALID_UTF8 = "invalid_utf8"  # the line, or its percent-decoded path, is not UTF-8
    CONTROL_CHARS = "control_chars"  # C0/C1 control character or DEL (NUL included)
    UNSUPPORTED_SCHEME = "unsupported_scheme"  # a scheme other than http/https
    WRONG_HOST = "wrong_host"  # not one of the engine's hosts, nor a subdomain of one
    NO_ID = "no_id"  # right host, but no url pattern matches the path
    MALFORMED_ID = "malformed_id"  # an id was found (or a bare line) not matching id_pattern

    def __str__(self) -> str:
        return self.value


class Blank(Enum):
    """The one outcome of a whitespace-only line: neither an id nor a rejection."""

    BLANK = "blank"

    def __str__(self) -> str:
        return self.value


BLANK = Blank.BLANK
ParseResult = str | Reject | Blank


def iter_lines(
    stream: BinaryIO, max_length: int = MAX_LINE_LENGTH, chunk_size: int = CHUNK_SIZE
) -> Iterator[bytes | None]:
    """Yield each physical line of a binary stream without its line end, or None if too long.

    Line ends are \\n, \\r\\n and a lone \\r; a UTF-8 BOM at the start is dropped. Memory stays
    flat in file size and line length: a line over `max_length` bytes is skipped, not held.
    """
    partial = b""  # start of a line whose end lies in a later chunk; never over max_length
    overlong = False  # the line being read is already over max_length: drop its bytes
    after_cr = False  # the previous chunk ended with \r, so a leading \n ends no new line
    for chunk in _chunks(stream, chunk_size):
        if after_cr and chunk[:1] == b"\n":
            chunk = chunk[1:]
            if not chunk:
                after_cr = False
                continue
        after_cr = chunk[-1] == 13
        lines = chunk.splitlines()  # bytes split on \n, \r\n and \r only
        # Unless the chunk ends a line, its last piece continues in the next chunk.
        tail = b"" if chunk[-1] in (10, 13) else lines.pop()
        start = 0
        if lines and (partial or overlong):
            joined = None if overlong else partial + lines[0]
            yield None if joined is None or len(joined) > max_length else joined
            partial, overlong, start = b"", False, 1
        if lines:
            if max(map(len, lines)) <= max_length:
                yield from islice(lines, start, None)
            else:
                for line in islice(lines, start, None):
                    yield None if len(line) > max_length else line
        if tail and not overlong:
            if len(partial) + len(tail) > max_length:
                partial, overlong = b"", True
            else:
                partial += tail
    if overlong:
        yield None
    elif partial:
        yield partial


def _chunks(stream: BinaryIO, size: int) -> Iterator[bytes]:
    """Non-empty chunks of the stream, the UTF-8 BOM at its start removed."""
    first = stream.read(size)
    while first and len(first) < len(_BOM) and _BOM.startswith(first):
        more = stream.read(size)  # the BOM itself may straddle tiny reads
        if not more:
            break
        first += more
    if first.startswith(_BOM):
        first = first[len(_BOM) :]
    if first:
        yield first
    while chunk := stream.read(size):
        yield chunk


# Whitespace that may surround a line: ASCII whitespace (bytes.strip), and for lines that are
# not ASCII also Unicode spaces and the BOM (files joined with `cat` carry one mid-file).
_UNICODE_SPACE = (
    " \t\n\r\x0b\x0c\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL, C1
_CONTROL_BYTES = bytes(range(0x20)) + b"\x7f"  # the same, for ASCII lines
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_PORT = re.compile(r"\d+(?:[/?#]|$)")  # "<host>:<port>..." has no scheme
_WEB_SCHEMES = frozenset({"http", "https"})
# Distinct authorities remembered (up to a DNS name's 255 characters each): crawl files
# repeat a few hosts, and the cache stays small whatever the input.
_HOST_CACHE_SIZE = 4096


class LineParser:
    """Parse crawl lines for one engine; `parse` is the hot loop of ingest, keep it lean.

    How a URL is read, as a browser would where it matters for safety: the scheme is optional
    and any run of slashes may follow it; "<host>:<digits>" is a port, not a scheme; a
    backslash is a slash; userinfo (up to the last '@') and the port are dropped; the host
    must be ASCII before it is lower-cased and may end with a dot; the path is
    percent-decoded once. Surrounding ASCII whitespace, Unicode spaces and a BOM are ignored.
    """

    def __init__(self, engine: Engine, max_length: int = MAX_LINE_LENGTH) -> None:
        self.engine = engine
        self.max_length = max_length
        self._url_patterns = engine.url_patterns
        self._id_fullmatch = engine.id_pattern.fullmatch
        self._case = {"lower": str.lower, "upper": str.upper}.get(engine.id_case)
        # Only an exact ASCII host or a subdomain of one counts; labels are checked too.
        hosts = "|".join(re.escape(host) for host in engine.hosts)
        self._host_fullmatch = re.compile(rf"(?:[a-z0-9_-]+\.)*(?:{hosts})").fullmatch
        self._hosts: dict[str, str] = {}  # authority -> normalised host, "" if not ours

    def parse(self, raw: bytes | None) -> ParseResult:
        """The property id in `raw` (one line from `iter_lines`), BLANK, or a Reject."""
        if raw is None or len(raw) > self.max_length:
            return Reject.TOO_LONG
        line = raw.strip()
        if not line:
            return BLANK
        if line.isascii():
            if len(line.translate(None, _CONTROL_BYTES)) != len(line):
                return Reject.CONTROL_CHARS
            text = line.decode("ascii")
        else:
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                return Reject.INVALID_UTF8
            text = text.strip(_UNICODE_SPACE)
            if not text:
                return BLANK
            if _CONTROL.search(text):
                return Reject.CONTROL_CHARS
        if "/" not in text and ":" not in text and "." not in text:  # a bare id
            return self._accept(text) or Reject.MALFORMED_ID
        return self._parse_url(text)

    def _accept(self, candidate: str | None) -> str | None:
        if candidate is None or not self._id_fullmatch(candidate):
            return None
        return self._case(candidate) if self._case else candidate

    def _parse_url(self, text: str) -> ParseResult:
        # Split by hand: measurably faster than urllib.parse or one big regex.
        if "\\" in text:
            text = text.replace("\\", "/")  # browsers read a backslash as a slash
        colon = text.find(":")
        scheme = text[:colon] if colon > 0 else ""
        if scheme == "https" or scheme == "http":
            rest = text[colon + 1 :].lstrip("/")  # any run of slashes, as browsers accept
        elif scheme and _SCHEME.fullmatch(scheme) and not _PORT.match(text, colon + 1):
            if scheme.lower() not in _WEB_SCHEMES:
                return Reject.UNSUPPORTED_SCHEME
            rest = text[colon + 1 :].lstrip("/")
        elif text.startswith("//"):
            rest = text[2:]  # scheme-relative
        else:
            rest = text
        rest = rest.partition("?")[0].partition("#")[0]
        slash = rest.find("/")
        authority, path = (rest, "") if slash == -1 else (rest[:slash], rest[slash:])
        host = self._hosts.get(authority)
        if host is None:
            host = self._host(authority)
            if len(self._hosts) < _HOST_CACHE_SIZE and len(authority) <= 255:
                self._hosts[authority] = host
        if not host:
            return Reject.WRONG_HOST
        if "%" in path:
            try:
                path = unquote(path, errors="strict")
            except UnicodeDecodeError:
                return Reject.INVALID_UTF8
            if _CONTROL.search(path):
                return Reject.CONTROL_CHARS
        if path.endswith("/"):
            path = path[:-1]
        target = host + path
        found = False
        for pattern in self._url_patterns:
            match = pattern.search(target)
            if match:
                found = True
                accepted = self._accept(match["id"])
                if accepted:
                    return accepted
        return Reject.MALFORMED_ID if found else Reject.NO_ID

    def _host(self, authority: str) -> str:
        """The lower-cased host of `authority` if it is one of the engine's, else ""."""
        host = authority.rpartition("@")[2]  # drop userinfo; the host follows the last '@'
        host, _, port = host.partition(":")
        if port and not (port.isascii() and port.isdigit()):
            return ""
        # isascii before lower(): the Kelvin sign lower-cases to an ASCII 'k'.
        if not host.isascii():
            return ""
        host = host.lower()
        if host.endswith("."):
            host = host[:-1]  # "cloudbeds.com." is the fully qualified cloudbeds.com
        return host if self._host_fullmatch(host) else ""


_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


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


def _escape(char: str) -> str:
    code = ord(char)
    if char in _ESCAPES:
        return _ESCAPES[char]
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"
