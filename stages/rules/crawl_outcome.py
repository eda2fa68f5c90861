"""What a crawl line can come to, and the fingerprint of the rules that decide it.

`LineParser.parse` (stages/rules/crawl.py, where the contract is written out) gives a str, a
tuple of str, BLANK or a `Reject`; `rules_fingerprint` is stored with each engine's leads so
that a change of the rules has their evidence read again (stages/store/leads.py `recheck`).
"""

from __future__ import annotations

import itertools
import re
from enum import Enum

from stages.rules.config import Engine

# Bumped when the parser reads lines differently, so stored evidence is checked again.
RULES_VERSION = 7


class Reject(Enum):
    """Why a line gave no property id. `value` is the code written to reject files."""

    TOO_LONG = "too_long"  # longer than max_length bytes
    INVALID_UTF8 = "invalid_utf8"  # the line, or its percent-decoded path, is not UTF-8
    CONTROL_CHARS = "control_chars"  # C0/C1 control character or DEL (NUL included)
    UNSUPPORTED_SCHEME = "unsupported_scheme"  # a scheme other than http/https
    WRONG_HOST = "wrong_host"  # not one of the engine's hosts, nor a subdomain of one
    NO_ID = "no_id"  # right host, but no url pattern matches the path
    MALFORMED_ID = "malformed_id"  # an id was found (or a bare line) not matching id_pattern
    HEADER_ROW = "header_row"  # a crawl export's column header (`url`, `"url","status"`)
    TEXT_WORD = "text_word"  # a bare word an engine of word-like ids does not take: see `_word`
    PLACEHOLDER_ID = "placeholder_id"  # a URL's id is a placeholder: see `is_placeholder`

    def __str__(self) -> str:
        return self.value


# Values a template, a script or a hand-kept list leaves where an id belongs: JavaScript's and
# templates' empty values (`/properties/undefined`, `[object Object]`), test and sample words,
# template slugs (`your-hotel`). Never a property, in a URL (placeholder_id) or alone (text_word).
# fmt: off
PLACEHOLDERS = frozenset((
    "undefined", "null", "nil", "nan", "none", "object", "true", "false", "unknown", "default",
    "example", "sample", "test", "testing", "demo", "slug", "placeholder", "your-hotel",
    "yourhotel", "your_hotel", "your-property", "yourproperty", "hotel-name", "hotelname",
    "property-slug", "property-name", "propertyname", "your-property-slug", "hotel-slug",
    "n/a", "na", "yes", "no", "ok", "tbd", "todo", "html", "yourid", "your-id", "your_id",
    "codigo", "string", "foo", "bar", "baz", "foobar", "lorem", "ipsum", "asdf", "abcdef",
    "sample-hotel", "example-hotel", "hotel-example", "1234567890abcdef", "0123456789abcdef",
    "123456", "1234567", "12345678",  # counting up, as the hot loop looks them up by form
    "12345678-1234-1234-1234-123456789012", "12345678-1234-5678-1234-567812345678",
    "12345678-90ab-cdef-1234-567890abcdef", "123e4567-e89b-12d3-a456-426614174000",
    "550e8400-e29b-41d4-a716-446655440000", "01234567-89ab-cdef-0123-456789abcdef",
    "abcdef12-3456-7890-abcd-ef1234567890", "a1b2c3d4-e5f6-7890-abcd-ef1234567890",
    "12345678-1234-1234-1234-123456789abc", "deadbeef-dead-beef-dead-beefdeadbeef",
    # the sample UUIDs of docs, RFC 4122 and forms
))
# fmt: on
# The words as a URL writes them (`undefined`, `UNDEFINED`, `Undefined`): the hot loop looks
# them up without lower-casing every id; `is_placeholder` takes any case.
PLACEHOLDER_FORMS = (
    PLACEHOLDERS | {w.upper() for w in PLACEHOLDERS} | {w.title() for w in PLACEHOLDERS}
)


# Site pages this long or shorter are looked up in every case without lower-casing the id.
SHORT_PAGE = 6
_ASCENDING = "0123456789abcdef"
_LETTER_OR_DIGIT = re.compile(r"[^\W_]")


def is_placeholder(property_id: str) -> bool:
    """Whether `property_id` is a placeholder, not a property: a word of PLACEHOLDERS (any case);
    six or more digits counting up (`123456`); a template's field (`{clientId}`, `<slug>`,
    `${id}`, `:id`); punctuation alone (`-`, `_`, `--`); any run of zeros (`000000`, the
    all-zero UUID, RMS client `0`); or one letter or mark repeated, dashes aside, 3 times or
    more (`XXXXXX`, `***`): what templates, test data and masked exports write. One digit 1-9
    repeated is not one: RMS client numbers such as 1111 or 77777 are real properties."""
    word = property_id.lower()
    if word in PLACEHOLDERS or (len(word) >= 6 and word in _ASCENDING):
        return True  # a word of the list, or counting up (`123456`, `0123456789abcdef`)
    if word[:1] in "{<[" or word.startswith(("${", ":")):
        return True  # a template's field left unfilled (`{clientId}`, `<slug>`, `:id`)
    core = property_id.replace("-", "")
    first = core[:1]
    if core.replace(first, ""):  # two characters or more, dashes aside: the common id
        return not _LETTER_OR_DIGIT.search(property_id)
    if not first or not first.isalnum():
        return True  # punctuation alone
    # One digit repeated is a real RMS client (1111) up to a client's length; 16 or more
    # (a UUID's or a 16-digit id's length) is a mask.
    return first == "0" or (len(property_id) >= 3 and not first.isdigit()) or len(core) >= 16


def case_forms(word: str) -> set[str]:
    """`word` in every mix of upper and lower case if it has at most SHORT_PAGE letters, else
    in lower, upper and title case."""
    if len(word) > SHORT_PAGE:
        return {word, word.upper(), word.title()}
    return {"".join(chars) for chars in itertools.product(*({c.lower(), c.upper()} for c in word))}


class Blank(Enum):
    """The one outcome of a whitespace-only line: neither an id nor a rejection."""

    BLANK = "blank"

    def __str__(self) -> str:
        return self.value


BLANK = Blank.BLANK
ParseResult = str | tuple[str, ...] | Reject | Blank


def rules_fingerprint(engine: Engine) -> str:
    """A short hash of everything that decides which id(s) and URL a line gives for `engine`.

    Stored with the engine's leads; a different value at the next ingest means the rules
    changed and the stored evidence is read again (see stages/store/leads.py `recheck`).
    """
    import hashlib
    import json

    rules = [
        RULES_VERSION,
        list(engine.hosts),
        [pattern.pattern for pattern in engine.url_patterns],
        engine.id_pattern.pattern,
        engine.id_case,
        engine.id_separator,
        engine.booking_url,
        engine.bare_id_pattern.pattern if engine.bare_id_pattern else None,
        sorted(engine.site_pages),
    ]
    return hashlib.sha256(json.dumps(rules).encode()).hexdigest()[:16]
