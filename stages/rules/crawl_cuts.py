"""Ids a page or an extraction cut short: malformed_id, never a lead.

A URL or id shown shortened (`/properties/seasideho...`, `16615…`), a space inside the id
(`/properties/sea side`, where the word after the space still reads as the URL's), or an
apostrophe inside the path (`/properties/o'reillys`): the id that is left matches the engine's
pattern, but the property's is longer. A cut after a whole id (`/reservation/Qw3rTy...`, a
fixed-length Cloudbeds code or a UUID) leaves the id.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, cast

from stages.rules import crawl_text as text_rules
from stages.rules.crawl_outcome import ParseResult, Reject
from stages.rules.crawl_text import UNICODE_SPACE

_MALFORMED_ID = Reject.MALFORMED_ID
# The end of a URL or id a page showed shortened (search results, tables): `...`, `…`.
ELLIPSIS = ("...", "\u2026")
# An apostrophe after a path's word characters and before another (`/properties/o'reillys`).
_PATH_APOSTROPHE = re.compile(r"(/[\w.~%-]*\w)'(?=\w)")
# A word right after a URL and one space (`/properties/sea side`, `/Search/Index/16 615?x=1`);
# what follows it tells whether it is the URL's (`_spaced`); a MIME type's (`<url> image/png`)
# is a column.
_NEXT_WORD = re.compile(r"[A-Za-z0-9_-]+")
_MIME_TYPES = frozenset(("text", "application", "image", "audio", "video", "font", "multipart"))
_LAST_DIGITS = re.compile(r"/\d{1,3}$")  # an id position ending a URL in 1-3 digits
_URL_GOES_ON = ("/", "?", "#", "&")  # after the word: more path, a query, a fragment
_CLOSERS = (")", "]", ">", '"', "'")  # what ends a URL that an opener before it enclosed
# A word of the rest of a line that carries on a URL (`hotel?locale=en`, `hotel/rooms`).
_CARRIES_ON = re.compile(r"[\w-]+[/?#&=]")
# A crawl export's status column after a bare id (`12345<TAB>200`, `Qw3rTy,200`).
STATUS_COLUMN = re.compile(r"[1-5][0-9]{2}|(?i:non-indexable|indexable|ok)")


def _inside_url(text: str, at: int, word: re.Match[str]) -> bool:
    """Whether `word`, after a space after the URL at `at`, reads as the rest of that URL: the
    URL and the word sit in one pair of quotes that closes later (`href="<url> side hotel"`)
    or of brackets (`(<url> side)`), or they open the line and the URL goes on within the next
    words (`<url> side hotel?locale=en`) or only columns follow (nothing, punctuation, a tab,
    comma or bar, a status, a number, a MIME type: `<url> side<TAB>200`, `<url> side 200`).
    In running text (`Visit <url> for rates`, `<url> Book now`) the space ends the URL, as it
    does in a browser's address bar."""
    after = text[word.end() :]
    quote = text[at - 1 : at] if at > 0 else ""
    if quote in ("'", '"') and quote in after:
        return True  # the closing quote comes later: the spaces are the quoted URL's
    before = text[:at].rstrip(UNICODE_SPACE)
    if (not before or before[-1] in "([<\"'") and after[:1] in _CLOSERS:
        return True  # `(<url> side)`, `[Book](<url> side)`: the brackets held it all
    if before:
        return False
    if any(_CARRIES_ON.match(token) for token in after.split()[:3]):
        return True  # `<url> side hotel?locale=en`: the URL goes on a word or two later
    rest = after.strip(UNICODE_SPACE).rstrip(".,;:!")
    return not rest or after[:1] in "\t,;|" or _is_column(rest.split()[0])


def _is_column(token: str) -> bool:
    """Whether a token after a URL is a crawl export's column: a status, a number, a MIME type."""
    return (
        bool(STATUS_COLUMN.fullmatch(token))
        or token.isdigit()
        or token.partition("/")[0].lower() in _MIME_TYPES
    )


def _grouped(url: str, word: str) -> bool:
    """Whether a URL ending in 1-3 digits and the digits after one space are one number written
    with a space between its groups (`/Search/Index/4 321/1`, `16 615`, `166 15`): no status
    column, which follows a whole id (`/Search/Index/16615 200`)."""
    return word.isdigit() and bool(_LAST_DIGITS.search(url))


def path_apostrophes(text: str) -> str:
    """`text` with an apostrophe between a path's word characters (`/properties/o'reillys`)
    encoded: part of the path (an id the id pattern refuses), not a quote ending the URL."""
    return _PATH_APOSTROPHE.sub(r"\1%27", text) if "'" in text else text


def ids_of(outcome: str | tuple[str, ...]) -> tuple[str, ...]:
    """`outcome` of an accepted line as a tuple of its ids."""
    return (outcome,) if type(outcome) is str else cast("tuple[str, ...]", outcome)


class CutIds:
    """The cut-id rules of `LineParser` (stages/rules/crawl.py), which sets the state."""

    _id_fullmatch: Callable[[str], Any]
    _one: Callable[[str], ParseResult]  # LineParser's: one URL or bare word of a messy line

    def _shortened(self, url: str) -> ParseResult:
        """A URL or bare id shown shortened (`/properties/seasideho...`, `16615…`): read
        without its ellipsis, unless the cut fell inside its id (`_cut_short`)."""
        short = url.rstrip(".\u2026")
        return self._cut_short(short, self._one(short), ("0", "a"))

    def _spaced(self, text: str, url: str, outcome: ParseResult) -> ParseResult:
        """`outcome` of a URL of `text`, unless a space cut its id: the word after one space,
        written on to the id, would make an id too, and the word still reads as part of the
        URL: the path goes on after it (`/properties/sea side/rooms`, `/Search/Index/4
        321/1`), it is the rest of a number (`_grouped`), or it reads so in its line
        (`_inside_url`). A status or MIME column after the URL (`<url> 200`, `<url> OK`,
        `<url> text/html`) is a column; running text (`Visit <url> for rates`) ends the URL at
        the space. Any Unicode space counts (a no-break space, a thin space)."""
        at = text.find(url)
        end = at + len(url)
        if at < 0 or end >= len(text) or text[end] not in UNICODE_SPACE or text[end] == "\t":
            return outcome  # a tab separates an export's fields: the URL's ends there
        word = _NEXT_WORD.match(text, end + 1)
        if word is None:
            return outcome
        if word[0].lower() in _MIME_TYPES:
            return outcome  # `<url> text/html`: a column, though a slash follows
        if text[word.end() : word.end() + 1] in _URL_GOES_ON or _grouped(url, word[0]):
            return self._cut_short(url, outcome, (word[0],))
        if STATUS_COLUMN.fullmatch(word[0]):
            return outcome
        if not _inside_url(text, at, word):
            return outcome
        return self._cut_short(url, outcome, (word[0],))

    def _cut_short(self, url: str, outcome: ParseResult, more: tuple[str, ...]) -> ParseResult:
        """`outcome`, or malformed_id when the page cut the id there: the URL's path ends with
        its last id and that id followed by one of `more` fits the engine's id_pattern too (a
        slug, a number; never a fixed-length Cloudbeds code or a UUID)."""
        if type(outcome) is not str and type(outcome) is not tuple:
            return outcome
        last = ids_of(outcome)[-1]
        path = text_rules.used_part(url).rstrip(UNICODE_SPACE)
        if path[-len(last) :].lower() != last.lower():
            return outcome  # a `/`, a sub-page or the query came after the id: it is whole
        if any(self._id_fullmatch(last + tail) for tail in more):
            return _MALFORMED_ID
        return outcome
