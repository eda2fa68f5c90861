"""Lines a fresh tester found after issue 11: attributes, text words, header rows, export columns,
redirect wrappers, nested encodings."""

from __future__ import annotations

import gzip

import pytest

from stages.rules.crawl import (
    LineParser,
    Reject,
    UnreadableFile,
)
from tests.support.crawl import (
    ENGINES,
    SAMPLE,
    SECOND,
    UUID,
    booking_url,
    lines_of_file,
    parse,
)

pytestmark = pytest.mark.unit  # pure logic: no services, no other programs


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
        ("siteminder", "'seasidehoteldirect'", Reject.TEXT_WORD),
        ("siteminder", "seasidehoteldirect.", Reject.TEXT_WORD),
        ("siteminder", "200", Reject.TEXT_WORD),
        ("siteminder", "2025-03-01", Reject.TEXT_WORD),
        ("siteminder", "x", Reject.TEXT_WORD),
        ("siteminder", "todo", Reject.TEXT_WORD),
        ("cloudbeds", "status", Reject.HEADER_ROW),
        ("cloudbeds", "domain", Reject.HEADER_ROW),
        ("cloudbeds", "'Qw3rTy'", Reject.TEXT_WORD),
        ("cloudbeds", "(Qw3rTy)", Reject.TEXT_WORD),
        ("cloudbeds", "123456", Reject.TEXT_WORD),
    ],
)
def test_a_text_line_is_no_lead_of_an_engine_whose_ids_look_like_words(engine, line, reason):
    assert parse(engine, line) == reason


@pytest.mark.parametrize(
    "line",
    [
        "url",
        "URL",
        '"url","status"',
        "url;status",
        "url,status_code,title",
        "Address\tStatus Code",
        "Address\tStatus Code\tIndexability",  # Screaming Frog's columns
        "Address\tContent Type\tStatus Code\tStatus\tIndexability\tTitle 1",
        "Address,Indexability Status,Inlinks,Outlinks",
    ],
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


def test_a_value_without_a_scheme_in_the_query_of_a_page_that_is_no_known_wrapper_is_not_mined():
    # Any page's parameter holding an absolute URL is read (tests/test_crawl_wrappers.py); a
    # bare `host/path` value only in the known wrappers, whose parameter is a URL.
    line = "https://www.example.com/go?u=hotels.cloudbeds.com/reservation/Qw3rTy"
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
