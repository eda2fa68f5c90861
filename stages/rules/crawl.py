"""Crawl-file lines to property ids: the reading and parsing rules every stage shares.

`open_crawl` opens a crawl file whatever it arrived as (UTF-8, gzip, UTF-16/32 with a BOM),
`iter_lines` streams it as raw lines with flat memory, `LineParser` turns one line into an
engine's property id(s) or a reason code, and `safe_text` makes a line fit to print.

The engine rules are data (params.yaml `engines`); nothing here names an engine.

Outcome of `LineParser.parse`, one per physical line:

- a `str`: the accepted property id, case-normalised per `id_case`;
- a `tuple` of str: several ids named by one line (an engine with `id_separator`, such as
  Mews `<uuid>;<uuid>`), in line order, without repeats;
- `BLANK`: the line holds only whitespace (not a rejection; count it apart);
- a `Reject`: why the line was refused. The codes are fixed; checks run in this order and
  the first that fails names the reason: too_long, invalid_utf8, control_chars (both only
  for the part before the query: the query and fragment are read only for ids in them),
  unsupported_scheme, wrong_host, then the percent-decoded path (invalid_utf8 or
  control_chars again), no_id, malformed_id. A line without a URL may instead be
  header_row (every word of it a crawl export's column name: url, status, ...) or, for an
  engine whose ids are word-like, text_word (see `LineParser._word`).

Before a line is read as a URL, the debris of HTML or text extraction around it is dropped:
quotes, `href=`/`src=`, brackets, `&quot;`/`%22`, trailing `;` `,` `.` `)`, and `&amp;` is
read as `&`. So `$booking="https://x/reservation/Qw3rTy";` names Qw3rTy like the bare URL.

`Reject` and `Blank` are plain enums, not `str`, so `type(outcome) is str` means accepted.
After an accepted line, `LineParser.booking_url(id)` gives the page that line named.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO, cast
from urllib.parse import unquote

from stages.rules.config import Engine

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
    HEADER_ROW = "header_row"  # a crawl export's column header (`url`, `"url","status"`)
    TEXT_WORD = "text_word"  # a bare word an engine of word-like ids does not take: see `_word`

    def __str__(self) -> str:
        return self.value


# Reading an enum member off its class runs Python code in 3.11 (about 0.2 µs, as much as the
# rest of a rejected line's check); the parser returns these module-level names instead.
(
    _TOO_LONG,
    _INVALID_UTF8,
    _CONTROL_CHARS,
    _UNSUPPORTED_SCHEME,
    _WRONG_HOST,
    _NO_ID,
    _MALFORMED_ID,
    _HEADER_ROW,
    _TEXT_WORD,
) = Reject


class Blank(Enum):
    """The one outcome of a whitespace-only line: neither an id nor a rejection."""

    BLANK = "blank"

    def __str__(self) -> str:
        return self.value


BLANK = Blank.BLANK
ParseResult = str | tuple[str, ...] | Reject | Blank
# Bumped when this module reads lines differently, so stored evidence is checked again.
RULES_VERSION = 4


class UnreadableFile(Exception):
    """A crawl file in a format `open_crawl` cannot read; `format` names what was seen."""

    def __init__(self, format: str) -> None:
        super().__init__(format)
        self.format = format


# Leading bytes of formats that are surely not a crawl file, checked before anything else.
_FOREIGN = (
    (b"PK\x03\x04", "a zip archive"),
    (b"PK\x05\x06", "an empty zip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"BZh", "a bzip2 file"),
    (b"\xfd7zXZ\x00", "an xz file"),
    (b"\x28\xb5\x2f\xfd", "a zstd file"),
    (b"%PDF", "a PDF document"),
    (b"\xd0\xcf\x11\xe0", "an Office document"),
    (b"\x7fELF", "an executable"),
)
# Longest BOM first: the UTF-32 LE BOM begins with the UTF-16 LE one.
_TEXT_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)
_SNIFF = 4096  # bytes looked at to tell text from binary
_GZIP_DEPTH = 3  # gzip layers unwrapped; more is no crawl export, rather a decompression bomb


@contextmanager
def open_crawl(path: Path) -> Iterator[BinaryIO]:
    """`path` as a stream of UTF-8-ish bytes for `iter_lines`, whatever it arrived as.

    By its leading bytes: gzip (Common Crawl ships .gz) is decompressed, UTF-16/UTF-32 with
    a BOM (Windows PowerShell 5.1 `>` writes UTF-16 LE) is re-encoded as UTF-8, both while
    streaming (memory stays flat); anything else is read as it is, unless it is an archive or
    document (zip, 7z, bzip2, xz, zstd, PDF, Office, ELF) or binary (over BINARY_SHARE of its
    first 4 KiB invalid UTF-8 or control bytes other than NUL and whitespace): then
    UnreadableFile names the format (a tar archive too, by its `ustar` magic at byte 257).
    UTF-16/32 without a BOM is told by its NUL bytes (every other byte in the first KiB, or
    three of four) and decoded the same way: no UTF-8 text holds NULs like that, and
    decoding loads the very leads of the UTF-8 original, where failing would only ask the
    user to re-save the file; so is BOM-less UTF-16 whose first KiB holds no ASCII at all (CJK
    text), told by its line ends. A gzip member holding UTF-16 is read the same way, and gzip
    inside gzip (a .gz gzipped again by an upload tool) is decompressed up to _GZIP_DEPTH deep.
    """
    import gzip

    with path.open("rb") as handle:
        stream: BinaryIO = handle
        head = handle.peek(_SNIFF)[:_SNIFF]
        depth = 0
        while head[:2] == b"\x1f\x8b":
            depth += 1
            if depth > _GZIP_DEPTH:
                raise UnreadableFile(f"gzip inside gzip more than {_GZIP_DEPTH} deep")
            stream = gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[assignment]
            try:
                head = stream.peek(_SNIFF)[:_SNIFF]  # type: ignore[attr-defined]
            except (OSError, EOFError) as exc:
                raise UnreadableFile(f"a damaged gzip file ({exc})") from None
        yield _decoded(stream, head)


def _decoded(stream: BinaryIO, head: bytes) -> BinaryIO:
    for magic, name in _FOREIGN:
        if head.startswith(magic):
            raise UnreadableFile(name)
    if head[257:262] == b"ustar":  # POSIX and GNU tar: the magic sits in the first header
        raise UnreadableFile("a tar archive")
    for bom, encoding in _TEXT_BOMS:
        # UTF-16/32 of URLs is mostly ASCII, so NUL bytes follow the BOM; a UTF-8 file whose
        # first line merely starts with the bytes FF FE is read as UTF-8 (and that line rejected).
        if head.startswith(bom) and (b"\x00" in head[len(bom) :] or len(head) == len(bom)):
            return _Recoded(stream, encoding, len(bom))  # type: ignore[return-value]
    bomless = _bomless_encoding(head)
    if bomless:
        return _Recoded(stream, bomless, 0)  # type: ignore[return-value]
    if _looks_binary(head):
        raise UnreadableFile("binary data (mostly bytes that are neither UTF-8 nor text)")
    return stream


def _bomless_encoding(head: bytes) -> str | None:
    """UTF-16/32 without a BOM (a file split or written by .NET without one), told by where
    the NUL bytes sit in the first KiB: text of URLs is ASCII, so each character's other
    bytes are NUL. UTF-8 and Latin-1 text holds no NUL at all, so the pattern is safe."""
    sample = head[:1024]
    size = len(sample) - len(sample) % 4
    if size < 4:
        return None
    share = [sample[i:size:4].count(0) / (size // 4) for i in range(4)]
    nul = [value >= 0.9 for value in share]
    text = [value <= 0.1 for value in share]
    if text[0] and nul[1] and nul[2] and nul[3]:
        return "utf-32-le"
    if nul[0] and nul[1] and nul[2] and text[3]:
        return "utf-32-be"
    if text[0] and text[2] and nul[1] and nul[3]:
        return "utf-16-le"
    if nul[0] and nul[2] and text[1] and text[3]:
        return "utf-16-be"
    return _utf16_by_line_ends(sample)


def _utf16_by_line_ends(sample: bytes) -> str | None:
    """UTF-16 without a BOM whose text is not ASCII (CJK lines before the URLs), told by its
    line ends: every LF sits in a code unit of its own (0A 00 little-endian, 00 0A big-endian),
    and the sample decodes to printable text. Binary data fails one of these."""
    even = sample[: len(sample) - len(sample) % 2]
    units = [even[i : i + 2] for i in range(0, len(even), 2)]
    # Pairs of ASCII characters are what UTF-8 text (with a stray NUL line) would give.
    if sum(unit.isascii() and unit.isalnum() for unit in units) * 2 > len(units):
        return None
    for encoding, line_end in (("utf-16-le", b"\n\x00"), ("utf-16-be", b"\x00\n")):
        ends = units.count(line_end)
        if ends < 2 or ends * 2 < even.count(b"\n"):
            continue
        try:
            text = even.decode(encoding)
        except UnicodeDecodeError:  # a surrogate cut at the sample's end, or not UTF-16
            text = even[:-2].decode(encoding, "replace")
        printable = sum(char.isprintable() or char in "\r\n\t" for char in text)
        if "\ufffd" not in text and printable >= 0.95 * len(text):
            return encoding
    return None


# Control bytes no text file holds; NUL is left out so a text file with a NUL-ridden line is
# still read line by line (those lines are rejected as control_chars).
_BINARY_CONTROLS = frozenset(
    "\x01\x02\x03\x04\x05\x06\x07\x08\x0e\x0f\x10\x11\x12\x13\x14\x15"
    "\x16\x17\x18\x19\x1a\x1c\x1d\x1e\x1f\x7f\ufffd"
)
BINARY_SHARE = 0.10  # of the first 4 KiB's characters: Latin-1 accents stay far below


def _looks_binary(head: bytes) -> bool:
    """Whether the start of a file is binary: invalid UTF-8 or odd controls above BINARY_SHARE."""
    text = head.decode("utf-8", "replace")
    odd = sum(1 for char in text if char in _BINARY_CONTROLS)
    return odd > BINARY_SHARE * len(text)


class _Recoded(io.RawIOBase):
    """A UTF-16/32 stream read as UTF-8, chunk by chunk; undecodable units become U+FFFD."""

    def __init__(self, stream: BinaryIO, encoding: str, skip: int) -> None:
        import codecs

        stream.read(skip)
        self._stream = stream
        self._decoder = codecs.getincrementaldecoder(encoding)("replace")
        self._pending = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        size = CHUNK_SIZE if size is None or size < 0 else size
        while len(self._pending) < size:
            chunk = self._stream.read(size)
            text = self._decoder.decode(chunk, final=not chunk)
            self._pending += text.encode("utf-8", "surrogatepass")
            if not chunk:
                break
        out, self._pending = self._pending[:size], self._pending[size:]
        return out


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


# A plain line, the common case, takes the fast path of `parse`: ASCII without these bytes and
# not ending in punctuation. The bytes are controls (a tab separates the fields of a crawler
# export), space, quotes, brackets, backtick, backslash (JSON's `\/`), and `;` `,` `|` (HTML
# entities, CSV fields, URLs glued together). Any other line takes `_messy`. One bytes.translate
# tells them apart: far cheaper than a regex scan of the line.
_NOT_PLAIN = _CONTROL_BYTES + b" \"'<>()[]{}`\\;,|"
_TRAILING = ".,;:!?)]}>'\""  # punctuation after a URL in running text or code
_TRAILING_BYTES = _TRAILING.encode()
_LEADING = "([{<'\""
_ENCODED_QUOTES = ("%22", "%27")
_ENTITIES = (
    ("&quot;", '"'),
    ("&#34;", '"'),
    ("&#x22;", '"'),
    ("&apos;", "'"),
    ("&#39;", "'"),
    ("&#x27;", "'"),
    ("&lt;", "<"),
    ("&gt;", ">"),
    ("&amp;", "&"),
)
# JSON escapes of scraped inline JSON: `https:\/\/host\/path`, `\u0026` for &, `\"`, and `\\`
# for a backslash, so JSON inside JSON (`https:\\\/\\\/`) is undone pass by pass.
_JSON_ESCAPE = re.compile(r"\\(?:u([0-9A-Fa-f]{4})|([/\"'\\]))")
_JSON_DEPTH = 3  # JSON in JSON in JSON; deeper nesting is not seen in crawls
# A value in raw quotes inside a query (`?q="hi there"&x=1`): part of the URL, not its end.
_QUOTED_VALUE = re.compile(r"([?&][\w.\[\]-]+=)([\"'])([^\"'\n]*)\2(?=[&#]|$|\s)")
# Where a line breaks into words: whitespace, quotes, brackets.
_TOKEN_SPLIT = re.compile(r"[\s\"'<>()\[\]{}`]+")
# A comma, semicolon or bar where the next URL begins (`<url>,<url>` of an export row).
_NEXT_URL = re.compile(r"[,;|](?=(?:https?:)?//|[\w-]+(?:\.[\w-]+)+/)", re.I)
_EMBEDDED_URL = re.compile(r"(?:https?:)?//", re.I)  # where a URL starts inside a word
_ATTRIBUTE = re.compile(r"^[\w$.-]+=")  # href=, src=, $booking=, data-url=
_OTHER_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:(?!\d)")
# "&utm_source=" glued on a path without its "?": where the query begins. A `&` ending the
# path (`.../Qw3rTy&`) or doubled begins an empty query: debris, not part of the id.
_GLUED_QUERY = re.compile(r"&(?=[\w.\[\]-]+=|&*$)")
# Columns of a crawler export glued to a URL (`?currency=usd,200`, `;301;text/html`, and
# `<uuid>,200` where `,` also separates Mews ids): an HTTP status or a MIME type after `,` `;`
# `|` ends the URL's field.
_EXPORT_COLUMNS = re.compile(
    r"[,;|](?:[1-5][0-9]{2}|(?:text|application|image)/[\w.+-]+)(?:[,;|].*)?$", re.I
)
# Redirect wrappers that carry the real URL in a parameter (Google's /url?q=, Facebook's and
# Instagram's link shims, YouTube's /redirect, Outlook's safe links): the line names the target.
_REDIRECT = re.compile(
    r"(?:www\.)?google\.[a-z.]{2,6}/url"
    r"|l[m]?\.facebook\.com/l\.php|l\.instagram\.com/?"
    r"|(?:www\.)?youtube\.com/redirect|[\w-]+\.safelinks\.protection\.outlook\.com/?",
    re.I,
)
_REDIRECT_TARGET = re.compile(
    r"(?:^|&)(?:q|u|url|target)=((?:https?(?::|%3A)|//|%2F%2F)[^&]*)", re.I
)
# Column names of crawl exports (Screaming Frog, Sitebulb, wget logs, `url<TAB>status`): a line
# made of these alone is a header row, never a lead.
# fmt: off
_HEADER_WORDS = frozenset((
    "url", "urls", "uri", "link", "links", "href", "src", "page", "pages", "address", "source",
    "target", "final_url", "redirect", "redirect_url", "canonical", "location", "status",
    "status_code", "statuscode", "http_status", "code", "response", "content", "type",
    "content_type", "mime", "title", "name", "id", "ids", "property", "property_id", "hotel",
    "engine", "booking_url", "domain", "host", "hostname", "path", "query", "referrer",
    "referer", "anchor", "anchor_text", "text", "date", "time", "timestamp", "crawled", "depth",
    "size", "length",
))
# Placeholders left in hand-kept lists: text, never a property's slug.
_PLACEHOLDERS = frozenset((
    "null", "none", "nan", "n/a", "na", "true", "false", "yes", "no", "ok", "tbd", "todo", "test",
    "html",
))
# fmt: on
_MIN_WORD_ID = 3  # characters: the shortest real slug seen is far longer (`seasidehoteldirect`)
_FIELDS = re.compile(r"[\s\"'<>()\[\]{}`,;|=]+")  # the words of a header row
_ENCODED_END = re.compile(r"%(3F|23)", re.I)  # an encoded `?` or `#`
_FIELD_END = re.compile(r"[,;|]")  # the end of a URL's field in a CSV-like export row
# Tracking parameters dropped from a booking URL: they name the campaign, not the page.
_TRACKING = ("utm_", "_ga=", "_gl=", "gclid=", "fbclid=")


def rules_fingerprint(engine: Engine) -> str:
    """A short hash of everything that decides which id(s) and URL a line gives for `engine`.

    Stored with the engine's leads; a different value at the next ingest means the rules
    changed and the stored evidence is read again (see stages/store/leads.py `recheck`).
    """
    import hashlib
    import json

    rules = [
        RULES_VERSION,
        list(engine.hosts),
        [pattern.pattern for pattern in engine.url_patterns],
        engine.id_pattern.pattern,
        engine.id_case,
        engine.id_separator,
        engine.booking_url,
    ]
    return hashlib.sha256(json.dumps(rules).encode()).hexdigest()[:16]


class LineParser:
    """Parse crawl lines for one engine; `parse` is the hot loop of ingest, keep it lean.

    How a URL is read, as a browser would where it matters for safety: the scheme is optional
    and any run of slashes may follow it; "<host>:<digits>" is a port, not a scheme; a
    backslash is a slash; userinfo (up to the last '@') and the port are dropped; the host
    must be ASCII before it is lower-cased and may end with a dot; the path is
    percent-decoded once. Surrounding ASCII whitespace, Unicode spaces and a BOM are ignored.
    A url pattern is searched in "<host><path>"; one holding a literal `\\?` is searched in
    "<host><path>?<query>" (query percent-decoded) instead, for ids outside the path.
    Whitespace around an id (`%20Qw3rTy%20`) is extraction debris: the id is what it surrounds.
    """

    def __init__(self, engine: Engine, max_length: int = MAX_LINE_LENGTH) -> None:
        self.engine = engine
        self.max_length = max_length
        # (pattern, is a page): a pattern anchored at the host ("^...") matches the page itself,
        # so the booking URL is read from the line; an unanchored one finds the id anywhere,
        # and the template gives the URL.
        patterns = [(p, p.pattern[:1] == "^") for p in engine.url_patterns]
        self._path_patterns = tuple(pair for pair in patterns if "\\?" not in pair[0].pattern)
        self._query_patterns = tuple(pair for pair in patterns if "\\?" in pair[0].pattern)
        self._id_fullmatch = engine.id_pattern.fullmatch
        self._case = {"lower": str.lower, "upper": str.upper}.get(engine.id_case)
        self._separators = engine.id_separator
        # Ids that look like words (the id_pattern takes `status`: SiteMinder slugs, Cloudbeds
        # codes): a bare line must pass `_word` too, or every text line would be a lead.
        self._word_ids = any(engine.id_pattern.fullmatch(w) for w in _HEADER_WORDS if w.isalpha())
        # Only an exact ASCII host or a subdomain of one counts; labels are checked too.
        hosts = "|".join(re.escape(host) for host in engine.hosts)
        self._host_fullmatch = re.compile(rf"(?:[a-z0-9_-]+\.)*(?:{hosts})").fullmatch
        self._hosts: dict[str, str] = {}  # authority -> normalised host, "" if not ours
        # What the last accepted line named: (match, query) of its URL, None for a bare id or
        # an unanchored pattern, or a dict of those by id when the line held several URLs.
        self._found: Any = None
        # URLs of the engine's hosts that gave no id on a line whose other URLs gave ids:
        # how many so far, and (reason, URL) of the last such line (see `_several`).
        self.misses = 0
        self.missed: list[tuple[Reject, str]] = []
        # Items of an id list (`<uuid>;zzz`) that are no id, on a line whose other items are:
        # how many so far, and the items of the last such line (see `_accept_slowly`).
        self.item_misses = 0
        self.missed_items: list[str] = []

    def parse(self, raw: bytes | None) -> ParseResult:
        """The property id(s) in `raw` (one line from `iter_lines`), BLANK, or a Reject."""
        if raw is None or len(raw) > self.max_length:
            return _TOO_LONG
        line = raw.strip()
        if not line:
            return BLANK
        # The plain line (nearly every line of a real crawl file): one URL or id, nothing else.
        if (
            line.isascii()
            and line[-1] not in _TRAILING_BYTES
            and len(line.translate(None, _NOT_PLAIN)) == len(line)
        ):
            text = line.decode("ascii")
            if "/" not in text and ":" not in text and "." not in text:
                outcome = self._bare(text)
            else:
                outcome = self._parse_url(text)
            if type(outcome) is not Reject or not _rescuable(text, outcome):
                return outcome
        return self._messy(line)

    def _messy(self, line: bytes) -> ParseResult:
        """Any line but the plain one: not ASCII, or holding extraction debris, escapes, fields
        of an export row or several URLs. Every URL on the line is read (`_several`)."""
        if line.isascii():
            text = line.decode("ascii")
        else:
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                # Bytes the parser discards anyway (a Latin-1 query) do not spoil the line.
                head = _used_part(line.decode("latin-1"))
                try:
                    text = line[: len(head)].decode("utf-8")
                except UnicodeDecodeError:
                    return _INVALID_UTF8
                text += line[len(head) :].decode("utf-8", "replace")
            text = text.strip(_UNICODE_SPACE)
            if not text:
                return BLANK
        if "\t" in text:
            text = text.replace("\t", " ")  # the fields of an export row: `<url>\t200`
        if _CONTROL.search(text):
            if _CONTROL.search(_used_part(text)):
                return _CONTROL_CHARS
            text = _CONTROL.sub(" ", text)  # in the query: a separator, not data
        if "\\" in text:
            for _ in range(_JSON_DEPTH):  # scraped inline JSON, maybe JSON inside JSON
                unescaped = _JSON_ESCAPE.sub(_json_char, text)
                if unescaped == text:
                    break
                text = unescaped
            text = text.replace("\\", "/")  # browsers read any other backslash as a slash
        if "&" in text:
            for entity, char in _ENTITIES:
                if entity in text:
                    text = text.replace(entity, char)
        scheme = _OTHER_SCHEME.match(text)
        if scheme and scheme.group().lower() not in ("http:", "https:"):
            return self._parse_url(text)  # javascript:..., data:...: never mined for a URL
        if "?" in text and ('="' in text or "='" in text):
            text = _QUOTED_VALUE.sub(_encoded_value, text)  # `?q="hi there"`: one value
        words = [word for word in _TOKEN_SPLIT.split(text) if word]
        urls = [url for word in words for url in _urls_in(word)]
        if len(urls) == 1:
            return self._one(urls[0])
        if urls:
            return self._several(urls)
        return self._no_url(text, words)

    def _no_url(self, text: str, words: list[str]) -> ParseResult:
        """A messy line without a URL: a header row, or one word in quotes or brackets that is
        a bare id (`$booking="<uuid>";` holds one once the attribute and the punctuation are
        dropped) unless the engine's ids are word-like (`_word`); several words stay as they are."""
        fields = [field for field in _FIELDS.split(text) if field]
        if fields and all(field.lower() in _HEADER_WORDS for field in fields):
            return _HEADER_ROW
        bare = [w for w in (_cleaned(w).rstrip(_TRAILING) for w in words) if w]
        if len(bare) != 1:
            return self._one(text)
        outcome = self._one(bare[0])
        if self._word_ids and bare[0] != text and type(outcome) is not Reject:
            return _TEXT_WORD  # a word in quotes, brackets, markup or punctuation is text
        return outcome

    def _one(self, url: str) -> ParseResult:
        """One URL (or bare id) of a messy line: a query glued on with `&` is read as the
        query; when it gives no id, punctuation after it (running text) is dropped, then the
        URL's field may have ended at a `,` `;` or `|` (`<url>,200`)."""
        if "/" not in url and ":" not in url and "." not in url:
            outcome = self._bare(url)
            if type(outcome) is Reject and url[-1] in _TRAILING and url.rstrip(_TRAILING):
                retry = self._bare(url.rstrip(_TRAILING))
                if type(retry) is not Reject and self._word_ids:
                    return _TEXT_WORD  # `seasidedirect.`: running text, not a list of ids
                return outcome if type(retry) is Reject else retry
            return outcome
        if "," in url or ";" in url or "|" in url:
            columns = _EXPORT_COLUMNS.search(url)
            if columns:
                url = url[: columns.start()]  # `?currency=usd,200`: the status is the next column
        if "&" in url:
            head = _used_part(url)
            after_host = head.find("//") + 2 if "//" in head else 0
            path = head.find("/", after_host)
            glued = _GLUED_QUERY.search(head, path) if path >= 0 else None
            if glued:
                url = f"{url[: glued.start()]}?{url[glued.end() :]}"
        outcome = self._parse_url(url)
        if outcome is _WRONG_HOST:
            target = _redirect_target(url)
            if target:
                return self._one(target)
        if type(outcome) is Reject:
            for shorter in (url.rstrip(_TRAILING), url[: _field_end(url)]):
                if shorter and shorter != url:
                    retry = self._parse_url(shorter)
                    if type(retry) is not Reject:
                        return retry
        return outcome

    def _several(self, urls: list[str]) -> ParseResult:
        """Every id of several URLs on one line, in line order without repeats, each with its
        own booking URL. A URL of the engine's hosts that gives no id while others do is
        counted in `misses` and listed in `missed`; the line is rejected only when none gives
        an id, with the reason of the first URL of the engine's hosts (else of the first)."""
        found: dict[str, tuple[re.Match[str], str] | None] = {}
        first: Reject | None = None
        own: Reject | None = None
        missed: list[tuple[Reject, str]] = []
        for url in urls:
            outcome = self._one(url)
            if type(outcome) is Reject:
                first = first or outcome
                if outcome is not _WRONG_HOST and outcome is not _UNSUPPORTED_SCHEME:
                    own = own or outcome
                    missed.append((outcome, url))
                continue
            where = self._found
            # Neither a Reject (skipped above) nor BLANK (a URL is never blank): one id or several.
            ids = (outcome,) if type(outcome) is str else cast("tuple[str, ...]", outcome)
            for property_id in ids:
                found.setdefault(property_id, where)
        if not found:
            return own or first or _NO_ID
        if missed:
            self.misses += len(missed)
            self.missed = missed
        self._found = found
        ids = tuple(found)
        return ids[0] if len(ids) == 1 else ids

    def _bare(self, text: str) -> ParseResult:
        self._found = None
        accepted = self._accept(text)
        if not accepted and "%" in text:  # `%20Qw3rTy%20`: a bare id is decoded once
            accepted = self._accept(unquote(text, errors="replace"))
        if not accepted:
            return _HEADER_ROW if text.lower() in _HEADER_WORDS else _MALFORMED_ID
        if self._word_ids and type(accepted) is str:
            return self._word(accepted)
        return accepted

    def _word(self, property_id: str) -> str | Reject:
        """A bare line's id, for an engine whose ids look like words, if it is not text.

        Such an id pattern takes any word (SiteMinder slugs `[A-Za-z0-9_-]+`, Cloudbeds codes
        of 6 letters/digits), so a bare line counts only as a list of ids would hold it: the
        line is the id alone (no quotes, brackets, markup or punctuation: `_no_url` sees to
        that), it is no export column name (`url`, `status`: header_row), and it holds a
        letter, is at least _MIN_WORD_ID characters long and no placeholder (`200`, `x`,
        `todo`: text_word). Real slugs are words run together (`seasidehoteldirect`).
        """
        word = property_id.lower()
        if word in _HEADER_WORDS:
            return _HEADER_ROW
        if len(word) < _MIN_WORD_ID or word == word.upper() or word in _PLACEHOLDERS:
            return _TEXT_WORD  # `word == word.upper()` after lower(): no letter in it
        return property_id

    def booking_url(self, property_id: str) -> str:
        """The booking page of `property_id` as the last accepted line named it.

        The crawled host (region, subdomain), the path up to the end of the pattern's match
        (group prefix, RMS agent and unit) and the query without tracking parameters (utm_*,
        _ga, _gl, gclid, fbclid) and empty values are kept, as https; a bare id, or a pattern
        not anchored at the host, gives the engine's `booking_url` template. Call it right
        after `parse`.
        """
        found = self._found
        if type(found) is dict:  # several URLs on the line: each id has its own
            found = found.get(property_id)
        if found is None:
            return self.engine.canonical_url(property_id)
        match, query = found
        target = match.string
        page = target[: match.start("id")] + property_id + target[match.end("id") : match.end()]
        if query:
            page += "?" + query
        if "?" in page:
            page, _, query = page.partition("?")
            kept = [
                p
                for p in query.split("&")
                if p
                and not p.lower().startswith(_TRACKING)  # UTM_SOURCE, Gclid: same trackers
                and p.isascii()
                and p.isprintable()
                and " " not in p
                and p[-1] != "="  # a value cut off by extraction (`?x=(1)`) is no value
            ]
            if kept:
                page += "?" + "&".join(kept)
        return "https://" + page

    def _accept(self, candidate: str | None) -> str | tuple[str, ...] | None:
        if candidate is None:
            return None
        if not self._id_fullmatch(candidate):
            return self._accept_slowly(candidate)
        return self._case(candidate) if self._case else candidate

    def _accept_slowly(self, candidate: str) -> str | tuple[str, ...] | None:
        """Ids that need more than one look: around spaces, or several in one value."""
        trimmed = candidate.strip(_UNICODE_SPACE)
        if trimmed != candidate and trimmed and self._id_fullmatch(trimmed):
            return self._case(trimmed) if self._case else trimmed
        if not self._separators or not any(sep in trimmed for sep in self._separators):
            return None
        for sep in self._separators[1:]:
            trimmed = trimmed.replace(sep, self._separators[0])
        found: dict[str, None] = {}  # ordered, without repeats
        bad: list[str] = []
        for part in trimmed.split(self._separators[0]):
            part = part.strip(_UNICODE_SPACE)
            if part and self._id_fullmatch(part):
                found[self._case(part) if self._case else part] = None
            elif part:  # an empty item (`<uuid>;`) is a trailing separator, not an item
                bad.append(part)
        if not found:
            return None
        if bad:  # counted, not silently dropped: the line's other items are leads
            self.item_misses += len(bad)
            self.missed_items = bad
        ids = tuple(found)
        return ids[0] if len(ids) == 1 else ids

    def _parse_url(self, text: str) -> ParseResult:
        # Split by hand: measurably faster than urllib.parse or one big regex. A backslash
        # never gets here: `_messy` reads it as a slash first.
        colon = text.find(":")
        scheme = text[:colon] if colon > 0 else ""
        if scheme == "https" or scheme == "http":
            rest = text[colon + 1 :].lstrip("/")  # any run of slashes, as browsers accept
        elif scheme and _SCHEME.fullmatch(scheme) and not _PORT.match(text, colon + 1):
            if scheme.lower() not in _WEB_SCHEMES:
                return _UNSUPPORTED_SCHEME
            rest = text[colon + 1 :].lstrip("/")
        elif text.startswith("//"):
            rest = text[2:]  # scheme-relative
        else:
            rest = text
        rest, _, query = rest.partition("#")[0].partition("?")
        slash = rest.find("/")
        authority, path = (rest, "") if slash == -1 else (rest[:slash], rest[slash:])
        host = self._hosts.get(authority)
        if host is None:
            host = self._host(authority)
            if len(self._hosts) < _HOST_CACHE_SIZE and len(authority) <= 255:
                self._hosts[authority] = host
        if not host:
            return _WRONG_HOST
        if "%" in path:
            try:
                path = unquote(path, errors="strict")
            except UnicodeDecodeError:
                return _INVALID_UTF8
            if _CONTROL.search(path):
                return _CONTROL_CHARS
        if path.endswith("/"):
            path = path[:-1]
        target = host + path
        found = False
        for pattern, page in self._path_patterns:
            match = pattern.search(target)
            if match:
                found = True
                candidate = match["id"]
                if self._id_fullmatch(candidate):  # `_accept` inlined: the hot loop
                    self._found = (match, query) if page else None
                    return self._case(candidate) if self._case else candidate
                # Letters and digits alone hold no space or separator to look past.
                accepted = None if candidate.isalnum() else self._accept_slowly(candidate)
                if accepted:
                    self._found = (match, query) if page else None
                    return accepted
        if query and self._query_patterns:
            if "%" in query:
                query = unquote(query, errors="replace")
            target += "?" + query
            for pattern, page in self._query_patterns:
                match = pattern.search(target)
                if match:
                    found = True
                    accepted = self._accept(match["id"])
                    if accepted:
                        self._found = (match, "") if page else None
                        return accepted
        if "%" in text:
            cut = _ENCODED_END.search(text)
            if cut and cut.start() < len(_used_part(text)):
                # `.../Qw3rTy%3Futm_source%3Dx`: when the whole path gives no id, an encoded
                # `?` or `#` in it is read as where the path ends (ids may hold them: tried first).
                if cut[1] == "23":
                    return self._parse_url(text[: cut.start()])
                query = unquote(text[cut.end() :], errors="replace")  # encoded with the `?`
                return self._parse_url(f"{text[: cut.start()]}?{query}")
        return _MALFORMED_ID if found else _NO_ID

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


