"""Kinds of lines the fourth tester found wrong after issue 11, one test per kind: a bare id
followed by a name column or by more ids (export rows without a URL), a comma inside a URL's path
followed by more path, and ids a page or an extraction cut short (an ellipsis, a space, an
apostrophe, a trailing hyphen, one character). Tables: `<engine> <line> -> <expected>`."""

from __future__ import annotations

import pytest

from stages.rules.crawl import LineParser, Reject
from tests.support.crawl import ENGINES, UUID, outcome_text, parse, table

pytestmark = pytest.mark.unit  # pure logic: no services, no other programs

RMS = "https://bookings.rmscloud.com/Search/Index"

# --- a bare id followed by a name column: a crawler's export without URLs -----------------------

NAME_COLUMNS = f"""
cloudbeds Qw3rTy,Hotel Sol -> Qw3rTy
cloudbeds Qw3rTy\tHotel Sol\tSydney -> Qw3rTy
cloudbeds "Qw3rTy","Hotel Sol, Sydney" -> Qw3rTy
cloudbeds lWvqMQ;Hotel Sol;Sydney;AU -> lWvqMQ
rms 16615,Harbour Motel,Sydney -> 16615
rms 16615,Sydney,NSW,AU -> 16615
rms 16615 , Harbour Motel -> 16615
rms 16615,Harbour Motel,200 -> 16615
mews {UUID};Hotel Praha -> {UUID}
mews "{UUID}","Hotel Praha","Prague" -> {UUID}
siteminder seasidehoteldirect,Seaside Hotel,Byron Bay -> seasidehoteldirect
siteminder seasidehoteldirect|Seaside Hotel -> seasidehoteldirect
"""


@pytest.mark.parametrize(("engine", "line", "expected"), table(NAME_COLUMNS))
def test_a_bare_id_followed_by_a_name_column_is_a_lead(engine, line, expected):
    assert outcome_text(parse(engine, line)) == expected


def test_an_id_row_gets_the_engines_template_as_booking_url():
    parser = LineParser(ENGINES["rms"])
    assert parser.parse(b"16615,Harbour Motel,Sydney") == "16615"
    assert parser.booking_url("16615") == f"{RMS}/16615/1/"


ID_LISTS = """
rms 16615,16616 -> 16615,16616
rms 16615;16616;200 -> 16615,16616
rms "16615","16616","Harbour Motel" -> 16615,16616
rms 16615,16615 -> 16615
cloudbeds Qw3rTy,Az9Bc1 -> Qw3rTy,Az9Bc1
cloudbeds lWvqMQ\tAz9Bc1\tHotel Sol -> lWvqMQ,Az9Bc1
"""


@pytest.mark.parametrize(("engine", "line", "expected"), table(ID_LISTS))
def test_a_row_of_bare_ids_is_one_lead_each(engine, line, expected):
    assert outcome_text(parse(engine, line)) == expected


# Where ids look like words, a single word after one is as likely a city as a code: not an id
# row; a number that no bare line takes (a year, a price) is no id and no name either.
NO_ID_ROWS = """
cloudbeds Sydney,Europe -> reject:malformed_id
cloudbeds Qw3rTy,Sydney -> reject:malformed_id
cloudbeds Hotel Sol,Qw3rTy -> reject:text_word
siteminder beach,house -> reject:malformed_id
rms 16615,2000 -> reject:text_word
rms 16615,12.50 -> reject:text_word
rms 200,Harbour Motel -> reject:text_word
rms 2025,Harbour Motel -> reject:text_word
mews zzz;Hotel Praha -> reject:text_word
"""


@pytest.mark.parametrize(("engine", "line", "expected"), table(NO_ID_ROWS))
def test_a_row_whose_first_column_is_no_id_or_whose_next_is_no_name_is_no_lead(
    engine, line, expected
):
    assert outcome_text(parse(engine, line)) == expected


@pytest.mark.parametrize(
    "line",
    ["id,name,city,country", "Property ID,Hotel Name,City", '"hotel_id";"hotel_name"'],
)
@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_an_export_header_naming_an_id_column_is_a_header_row(engine, line):
    assert outcome_text(parse(engine, line)) == "reject:header_row"


