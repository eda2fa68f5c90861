"""The kinds of real lines named in issue 11 ("Real crawls, exactly") and the booking URLs they
keep."""

from __future__ import annotations

import pytest

from stages.rules.crawl import (
    LineParser,
    Reject,
)
from tests.support.crawl import (
    ENGINES,
    PARSERS,
    SECOND,
    UUID,
    booking_url,
    parse,
)

pytestmark = pytest.mark.unit  # pure logic: no services, no other programs


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
    ("engine", "line", "expected"),
    [
        # Little Hotelier is SiteMinder's product for small hotels: its properties are leads.
        ("siteminder", "https://app.littlehotelier.com/properties/tinyinn", "tinyinn"),
        ("siteminder", "https://apac.littlehotelier.com/properties/tinyinn", "tinyinn"),
        ("siteminder", "https://emea.littlehotelier.com/properties/TinyInn/rooms", "tinyinn"),
        # Scraped inline JSON escapes its slashes and ampersands.
        ("cloudbeds", "https:\\/\\/hotels.cloudbeds.com\\/reservation\\/AbC123", "AbC123"),
        (
            "cloudbeds",
            '{"bookingUrl":"https:\\/\\/hotels.cloudbeds.com\\/reservation\\/AbC123?lang=es\\u0026adults=2"}',
            "AbC123",
        ),
    ],
)
def test_little_hotelier_urls_and_json_escaped_urls_name_their_property(engine, line, expected):
    assert parse(engine, line) == expected


# --- booking URLs keep what the crawl said ---------------------------------------------------


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
    assert parse("cloudbeds", "Ab\tC123") == Reject.TEXT_WORD


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
        # A step with the room or rate it opens: Mews' deeplinks name the same step and room as
        # ?mewsRoute=rates&mewsRoom=<uuid>, so the room's UUID is no property.
        f"https://app.mews.com/distributor/{UUID}/rates/{SECOND}",
        f"https://app.mews.com/distributor/{UUID}/rooms/{SECOND}?language=en-US",
        f"https://app.mews.com/Distributor/{UUID}/rates/{SECOND}/checkout",
        f"app.mews.com/distributor/app.mews.com/distributor/{UUID}/rates/{SECOND}",
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
