"""Kinds of lines the third fresh tester found wrong, one test per kind: placeholders where an id
belongs, Unicode debris around a URL, quoted CSV rows of bare ids, Mews id lists, redirect and
archive wrappers, free text without a URL, and what a booking URL keeps."""

from __future__ import annotations

import pytest

from stages.rules.crawl import LineParser, Reject
from stages.rules.crawl_outcome import is_placeholder
from tests.support.crawl import ENGINES, SECOND, UUID, parse

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
        # Punctuation alone is no slug (the fourth tester).
        *(("siteminder", f"{SITEMINDER}/{junk}") for junk in ("-", "_", "--")),
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
    ],
)
def test_a_placeholder_alone_on_a_line_is_text_word_in_every_engine(engine, line):
    assert parse(engine, line) == Reject.TEXT_WORD


def test_a_placeholder_item_of_an_id_list_is_counted_and_the_real_ids_stay_leads():
    parser = LineParser(ENGINES["mews"])
    assert parser.parse(f"{MEWS}/{ZERO_UUID};{UUID}".encode()) == UUID
    assert parser.missed_items == [ZERO_UUID]


@pytest.mark.parametrize(
    "property_id", ["Qw3rTy", "aaa1", "seaside", "4321", "a", "7", "1111", "77777", UUID]
)
def test_real_ids_and_single_characters_are_no_placeholders(property_id):
    assert not is_placeholder(property_id)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("https://bookings.rmscloud.com/Search/Index/11111/1", "11111"),
        ("https://bookings.rmscloud.com/Search/Index/7777/90", "7777"),
        ("https://ibe12.rmscloud.com/11111/1", "11111"),
        ("11111", "11111"),
        ("99999\t200", "99999"),
    ],
)
def test_an_rms_client_number_of_one_repeated_digit_is_a_lead(line, expected):
    # The fourth tester: numeric RMS clients have 4-5 digits, so 1111-99999 repdigits are real.
    assert parse("rms", line) == expected


def test_a_real_id_beside_a_placeholder_url_on_one_line_is_still_a_lead():
    line = f"{SITEMINDER}/undefined {SITEMINDER}/seasidedirect"
    assert parse("siteminder", line) == "seasidedirect"


# --- Unicode debris, encoded markup and matrix parameters around a URL ------------------------


@pytest.mark.parametrize(
    ("opening", "closing"),
    [
        ("\u201c", "\u201d"),  # “ ”
        ("\u2018", "\u2019"),  # ‘ ’
        ("\u00ab", "\u00bb"),  # « »
        ("\u300c", "\u300d"),  # 「 」
        ("\uff08", "\uff09"),  # （ ）
        ("\u200b", "\u200b"),  # zero-width space
        ("\u2060", "\u200e"),  # word joiner, left-to-right mark
        ("", "\uff1b"),  # fullwidth semicolon
    ],
)
@pytest.mark.parametrize(
    ("engine", "url", "expected"),
    [
        ("cloudbeds", CLOUDBEDS, "Qw3rTy"),
        ("siteminder", f"{SITEMINDER}/seasidedirect", "seasidedirect"),
        ("mews", f"{MEWS}/{UUID}", UUID),
        ("rms", "https://bookings.rmscloud.com/Search/Index/4321/1", "4321"),
    ],
)
def test_unicode_quotes_brackets_and_format_characters_around_a_url_are_debris(
    opening, closing, engine, url, expected
):
    assert parse(engine, f"{opening}{url}{closing}") == expected


@pytest.mark.parametrize("markup", ["%22%3E", "%3C%2Fa%3E", "%22", "%3E%3C%2Fa%3E"])
@pytest.mark.parametrize(
    ("engine", "url", "expected"),
    [
        ("cloudbeds", CLOUDBEDS, "Qw3rTy"),
        ("siteminder", f"{SITEMINDER}/seasidedirect", "seasidedirect"),
        ("mews", f"{MEWS}/{UUID}", UUID),
    ],
)
def test_encoded_quotes_and_angle_brackets_after_the_path_end_the_url(
    markup, engine, url, expected
):
    assert parse(engine, f"{url}{markup}") == expected


