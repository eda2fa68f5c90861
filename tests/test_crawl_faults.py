"""Kinds of lines a fresh tester found wrong after the crawl rules of issue 11, one test per kind:
bare numbers, site-page words, encoded slashes and commas in the id position, nested and numeric
character references, brackets in a query, nested percent-encoding in a redirect, one reason for
the same line in every engine, status columns after a bare id, tracking parameters."""

from __future__ import annotations

import pytest

from stages.errors import ConfigError
from stages.rules.config import load_params
from stages.rules.crawl import LineParser, Reject, iter_lines, open_crawl
from tests.support.crawl import ENGINES, SECOND, UUID, booking_url, parse

pytestmark = pytest.mark.unit  # pure logic: no services, no other programs

CLOUDBEDS = "https://hotels.cloudbeds.com/reservation/Qw3rTy"
MEWS = "https://app.mews.com/distributor"


# --- RMS: a bare number is a client only when it looks like one (params.yaml bare_id_pattern) --


@pytest.mark.parametrize(
    "line", ["200", "301", "404", "0", "007", "2025", "1999", '"200"', "(404)"]
)
def test_a_status_code_count_leading_zero_or_year_alone_is_no_rms_client(line):
    assert parse("rms", line) == Reject.TEXT_WORD


@pytest.mark.parametrize("line", ["4321", "12345", "16615", "2101", "9876543", "7A1B2C3D4E5F6071"])
def test_a_bare_number_shaped_like_a_client_is_an_rms_id(line):
    assert parse("rms", line) == line


@pytest.mark.parametrize(
    ("line", "client"),
    [
        ("https://bookings.rmscloud.com/Search/Index/200/1", "200"),
        ("https://bookings.rmscloud.com/Search/Index/2025/1/", "2025"),
        ("https://ibe12.rmscloud.com/7A1B2C3D4E5F6071/1", "7A1B2C3D4E5F6071"),
    ],
)
def test_any_number_in_the_client_position_of_a_url_stays_a_client_id(line, client):
    assert parse("rms", line) == client


# --- site-page words, encoded slashes and commas in the id position ----------------------------


@pytest.mark.parametrize(
    ("engine", "line"),
    [
        ("siteminder", "https://direct-book.com/properties/contact"),
        ("siteminder", "https://direct-book.com/properties/rooms"),
        ("siteminder", "https://direct-book.com/properties/Search?locale=en"),
        ("siteminder", "https://book-directonline.com/some-group/properties/checkout"),
        ("siteminder", "https://app.littlehotelier.com/properties/availability/"),
        ("cloudbeds", "https://hotels.cloudbeds.com/reservation/search"),
        ("cloudbeds", "https://us2.cloudbeds.com/es/reservas/guests"),
        # A guest account's and a booking's own pages; the web server's files.
        ("cloudbeds", "https://hotels.cloudbeds.com/reservation/thanks"),
        ("cloudbeds", "https://hotels.cloudbeds.com/reservation/SignIn"),
        ("cloudbeds", "https://hotels.cloudbeds.com/reservation/signup"),
        ("cloudbeds", "https://us2.cloudbeds.com/es/reservas/logout"),
        ("siteminder", "https://direct-book.com/properties/sitemap"),
        ("siteminder", "https://direct-book.com/properties/assets/logo.png"),
        ("siteminder", "https://book-directonline.com/properties/static/app.js"),
    ],
)
def test_a_word_of_the_engines_own_site_pages_in_the_id_position_is_no_id(engine, line):
    assert parse(engine, line) == Reject.NO_ID


@pytest.mark.parametrize("line", ["contact", "rooms", "checkout"])
def test_a_site_page_word_alone_is_text(line):
    assert parse("siteminder", line) == Reject.TEXT_WORD


def test_a_site_page_word_as_a_sub_page_after_the_slug_leaves_the_slug_a_lead():
    assert parse("siteminder", "https://direct-book.com/properties/seasidedirect/contact") == (
        "seasidedirect"
    )


@pytest.mark.parametrize(
    ("engine", "line"),
    [
        ("siteminder", "https://direct-book.com/properties/seaside%2Fhotel"),
        ("siteminder", "https://direct-book.com/properties/seaside%2fhotel/rooms"),
        ("cloudbeds", "https://hotels.cloudbeds.com/reservation/Qw3rTy%2FAz9Bc1"),
        ("rms", "https://bookings.rmscloud.com/Search/Index/12345%2F1"),
    ],
)
def test_an_encoded_slash_inside_the_id_is_malformed_not_cut_to_its_first_part(engine, line):
    assert parse(engine, line) == Reject.MALFORMED_ID