# --- a comma inside a URL's path, followed by more path, is no column's end -------------------


def test_a_comma_list_in_the_rms_client_position_is_one_lead_each_with_the_agent():
    parser = LineParser(ENGINES["rms"])
    assert parser.parse(f"{RMS}/16615,16616/1".encode()) == ("16615", "16616")
    assert parser.booking_url("16615") == f"{RMS}/16615/1"
    assert parser.booking_url("16616") == f"{RMS}/16616/1"


def test_a_comma_list_in_the_cloudbeds_code_position_keeps_the_region_and_query():
    parser = LineParser(ENGINES["cloudbeds"])
    line = b"https://us2.cloudbeds.com/reservation/Qw3rTy,Az9Bc1/guests?currency=usd"
    assert parser.parse(line) == ("Qw3rTy", "Az9Bc1")
    assert parser.booking_url("Az9Bc1") == (
        "https://us2.cloudbeds.com/reservation/Az9Bc1?currency=usd"
    )


# The comma ends the path (no `/` after it): the next field is a column of the export (a size,
# a word count, a response time in ms: numbers of 4 digits too), and RMS documents no list.
def test_a_number_after_a_comma_at_the_paths_end_is_a_column_and_the_url_stays_the_pages():
    parser = LineParser(ENGINES["rms"])
    assert parser.parse(f"{RMS}/4321,3000".encode()) == "4321"
    assert parser.booking_url("4321") == f"{RMS}/4321"


COLUMNS_WITH_A_SLASH = f"""
rms {RMS}/16615,N/A -> 16615
rms {RMS}/16615,2025/03/01 -> 16615
cloudbeds https://hotels.cloudbeds.com/reservation/Qw3rTy,Sydney/NSW -> Qw3rTy
siteminder https://direct-book.com/properties/beach,house/rooms -> beach
"""


@pytest.mark.parametrize(("engine", "line", "expected"), table(COLUMNS_WITH_A_SLASH))
def test_a_column_holding_a_slash_after_the_id_is_still_a_column(engine, line, expected):
    assert outcome_text(parse(engine, line)) == expected


# --- an id cut short is no lead: malformed_id -----------------------------------------------------

CUT_IDS = f"""
siteminder https://direct-book.com/properties/x -> reject:malformed_id
siteminder https://direct-book.com/properties/ab/rooms -> reject:malformed_id
siteminder https://direct-book.com/properties/seaside- -> reject:malformed_id
siteminder https://direct-book.com/properties/-seaside -> reject:malformed_id
siteminder https://direct-book.com/properties/seasideho... -> reject:malformed_id
siteminder https://direct-book.com/properties/seasideho\u2026 -> reject:malformed_id
siteminder Book at https://direct-book.com/properties/seasideho\u2026 today -> reject:malformed_id
siteminder https://direct-book.com/properties/o'reillys -> reject:malformed_id
siteminder https://direct-book.com/properties/o\u2019reillys -> reject:malformed_id
siteminder <a href='https://direct-book.com/properties/o'reillys'>Book</a> -> reject:malformed_id
siteminder https://direct-book.com/properties/sea side -> reject:malformed_id
siteminder https://direct-book.com/properties/sea side/rooms -> reject:malformed_id
siteminder "https://direct-book.com/properties/sea side" -> reject:malformed_id
siteminder <a href="https://direct-book.com/properties/sea side">Book</a> -> reject:malformed_id
cloudbeds https://hotels.cloudbeds.com/reservation/Qw3rT... -> reject:malformed_id
cloudbeds https://hotels.cloudbeds.com/reservation/Qw3rT\u2026 -> reject:malformed_id
rms {RMS}/166... -> reject:malformed_id
rms {RMS}/166\u2026 -> reject:malformed_id
rms {RMS}/166 15 -> reject:malformed_id
rms {RMS}/4,321/1 -> reject:malformed_id
rms {RMS}/4 321/1 -> reject:malformed_id
rms {RMS}/44 321/1 -> reject:malformed_id
rms {RMS}/4 321 -> reject:malformed_id
rms {RMS}/4 500/1 -> reject:malformed_id
rms {RMS}/1 234 567/1 -> reject:malformed_id
rms {RMS}/12 404/1 -> reject:malformed_id
rms {RMS}/16 615\t200 -> reject:malformed_id
rms {RMS}/16 615 200 -> reject:malformed_id
rms {RMS}/166 15\t200 -> reject:malformed_id
rms {RMS}/4\u00a0321/1 -> reject:malformed_id
rms {RMS}/4\u2009321/1 -> reject:malformed_id
siteminder https://direct-book.com/properties/sea side\t200 -> reject:malformed_id
siteminder https://direct-book.com/properties/sea side 200 -> reject:malformed_id
siteminder https://direct-book.com/properties/sea side text/html -> reject:malformed_id
siteminder https://direct-book.com/properties/sea hotel -> reject:malformed_id
rms https://bookings.rmscloud.com/Search/Index/1,234,567/1 -> reject:malformed_id
rms 16615... -> reject:malformed_id
rms 16615\u2026 -> reject:malformed_id
"""