@pytest.mark.parametrize(
    ("engine", "line", "expected"),
    [
        ("siteminder", f"{SITEMINDER}/semi;jsessionid=ABC", "semi"),
        ("cloudbeds", "https://hotels.cloudbeds.com/reservation/Pp5Aa6;jsessionid=abc", "Pp5Aa6"),
        ("cloudbeds", f"{CLOUDBEDS};jsessionid=abc/guests?adults=2", "Qw3rTy"),
        ("mews", f"{MEWS}/{UUID};jsessionid=abc", UUID),
    ],
)
def test_a_matrix_parameter_after_the_id_is_dropped_before_the_id_is_read(engine, line, expected):
    assert parse(engine, line) == expected


def test_a_fullwidth_comma_separates_two_urls_like_a_comma():
    line = f"{SITEMINDER}/fullwidth\uff0c{SITEMINDER}/other"
    assert parse("siteminder", line) == ("fullwidth", "other")


def test_fullwidth_letters_in_a_host_stay_a_lookalike_host():
    line = "https://hotels.\uff43\uff4c\uff4f\uff55\uff44\uff42\uff45\uff44\uff53.com/reservation/Qw3rTy"
    assert parse("cloudbeds", line) == Reject.WRONG_HOST


# --- quoted CSV rows of bare ids, and status columns with a reason phrase -----------------------

BARE_IDS = [
    ("cloudbeds", "Qw3rTy"),
    ("siteminder", "seasidedirect"),
    ("mews", UUID),
    ("rms", "16615"),
]


@pytest.mark.parametrize("row", ['"{}","200"', '"{}",200', '{},"200"', '"{}";"301"', '"{}"'])
@pytest.mark.parametrize(("engine", "property_id"), BARE_IDS)
def test_a_bare_id_in_csv_quotes_alone_or_before_a_status_is_the_id_in_every_engine(
    row, engine, property_id
):
    assert parse(engine, row.format(property_id)) == property_id


@pytest.mark.parametrize(
    "columns", ["\t404\tNot Found", "\t301\tMoved Permanently", "\t200\tOK", ",410,Gone"]
)
@pytest.mark.parametrize(("engine", "property_id"), BARE_IDS)
def test_a_status_code_with_its_reason_phrase_after_a_bare_id_leaves_the_id(
    columns, engine, property_id
):
    assert parse(engine, property_id + columns) == property_id


@pytest.mark.parametrize(
    ("engine", "line"),
    [
        ("rms", '"200"'),
        ("siteminder", '"undefined"'),
        ("cloudbeds", "'Qw3rTy'"),
    ],
)
def test_a_non_id_in_csv_quotes_single_quotes_or_text_columns_is_no_lead(engine, line):
    assert type(parse(engine, line)) is Reject


# --- Mews id lists in the query: repeated, PHP arrays, after a path id -----------------------

THIRD = "1c2d3e4f-0a5b-4c53-9c6a-ab1e00c9d9c8"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (f"{MEWS}?ids={UUID}&ids={SECOND}", (UUID, SECOND)),
        (f"{MEWS}?ids[]={UUID}&ids[]={SECOND}", (UUID, SECOND)),
        (f"{MEWS}?ids%5B%5D={UUID}&ids%5B%5D={SECOND}", (UUID, SECOND)),
        (f"{MEWS}/{UUID}?ids={SECOND}", (UUID, SECOND)),
        (f"{MEWS}/{UUID}?ids={UUID}", UUID),
        (f"{MEWS}?ids={UUID};{SECOND}&language=en&ids={THIRD}", (UUID, SECOND, THIRD)),
        (f"{MEWS}?language=en&ids={SECOND}&ids={SECOND}", SECOND),
    ],
)
def test_every_mews_id_of_a_line_is_read_once_wherever_the_url_puts_it(line, expected):
    assert parse("mews", line) == expected


def test_each_id_of_a_mews_query_list_gets_its_own_booking_url():
    parser = LineParser(ENGINES["mews"])
    assert parser.parse(f"{MEWS}/{UUID}?ids={SECOND}".encode()) == (UUID, SECOND)
    assert parser.booking_url(SECOND) == f"{MEWS}/{SECOND}"
    assert parser.booking_url(UUID) == f"{MEWS}/{UUID}"