def _used_part(text: str) -> str:
    """`text` up to its query or fragment: the part whose bytes must be clean."""
    cut = len(text)
    for mark in "?#":
        found = text.find(mark)
        if 0 <= found < cut:
            cut = found
    return text[:cut]


def _rescuable(text: str, outcome: Reject) -> bool:
    """Whether `_messy` may find an id in a plain line the fast path rejected: a query glued
    on with `&`, an attribute (`href=`), encoded quotes around it, or a URL after a prefix."""
    if "&" in text or "=" in text:
        head = text.partition("?")[0]  # a fragment in it only costs a needless second look
        if "&" in head or "=" in head:
            return True
    if "%2" in text and (text[:3] in _ENCODED_QUOTES or text[-3:] in _ENCODED_QUOTES):
        return True
    if outcome is _WRONG_HOST and ("=http" in text or "=//" in text):
        return True  # maybe a redirect wrapper (`google.com/url?q=https%3A...`)
    # `booking_link:https://...`: the URL starts after the first colon's own slashes.
    slashes = text.find("//")
    return outcome is _WRONG_HOST and slashes > 0 and slashes != text.find(":") + 1


def _redirect_target(url: str) -> str | None:
    """The URL a redirect wrapper (`_REDIRECT`) carries in its query, decoded once; else None."""
    rest = url[url.find("//") + 2 :] if "//" in url[:8] else url
    path, _, query = rest.partition("#")[0].partition("?")
    if not query or not _REDIRECT.fullmatch(path):
        return None
    target = _REDIRECT_TARGET.search(query)
    return unquote(target[1], errors="replace") if target else None