@pytest.mark.parametrize(("engine", "line", "expected"), table(CUT_IDS))
def test_an_id_cut_at_an_ellipsis_space_apostrophe_or_hyphen_is_malformed(engine, line, expected):
    assert outcome_text(parse(engine, line)) == expected


# The cut fell after the id (a `/` or the query came first), no longer id could exist there
# (a Cloudbeds code has 6 characters, a UUID 36), the word after the space is a column, or the
# URL stands in running text, where a space ends it.
WHOLE_IDS = f"""
cloudbeds https://hotels.cloudbeds.com/reservation/Qw3rTy... -> Qw3rTy
cloudbeds https://hotels.cloudbeds.com/reservation/Qw3rTy/gue\u2026 -> Qw3rTy
cloudbeds https://hotels.cloudbeds.com/reservation/Qw3rTy?currency=u... -> Qw3rTy
cloudbeds https://hotels.cloudbeds.com/reservation/Qw3rTy guests -> Qw3rTy
siteminder https://direct-book.com/properties/seasidehoteldirect/... -> seasidehoteldirect
siteminder https://direct-book.com/properties/seasidehoteldirect 200 -> seasidehoteldirect
rms {RMS}/16615 200 -> 16615
rms {RMS}/16615\t200 -> 16615
rms {RMS}/16615/1 200 OK -> 16615
siteminder https://direct-book.com/properties/seasidedirect 200 OK -> seasidedirect
siteminder Visit https://direct-book.com/properties/seasidedirect for rates -> seasidedirect
siteminder https://direct-book.com/properties/seasidedirect Book now -> seasidedirect
siteminder Book now: https://direct-book.com/properties/seasidedirect and save -> seasidedirect
siteminder https://direct-book.com/properties/seasidedirect Seaside Hotel -> seasidedirect
siteminder <a href="https://direct-book.com/properties/seasidedirect">Book now</a> -> seasidedirect
siteminder https://direct-book.com/properties/seasidehoteldirect OK -> seasidehoteldirect
siteminder https://direct-book.com/properties/seasidehoteldirect text/html -> seasidehoteldirect
siteminder https://direct-book.com/properties/seasidehoteldirect image/png -> seasidehoteldirect
siteminder https://direct-book.com/properties/sea-side-inn -> sea-side-inn
rms {RMS}/16615/1\u2026 -> 16615
rms {RMS}/16615 Harbour Motel -> 16615
mews https://app.mews.com/distributor/{UUID}... -> {UUID}
"""


@pytest.mark.parametrize(("engine", "line", "expected"), table(WHOLE_IDS))
def test_a_cut_after_a_whole_id_leaves_the_id(engine, line, expected):
    assert outcome_text(parse(engine, line)) == expected


@pytest.mark.parametrize("line", ["x", "ab", '"x"'])
def test_a_word_shorter_than_any_slug_alone_is_text(line):
    assert outcome_text(parse("siteminder", line)) == "reject:text_word"