# --- redirectors, archives, translation proxies and javascript: around a URL -------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "https://duckduckgo.com/l/?uddg=https%3A%2F%2Fhotels.cloudbeds.com%2Freservation"
            "%2FDd1Gg2&rut=abc",
            "Dd1Gg2",
        ),
        (
            "https://r.search.yahoo.com/_ylt=AwrFA;_ylu=Y29sbw--/RV=2/RE=1700000000/RO=10"
            "/RU=https%3a%2f%2fhotels.cloudbeds.com%2freservation%2fYh1Oo2/RK=2/RS=abc-",
            "Yh1Oo2",
        ),
        (
            "https://web.archive.org/web/2023/https://hotels.cloudbeds.com/reservation/Wa1Bk2",
            "Wa1Bk2",
        ),
        (
            "http://web.archive.org/web/20230101000000id_/http://us2.cloudbeds.com/reservas/Wa1Bk2",
            "Wa1Bk2",
        ),
        (
            "https://translate.google.com/translate?sl=es&tl=en"
            "&u=https://hotels.cloudbeds.com/reservation/Tr1An2",
            "Tr1An2",
        ),
        (
            "https://hotels-cloudbeds-com.translate.goog/reservation/Tr1An2?_x_tr_sl=es&_x_tr_tl=en",
            "Tr1An2",
        ),
        ("https://www.google.com/url?q=hotels.cloudbeds.com/reservation/Gn1Sc2&sa=D", "Gn1Sc2"),
        ("javascript:window.open('https://hotels.cloudbeds.com/reservation/Js1Js2')", "Js1Js2"),
        ('javascript:location.href="https://hotels.cloudbeds.com/reservation/Js1Js2"', "Js1Js2"),
    ],
)
def test_a_wrapper_around_a_url_is_read_as_the_url_it_carries(line, expected):
    assert parse("cloudbeds", line) == expected


def test_a_translation_proxys_page_keeps_the_original_host_without_its_parameters():
    line = "https://direct-book-com.translate.goog/properties/seasidedirect"
    assert parse("siteminder", line) == Reject.WRONG_HOST  # direct.book.com
    parser = LineParser(ENGINES["siteminder"])
    # The proxy writes a host's `-` as `--` and its `.` as `-`: direct--book-com is direct-book.com.
    line = "https://direct--book-com.translate.goog/properties/seasidedirect?_x_tr_sl=en&locale=es"
    assert parser.parse(line.encode()) == "seasidedirect"
    assert parser.booking_url("seasidedirect") == (
        "https://direct-book.com/properties/seasidedirect?locale=es"
    )


@pytest.mark.parametrize(
    "line",
    [
        "Location: https://hotels.cloudbeds.com/reservation/Hd1Rs2",  # curl -I, a redirect
        "WARC-Target-URI: https://hotels.cloudbeds.com/reservation/Hd1Rs2",  # a WARC record
        "Referer:\thttps://hotels.cloudbeds.com/reservation/Hd1Rs2?utm_source=x",
        "content-location:  https://hotels.cloudbeds.com/reservation/Hd1Rs2",
    ],
)
def test_a_header_name_before_a_url_is_no_scheme(line):
    assert parse("cloudbeds", line) == "Hd1Rs2"


@pytest.mark.parametrize(
    "engine, line, expected",
    [
        ("cloudbeds", "https://hotels.cloudbeds.com/reservation/En1Cd2%0A", "En1Cd2"),
        ("cloudbeds", "https://hotels.cloudbeds.com/reservation/En1Cd2%0D%0A", "En1Cd2"),
        ("cloudbeds", "https://hotels.cloudbeds.com/reservation/%09En1Cd2/", "En1Cd2"),
        ("cloudbeds", "https://hotels.cloudbeds.com/reservation/En1Cd2%E2%80%8B", "En1Cd2"),
        ("siteminder", "https://direct-book.com/properties/seasidedirect%0A", "seasidedirect"),
        ("siteminder", "https://direct-book.com/properties/seasidedirect/%0A", "seasidedirect"),
        ("cloudbeds", "https://hotels.cloudbeds.com/reservation/En1%0ACd2", Reject.MALFORMED_ID),
        ("cloudbeds", "https://hotels.cloudbeds.com/reservation/En1Cd2%00", Reject.CONTROL_CHARS),
        ("cloudbeds", "https://hotels.cloudbeds.com/reservation/En1Cd2%1B", Reject.CONTROL_CHARS),
    ],
)
def test_encoded_whitespace_around_an_id_is_space_and_other_controls_are_not(
    engine, line, expected
):
    # An href scraped with its line end (`...%0A`) is common; %20 around an id already was space.
    assert parse(engine, line) == expected


