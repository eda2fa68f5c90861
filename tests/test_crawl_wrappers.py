"""Kinds of lines the fourth fresh tester found wrong, one test per kind: wrappers around a URL
(the Wayback Machine without a scheme or as a listing, Bing's base64 redirect, AMP caches,
archive.today, any page's parameter holding an absolute URL), Mews step sub-pages with the room
they open, Windows-1252 lines, NUL padding and a content-type column (site pages:
tests/test_crawl_faults.py)."""

from __future__ import annotations

import base64

import pytest

from stages.rules.crawl import LineParser, Reject
from stages.rules.crawl_wrappers import redirect_targets
from tests.support.crawl import ENGINES, SECOND, UUID, booking_url, parse

pytestmark = pytest.mark.unit  # pure logic: no services, no other programs

CLOUDBEDS = "https://hotels.cloudbeds.com/reservation/Qw3rTy"
ENCODED = "https%3A%2F%2Fhotels.cloudbeds.com%2Freservation%2FQw3rTy"
MEWS = "https://app.mews.com/distributor"


def bing(url: str) -> str:
    """Bing's click redirect to `url`: `u=a1` + URL-safe base64 without padding."""
    encoded = base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")
    return f"https://www.bing.com/ck/a?!&&p=4f3e2d1c&ptn=3&ver=2&u=a1{encoded}&ntb=1"


# --- wrappers: archives, caches, click redirects, any page's URL parameter ---------------------


@pytest.mark.parametrize(
    "line",
    [
        f"web.archive.org/web/2023/{CLOUDBEDS}",
        "https://web.archive.org/web/2023*/hotels.cloudbeds.com/reservation/Qw3rTy*",
        "https://web.archive.org/web/20230101000000id_/hotels.cloudbeds.com/reservation/Qw3rTy",
        f"https://web.archive.org/web/*/{CLOUDBEDS}",
        f"https://archive.org/web/20221231235959if_/{CLOUDBEDS}",
        bing(CLOUDBEDS),
        "https://hotels-cloudbeds-com.cdn.ampproject.org/c/s/hotels.cloudbeds.com/reservation/Qw3rTy",
        "https://hotels-cloudbeds-com.cdn.ampproject.org/v/s/hotels.cloudbeds.com/reservation/Qw3rTy",
        "https://hotels-cloudbeds-com.cdn.ampproject.org/i/s/hotels.cloudbeds.com/reservation/Qw3rTy",
        "https://www.google.com/amp/s/hotels.cloudbeds.com/reservation/Qw3rTy",
        f"https://archive.ph/o/AbCdE/{CLOUDBEDS}",
        f"https://archive.today/2023.01.01-000000/{CLOUDBEDS}",
        f"archive.is/newest/{CLOUDBEDS}",
        f"https://webcache.googleusercontent.com/search?q=cache:Xy12:{CLOUDBEDS}+&cd=1&hl=en",
        f"https://r.jina.ai/{CLOUDBEDS}",
    ],
)
def test_an_archive_cache_or_proxy_copy_is_read_as_the_url_it_copies(line):
    assert parse("cloudbeds", line) == "Qw3rTy"


@pytest.mark.parametrize(
    "line",
    [
        f"https://click.example.net/track?murl={ENCODED}",
        f"https://click.example.net/track?aff=7&murl={ENCODED}&sub=x",
        "https://ad.example.org/clk?dest=https%253A%252F%252Fhotels.cloudbeds.com%252Freservation"
        "%252FQw3rTy",
        f"https://www.facebook.com/sharer/sharer.php?u={ENCODED}",
        f"https://go.example.org/out?from=https%3A%2F%2Fwww.example.org%2F&to={ENCODED}",
        f"https://www.example.com/go?u={CLOUDBEDS}",
        f"https://www.googleadservices.com/pagead/aclk?sa=L&ai=DChcSEw&adurl={ENCODED}",
        f"https://www.google.com/url?sa=t&source=web&adurl={ENCODED}",  # no q=, url=: any
    ],
)
def test_any_pages_parameter_holding_an_absolute_url_of_the_engine_is_read(line):
    assert parse("cloudbeds", line) == "Qw3rTy"


@pytest.mark.parametrize(
    "line",
    [
        "https://click.example.net/track?murl=https%3A%2F%2Fwww.example.org%2Freservation%2FQw3rTy",
        "https://web.archive.org/web/2023/https://www.example.org/reservation/Qw3rTy",
        "https://www.bing.com/ck/a?!&&p=abc&u=a1!!notbase64!!&ntb=1",
        "https://www-example-org.cdn.ampproject.org/c/s/www.example.org/reservation/Qw3rTy",
    ],
)
def test_a_wrapper_around_another_hosts_url_stays_wrong_host(line):
    assert parse("cloudbeds", line) == Reject.WRONG_HOST


