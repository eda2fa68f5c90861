"""The crawl-line contract: which lines give which property id, and why the others do not."""

from __future__ import annotations

import codecs
import gzip
import io
import random
import tracemalloc
from pathlib import Path
from typing import BinaryIO, cast

import pytest

from stages.rules.config import load_params
from stages.rules.crawl import (
    BLANK,
    LineParser,
    Reject,
    UnreadableFile,
    evidence_line,
    evidence_text,
    iter_lines,
    open_crawl,
    safe_text,
)

pytestmark = pytest.mark.unit  # pure logic: no services, no other programs

ROOT = Path(__file__).resolve().parents[1]
ENGINES = load_params(ROOT).engines
PARSERS = {name: LineParser(engine) for name, engine in ENGINES.items()}
UUID = "6e2a6e1d-0a5b-4c53-9c6a-ab1e00c9d9c7"


def parse(engine: str, line: str | bytes):
    raw = line.encode("utf-8") if isinstance(line, str) else line
    return PARSERS[engine].parse(raw)


# --- per engine: line -> accepted id or reason -------------------------------------------

CLOUDBEDS = [
    ("https://hotels.cloudbeds.com/reservation/AbC123", "AbC123"),
    ("http://hotels.cloudbeds.com/booking/reservation/AbC123", "AbC123"),
    ("hotels.cloudbeds.com/reservation/AbC123", "AbC123"),
    ("https://cloudbeds.com/reservation/AbC123", "AbC123"),
    ("https://hotels.cloudbeds.com/es/reservation/AbC123", "AbC123"),
    ("https://hotels.cloudbeds.com/pt-br/reservas/AbC123", "AbC123"),
    ("https://hotels.cloudbeds.com/reservation/AbC123/?currency=EUR#rooms", "AbC123"),
    ("  https://HOTELS.CloudBeds.COM/reservation/AbC123  ", "AbC123"),
    ("HTTPS://hotels.cloudbeds.com/reservation/AbC123", "AbC123"),
    ("AbC123", "AbC123"),
    ("abc123", "abc123"),
    ("https://hotels.cloudbeds.com/reservation/A", Reject.MALFORMED_ID),
    ("https://hotels.cloudbeds.com/reservation/ABCDEFGHIJK", Reject.MALFORMED_ID),
    ("https://hotels.cloudbeds.com/reservation/AbC-123", Reject.MALFORMED_ID),
    ("A", Reject.MALFORMED_ID),
    ("https://hotels.cloudbeds.com/about", Reject.NO_ID),
    ("https://hotels.cloudbeds.com", Reject.NO_ID),
    ("https://hotels.cloudbeds.com/booking/AbC123", Reject.NO_ID),  # the API namespace
    ("https://hotels.cloudbeds.com.evil.example/reservation/AbC123", Reject.WRONG_HOST),
    ("https://evilcloudbeds.com/reservation/AbC123", Reject.WRONG_HOST),
    ("https://www.booking.com/hotel/au/seaside.html", Reject.WRONG_HOST),
    ("ftp://hotels.cloudbeds.com/reservation/AbC123", Reject.UNSUPPORTED_SCHEME),
]

MEWS = [
    (f"https://app.mews.com/distributor/{UUID}", UUID),
    (f"https://app.mews.com/distributor/{UUID.upper()}?mewsStart=2024-05-01", UUID),
    (f"www.mews.li/distributor/{UUID}/", UUID),
    (f"app.mews.com/distributor/app.mews.com/distributor/{UUID}", UUID),
    (f"https://app.mews.com/distributor/https://app.mews.com/distributor/{UUID}#x", UUID),
    (UUID.upper(), UUID),
    ("https://app.mews.com/distributor/not-a-uuid", Reject.MALFORMED_ID),
    (UUID.replace("-", ""), Reject.MALFORMED_ID),
    (f"https://app.mews.com/booking/{UUID}", Reject.NO_ID),
    (f"https://app.mews-demo.com/distributor/{UUID}", Reject.WRONG_HOST),
    (f"https://mews.com.evil.example/distributor/{UUID}", Reject.WRONG_HOST),
]

RMS = [
    ("https://bookings.rmscloud.com/Search/Index/8f3a00b1c2d3e4f5/90/", "8F3A00B1C2D3E4F5"),
    (
        "https://bookings12.rmscloud.com/obookings3/Search/Index/8F3A00B1C2D3E4F5/1",
        "8F3A00B1C2D3E4F5",
    ),
    ("bookings.rmscloud.com/search/index/12345", "12345"),
    ("https://bookings.rmscloud.com/OBOOKINGS/SEARCH/INDEX/12345/90", "12345"),
    ("https://bookings.rmscloud.com/Rates/Index/12345/90?A=1", "12345"),
    ("https://ibe12.rmscloud.com/14467", "14467"),
    ("https://ibe.rmscloud.com/14467/", "14467"),
    ("8f3a00b1c2d3e4f5", "8F3A00B1C2D3E4F5"),
    ("14467", "14467"),
    ("https://bookings.rmscloud.com/Search/Index/8F3A00B1C2D3E4F", Reject.MALFORMED_ID),
    ("https://bookings.rmscloud.com/Search/Index/hotel", Reject.MALFORMED_ID),
    ("https://ibe12.rmscloud.com/hotel", Reject.MALFORMED_ID),
    ("https://bookings.rmscloud.com/Search/Other/12345", Reject.NO_ID),
    ("https://bookings.rmscloud.com/Search/Index/12345/90/7", "12345"),  # client/agent/unit
    ("https://bookings.rmscloud.com/Search/Index/12345/90/7/8", Reject.NO_ID),
    ("https://www.rmscloud.com/14467", Reject.NO_ID),
    ("https://bookings.rmscloud.com.au/Search/Index/12345", Reject.WRONG_HOST),
]

SITEMINDER = [
    ("https://direct-book.com/properties/Grand_Hotel-1?locale=en", "grand_hotel-1"),
    ("https://app.thebookingbutton.com/properties/seaside", "seaside"),
    ("www.thebookingbutton.com.au/reservations/SEASIDE", "seaside"),
    ("https://book-directonline.com/properties/seaside#top", "seaside"),
    ("https://www.siteminder.com/properties/seaside", "seaside"),
    ("SeasideLodge", "seasidelodge"),
    ("https://direct-book.com/properties/sea.side", Reject.MALFORMED_ID),
    ("sea side", Reject.MALFORMED_ID),
    ("https://direct-book.com/hotels/seaside", Reject.NO_ID),
    ("https://thebookingbutton.com.evil.example/properties/seaside", Reject.WRONG_HOST),
    ("https://direct-book.co/properties/seaside", Reject.WRONG_HOST),
]


