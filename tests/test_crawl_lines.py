"""Crawl lines per engine: which give which property id, and why the others do not (hosts, schemes,
bytes)."""

from __future__ import annotations

import pytest

from stages.rules.config import load_params
from stages.rules.crawl import (
    BLANK,
    LineParser,
    Reject,
)
from tests.support.crawl import (
    PARSERS,
    UUID,
    parse,
)

pytestmark = pytest.mark.unit  # pure logic: no services, no other programs


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
    ("A", Reject.TEXT_WORD),  # shorter than any word-like id: text (crawl_bare `_bare`)
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
    ("sea side", Reject.TEXT_WORD),
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
        "placeholder_id",
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