# --- the fifth tester: a word of a code's length is no Cloudbeds code, alone or in a row ----

WORDS_ARE_NO_CODES = """
cloudbeds Sydney -> reject:text_word
cloudbeds London -> reject:text_word
cloudbeds Europe -> reject:text_word
cloudbeds hotels -> reject:text_word
cloudbeds abcdef -> reject:text_word
cloudbeds SYDNEY -> reject:text_word
cloudbeds Sydney,Hotel Sol -> reject:text_word
cloudbeds Berlin\tHotel Adlon -> reject:text_word
cloudbeds "Sydney","Hotel Sol" -> reject:text_word
cloudbeds Europe,200 -> reject:text_word
cloudbeds Qw3rTy -> Qw3rTy
cloudbeds PwV2JI -> PwV2JI
cloudbeds qWertY -> qWertY
cloudbeds Qw3rTy,Hotel Sol -> Qw3rTy
cloudbeds https://hotels.cloudbeds.com/reservation/Sydney -> Sydney
"""


@pytest.mark.parametrize(("engine", "line", "expected"), table(WORDS_ARE_NO_CODES))
def test_a_bare_cloudbeds_code_looks_generated_but_a_url_says_it_is_one(engine, line, expected):
    assert outcome_text(parse(engine, line)) == expected


PLACEHOLDERS_OF_THE_FIFTH_TESTER = f"""
cloudbeds https://hotels.cloudbeds.com/reservation/YOURID -> reject:placeholder_id
cloudbeds https://hotels.cloudbeds.com/reservation/CODIGO -> reject:placeholder_id
cloudbeds https://hotels.cloudbeds.com/reservation/string -> reject:placeholder_id
cloudbeds https://hotels.cloudbeds.com/reservation/foobar -> reject:placeholder_id
cloudbeds https://hotels.cloudbeds.com/reservation/123456 -> reject:placeholder_id
siteminder https://direct-book.com/properties/sample-hotel -> reject:placeholder_id
siteminder https://direct-book.com/properties/lorem -> reject:placeholder_id
siteminder https://direct-book.com/properties/asdf -> reject:placeholder_id
siteminder https://direct-book.com/properties/%7BslugX%7D -> reject:placeholder_id
rms {RMS}/123456/1 -> reject:placeholder_id
rms {RMS}/0123456789ABCDEF/1 -> reject:placeholder_id
rms {RMS}/1234567890ABCDEF/1 -> reject:placeholder_id
rms {RMS}/%7BclientId%7D/1 -> reject:placeholder_id
rms 123456 -> reject:text_word
rms {RMS}/16615/1 -> 16615
rms {RMS}/12345/1 -> 12345
"""


@pytest.mark.parametrize(("engine", "line", "expected"), table(PLACEHOLDERS_OF_THE_FIFTH_TESTER))
def test_a_templates_or_a_testers_value_is_a_placeholder(engine, line, expected):
    assert outcome_text(parse(engine, line)) == expected


@pytest.mark.parametrize("client", ["00016615", "016615", "0016615"])
def test_an_rms_client_number_with_leading_zeros_is_no_second_lead(client):
    assert parse("rms", f"{RMS}/{client}/1") == Reject.MALFORMED_ID