@pytest.mark.parametrize("line", ["javascript:void(0)", "javascript:alert('x')"])
def test_javascript_without_a_url_is_an_unsupported_scheme(line):
    assert parse("cloudbeds", line) == Reject.UNSUPPORTED_SCHEME


# --- free text without a URL, and what a booking URL keeps ------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "N/A",
        "...",
        "12/03/2025",
        "16615.0",
        "Client ID: 16615",
        "HTTP/1.1 200",
        "Hotel Sol Sydney",
        "seaside hotel direct",
        '=HYPERLINK("x")',
        "200 OK",
        "Qw3rTy Az9Bc1",
        "undefined",
        "N/A,",
    ],
)
@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_free_text_without_a_url_is_text_word_in_every_engine(engine, line):
    assert parse(engine, line) == Reject.TEXT_WORD


@pytest.mark.parametrize(
    "line", ["hotel.com", "www.example.com/page", "https://example.com/x", "/reservation/Qw3rTy"]
)
def test_a_host_or_path_of_another_site_stays_wrong_host(line):
    assert parse("cloudbeds", line) == Reject.WRONG_HOST


@pytest.mark.parametrize(
    ("line", "url"),
    [
        (f"{CLOUDBEDS}?currency=usd,", f"{CLOUDBEDS}?currency=usd"),
        (f"{CLOUDBEDS}?currency=usd;", f"{CLOUDBEDS}?currency=usd"),
        (f"{CLOUDBEDS}?currency=usd&gad_source=1", f"{CLOUDBEDS}?currency=usd"),
        (
            f"{CLOUDBEDS}?gbraid=0AAA&wbraid=Cj0&gclsrc=aw.ds&currency=usd",
            f"{CLOUDBEDS}?currency=usd",
        ),
        (f"{CLOUDBEDS}?gad_campaignid=123&currency=usd", f"{CLOUDBEDS}?currency=usd"),
        # The fourth tester: a person's fields and session ids (the workbook is published).
        (
            f"{CLOUDBEDS}?email=john%40example.com&name=John+Smith&currency=usd",
            f"{CLOUDBEDS}?currency=usd",
        ),
        (
            f"{CLOUDBEDS}?PHPSESSID=abc123&sid=xyz&adults=2&token=eyJhbGciOi&lang=es",
            f"{CLOUDBEDS}?adults=2&lang=es",
        ),
        (f"{CLOUDBEDS}?hsa_acc=1&hsa_cam=2&Phone=555&currency=usd", f"{CLOUDBEDS}?currency=usd"),
    ],
)
def test_separators_ads_parameters_and_a_persons_fields_stay_out_of_the_booking_url(line, url):
    parser = LineParser(ENGINES["cloudbeds"])
    assert parser.parse(line.encode()) == "Qw3rTy"
    assert parser.booking_url("Qw3rTy") == url


# --- the fourth tester: runs of slashes in a path, template slugs ---------------------------


@pytest.mark.parametrize(
    ("engine", "line", "expected"),
    [
        ("cloudbeds", "https://hotels.cloudbeds.com//reservation/Ds1Sl2", "Ds1Sl2"),
        ("cloudbeds", "https://hotels.cloudbeds.com/reservation//Wq6Er7", "Wq6Er7"),
        ("rms", "https://bookings.rmscloud.com//Search/Index/16615/1", "16615"),
        ("rms", "https://bookings.rmscloud.com/Search/Index/16616/1//", "16616"),
        ("siteminder", "https://direct-book.com//properties/seasidedirect", "seasidedirect"),
    ],
)
def test_a_run_of_slashes_in_a_path_reads_as_one(engine, line, expected):
    assert parse(engine, line) == expected


@pytest.mark.parametrize("slug", ["property-name", "your-property-slug", "hotel-slug"])
def test_a_template_slug_is_a_placeholder(slug):
    assert parse("siteminder", f"{SITEMINDER}/{slug}") == Reject.PLACEHOLDER_ID