# The lead's rule (third tester's round): an unencoded `,` (or `;`, unless the engine's
# id_separator holds it) after the id ends the URL: a crawl row's comma is a column far more often
# than a list, and Cloudbeds, SiteMinder and RMS document no comma list (Mews documents `;`).
@pytest.mark.parametrize(
    ("engine", "line", "expected"),
    [
        ("cloudbeds", f"{CLOUDBEDS},Sydney", "Qw3rTy"),
        ("cloudbeds", f"{CLOUDBEDS},Sydney,Europe", "Qw3rTy"),
        ("cloudbeds", f"{CLOUDBEDS},Hostel,Active,200", "Qw3rTy"),
        ("cloudbeds", f"{CLOUDBEDS},OK", "Qw3rTy"),
        ("cloudbeds", f"{CLOUDBEDS};OK", "Qw3rTy"),
        ("cloudbeds", f"{CLOUDBEDS},search", "Qw3rTy"),
        ("siteminder", "https://direct-book.com/properties/oceanbreeze,Byron,NSW", "oceanbreeze"),
        ("siteminder", "https://direct-book.com/properties/beachhouse,OK", "beachhouse"),
        ("siteminder", "https://direct-book.com/properties/beach,house", "beach"),
        ("siteminder", "https://direct-book.com/properties/seasidedirect,contact", "seasidedirect"),
        ("rms", "https://bookings.rmscloud.com/Search/Index/4321/1,16615", "4321"),
        ("rms", "https://bookings.rmscloud.com/Search/Index/4321,3000", "4321"),
    ],
)
def test_a_comma_or_semicolon_after_the_id_ends_the_url_and_the_fields_after_it_are_no_ids(
    engine, line, expected
):
    assert parse(engine, line) == expected


def test_a_cut_urls_booking_url_keeps_its_host_and_drops_the_other_fields():
    parser = LineParser(ENGINES["cloudbeds"])
    assert parser.parse(b"https://us2.cloudbeds.com/reservation/Qw3rTy,Sydney") == "Qw3rTy"
    assert parser.booking_url("Qw3rTy") == "https://us2.cloudbeds.com/reservation/Qw3rTy"


def test_a_field_after_the_comma_that_is_a_url_is_read_as_one():
    line = f"{CLOUDBEDS},https://hotels.cloudbeds.com/reservation/Az9Bc1"
    assert parse("cloudbeds", line) == ("Qw3rTy", "Az9Bc1")


def test_a_semicolon_list_stays_a_list_where_the_engine_separates_ids_with_it():
    assert parse("mews", f"{MEWS}/{UUID};{SECOND}") == (UUID, SECOND)


@pytest.mark.parametrize(
    ("engine", "line", "reason"),
    [
        ("rms", "1234,2025", Reject.TEXT_WORD),  # a year is no client: a count or date column
        ("cloudbeds", "Sydney,Europe", Reject.MALFORMED_ID),  # words, not generated codes
        ("cloudbeds", "https://hotels.cloudbeds.com/reservation/Qw3,Az9Bc1", Reject.MALFORMED_ID),
    ],
)
def test_a_bare_line_or_a_short_id_before_a_comma_is_no_list_unless_every_item_is_an_id(
    engine, line, reason
):
    assert parse(engine, line) == reason


def test_a_comma_after_the_url_in_a_row_of_fields_ends_the_urls_field():
    line = "https://direct-book.com/properties/seasidedirect,Seaside Hotel,Sydney"
    assert parse("siteminder", line) == "seasidedirect"


# --- character references, nested and numeric ---------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        f"{MEWS}?language=en&amp;amp;ids={UUID}",
        f"{MEWS}?language=en&#38;ids={UUID}",
        f"{MEWS}?language=en&#x26;ids={UUID}",
        f"{MEWS}?language=en&#0038;ids={UUID}",
        f"{MEWS}?language=en&amp;#38;ids={UUID}",
        f"{MEWS}?language=en&amp;amp;amp;ids={UUID}",
        f"{MEWS}?language=en&amp;ids&#61;{UUID}",
        f"{MEWS}?language=en&amp;ids&#x3D;{UUID}&#59;{SECOND}",
    ],
)
def test_nested_and_numeric_references_of_an_ampersand_are_read_as_one(line):
    assert parse("mews", line) in (UUID, (UUID, SECOND))