GLUED_TEXT = f"""
cloudbeds https://hotels.cloudbeds.com/reservation/Jp3Jp4\uff08\u516c\u5f0f\uff09 -> Jp3Jp4
cloudbeds https://hotels.cloudbeds.com/reservation/Jq1Jq2\u3002 -> Jq1Jq2
cloudbeds https://hotels.cloudbeds.com/reservation/Jp9Jp0\u516c\u5f0f -> Jp9Jp0
cloudbeds https://hotels.cloudbeds.com/reservation/Kr1Kr2\uc785\ub2c8\ub2e4 -> Kr1Kr2
cloudbeds https://hotels.cloudbeds.com/reservation/Th1Th2\u0e04\u0e48\u0e30 -> Th1Th2
cloudbeds https://hotels.cloudbeds.com/reservation/Em1Oj2\U0001f3e8 -> Em1Oj2
rms {RMS}/16615/1\u516c\u5f0f -> 16615
cloudbeds https://hotels.cloudbeds.com/reservation/Cy1Rl2\u0431\u0440\u043e\u043d\u044c -> Cy1Rl2
cloudbeds https://hotels.cloudbeds.com/reservation/Ar1Ab2\u062d\u062c\u0632 -> Ar1Ab2
cloudbeds https://hotels.cloudbeds.com/reservation/Gr1Ee2\u03ba\u03c1\u03ac\u03c4\u03b7 -> Gr1Ee2
cloudbeds https://hotels.cloudbeds.com/reservation/Hi1Nd2\u0939\u094b\u091f\u0932 -> Hi1Nd2
cloudbeds https://hotels.cloudbeds.com/reservation/Da1Sh2\u2014rates from $99 -> Da1Sh2
cloudbeds https://hotels.cloudbeds.com/reservation/Tm1Rk2\u2122 -> Tm1Rk2
cloudbeds https://hotels.cloudbeds.com/reservation/Ar1Rw2\u2192 -> Ar1Rw2
cloudbeds https://hotels.cloudbeds.com/reservation/Eu1Ro2\u20ac99 -> Eu1Ro2
cloudbeds https://hotels.cloudbeds.com/reservation/Ha1Lf2\u00bd -> Ha1Lf2
cloudbeds https://hotels.cloudbeds.com/reservation/Ci1Rc2\u2460 -> Ci1Rc2
cloudbeds https://hotels.cloudbeds.com/reservation/De1Gr2\u00b0 -> De1Gr2
cloudbeds https://hotels.cloudbeds.com/reservation/Nu1Me2\u2116 -> Nu1Me2
rms {RMS}/16615/1\u0431\u0440\u043e\u043d\u044c -> 16615
siteminder https://direct-book.com/properties/seasidedirect\u2014rates -> seasidedirect
siteminder https://direct-book.com/properties/tokyoinn\u516c\u5f0f -> tokyoinn
siteminder https://direct-book.com/properties/hotel-m\u00fcller -> reject:malformed_id
"""


@pytest.mark.parametrize(("engine", "line", "expected"), table(GLUED_TEXT))
def test_text_of_a_script_no_url_holds_ends_a_url_glued_to_it(engine, line, expected):
    # CJK, kana, Hangul, Thai and emoji are never part of these engines' URLs; a Latin
    # letter with a mark may be (`hotel-müller`: an id the pattern refuses, no cut).
    assert outcome_text(parse(engine, line)) == expected


EXPORT_COLUMNS_AFTER_A_BARE_ID = """
rms 16615,200,2024-01-01 -> 16615
rms 16615\t200\tOK\t2024-01-01 -> 16615
rms 16615,2024-01-01 -> 16615
rms 16615,200,1234 -> 16615
rms 16615,200,OK,2024-01-01 -> 16615
rms 16615,200,Not Found,0.35 -> 16615
cloudbeds Qw3rTy,200,2024-01-01 -> Qw3rTy
rms 1234,2025 -> reject:text_word
"""


@pytest.mark.parametrize(("engine", "line", "expected"), table(EXPORT_COLUMNS_AFTER_A_BARE_ID))
def test_a_bare_id_followed_by_an_exports_columns_is_a_lead(engine, line, expected):
    # A status or a date first, then reason phrases, counts, dates, MIME types: an export row.
    assert outcome_text(parse(engine, line)) == expected


@pytest.mark.parametrize(
    ("engine", "line"),
    [
        ("cloudbeds", "https://www.cloudbeds.com/es/reservas/online"),
        ("cloudbeds", "https://www.cloudbeds.com/en/reservation/system"),
        ("cloudbeds", "https://www.cloudbeds.com/reservation/mobile"),
    ],
)
def test_the_engines_own_marketing_site_names_no_property(engine, line):
    assert parse(engine, line) == Reject.NO_ID