@pytest.mark.parametrize(("line", "expected"), CLOUDBEDS)
def test_cloudbeds_line(line, expected):
    assert parse("cloudbeds", line) == expected


@pytest.mark.parametrize(("line", "expected"), MEWS)
def test_mews_line(line, expected):
    assert parse("mews", line) == expected


@pytest.mark.parametrize(("line", "expected"), RMS)
def test_rms_line(line, expected):
    assert parse("rms", line) == expected


@pytest.mark.parametrize(("line", "expected"), SITEMINDER)
def test_siteminder_line(line, expected):
    assert parse("siteminder", line) == expected


# --- hosts ---------------------------------------------------------------------------------

ABC = "/reservation/AbC123"


@pytest.mark.parametrize(
    "host",
    [
        "hotels.cloudbeds.com.evil.example",
        "cloudbeds.com.evil.example",
        "hotels-cloudbeds.com",
        "cloudbeds.co",
        "hotels..cloudbeds.com",
        "xn--cloudbeds-9za.com",  # punycode: only an exact ASCII host counts
        "hotels.сloudbeds.com",  # Cyrillic 'с'
        "hotels.cloudbeds.cοm",  # Greek omicron
        "ｃｌｏｕｄｂｅｄｓ.com",  # fullwidth letters
        "hotels%20cloudbeds.com",
        "[::1]",
    ],
)
def test_lookalike_host_is_wrong_host(host):
    assert parse("cloudbeds", f"https://{host}{ABC}") == Reject.WRONG_HOST


def test_kelvin_sign_does_not_lower_case_into_an_engine_host():
    # "\u212a".lower() == "k": the host must be ASCII before it is lower-cased.
    line = "https://app.theboo\u212aingbutton.com/properties/seaside"
    assert parse("siteminder", line) == Reject.WRONG_HOST


def test_fully_qualified_host_with_trailing_dot_is_accepted():
    assert parse("cloudbeds", f"https://hotels.cloudbeds.com.{ABC}") == "AbC123"


def test_host_port_without_scheme_is_a_port_not_a_scheme():
    assert parse("cloudbeds", f"hotels.cloudbeds.com:8443{ABC}") == "AbC123"


def test_port_after_scheme_is_ignored():
    assert parse("cloudbeds", f"https://hotels.cloudbeds.com:443{ABC}") == "AbC123"


def test_non_numeric_port_is_wrong_host():
    assert parse("cloudbeds", f"https://hotels.cloudbeds.com:https{ABC}") == Reject.WRONG_HOST


def test_userinfo_is_dropped_and_the_real_host_decides():
    assert parse("cloudbeds", f"https://user:secret@hotels.cloudbeds.com{ABC}") == "AbC123"
    assert parse("cloudbeds", f"https://hotels.cloudbeds.com@evil.example{ABC}") == (
        Reject.WRONG_HOST
    )


def test_backslash_reads_as_slash_like_a_browser():
    line = f"https://evil.example\\@hotels.cloudbeds.com{ABC}"  # browsers go to evil.example
    assert parse("cloudbeds", line) == Reject.WRONG_HOST


def test_scheme_relative_url_is_accepted():
    assert parse("cloudbeds", f"//hotels.cloudbeds.com{ABC}") == "AbC123"


def test_path_without_host_is_wrong_host():
    assert parse("cloudbeds", ABC) == Reject.WRONG_HOST


# --- schemes, encodings, hostile bytes -----------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "javascript:alert(1)",
        "JavaScript://hotels.cloudbeds.com/reservation/AbC123",
        "data:text/html,<script>alert(1)</script>",
        "mailto:reservations@hotels.cloudbeds.com",
        "ftp://hotels.cloudbeds.com/reservation/AbC123",
        "file:///etc/passwd",
    ],
)
def test_non_web_scheme_is_unsupported(line):
    assert parse("cloudbeds", line) == Reject.UNSUPPORTED_SCHEME


def test_percent_encoded_path_is_decoded():
    assert parse("cloudbeds", "https://hotels.cloudbeds.com/reservation/%41bC123") == "AbC123"


def test_percent_encoded_control_char_is_rejected():
    line = "https://hotels.cloudbeds.com/reservation/AbC%00123"
    assert parse("cloudbeds", line) == Reject.CONTROL_CHARS


def test_percent_encoded_invalid_utf8_is_rejected():
    line = "https://hotels.cloudbeds.com/reservation/AbC%FF123"
    assert parse("cloudbeds", line) == Reject.INVALID_UTF8


@pytest.mark.parametrize(
    "raw",
    [
        b"hotels.cloudbeds.com/reservation/Ab\x00C123",
        b"\x00",
        b"Ab\x07C123",
        b"\x1b[31mAbC123",
        b"AbC\x7f123",
        "AbC\u0085123".encode(),  # C1 control (NEL)
    ],
)
def test_control_characters_inside_a_line_are_rejected(raw):
    assert PARSERS["cloudbeds"].parse(raw) == Reject.CONTROL_CHARS


@pytest.mark.parametrize(
    "raw",
    [b"\xff\xfe", b"AbC\xc0\xaf", b"AbC\xed\xa0\x80", b"hotels.cloudbeds.com/reservation/\xe9"],
)
def test_invalid_utf8_is_rejected(raw):
    assert PARSERS["cloudbeds"].parse(raw) == Reject.INVALID_UTF8


def test_line_over_the_limit_is_too_long():
    assert PARSERS["cloudbeds"].parse(b"AbC123" + b" " * 2043) == Reject.TOO_LONG


def test_line_at_the_limit_is_parsed():
    line = f"https://hotels.cloudbeds.com{ABC}?q=".encode()
    assert PARSERS["cloudbeds"].parse(line.ljust(2048, b"x")) == "AbC123"


def test_none_from_iter_lines_is_too_long():
    assert PARSERS["cloudbeds"].parse(None) == Reject.TOO_LONG


@pytest.mark.parametrize("raw", [b"", b"   ", b"\t \r", "\u00a0\u3000".encode(), b"\xef\xbb\xbf"])
def test_whitespace_only_line_is_blank(raw):
    assert PARSERS["cloudbeds"].parse(raw) is BLANK


def test_unicode_spaces_and_bom_around_a_line_are_stripped():
    assert parse("cloudbeds", "\ufeff\u00a0AbC123\u3000") == "AbC123"