def _encoded_value(match: re.Match[str]) -> str:
    """A query value written in raw quotes, percent-encoded so it stays one word of the URL."""
    from urllib.parse import quote

    return match[1] + quote(match[2] + match[3] + match[2], safe="")


def _field_end(url: str) -> int:
    """Where a URL's field of a CSV-like row ends: its first `,` `;` `|` before the query."""
    field_end = _FIELD_END.search(_used_part(url))
    return field_end.start() if field_end else len(url)


def _json_char(match: re.Match[str]) -> str:
    """The character of one JSON escape; `\\u` of a control or non-ASCII one stays as written."""
    if match[2]:
        return match[2]
    char = chr(int(match[1], 16))
    return char if " " <= char <= "~" else match[0]


def _cleaned(word: str) -> str:
    """`word` without the debris of extraction around it: what comes before a URL's scheme
    (`href=`, `$booking=`), encoded quotes (`%22...%22`), opening brackets and quotes.

    A closing %22 is debris after an opening one, or at the end of a path; inside a query or
    fragment it is the value's own (`?q=%22hi%22`). A closing %27 only after an opening one
    (it may end an id)."""
    opened, openings = word[:3], 0
    while word[:3] in _ENCODED_QUOTES:
        word, openings = word[3:].lstrip(_LEADING), openings + 1
    start = _EMBEDDED_URL.search(word)  # `$booking=https://...`, `url:https://...`
    word = word[start.start() :] if start else _ATTRIBUTE.sub("", word).lstrip(_LEADING)
    while True:
        end = word.rstrip(_TRAILING)
        closing = end[-3:]
        if not (
            (closing == "%22" and ((opened == "%22" and openings) or end == _used_part(end)))
            or (closing == "%27" and opened == "%27" and openings)
        ):
            return word  # trailing punctuation stays: `_one` drops it only if the URL fails
        word, openings = end[:-3], openings - 1  # one closing quote per opening one