SPACES_OF_THE_SIXTH_TESTER = f"""
siteminder https://direct-book.com/properties/sea side?locale=en -> reject:malformed_id
siteminder https://direct-book.com/properties/sea side#rooms -> reject:malformed_id
siteminder https://direct-book.com/properties/sea side, Sydney -> reject:malformed_id
siteminder https://direct-book.com/properties/harbour view. -> reject:malformed_id
siteminder "https://direct-book.com/properties/harbour view hotel" -> reject:malformed_id
siteminder "https://direct-book.com/properties/sea side hotel","200" -> reject:malformed_id
siteminder <a href="https://direct-book.com/properties/sea side hotel"> -> reject:malformed_id
siteminder https://direct-book.com/properties/sea side hotel?locale=en -> reject:malformed_id
siteminder https://direct-book.com/properties/sea side hotel/rooms -> reject:malformed_id
siteminder (https://direct-book.com/properties/sea side) -> reject:malformed_id
siteminder [Book](https://direct-book.com/properties/sea side) -> reject:malformed_id
siteminder https://direct-book.com/properties/sea side] -> reject:malformed_id
siteminder https://direct-book.com/properties/sea side&x=1 -> reject:malformed_id
siteminder (see https://direct-book.com/properties/seasidedirect here) -> seasidedirect
siteminder https://direct-book.com/properties/seasidedirect Book now, or call -> seasidedirect
siteminder https://direct-book.com/properties/seaside\t3 -> seaside
siteminder Visit https://direct-book.com/properties/seasidedirect for rates. -> seasidedirect
rms {RMS}/16 615?x=1 -> reject:malformed_id
rms {RMS}/16 615#x -> reject:malformed_id
rms {RMS}/16 615, Sydney -> reject:malformed_id
rms {RMS}/16 615. -> reject:malformed_id
rms {RMS}/16615\t1 -> 16615
rms {RMS}/16615\t3000 -> 16615
"""


@pytest.mark.parametrize(("engine", "line", "expected"), table(SPACES_OF_THE_SIXTH_TESTER))
def test_a_space_in_an_id_is_a_cut_also_before_a_query_punctuation_or_more_quoted_words(
    engine, line, expected
):
    # A tab is an export's field separator, never a space inside a URL.
    assert outcome_text(parse(engine, line)) == expected


def test_no_ascii_character_breaks_a_url_but_whitespace_quotes_markup_and_a_backtick():
    # The split is matched without case: a symbol that folds to an ASCII letter (the Kelvin
    # sign to `k`) would cut `booking` in two.
    from stages.rules.crawl_text import TOKEN_SPLIT

    breaking = {chr(code) for code in range(0x21, 0x7F) if TOKEN_SPLIT.fullmatch(chr(code))}
    assert breaking == set("\"'<>`")


A_LOGS_COLUMNS_AFTER_A_SPACE = f"""
rms 16615 200 -> 16615
rms 16615 404 Not Found -> 16615
mews {UUID} 200 -> {UUID}
cloudbeds Qw3rTy 200 -> Qw3rTy
cloudbeds Sydney 200 -> reject:text_word
siteminder Seaside 200 -> reject:text_word
rms 16615 2025 -> reject:text_word
"""


@pytest.mark.parametrize(("engine", "line", "expected"), table(A_LOGS_COLUMNS_AFTER_A_SPACE))
def test_a_bare_id_and_a_logs_status_after_a_space_is_a_lead(engine, line, expected):
    assert outcome_text(parse(engine, line)) == expected


@pytest.mark.parametrize(
    "sample",
    [
        "12345678-1234-1234-1234-123456789012",
        "12345678-1234-5678-1234-567812345678",
        "123e4567-e89b-12d3-a456-426614174000",  # the documentation example
        "550e8400-e29b-41d4-a716-446655440000",  # RFC 4122's
        "11111111-1111-1111-1111-111111111111",
        "deadbeef-dead-beef-dead-beefdeadbeef",
    ],
)
def test_a_documentations_sample_uuid_is_no_mews_property(sample):
    assert parse("mews", f"https://app.mews.com/distributor/{sample}") == Reject.PLACEHOLDER_ID
