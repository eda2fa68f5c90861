"""Kinds of lines the third fresh tester found wrong, one test per kind: placeholders where an id
belongs, Unicode debris around a URL, quoted CSV rows of bare ids, Mews id lists, redirect and
archive wrappers, free text without a URL, and what a booking URL keeps."""

from __future__ import annotations

import pytest

from stages.rules.crawl import LineParser, Reject, is_placeholder
from tests.support.crawl import ENGINES, UUID, parse

pytestmark = pytest.mark.unit  # pure logic: no services, no other programs

CLOUDBEDS = "https://hotels.cloudbeds.com/reservation/Qw3rTy"
SITEMINDER = "https://direct-book.com/properties"
MEWS = "https://app.mews.com/distributor"
ZERO_UUID = "00000000-0000-0000-0000-000000000000"


# --- placeholders: never a lead, from a URL or a bare line, in every engine --------------------


@pytest.mark.parametrize(
    ("engine", "line"),
    [
        *(
            ("siteminder", f"{SITEMINDER}/{word}")
            for word in ("undefined", "null", "nan", "test", "demo", "example", "slug")
        ),
        ("siteminder", f"{SITEMINDER}/your-hotel"),
        ("cloudbeds", "https://hotels.cloudbeds.com/reservation/XXXXXX"),
        ("cloudbeds", "https://hotels.cloudbeds.com/reservation/000000"),
        ("cloudbeds", "https://hotels.cloudbeds.com/reservation/object"),
        ("cloudbeds", "https://hotels.cloudbeds.com/reservation/sample/guests"),
        ("mews", f"{MEWS}/{ZERO_UUID}"),
        ("mews", f"{MEWS}?ids={ZERO_UUID}"),
        ("rms", "https://ibe12.rmscloud.com/0000000000000000/1"),
        ("rms", "https://bookings.rmscloud.com/Search/Index/0/1"),
        ("rms", "https://bookings.rmscloud.com/obookings3/Search/Index/0/90"),
    ],
)
def test_a_placeholder_in_a_urls_id_position_is_placeholder_id(engine, line):
    assert parse(engine, line) == Reject.PLACEHOLDER_ID


@pytest.mark.parametrize(
    ("engine", "line"),
    [
        *(
            ("siteminder", word)
            for word in ("undefined", "nil", "unknown", "default", "example", "null", "NaN")
        ),
        ("cloudbeds", "object"),
        ("cloudbeds", "XXXXXX"),
        ("mews", ZERO_UUID),
        ("rms", "0000000000000000"),
        ("rms", "11111"),
    ],
)
def test_a_placeholder_alone_on_a_line_is_text_word_in_every_engine(engine, line):
    assert parse(engine, line) == Reject.TEXT_WORD


def test_a_placeholder_item_of_an_id_list_is_counted_and_the_real_ids_stay_leads():
    parser = LineParser(ENGINES["mews"])
    assert parser.parse(f"{MEWS}/{ZERO_UUID};{UUID}".encode()) == UUID
    assert parser.missed_items == [ZERO_UUID]


@pytest.mark.parametrize("property_id", ["Qw3rTy", "aaa1", "seaside", "4321", "a", "7", UUID])
def test_real_ids_and_single_characters_are_no_placeholders(property_id):
    assert not is_placeholder(property_id)


def test_a_real_id_beside_a_placeholder_url_on_one_line_is_still_a_lead():
    line = f"{SITEMINDER}/undefined {SITEMINDER}/seasidedirect"
    assert parse("siteminder", line) == "seasidedirect"