def _urls_in(word: str) -> list[str]:
    """The URLs one word of a line holds (none, one, or several glued with `,` `;` `|`),
    each from its scheme (or its host) on, without debris; a URL has a '/'. A word of
    another scheme (ftp:, mailto:) is kept whole, to be rejected as such."""
    urls = []
    for piece in _NEXT_URL.split(word) if ("," in word or ";" in word or "|" in word) else (word,):
        scheme = _OTHER_SCHEME.match(piece)
        if scheme and scheme.group().lower() not in ("http:", "https:"):
            if "/" in piece:
                urls.append(piece)
            continue
        url = _cleaned(piece)
        if "/" in url:
            urls.append(url)
    return urls


_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
_EVIDENCE_ESCAPE = re.compile(r"\\(?:[\\tnr]|x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8})")
_EVIDENCE_CODES = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}


def evidence_text(raw: bytes) -> str:
    """A crawl line as text PostgreSQL can store and `evidence_line` turns back into the same
    bytes: a backslash is doubled, an invalid UTF-8 byte becomes \\xNN, any other character
    that is not printable \\t, \\n, \\r, \\uNNNN or \\UNNNNNNNN (NUL included, which a
    text column cannot hold). Readable where the line is, unlike a byte dump.
    """
    if raw.isascii() and raw.translate(None, _CONTROL_BYTES + b"\\") == raw:
        return raw.decode("ascii")  # the common line: nothing to escape
    text = raw.decode("utf-8", "surrogateescape")
    return "".join(
        "\\\\" if char == "\\" else char if char.isprintable() else _evidence_escape(char)
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


def _evidence_escape(char: str) -> str:
    code = ord(char)
    if char in _ESCAPES:
        return _ESCAPES[char]
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


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