def test_a_wrappers_target_keeps_its_query_and_drops_the_caches_own_parameters():
    line = (
        "https://us2-cloudbeds-com.cdn.ampproject.org/v/s/us2.cloudbeds.com/reservation/Qw3rTy"
        "?currency=usd&amp_js_v=0.1&usqp=mq331AQIUAKwASCAAgM"
    )
    assert (
        booking_url("cloudbeds", line)
        == "https://us2.cloudbeds.com/reservation/Qw3rTy?currency=usd"
    )
    assert (
        booking_url("cloudbeds", bing(CLOUDBEDS + "?currency=eur")) == CLOUDBEDS + "?currency=eur"
    )


def test_the_engines_url_among_several_in_a_query_is_the_one_read():
    assert redirect_targets(f"https://x.example/r?a=https://other.example/&b={ENCODED}") == [
        "https://other.example/",
        CLOUDBEDS,
    ]
    line = f"https://x.example/r?a=https://other.example/&b={ENCODED}"
    assert parse("cloudbeds", line) == "Qw3rTy"


def test_wrappers_are_read_for_every_engine():
    assert parse("mews", f"web.archive.org/web/2023/{MEWS}/{UUID}") == UUID
    assert parse("rms", bing("https://bookings.rmscloud.com/Search/Index/4321/1")) == "4321"
    amp = "https://direct--book-com.cdn.ampproject.org/c/s/direct-book.com/properties/seasidedirect"
    assert parse("siteminder", amp) == "seasidedirect"


# --- Mews: what follows the id (its steps: tests/test_crawl_kinds.py) -----------------------


def test_a_column_after_a_slash_ends_the_url_even_where_a_comma_separates_ids():
    # No item of an id list follows a slash: `<uuid>/,Sydney` is a CSV row's next column.
    assert parse("mews", f"{MEWS}/{UUID}/,Sydney,200") == UUID
    assert parse("mews", f"{MEWS}/{UUID};{SECOND}/;200") == (UUID, SECOND)


def test_a_second_mews_uuid_without_a_step_before_it_is_no_sub_page():
    assert parse("mews", f"{MEWS}/{UUID}/{SECOND}") == Reject.NO_ID


# --- bytes: Windows-1252 lines, NUL padding ---------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"\x93" + CLOUDBEDS.encode() + b"\x94",
        b"Book now: \x93" + CLOUDBEDS.encode() + b"\x94 \x96 best rate\x85",
        CLOUDBEDS.encode() + b"\x85",
        b"caf\xe9 \x93" + CLOUDBEDS.encode() + b"\x94",
        b"\x81" + CLOUDBEDS.encode(),  # a byte undefined in Windows-1252 outside the URL
    ],
)
def test_a_windows_1252_line_gives_the_id_it_names(raw):
    assert parse("cloudbeds", raw) == "Qw3rTy"


@pytest.mark.parametrize(
    "raw",
    [
        b"\x93just text from a Windows file\x94",
        b"hotels.cloudbeds.com/reservation/Qw3rT\xe9",
        b"hotels.cloudbeds.com/reservation/Qw3\x81Ty",  # undefined in Windows-1252 too
    ],
)
def test_a_windows_1252_line_that_names_no_id_is_invalid_utf8(raw):
    assert parse("cloudbeds", raw) == Reject.INVALID_UTF8


def test_a_line_of_real_utf8_is_never_read_as_windows_1252():
    raw = "“https://hotels.cloudbeds.com/reservation/Qw3rTy” — café".encode()
    assert parse("cloudbeds", raw) == "Qw3rTy"
    assert parse("siteminder", "https://direct-book.com/properties/café".encode()) == (
        Reject.MALFORMED_ID
    )


@pytest.mark.parametrize(
    "raw",
    [
        CLOUDBEDS.encode() + b"\x00",
        CLOUDBEDS.encode() + b"\x00\x00\x00\x00",
        b"\x00\x00" + CLOUDBEDS.encode(),
        CLOUDBEDS.encode() + b" \x00\r",
        CLOUDBEDS.encode() + b"\x00\x00\t200\x00\x00\x00",
    ],
)
def test_nul_padding_at_a_lines_or_a_fields_ends_is_debris(raw):
    assert parse("cloudbeds", raw) == "Qw3rTy"


@pytest.mark.parametrize(
    "raw", [b"\x00\x00\x00", b"hotels.cloudbeds.com/reservation/Qw\x00rTy", b"\x00 \x00"]
)
def test_nuls_alone_or_inside_a_url_are_control_chars(raw):
    assert parse("cloudbeds", raw) == Reject.CONTROL_CHARS


# --- a content-type column --------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        f"{CLOUDBEDS} text/html",
        f"{CLOUDBEDS}\t200\ttext/html; charset=utf-8",
        f"{CLOUDBEDS} application/json",
    ],
)
def test_a_content_type_column_after_the_url_is_no_url_without_id(line):
    parser = LineParser(ENGINES["cloudbeds"])
    assert parser.parse(line.encode()) == "Qw3rTy"
    assert parser.misses == 0