def test_reasons_are_a_fixed_vocabulary_and_not_strings():
    assert [reason.value for reason in Reject] == [
        "too_long",
        "invalid_utf8",
        "control_chars",
        "unsupported_scheme",
        "wrong_host",
        "no_id",
        "malformed_id",
        "header_row",
        "text_word",
    ]
    assert not isinstance(Reject.NO_ID, str)
    assert not isinstance(BLANK, str)


# --- engines are data ----------------------------------------------------------------------


def test_engine_added_in_params_alone_is_parsed(tmp_path):
    (tmp_path / "params.yaml").write_text(
        """
source: {root: data/sources}
paths: {raw: data/raw}
engines:
  littlehotelier:
    file: littlehotelier.txt
    display_name: Little Hotelier
    hosts: [littlehotelier.com]
    url_patterns:
      - '^[^/]+/book/(?P<id>[^/]+)$'
      - '^[^/]+/p/(?P<id>[^/]+)$'
    id_pattern: '[0-9]{4,8}'
    id_case: preserve
    booking_url: https://app.littlehotelier.com/book/{id}
""",
        encoding="utf-8",
    )
    parser = LineParser(load_params(tmp_path).engine("littlehotelier"))
    assert parser.parse(b"https://app.littlehotelier.com/book/12345?x=1") == "12345"
    assert parser.parse(b"app.littlehotelier.com/p/12345") == "12345"
    assert parser.parse(b"app.littlehotelier.com/book/abc") == Reject.MALFORMED_ID
    assert parser.parse(b"https://hotels.cloudbeds.com/reservation/12345") == Reject.WRONG_HOST


# --- iter_lines ----------------------------------------------------------------------------


def lines_of(data: bytes, **kwargs) -> list[bytes | None]:
    return list(iter_lines(io.BytesIO(data), **kwargs))


def test_lf_crlf_and_lone_cr_all_end_lines():
    assert lines_of(b"a\nb\r\nc\rd") == [b"a", b"b", b"c", b"d"]


def test_blank_lines_are_kept_so_numbers_are_positions():
    assert lines_of(b"a\n\n\r\n\rb\n") == [b"a", b"", b"", b"", b"b"]


def test_final_line_end_adds_no_empty_line():
    assert lines_of(b"a\nb\n") == [b"a", b"b"]
    assert lines_of(b"") == []


def test_only_cr_and_lf_end_lines():
    # bytes.splitlines-style: VT, FF, FS and NEL are content, not line ends.
    assert lines_of(b"a\x0bb\x0cc\x1cd\xc2\x85e\n") == [b"a\x0bb\x0cc\x1cd\xc2\x85e"]


def test_bom_at_start_is_dropped_and_kept_elsewhere():
    assert lines_of(b"\xef\xbb\xbfa\n\xef\xbb\xbfb\n") == [b"a", b"\xef\xbb\xbfb"]


def test_bom_split_across_reads_is_dropped():
    assert lines_of(b"\xef\xbb\xbfa\nb", chunk_size=1) == [b"a", b"b"]


def test_file_of_only_a_bom_has_no_lines():
    assert lines_of(b"\xef\xbb\xbf") == []


def test_nul_and_invalid_utf8_pass_through_as_one_line_each():
    assert lines_of(b"a\x00b\n\xff\xfe\n") == [b"a\x00b", b"\xff\xfe"]


def test_crlf_split_at_a_chunk_boundary_ends_one_line():
    assert lines_of(b"ab\r\ncd", chunk_size=3) == [b"ab", b"cd"]


def test_lone_cr_at_a_chunk_boundary_ends_a_line():
    assert lines_of(b"ab\rcd\r\r\n", chunk_size=3) == [b"ab", b"cd", b""]


TRICKY = (
    b"\xef\xbb\xbfhttps://a/1\r\nb\rc\n\r\n\r\rlong-line-" + b"x" * 40 + b"\r\nend\r",
    b"\r\n\r\n\n\r",
    b"x" * 50,
)


@pytest.mark.parametrize("data", TRICKY)
def test_every_chunk_size_gives_the_same_lines(data):
    expected = lines_of(data, max_length=20)
    for size in range(1, len(data) + 2):
        assert lines_of(data, max_length=20, chunk_size=size) == expected, size


def test_line_over_max_length_yields_none_and_reading_goes_on():
    assert lines_of(b"abc\n" + b"x" * 11 + b"\ndef", max_length=10) == [b"abc", None, b"def"]


def test_line_of_exactly_max_length_is_kept():
    assert lines_of(b"x" * 10 + b"\n", max_length=10) == [b"x" * 10]


def test_over_long_line_across_many_chunks_yields_one_none():
    data = b"a\n" + b"x" * 1000 + b"\r\nb"
    assert lines_of(data, max_length=10, chunk_size=7) == [b"a", None, b"b"]


def test_over_long_last_line_without_line_end_yields_none():
    assert lines_of(b"a\n" + b"x" * 100, max_length=10, chunk_size=8) == [b"a", None]