# --- the fifth tester: a person's data, secrets and clicks under any name ------------------

KEPT = "currency=usd&checkin=2026-03-01&adults=2&lang=es"


@pytest.mark.parametrize(
    "personal",
    [
        "hotel_email=a@b.c&guest_name=Ann",
        "fname=Ann&telefono=123&correo=x@y.z",
        "guestEmail=ann%40x.com",
        "mobile=0400111222&address=1+Main+St&dob=1990-01-01&passport=X123",
        "password=hunter2&pwd=x&api_key=abc&apikey=def&secret=s&auth_token=t&code=c",
        "confirmation=ABC123&booking_id=999&reservation_id=777",
        "key=abc&uid=123&user_id=77&customer_id=99",
        "e=a@b.c&q=a%40b.c",
        "nombre=Juan&correo_electronico=j@x.es&telefono=600",
        "ref=tripadvisor&aff_id=1&affiliate=x&clickid=2&irclickid=3&cid=4&campaign=spring",
        "s_kwcid=AL!1&ef_id=abc&epik=xyz&rb_clickid=9",
        "guest%5Bemail%5D=a%40b.c&customer_email=c@d.e&contact_phone=555",
        "Guest=Ann+Lee&mobile=0400&guestEmail=ann@x.com",
        # The sixth tester: cards, other languages, accounts, secrets, networks, hidden e-mails.
        "cc=4111111111111111&card=4111&exp=12%2F28&nome=Joao&sobrenome=Silva&pass=hunter2",
        "courriel=z&vorname=Jan&nachname=Nowak&strasse=Hauptstr&prenom=Jean&nom=Dupont",
        "whatsapp=%2B61412345678&wa=61412345678&user=jsmith&memberId=77&conf=ABC&zip=2000",
        "age=34&ip=10.0.0.1&lat=-33.8&lng=151.2&otp=123456&nonce=x&state=y&signature=s&hash=h",
        "partner_id=1&subid=2&clickref=3&awc=4&irgwc=5&cjevent=6&ranMID=7&ranSiteID=8",
        "x=john%2540example.com&y=john(at)example.com",
        # The seventh tester: more languages' fields, ids of a state, places, secrets, values.
        "tarjeta=4111111111111111&cvc=123&expiry=1228&cpf=12345678909&dni=12345678Z",
        "codice_fiscale=RSSMRA80A01H501U&telefone=1&telefon=2&handynummer=3&cell=4&handy=5",
        "fax=6&adresse=x&plz=10115&cap=00100&cep=01001&geburtsdatum=1990-01-01",
        "lon=151.2&latitude=-33.8&longitude=151.2&geo=x&hmac=abc&jwt=eyJ&sscid=1&rfsn=2",
        "x=4111111111111111&y=4111-1111-1111-1111&z=%2B61%20412%20345%20678&w=0412345678",
        "x=john%25252540example.com&y=john%20at%20example%20dot%20com&z=john%EF%BC%A0example.com",
    ],
)
def test_a_persons_data_secrets_and_clicks_never_reach_the_booking_url(personal):
    line = f"{CLOUDBEDS}?{personal}&{KEPT}"
    parser = LineParser(ENGINES["cloudbeds"])
    assert parser.parse(line.encode()) == "Qw3rTy"
    assert parser.booking_url("Qw3rTy") == f"{CLOUDBEDS}?{KEPT}"


@pytest.mark.parametrize(
    "needed",
    ["currency=EUR", "lang=pt-br", "locale=en_AU", "checkin=2026-03-01", "checkout=2026-03-04",
     "adults=2", "kids=1", "guests=3", "rooms=1", "nights=3", "promo=SUMMER", "A=2&C=0",
     "Arrival=2026-03-01", "mewsRoute=rates", "ids=3fa85f64-5717-4562-b3fc-2c963f66afa6",
     "hotel=1", "room_type=double", "rate=flex"],
)  # fmt: skip
def test_what_the_booking_page_needs_stays_in_its_url(needed):
    line = f"{CLOUDBEDS}?{needed}"
    parser = LineParser(ENGINES["cloudbeds"])
    assert parser.parse(line.encode()) == "Qw3rTy"
    assert parser.booking_url("Qw3rTy") == line