def test_a_nested_reference_glued_after_the_id_does_not_break_it():
    assert parse("mews", f"{MEWS}/{UUID}&amp;amp;utm_source=newsletter") == UUID


@pytest.mark.parametrize(
    "line",
    [
        f"{CLOUDBEDS}?currency=usd&amp;amp;utm_source=newsletter",
        f"{CLOUDBEDS}?currency=usd&#38;utm_source=newsletter",
        f"{CLOUDBEDS}?currency=usd&#x26;utm_medium=email&#x26;utm_source=x",
    ],
)
def test_tracking_after_a_nested_reference_leaves_the_booking_url(line):
    assert booking_url("cloudbeds", line) == f"{CLOUDBEDS}?currency=usd"


# --- brackets in a query -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "url"),
    [
        (
            f"{CLOUDBEDS}?rooms[0][adults]=2&currency=usd",
            f"{CLOUDBEDS}?rooms[0][adults]=2&currency=usd",
        ),
        (f"{CLOUDBEDS}?x=(1)", f"{CLOUDBEDS}?x=(1)"),
        (f"({CLOUDBEDS}?x=(1))", f"{CLOUDBEDS}?x=(1)"),
        (f"({CLOUDBEDS}?x=(1)).", f"{CLOUDBEDS}?x=(1)"),
        ("(hotels.cloudbeds.com/reservation/Qw3rTy?x=(1))", f"{CLOUDBEDS}?x=(1)"),
        (f"[{CLOUDBEDS}?filter[view]=list]", f"{CLOUDBEDS}?filter[view]=list"),
        (f"[Book now]({CLOUDBEDS}?rooms[0][adults]=2)", f"{CLOUDBEDS}?rooms[0][adults]=2"),
        (f'<a href="{CLOUDBEDS}?q={{a}}&currency=usd">', f"{CLOUDBEDS}?q={{a}}&currency=usd"),
    ],
)
def test_brackets_a_url_opens_stay_in_its_booking_url_and_the_ones_around_it_go(line, url):
    assert parse("cloudbeds", line) == "Qw3rTy"
    assert booking_url("cloudbeds", line) == url


def test_two_bracketed_urls_glued_together_are_two_urls():
    line = f"({CLOUDBEDS})(https://hotels.cloudbeds.com/reservation/Az9Bc1)"
    assert parse("cloudbeds", line) == ("Qw3rTy", "Az9Bc1")


# --- nested percent-encoding in a redirect wrapper ------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "https://www.google.com/url?q=https%253A%252F%252Fhotels.cloudbeds.com%252Freservation"
        "%252FQw3rTy",
        "https://www.google.com/url?q=https%25253A%25252F%25252Fhotels.cloudbeds.com%25252F"
        "reservation%25252FQw3rTy",
        "https://l.facebook.com/l.php?u=%252F%252Fhotels.cloudbeds.com%252Freservation%252FQw3rTy",
    ],
)
def test_a_redirect_target_encoded_more_than_once_is_decoded(line):
    assert parse("cloudbeds", line) == "Qw3rTy"


@pytest.mark.parametrize(
    "line",
    [
        "https%3A%2F%2Fhotels.cloudbeds.com%2Freservation%2FQw3rTy",
        "https%253A%252F%252Fhotels.cloudbeds.com%252Freservation%252FQw3rTy",
        "%2F%2Fhotels.cloudbeds.com%2Freservation%2FQw3rTy",
        '"HTTPS%3A%2F%2Fhotels.cloudbeds.com%2Freservation%2FQw3rTy",200',
    ],
)
def test_a_whole_url_percent_encoded_once_or_more_is_decoded(line):
    assert parse("cloudbeds", line) == "Qw3rTy"


def test_a_redirect_targets_own_encoded_query_stays_encoded_once():
    line = (
        "https://www.google.com/url?q=https%3A%2F%2Fhotels.cloudbeds.com%2Freservation%2FQw3rTy"
        "%3Fq%3D%2522hi%2522&sa=D"
    )
    assert booking_url("cloudbeds", line) == f"{CLOUDBEDS}?q=%22hi%22"


def test_percent_encoding_nested_deeper_than_the_bound_is_not_undone():
    target = "https://hotels.cloudbeds.com/reservation/Qw3rTy"
    for _ in range(5):
        target = target.replace("%", "%25").replace(":", "%3A").replace("/", "%2F")
    assert parse("cloudbeds", f"https://www.google.com/url?q={target}") == Reject.WRONG_HOST