class _HugeLine(io.RawIOBase):
    """A stream of one `size`-byte line then "\\nok\\n", made on the fly."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.tail = b"\nok\n"

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self.left:
            count = min(n, self.left)
            self.left -= count
            return b"x" * count
        out, self.tail = self.tail[:n], self.tail[n:]
        return out


def test_huge_line_is_skipped_without_being_held_in_memory():
    tracemalloc.start()
    try:
        stream = cast(BinaryIO, _HugeLine(64 << 20))  # a raw stream: iter_lines only reads
        lines = list(iter_lines(stream, chunk_size=1 << 20))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert lines == [None, b"ok"]
    assert peak < 8 << 20  # a few chunks, never the 64 MiB line


# --- safe_text -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"https://hotels.cloudbeds.com/reservation/Qw3rTy",
        b"\thttps://hotels.cloudbeds.com/reservation/Qw3rTy\r",
        b"https://hotels.cloudbeds.com/reservation/Qw3rTy?q=caf\xe9",
        b"C:\\x41\\n and \\\\ and \\u0041 as written",
        b"nul\x00 del\x7f nel\xc2\x85 zwsp\xe2\x80\x8b emoji\xf0\x9f\x8f\xa8",
    ],
)
def test_evidence_text_gives_back_the_very_bytes_of_the_line(raw):
    text = evidence_text(raw)
    assert "\x00" not in text  # PostgreSQL text cannot hold NUL
    assert evidence_line(text) == raw


def test_safe_text_keeps_printable_text():
    assert safe_text("https://hôtel.example/ä".encode()) == "https://hôtel.example/ä"


def test_safe_text_escapes_tabs_controls_invalid_utf8_and_bidi():
    raw = b"a\tb\x00c\xffd\x1b" + "\u202e".encode() + b"e\r\n"
    assert safe_text(raw) == "a\\tb\\x00c\\xffd\\x1b\\u202ee\\r\\n"


def test_safe_text_truncates_with_an_ellipsis():
    text = safe_text(b"x" * 300, limit=20)
    assert text == "x" * 19 + "…"


def test_safe_text_at_the_limit_is_not_truncated():
    assert safe_text(b"x" * 20, limit=20) == "x" * 20


def test_safe_text_never_cuts_an_escape_in_half():
    assert safe_text(b"\x00" * 10, limit=10) == "\\x00\\x00…"


# --- the corpus of realistic lines: the source of truth, not the generator ------------------

CORPUS = ROOT / "tests" / "corpus"


def corpus_rows(engine: str) -> list[tuple[bytes, str]]:
    """(line, expected) rows of tests/corpus/<engine>.tsv; lines may hold Latin-1 bytes."""
    rows = []
    for row in (CORPUS / f"{engine}.tsv").read_bytes().splitlines():
        if row and not row.startswith(b"#"):
            expected, _, line = row.partition(b"\t")
            rows.append((line, expected.decode()))
    return rows


def outcome_text(outcome) -> str:
    if isinstance(outcome, Reject):
        return f"reject:{outcome.value}"
    return ",".join(outcome) if isinstance(outcome, tuple) else str(outcome)


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_every_corpus_line_gives_exactly_its_expected_outcome(engine):
    rows = corpus_rows(engine)
    assert len(rows) >= 250
    wrong = [
        (line, expected, outcome_text(PARSERS[engine].parse(line)))
        for line, expected in rows
        if outcome_text(PARSERS[engine].parse(line)) != expected
    ]
    assert wrong == []


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_no_corpus_line_of_the_engines_own_host_is_called_wrong_host(engine):
    own = [line for line, expected in corpus_rows(engine) if not expected.startswith("reject:")]
    assert not [line for line in own if PARSERS[engine].parse(line) == Reject.WRONG_HOST]


# --- the kinds of real lines named in "Real crawls, exactly" --------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("https://us2.cloudbeds.com/pt-br/reservas/Qw3rTy?currency=usd", "Qw3rTy"),
        ("https://hotels.cloudbeds.com/es/reservas/Qw3rTy", "Qw3rTy"),
        ("https://seasidelodge.cloudbeds.com/en/reservation/Qw3rTy", "Qw3rTy"),
        ("https://hotels.cloudbeds.com/booking/reservation/Qw3rTy", "Qw3rTy"),
        ("https://hotels.cloudbeds.com/widget/load/Qw3rTy/vertical", "Qw3rTy"),
        ("https://hotels.cloudbeds.com/reservation/Qw3rTy/guests?adults=2", "Qw3rTy"),
    ],
)
def test_localised_regional_legacy_and_widget_cloudbeds_paths_name_the_property(line, expected):
    assert parse("cloudbeds", line) == expected


@pytest.mark.parametrize(
    "word", ["rooms", "prepare", "property_info", "availability_calendar", "calculateTotals"]
)
def test_cloudbeds_booking_api_paths_are_not_properties(word):
    assert parse("cloudbeds", f"https://hotels.cloudbeds.com/booking/{word}") == Reject.NO_ID


def test_cloudbeds_codes_have_exactly_six_letters_or_digits():
    assert parse("cloudbeds", "Qw3rT") == Reject.MALFORMED_ID
    assert parse("cloudbeds", "Qw3rTy7") == Reject.MALFORMED_ID


@pytest.mark.parametrize(
    ("engine", "line", "expected"),
    [
        (
            "siteminder",
            "https://book-directonline.com/some-group/properties/seasidehoteldirect",
            "seasidehoteldirect",
        ),
        (
            "siteminder",
            "https://app-apac.thebookingbutton.com/harbourview/properties/harbourviewdirect",
            "harbourviewdirect",
        ),
        (
            "siteminder",
            "https://direct-book.com/properties/gardenpalacedirect/contact?locale=en",
            "gardenpalacedirect",
        ),
        ("rms", "https://ibe12.rmscloud.com/7A1B2C3D4E5F6071/1", "7A1B2C3D4E5F6071"),
        ("rms", "https://bookings.rmscloud.com/obookings3/Search/Index/4321/53/139", "4321"),
    ],
)
def test_group_prefixes_agents_units_and_sub_pages_around_the_id(engine, line, expected):
    assert parse(engine, line) == expected


SECOND = "0b9f3c2a-7d4e-4f51-8a6b-1c2d3e4f5a6b"


def test_a_mews_id_in_the_query_is_found():
    assert parse("mews", f"https://app.mews.com/distributor?ids={UUID}") == UUID


@pytest.mark.parametrize(
    "line",
    [
        f"https://app.mews.com/distributor/{UUID};{SECOND}",
        f"https://app.mews.com/distributor?ids={UUID};{SECOND}&language=en",
        f"https://app.mews.com/distributor?ids={UUID}%3B{SECOND}",
    ],
)
def test_several_mews_ids_in_one_line_are_each_a_property(line):
    assert parse("mews", line) == (UUID, SECOND)


@pytest.mark.parametrize(
    "line",
    [
        '$booking="https://hotels.cloudbeds.com/reservation/Qw3rTy";',
        "href='https://hotels.cloudbeds.com/reservation/Qw3rTy'",
        'src="https://hotels.cloudbeds.com/widget/load/Qw3rTy/vertical"',
        "(https://hotels.cloudbeds.com/reservation/Qw3rTy)",
        "https://hotels.cloudbeds.com/reservation/Qw3rTy;",
        "https://hotels.cloudbeds.com/reservation/Qw3rTy,",
        "https://hotels.cloudbeds.com/reservation/Qw3rTy.",
        "https://hotels.cloudbeds.com/reservation/Qw3rTy)",
        "&quot;https://hotels.cloudbeds.com/reservation/Qw3rTy&quot;",
        "%22https://hotels.cloudbeds.com/reservation/Qw3rTy%22",
        "https://hotels.cloudbeds.com/reservation/Qw3rTy?adults=2&amp;children=0",
        '<a href="https://hotels.cloudbeds.com/reservation/Qw3rTy" class="btn">Book</a>',
    ],
)
def test_extraction_debris_around_a_url_is_dropped(line):
    assert parse("cloudbeds", line) == "Qw3rTy"


def test_a_url_hidden_behind_a_non_web_scheme_is_not_mined():
    line = "javascript:void(0)//https://hotels.cloudbeds.com/reservation/Qw3rTy"
    assert parse("cloudbeds", line) == Reject.UNSUPPORTED_SCHEME


@pytest.mark.parametrize(
    "raw",
    [
        b"https://hotels.cloudbeds.com/reservation/Qw3rTy?q=caf\xe3",
        b"https://hotels.cloudbeds.com/reservation/Qw3rTy#sec\xff",
        b"https://hotels.cloudbeds.com/reservation/Qw3rTy?q=a\x01b",
        b"https://hotels.cloudbeds.com/reservation/Qw3rTy?q=a\tb",
        "https://hotels.cloudbeds.com/reservation/Qw3rTy?q=a\u0085b".encode(),
    ],
)
def test_bad_bytes_in_the_discarded_query_or_fragment_do_not_reject_the_line(raw):
    assert PARSERS["cloudbeds"].parse(raw) == "Qw3rTy"


@pytest.mark.parametrize(
    "line",
    ["https://hotels.cloudbeds.com/reservation/%20Qw3rTy%20", "%20Qw3rTy", " Qw3rTy\u00a0"],
)
def test_encoded_spaces_around_an_id_are_debris(line):
    assert parse("cloudbeds", line) == "Qw3rTy"


def test_a_space_inside_an_id_is_still_malformed():
    assert parse("cloudbeds", "https://hotels.cloudbeds.com/reservation/Qw3%20rTy") == (
        Reject.MALFORMED_ID
    )


@pytest.mark.parametrize(
    "line",
    [
        "https://app.littlehotelier.com/properties/tinyinn",
        "https://apac.littlehotelier.com/properties/tinyinn",
        "https://emea.littlehotelier.com/properties/TinyInn/rooms",
    ],
)
def test_little_hotelier_properties_are_siteminder_leads(line):
    assert parse("siteminder", line) == "tinyinn"


# --- booking URLs keep what the crawl said ---------------------------------------------------


def booking_url(engine: str, line: str) -> str:
    parser = PARSERS[engine]
    found = parser.parse(line.encode())
    assert isinstance(found, str), found
    return parser.booking_url(found)


@pytest.mark.parametrize(
    ("engine", "line", "url"),
    [
        (
            "cloudbeds",
            "https://us2.cloudbeds.com/pt-br/reservas/Qw3rTy?currency=usd&utm_source=x",
            "https://us2.cloudbeds.com/pt-br/reservas/Qw3rTy?currency=usd",
        ),
        (
            "cloudbeds",
            "http://hotels.cloudbeds.com/reservation/Qw3rTy/guests?gclid=1&fbclid=2&_ga=3&_gl=4",
            "https://hotels.cloudbeds.com/reservation/Qw3rTy",
        ),
        (
            "cloudbeds",
            "https://hotels.cloudbeds.com/reservation/Qw3rTy?UTM_SOURCE=x&Gclid=1&adults=2",
            "https://hotels.cloudbeds.com/reservation/Qw3rTy?adults=2",
        ),
        ("cloudbeds", "Qw3rTy", "https://hotels.cloudbeds.com/reservation/Qw3rTy"),
        (
            "rms",
            "https://ibe12.rmscloud.com/7a1b2c3d4e5f6071/1",
            "https://ibe12.rmscloud.com/7A1B2C3D4E5F6071/1",
        ),
        (
            "rms",
            "bookings.rmscloud.com/obookings3/Search/Index/4321/53/139",
            "https://bookings.rmscloud.com/obookings3/Search/Index/4321/53/139",
        ),
        ("rms", "4321", "https://bookings.rmscloud.com/Search/Index/4321/1/"),
        (
            "siteminder",
            "https://book-directonline.com/some-group/properties/SeasideDirect/contact#map",
            "https://book-directonline.com/some-group/properties/seasidedirect",
        ),
    ],
)
def test_the_booking_url_keeps_host_region_group_and_agent_and_drops_tracking(engine, line, url):
    assert booking_url(engine, line) == url


def test_each_of_several_mews_ids_gets_its_own_booking_url():
    parser = PARSERS["mews"]
    found = parser.parse(f"https://app.mews.com/distributor/{UUID};{SECOND}".encode())
    assert type(found) is tuple
    assert [parser.booking_url(i) for i in found] == [
        f"https://app.mews.com/distributor/{UUID}",
        f"https://app.mews.com/distributor/{SECOND}",
    ]


# --- whole files: gzip, UTF-16/32, and formats that are no crawl file -----------------------

SAMPLE = "https://hotels.cloudbeds.com/reservation/Qw3rTy\r\nAbC123\n\nhotels.cloudbeds.com/es/reservas/Zx9Wv8\n"


def lines_of_file(path: Path) -> list[bytes | None]:
    with open_crawl(path) as stream:
        return list(iter_lines(stream, chunk_size=7))


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32", "utf-32-be", "gzip"])
def test_gzip_and_utf16_or_utf32_files_read_like_their_utf8_original(tmp_path, encoding):
    original, other = tmp_path / "original.txt", tmp_path / "other.txt"
    original.write_bytes(SAMPLE.encode())
    if encoding == "gzip":
        other.write_bytes(gzip.compress(SAMPLE.encode()))
    else:
        bom = codecs.BOM_UTF32_BE if encoding == "utf-32-be" else b""
        bom = codecs.BOM_UTF16_BE if encoding == "utf-16-be" else bom
        other.write_bytes(bom + SAMPLE.encode(encoding))
    assert lines_of_file(other) == lines_of_file(original)


def test_a_gzipped_utf16_file_is_read_too(tmp_path):
    path = tmp_path / "crawl.txt.gz"
    path.write_bytes(gzip.compress(SAMPLE.encode("utf-16")))
    assert lines_of_file(path)[0] == b"https://hotels.cloudbeds.com/reservation/Qw3rTy"


@pytest.mark.parametrize(
    ("data", "format"),
    [
        (b"PK\x03\x04" + b"\x00" * 40, "zip"),
        (random.Random(3).randbytes(8192), "binary"),
        (b"\x7fELF\x02\x01\x01", "executable"),
        (b"%PDF-1.7\n", "PDF"),
    ],
)
def test_a_file_of_another_format_is_unreadable_and_named(tmp_path, data, format):
    path = tmp_path / "crawl.txt"
    path.write_bytes(data)
    with pytest.raises(UnreadableFile) as caught:
        lines_of_file(path)
    assert format in caught.value.format


def test_a_large_gzip_file_is_read_with_flat_memory(tmp_path):
    path = tmp_path / "big.txt.gz"
    line = b"https://hotels.cloudbeds.com/reservation/Qw3rTy?utm_source=x\n"
    with gzip.open(path, "wb", compresslevel=1) as out:
        for _ in range(40):
            out.write(line * 10_000)  # 24 MiB of text
    tracemalloc.start()
    try:
        with open_crawl(path) as stream:
            count = sum(1 for _ in iter_lines(stream))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 400_000
    assert peak < 8 << 20


def test_a_text_file_with_nul_ridden_lines_is_still_read_line_by_line(tmp_path):
    path = tmp_path / "crawl.txt"
    path.write_bytes(b"AbC123\n" + b"\x00" * 100 + b"\nZx9Wv8\n")
    assert lines_of_file(path) == [b"AbC123", b"\x00" * 100, b"Zx9Wv8"]


def test_a_utf8_file_whose_first_line_starts_with_ff_fe_is_not_taken_for_utf16(tmp_path):
    path = tmp_path / "crawl.txt"
    path.write_bytes(b"\xff\xfehttps://hotels.cloudbeds.com/reservation/AbC123\nZx9Wv8\n")
    assert lines_of_file(path)[1] == b"Zx9Wv8"


def test_a_path_is_percent_decoded_once_only():
    assert parse("cloudbeds", "https://hotels.cloudbeds.com/reservation/%2551wErt") == (
        Reject.MALFORMED_ID
    )


def test_an_encoded_apostrophe_ending_an_id_is_kept_unless_one_opened_the_line():
    assert parse("siteminder", "https://direct-book.com/properties/seaside%27") == (
        Reject.MALFORMED_ID
    )
    assert parse("siteminder", "%27https://direct-book.com/properties/seaside%27") == "seaside"


# --- shapes a fresh tester found after issue 11 ------------------------------------------------

SECOND_CODE = "Zx9Wv8"


@pytest.mark.parametrize(
    "line",
    [
        "https://hotels.cloudbeds.com/reservation/Qw3rTy\t200",
        "https://hotels.cloudbeds.com/reservation/Qw3rTy\t200\ttext/html\t2025-03-01",
        "200\thttps://hotels.cloudbeds.com/reservation/Qw3rTy",
        "https://hotels.cloudbeds.com/reservation/Qw3rTy,200",
        "https://hotels.cloudbeds.com/reservation/Qw3rTy;200;OK",
        '"https://hotels.cloudbeds.com/reservation/Qw3rTy",200,"OK"',
        "https://hotels.cloudbeds.com/reservation/Qw3rTy|200",
    ],
)
def test_a_crawler_export_row_gives_the_url_in_its_fields(line):
    assert parse("cloudbeds", line) == "Qw3rTy"


def test_a_row_of_fields_without_a_url_is_no_bare_id():
    # A header row (`url<TAB>status`) must never become a lead.
    assert parse("siteminder", "url\tstatus") == Reject.HEADER_ROW
    assert parse("cloudbeds", "Ab\tC123") == Reject.MALFORMED_ID


@pytest.mark.parametrize(
    "line",
    [
        f"https://hotels.cloudbeds.com/reservation/Qw3rTy https://hotels.cloudbeds.com/reservation/{SECOND_CODE}",
        f"https://hotels.cloudbeds.com/reservation/Qw3rTy,https://us2.cloudbeds.com/reservas/{SECOND_CODE}",
        "Book https://hotels.cloudbeds.com/reservation/Qw3rTy"
        f" or cloudbeds.com/reservas/{SECOND_CODE}.",
        f"https://www.booking.com/hotel/x.html https://hotels.cloudbeds.com/reservation/Qw3rTy https://hotels.cloudbeds.com/reservation/{SECOND_CODE}",
    ],
)
def test_every_url_on_a_line_gives_its_own_lead(line):
    assert parse("cloudbeds", line) == ("Qw3rTy", SECOND_CODE)


def test_each_url_of_a_line_keeps_its_own_booking_url():
    parser = PARSERS["cloudbeds"]
    line = f"https://us2.cloudbeds.com/reservas/Qw3rTy https://hotels.cloudbeds.com/reservation/{SECOND_CODE}"
    found = parser.parse(line.encode())
    assert isinstance(found, tuple)
    assert [parser.booking_url(i) for i in found] == [
        "https://us2.cloudbeds.com/reservas/Qw3rTy",
        f"https://hotels.cloudbeds.com/reservation/{SECOND_CODE}",
    ]


def test_a_url_of_the_engine_that_gives_no_id_beside_one_that_does_is_counted():
    parser = LineParser(ENGINES["cloudbeds"])
    line = (
        "https://hotels.cloudbeds.com/reservation/Qw3rTy https://hotels.cloudbeds.com/booking/rooms"
    )
    assert parser.parse(line.encode()) == "Qw3rTy"
    assert parser.misses == 1
    assert parser.missed == [(Reject.NO_ID, "https://hotels.cloudbeds.com/booking/rooms")]


@pytest.mark.parametrize(
    "line",
    [
        "https:\\/\\/hotels.cloudbeds.com\\/reservation\\/AbC123",
        '{"bookingUrl":"https:\\/\\/hotels.cloudbeds.com\\/reservation\\/AbC123?lang=es\\u0026adults=2"}',
    ],
)
def test_json_escaped_urls_of_scraped_inline_json_are_read(line):
    assert parse("cloudbeds", line) == "AbC123"


@pytest.mark.parametrize(
    ("engine", "line", "expected"),
    [
        (
            "cloudbeds",
            "https://hotels.cloudbeds.com/reservation/AbC123&utm_source=fb&utm_medium=social",
            "AbC123",
        ),
        (
            "siteminder",
            "https://direct-book.com/properties/seasidedirect&utm_source=google",
            "seasidedirect",
        ),
        ("rms", "https://bookings.rmscloud.com/Search/Index/4321/1&gclid=Cj0KCQiA", "4321"),
        ("mews", f"https://app.mews.com/distributor/{UUID}&utm_campaign=spring", UUID),
    ],
)
def test_tracking_parameters_glued_on_with_an_ampersand_do_not_break_the_id(engine, line, expected):
    assert parse(engine, line) == expected


def test_a_glued_query_is_read_as_the_query_of_the_booking_url():
    line = "https://us2.cloudbeds.com/reservation/AbC123&utm_source=fb&currency=eur"
    assert (
        booking_url("cloudbeds", line)
        == "https://us2.cloudbeds.com/reservation/AbC123?currency=eur"
    )


@pytest.mark.parametrize(
    "tag", ["es-419", "zh-hant", "pt-BR", "zh-Hant-TW", "fil", "pt_BR", "en", "de-CH-1996"]
)
def test_regional_language_tags_before_a_cloudbeds_page(tag):
    assert parse("cloudbeds", f"https://hotels.cloudbeds.com/{tag}/reservas/AbC123") == "AbC123"


@pytest.mark.parametrize(
    "line",
    [
        f"https://app.mews.com/Distributor/{UUID}",
        f"https://app.mews.com/distributor/{UUID}/rates",
        f"https://app.mews.com/DISTRIBUTOR/{UUID}/rooms/availability?language=en-US",
        f"https://app.mews.com/Distributor?ids={UUID}",
        f"https://app.mews.com/Distributor?IDS={UUID}",
    ],
)
def test_mews_distributor_in_any_case_and_with_a_sub_page_names_the_property(line):
    assert parse("mews", line) == UUID


@pytest.mark.parametrize(
    ("line", "url"),
    [
        (
            "https://hotels.cloudbeds.com/reservation/AbC123?q=%22hi%22",
            "https://hotels.cloudbeds.com/reservation/AbC123?q=%22hi%22",
        ),
        (
            "%22https://hotels.cloudbeds.com/reservation/AbC123?q=%22hi%22%22",
            "https://hotels.cloudbeds.com/reservation/AbC123?q=%22hi%22",
        ),
        (
            "<a href='https://hotels.cloudbeds.com/reservation/AbC123?q=%22hi%22'>",
            "https://hotels.cloudbeds.com/reservation/AbC123?q=%22hi%22",
        ),
    ],
)
def test_debris_is_stripped_around_the_url_never_inside_its_query(line, url):
    assert booking_url("cloudbeds", line) == url


def test_a_tar_archive_is_unreadable_and_named(tmp_path):
    import tarfile

    inner = tmp_path / "cloudbeds.txt"
    inner.write_text("https://hotels.cloudbeds.com/reservation/AbC123\n")
    path = tmp_path / "crawl.txt"
    with tarfile.open(path, "w") as archive:
        archive.add(inner, arcname="cloudbeds.txt")
    with pytest.raises(UnreadableFile) as caught:
        lines_of_file(path)
    assert caught.value.format == "a tar archive"


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
def test_utf16_or_utf32_without_a_bom_reads_like_its_utf8_original(tmp_path, encoding):
    original, other = tmp_path / "original.txt", tmp_path / "other.txt"
    original.write_bytes(SAMPLE.encode())
    other.write_bytes(SAMPLE.encode(encoding))
    assert lines_of_file(other) == lines_of_file(original)


@pytest.mark.parametrize(
    ("engine", "line", "expected"),
    [
        ("mews", f'$booking="{UUID}";', UUID),
        ("mews", f"href='{UUID.upper()}'", UUID),
        ("mews", f'"{UUID}"', UUID),
        ("rms", "'8f3a00b1c2d3e4f5'", "8F3A00B1C2D3E4F5"),
    ],
)
def test_a_bare_id_that_cannot_be_a_word_is_read_inside_an_attribute(engine, line, expected):
    assert parse(engine, line) == expected


# --- what a fresh tester broke: text lines, export columns, wrappers, nested encodings -------


@pytest.mark.parametrize(
    ("engine", "line", "reason"),
    [
        ("siteminder", "url", Reject.HEADER_ROW),
        ("siteminder", '"url"', Reject.HEADER_ROW),
        ("siteminder", "status", Reject.HEADER_ROW),
        ("siteminder", "Source", Reject.HEADER_ROW),
        ("siteminder", "<html>", Reject.TEXT_WORD),
        ("siteminder", 'href="x"', Reject.TEXT_WORD),
        ("siteminder", "(notes)", Reject.TEXT_WORD),
        ("siteminder", "[todo]", Reject.TEXT_WORD),
        ("siteminder", '"seasidehoteldirect"', Reject.TEXT_WORD),
        ("siteminder", "seasidehoteldirect.", Reject.TEXT_WORD),
        ("siteminder", "200", Reject.TEXT_WORD),
        ("siteminder", "2025-03-01", Reject.TEXT_WORD),
        ("siteminder", "x", Reject.TEXT_WORD),
        ("siteminder", "todo", Reject.TEXT_WORD),
        ("cloudbeds", "status", Reject.HEADER_ROW),
        ("cloudbeds", "domain", Reject.HEADER_ROW),
        ("cloudbeds", '"Qw3rTy"', Reject.TEXT_WORD),
        ("cloudbeds", "(Qw3rTy)", Reject.TEXT_WORD),
        ("cloudbeds", "123456", Reject.TEXT_WORD),
    ],
)
def test_a_text_line_is_no_lead_of_an_engine_whose_ids_look_like_words(engine, line, reason):
    assert parse(engine, line) == reason


@pytest.mark.parametrize(
    "line",
    ["url", "URL", '"url","status"', "url;status", "url,status_code,title", "Address\tStatus Code"],
)
@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_a_crawl_export_header_row_is_rejected_as_such_for_every_engine(engine, line):
    assert parse(engine, line) == Reject.HEADER_ROW


@pytest.mark.parametrize(
    "line",
    [
        "seasidehoteldirect",
        "SeasideHotelDirect",
        "  harbourviewdirect\t",
        "\u00a0gardenpalacedirect\u00a0",
        "%20bayalpinedirect%20",
        "seasidealpine-1",
    ],
)
def test_a_slug_alone_on_its_line_is_still_a_lead(line):
    assert parse("siteminder", line) == line.strip().strip("\u00a0").replace("%20", "").lower()


def test_a_bare_number_is_an_id_where_the_engines_ids_are_numbers():
    assert parse("rms", "200") == "200"


@pytest.mark.parametrize(
    "line",
    [
        "https://hotels.cloudbeds.com/reservation/Qw3rTy?currency=usd,200",
        "https://hotels.cloudbeds.com/reservation/Qw3rTy?currency=usd;200",
        "https://hotels.cloudbeds.com/reservation/Qw3rTy?currency=usd|200",
        "https://hotels.cloudbeds.com/reservation/Qw3rTy?currency=usd,301,text/html",
        "https://hotels.cloudbeds.com/reservation/Qw3rTy?currency=usd;text/html;200",
        "Hotel Sol,https://hotels.cloudbeds.com/reservation/Qw3rTy?currency=usd,200,text/html",
    ],
)
def test_an_export_column_after_a_query_stays_out_of_the_booking_url(line):
    assert parse("cloudbeds", line) == "Qw3rTy"
    assert booking_url("cloudbeds", line) == (
        "https://hotels.cloudbeds.com/reservation/Qw3rTy?currency=usd"
    )


@pytest.mark.parametrize(
    ("line", "ids"),
    [
        (f"https://app.mews.com/distributor?ids={UUID};{SECOND},404", (UUID, SECOND)),
        (f"https://app.mews.com/distributor/{UUID},200", UUID),
        (f"https://app.mews.com/distributor/{UUID};{SECOND}|200|text/html", (UUID, SECOND)),
    ],
)
def test_a_status_column_after_a_mews_id_list_is_no_item_of_the_list(line, ids):
    parser = LineParser(ENGINES["mews"])
    assert parser.parse(line.encode()) == ids
    assert parser.item_misses == 0


def test_a_trailing_ampersand_after_the_id_is_debris():
    line = "https://hotels.cloudbeds.com/reservation/Ss77Ss&"
    assert parse("cloudbeds", line) == "Ss77Ss"
    assert booking_url("cloudbeds", line) == "https://hotels.cloudbeds.com/reservation/Ss77Ss"


def test_an_encoded_query_after_the_id_starts_the_query():
    line = "https://us2.cloudbeds.com/reservation/Ss77Ss%3Fcurrency%3Deur%26utm_source%3Dx"
    assert parse("cloudbeds", line) == "Ss77Ss"
    assert (
        booking_url("cloudbeds", line)
        == "https://us2.cloudbeds.com/reservation/Ss77Ss?currency=eur"
    )


@pytest.mark.parametrize(
    "line",
    [
        "https://www.google.com/url?q=https%3A%2F%2Fus2.cloudbeds.com%2Freservation%2FQw3rTy"
        "%3Fcurrency%3Dusd&sa=D&source=editors&ust=1700000000000000&usg=AOvVaw0",
        "https://www.google.co.uk/url?sa=t&rct=j&url=https://us2.cloudbeds.com/reservation/Qw3rTy"
        "?currency=usd&usg=AOvVaw1",
        "https://l.facebook.com/l.php?u=https%3A%2F%2Fus2.cloudbeds.com%2Freservation%2FQw3rTy"
        "%3Fcurrency%3Dusd%26fbclid%3DIwAR0&h=AT0",
        '<a href="https://www.youtube.com/redirect?event=video_description&q=https%3A%2F%2Fus2'
        '.cloudbeds.com%2Freservation%2FQw3rTy%3Fcurrency%3Dusd">',
    ],
)
def test_a_redirect_wrapper_is_read_as_the_url_it_carries(line):
    assert parse("cloudbeds", line) == "Qw3rTy"
    assert (
        booking_url("cloudbeds", line)
        == "https://us2.cloudbeds.com/reservation/Qw3rTy?currency=usd"
    )


def test_a_url_in_the_query_of_a_page_that_is_no_redirect_wrapper_is_not_mined():
    line = "https://www.example.com/go?u=https://hotels.cloudbeds.com/reservation/Qw3rTy"
    assert parse("cloudbeds", line) == Reject.WRONG_HOST


@pytest.mark.parametrize(
    "line",
    [
        r"https:\\\/\\\/hotels.cloudbeds.com\\\/reservation\\\/Qw3rTy",
        r'{"data":"{\"url\":\"https:\\\/\\\/hotels.cloudbeds.com\\\/reservation\\\/Qw3rTy\"}"}',
    ],
)
def test_json_escaped_inside_json_is_read(line):
    assert parse("cloudbeds", line) == "Qw3rTy"


@pytest.mark.parametrize(
    ("line", "url"),
    [
        (
            'https://hotels.cloudbeds.com/reservation/Qw3rTy?q="hi there"&currency=eur',
            "https://hotels.cloudbeds.com/reservation/Qw3rTy?q=%22hi%20there%22&currency=eur",
        ),
        (
            "https://hotels.cloudbeds.com/reservation/Qw3rTy?promo='SPRING'",
            "https://hotels.cloudbeds.com/reservation/Qw3rTy?promo=%27SPRING%27",
        ),
    ],
)
def test_raw_quotes_around_a_query_value_do_not_cut_the_url(line, url):
    assert booking_url("cloudbeds", line) == url


@pytest.mark.parametrize(
    "line",
    [
        f"https://app.mews.com/distributor/{UUID};zzz",
        f"https://app.mews.com/distributor?ids={UUID};zzz",
        f"https://app.mews.com/distributor?IDS={UUID},zzz",
    ],
)
def test_an_item_of_a_mews_id_list_that_is_no_uuid_is_counted_not_dropped(line):
    parser = LineParser(ENGINES["mews"])
    assert parser.parse(line.encode()) == UUID
    assert (parser.item_misses, parser.missed_items) == (1, ["zzz"])


def test_an_empty_item_after_a_trailing_separator_is_not_counted():
    parser = LineParser(ENGINES["mews"])
    assert parser.parse(f"https://app.mews.com/distributor/{UUID};{SECOND};".encode()) == (
        UUID,
        SECOND,
    )
    assert parser.item_misses == 0


def test_a_gzip_inside_a_gzip_reads_like_its_utf8_original(tmp_path):
    original, nested = tmp_path / "original.txt", tmp_path / "nested.txt.gz.gz"
    original.write_bytes(SAMPLE.encode())
    nested.write_bytes(gzip.compress(gzip.compress(SAMPLE.encode())))
    assert lines_of_file(nested) == lines_of_file(original)


def test_gzip_nested_deeper_than_any_export_is_unreadable_and_named(tmp_path):
    data = SAMPLE.encode()
    for _ in range(5):
        data = gzip.compress(data)
    path = tmp_path / "crawl.txt"
    path.write_bytes(data)
    with pytest.raises(UnreadableFile) as caught:
        lines_of_file(path)
    assert caught.value.format.startswith("gzip inside gzip")


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_bomless_utf16_starting_with_cjk_text_reads_like_its_utf8_original(tmp_path, encoding):
    text = "酒店列表\n" * 400 + SAMPLE  # a title block longer than the sniffed first KiB
    original, other = tmp_path / "original.txt", tmp_path / "other.txt"
    original.write_bytes(text.encode())
    other.write_bytes(text.encode(encoding))
    assert lines_of_file(other) == lines_of_file(original)


def test_a_utf8_file_with_nul_lines_is_not_taken_for_cjk_utf16(tmp_path):
    text = b"\x00\nhttps://hotels.cloudbeds.com/reservation/Qw3rTy\n\x00\nAbC123\n" * 20
    path = tmp_path / "crawl.txt"
    path.write_bytes(text)
    assert lines_of_file(path) == text.splitlines()


def test_a_query_value_cut_off_by_brackets_is_left_out_of_the_booking_url():
    line = "(https://hotels.cloudbeds.com/reservation/Qw3rTy?x=(1))"
    assert booking_url("cloudbeds", line) == "https://hotels.cloudbeds.com/reservation/Qw3rTy"