# --- one reason for the same line in every engine ----------------------------------------------


@pytest.mark.parametrize("line", ["<html>", "(notes)", "200", "[todo]", '"none"', "2025-03-01"])
@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_a_text_line_has_the_same_reason_in_every_engine(engine, line):
    assert parse(engine, line) == Reject.TEXT_WORD


@pytest.mark.parametrize(
    ("engine", "line", "expected"),
    [
        ("rms", "12345\t200", "12345"),
        ("rms", "12345,301", "12345"),
        ("rms", "7A1B2C3D4E5F6071;200;Indexable", "7A1B2C3D4E5F6071"),
        ("cloudbeds", "Qw3rTy,200", "Qw3rTy"),
        ("cloudbeds", '"Qw3rTy",200', "Qw3rTy"),
        ("siteminder", "seasidedirect\t200\tIndexable", "seasidedirect"),
        ("mews", f"{UUID}\t200", UUID),
        ("rms", "2025\t200", Reject.TEXT_WORD),
        ("siteminder", "Seaside 200", Reject.TEXT_WORD),  # a space separates words, not columns
    ],
)
def test_a_bare_id_followed_by_a_status_column_is_read(engine, line, expected):
    parser = LineParser(ENGINES[engine])
    assert parser.parse(line.encode()) == expected
    assert parser.item_misses == 0


# --- tracking parameters -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "parameter",
    [
        "dclid=Cj0", "msclkid=5f1e", "mc_eid=ab12", "mc_cid=cd34", "yclid=123", "wbraid=Ck8",
        "gbraid=0AAA", "igshid=MzRl", "_hsenc=p2AN", "_hsmi=2835", "twclid=2-7x", "li_fat_id=9a",
        "ttclid=E.C", "srsltid=AfmB", "gclsrc=aw.ds", "mkt_tok=NzU2", "MSCLKID=5F1E",
    ],
)  # fmt: skip
def test_well_known_tracking_parameters_leave_the_booking_url(parameter):
    line = f"{CLOUDBEDS}?{parameter}&currency=usd&{parameter}"
    assert booking_url("cloudbeds", line) == f"{CLOUDBEDS}?currency=usd"


# --- files ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
@pytest.mark.parametrize(
    "text", ["酒店列表\n", "酒店列表", "東京のホテル\r\n大阪\r\n", "서울 호텔\n"]
)
def test_a_tiny_bomless_utf16_file_of_cjk_text_is_read_not_refused(tmp_path, encoding, text):
    path = tmp_path / "crawl.txt"
    path.write_bytes(text.encode(encoding))
    with open_crawl(path) as stream:
        assert list(iter_lines(stream)) == text.encode().splitlines()


# --- the two rules are engine data (params.yaml) -------------------------------------------------

ENGINE = """
source: {{root: data/sources}}
engines:
  bookit:
    file: bookit.txt
    display_name: BookIt
    hosts: [bookit.example]
    url_patterns: ['^[^/]+/hotel/(?P<id>[^/]+)$']
    id_pattern: '[a-z0-9]+'
    booking_url: https://bookit.example/hotel/{{id}}
{extra}"""


def test_an_engine_gets_a_bare_id_pattern_and_site_pages_from_params_alone(tmp_path):
    extra = "    bare_id_pattern: '[a-z]+[0-9]+'\n    site_pages: [Search, deals]\n"
    (tmp_path / "params.yaml").write_text(ENGINE.format(extra=extra), encoding="utf-8")
    parser = LineParser(load_params(tmp_path).engine("bookit"))
    assert parser.parse(b"hotel42") == "hotel42"
    # An id's shape in a URL, but alone not the bare shape: a word, text.
    assert parser.parse(b"resort") == Reject.TEXT_WORD
    assert parser.parse(b"https://bookit.example/hotel/resort") == "resort"
    assert parser.parse(b"https://bookit.example/hotel/search") == Reject.NO_ID


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ("    site_pages: contact\n", "engines.bookit.site_pages"),
        ("    site_pages: [contact, 404]\n", "engines.bookit.site_pages"),
        ("    bare_id_pattern: '[0-9'\n", "engines.bookit.bare_id_pattern"),
    ],
)
def test_a_bad_bare_id_pattern_or_site_pages_is_refused_naming_the_key(tmp_path, extra, key):
    (tmp_path / "params.yaml").write_text(ENGINE.format(extra=extra), encoding="utf-8")
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_params(tmp_path)
