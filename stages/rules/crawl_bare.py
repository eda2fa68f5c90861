"""Lines that hold no URL, and ids that need more than one look: the bare-id rules of `LineParser`.

A line without a URL is a header row, a bare id (alone, or followed by a crawl export's status
column or a name column: `Qw3rTy,Hotel Sol`), a row of bare ids (`16615,16616`: `_id_row`), or
text. One reason for the same kind of line whatever the engine:

- header_row: every field is a crawl export's column name (`url`, `Address<TAB>Status Code`),
  or the first names an id column and the others are column names (`id,name,city,country`);
- text_word: a word that is text, not an id: wrapped in quotes other than a CSV field's,
  brackets or markup (`(notes)`, `<html>`, `'Qw3rTy'`), a number or date where ids need more
  (`200`, `2025-03-01`), a placeholder (`todo`, `undefined`, `000000`), one of the engine's
  site-page words, several words (`Hotel Sol Sydney`), or (for an engine whose ids look like
  words) too short or letter-less (see `BareIds._word`);
- malformed_id: a word with a letter that is near an id but is none (`Qw3rT`, a UUID
  without dashes), or an id a page cut short (`16615...`, and in URLs `/properties/seasideho…`,
  `/properties/sea side`, `/properties/o'reillys`: stages/rules/crawl_cuts.py).

A bare line must fully match the engine's `bare_id_pattern` when it has one (RMS: a number
alone must look like a client, not a status code), else its `id_pattern`. The ids of a URL's
query (Mews `?ids=`, repeated or after a path id) are read here too (`_query_id`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import unquote

from stages.rules import crawl_text as text_rules
from stages.rules.crawl_cuts import ELLIPSIS, STATUS_COLUMN, CutIds, ids_of
from stages.rules.crawl_outcome import (
    PLACEHOLDER_FORMS,
    PLACEHOLDERS,
    ParseResult,
    Reject,
    is_placeholder,
)
from stages.rules.crawl_text import TRAILING, UNICODE_SPACE

_MALFORMED_ID, _HEADER_ROW, _TEXT_WORD = Reject.MALFORMED_ID, Reject.HEADER_ROW, Reject.TEXT_WORD
_NO_ID, _PLACEHOLDER_ID = Reject.NO_ID, Reject.PLACEHOLDER_ID
# The columns of an export row that holds no URL: a CSV field in double quotes (which may hold
# `,`: `"Hotel Sol, Sydney"`), or text up to a tab `,` `;` `|`; a space separates words only.
_COLUMN = re.compile(r'"(?:[^"]|"")*"|[^\t,;|"]+')
# A column name of an export's header row (`Property ID`, `hotel_name`, `City`).
_LABEL = re.compile(r"[A-Za-z][A-Za-z0-9 _./()-]*")
# An HTTP reason phrase after a status code (`404<TAB>Not Found`, `301<TAB>Moved Permanently`).
_REASON_PHRASE = re.compile(r"[A-Za-z][A-Za-z' -]{0,40}")
# A date or date-time column (`2024-01-01`, `2024-01-01T10:00:00Z`, `01/03/2024`).
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ][\d:.]+Z?)?|\d{1,2}/\d{1,2}/\d{2,4}")
# What else a crawl export writes after the status: its reason phrase, a number, a date, a MIME
# type and its parameters (`text/html; charset=utf-8`, split at the `;` into two columns).
_EXPORT_VALUE = re.compile(
    rf"{_REASON_PHRASE.pattern}|\d[\d.,]*|{_DATE.pattern}|[a-z]+/[\w.+-]+|\w+=[\w.-]+"
)


def _csv_field(column: str) -> str:
    """One column of an export row without the double quotes CSV puts around a field."""
    if len(column) > 2 and column[0] == column[-1] == '"':
        return column[1:-1]
    return column


def _is_status(columns: list[str]) -> bool:
    """Whether the columns after a bare id are a crawl export's: a status (`200`, `OK`,
    `Indexable`) or a date first, then any of a status, its reason phrase (`Not Found`), a
    number (a count, a size, a response time), a date or a MIME type (`16615,200,2024-01-01`,
    `12345<TAB>404<TAB>Not Found`, `16615,200,1234`)."""
    first = columns[0]
    if not (STATUS_COLUMN.fullmatch(first) or _DATE.fullmatch(first)):
        return False
    return all(
        STATUS_COLUMN.fullmatch(column) or _EXPORT_VALUE.fullmatch(column) for column in columns[1:]
    )


def _columns(text: str) -> list[str]:
    """The non-empty columns of an export row without a URL, each without its CSV quotes."""
    found = (_csv_field(column.strip(UNICODE_SPACE)) for column in _COLUMN.findall(text))
    return [column for column in found if column]


def _is_header(columns: list[str]) -> bool:
    """Whether a row is an export's header: its first column names an id or URL column
    (`id`, `Property ID`, `hotel_code`) and every column is a column name (`Hotel Name`)."""
    first = columns[0].lower().replace(" ", "_").replace("-", "_")
    named = first in text_rules.HEADER_WORDS or first.endswith(("_id", "_code", "_url"))
    return named and all(_LABEL.fullmatch(column) for column in columns)


def _looks_coded(word: str) -> bool:
    """Whether a word-like id looks generated, not like a word: it holds a digit and a letter
    (`Qw3rTy`), or mixes cases after its first letter (`lWvqMQ`); `Sydney`, `EUROPE` do not."""
    rest = word[1:]
    if any(char.isdigit() for char in word):
        return any(char.isalpha() for char in word)
    return rest != rest.lower() and rest != rest.upper()


class BareIds(CutIds):
    """The bare-line and id-list rules; `LineParser` (stages/rules/crawl.py) sets the state."""

    _id_fullmatch: Callable[[str], Any]
    _bare_fullmatch: Callable[[str], Any]
    _case: Callable[[str], str] | None
    _separators: str
    _site_pages: frozenset[str]
    _word_ids: bool
    _in_row: bool
    _found: Any
    _query_patterns: tuple[tuple[re.Pattern[str], bool], ...]
    _id_search: Callable[[str], Any]
    item_misses: int
    missed_items: list[str]
    _one: Callable[[str], ParseResult]  # LineParser's: one URL or bare word of a messy line
    _parse_url: Callable[[str], ParseResult]  # LineParser's: the id(s) of one URL

    def _no_url(self, text: str) -> ParseResult:
        """A messy line without a URL: a header row, a bare id in CSV quotes or followed by
        status columns (`"Qw3rTy"`, `12345<TAB>404<TAB>Not Found`, `"Qw3rTy","200"`: the same
        in every engine), or one word in other quotes or brackets that is a bare id
        (`$booking="<uuid>";`) unless the engine's ids are word-like (`_word`)."""
        if text_rules.is_header_row(text):
            return _HEADER_ROW
        if len(text) > 2 and text[0] == text[-1] == '"' and '"' not in text[1:-1]:
            return self._no_url(text[1:-1])  # the quotes of a CSV field, not debris: any engine
        columns = _columns(text)
        if len(columns) > 1:
            if _is_status(columns[1:]):
                return self._no_url(columns[0])
            if _is_header(columns):
                return _HEADER_ROW
            row = self._id_row(columns)
            if row is not None:
                return row
        words = text_rules.words_of(text)
        # `16615 200`, `16615 404 Not Found`: a log's columns after an id that looks like one
        # (not `Seaside 200`: a word of text where ids look like words).
        logged = len(words) > 1 and len(columns) == 1 and _is_status(words[1:])
        if logged and (not self._word_ids or _looks_coded(words[0])):
            return self._no_url(words[0])
        bare = [w for w in (text_rules.cleaned(w).rstrip(TRAILING) for w in words) if w]
        if len(bare) != 1:
            return _TEXT_WORD  # several words and no URL (`Hotel Sol Sydney`, `200 OK`): text
        outcome = self._one(bare[0])
        shortened = text.endswith(ELLIPSIS) and type(outcome) is not Reject
        if shortened and self._cut_short(bare[0], outcome, ("0", "a")) is _MALFORMED_ID:
            return _MALFORMED_ID  # `16615...`: shown shortened, maybe inside the id
        wrapped = bare[0] != text and outcome is not _HEADER_ROW
        if wrapped and (type(outcome) is Reject or self._word_ids):
            return _TEXT_WORD  # a word in quotes, brackets, markup or punctuation is text
        return outcome

    def _id_row(self, columns: list[str]) -> ParseResult | None:
        """The id(s) of an export row without a URL whose first column is a bare id, or None
        when the row is not one. After the id come more ids (`16615,16616`: a list), then
        nothing, status columns, or a name column (`Qw3rTy,Hotel Sol`, `16615,Harbour
        Motel,Sydney`). A name column is text with a letter and a space, or for an engine
        whose ids do not look like words (RMS, Mews) any text with a letter that is no id
        (`16615,Sydney`). Where ids look like words (Cloudbeds, SiteMinder), a list holds only
        ids that look generated (`_looks_coded`), so `Sydney,Europe` is no row of ids."""
        first = self._no_url(columns[0])
        if type(first) is Reject or " " in columns[0]:
            return None
        found = dict.fromkeys(ids_of(cast("str | tuple[str, ...]", first)))
        rest = columns[1:]
        listed = not self._word_ids or _looks_coded(columns[0])  # may a list of ids follow?
        while rest and listed and (not self._word_ids or _looks_coded(rest[0])):
            more = self._no_url(rest[0]) if " " not in rest[0] else _TEXT_WORD
            if type(more) is Reject:
                break
            found.update(dict.fromkeys(ids_of(cast("str | tuple[str, ...]", more))))
            rest = rest[1:]
        if rest and not _is_status(rest) and not self._is_name(rest[0]):
            return None
        self._found = None  # a bare id: the booking URL is the engine's template
        ids = tuple(found)
        return ids[0] if len(ids) == 1 else ids

    def _is_name(self, column: str) -> bool:
        """Whether a column after a bare id is text naming the property (see `_id_row`)."""
        if column.lower() == column.upper():
            return False  # no letter: a number, a date, a price
        return " " in column.strip(UNICODE_SPACE) or not self._word_ids

    def _bare(self, text: str) -> ParseResult:
        """The id a bare word names, or why it names none (see the module docstring)."""
        self._found = None
        accepted = self._accept(text, bare=True)
        if not accepted and "%" in text:  # `%20Qw3rTy%20`: a bare id is decoded once
            text = unquote(text, errors="replace")
            accepted = self._accept(text, bare=True)
        if not accepted:
            word = text.strip(UNICODE_SPACE).lower()
            if word in text_rules.HEADER_WORDS:
                return _HEADER_ROW
            if (
                word == word.upper()  # no letter in it: a number, a date
                or is_placeholder(word)
                or word in self._site_pages
                or (self._word_ids and len(word) < text_rules.MIN_WORD_ID)  # `x`: text
                or self._id_fullmatch(text)  # an id's shape in a URL, a word alone (`Sydney`)
            ):
                return _TEXT_WORD
            return _MALFORMED_ID
        if type(accepted) is str:
            # `is_placeholder` in part first (a word as written, one character repeated):
            # the common bare id passes both cheap tests.
            if accepted in PLACEHOLDER_FORMS or (
                accepted[0] == accepted[-1] and is_placeholder(accepted)
            ):
                return _TEXT_WORD  # `undefined`, `000000`: a template's value, not a property
            if self._word_ids:
                return self._word(accepted)
        return accepted

    def _word(self, property_id: str) -> str | Reject:
        """A bare line's id, for an engine whose ids look like words, if it is not text.

        Such an id pattern takes any word (SiteMinder slugs `[A-Za-z0-9_-]+`, Cloudbeds codes
        of 6 letters/digits), so a bare line counts only as a list of ids would hold it: the
        line is the id alone (no quotes, brackets, markup or punctuation: `_no_url` sees to
        that), it is no export column name (`url`, `status`: header_row), and it holds a
        letter, is at least text_rules.MIN_WORD_ID characters long and no placeholder or
        site-page word (`200`, `x`, `todo`, `contact`: text_word). Real slugs are words run
        together (`seasidehoteldirect`).
        """
        word = property_id.lower()
        if word in text_rules.HEADER_WORDS:
            return _HEADER_ROW
        if (
            len(word) < text_rules.MIN_WORD_ID
            or not word.islower()  # lower-cased, yet not lower: no letter in it
            or word in PLACEHOLDERS
            or word in self._site_pages
        ):
            return _TEXT_WORD
        return property_id

    def _accept(self, candidate: str | None, bare: bool = False) -> str | tuple[str, ...] | None:
        if candidate is None:
            return None
        if not (self._bare_fullmatch if bare else self._id_fullmatch)(candidate):
            return self._accept_slowly(candidate, bare)
        return self._case(candidate) if self._case else candidate

    def _accept_slowly(self, candidate: str, bare: bool = False) -> str | tuple[str, ...] | None:
        """Ids that need more than one look: around spaces, or several in one value."""
        fullmatch = self._bare_fullmatch if bare else self._id_fullmatch
        trimmed = candidate.strip(UNICODE_SPACE)
        if trimmed != candidate and trimmed and fullmatch(trimmed):
            return self._case(trimmed) if self._case else trimmed
        if "," in trimmed and "," not in self._separators:
            return self._listed(trimmed.split(","), fullmatch)
        if not self._separators or not any(sep in trimmed for sep in self._separators):
            return None
        for sep in self._separators[1:]:
            trimmed = trimmed.replace(sep, self._separators[0])
        found: dict[str, None] = {}  # ordered, without repeats
        bad: list[str] = []
        for part in trimmed.split(self._separators[0]):
            part = part.strip(UNICODE_SPACE)
            if part and fullmatch(part) and not is_placeholder(part):
                found[self._case(part) if self._case else part] = None
            elif part:  # an empty item (`<uuid>;`) is a trailing separator, not an item
                bad.append(part)
        if not found:
            return None
        if bad:  # counted, not silently dropped: the line's other items are leads
            self.item_misses += len(bad)
            self.missed_items = bad
        ids = tuple(found)
        return ids[0] if len(ids) == 1 else ids

    def _listed(self, items: list[str], fullmatch: Callable[[str], Any]) -> Any:
        """The ids of a comma list where an engine documents none (`/Search/Index/16615,16616/1`,
        `16615,16616`), or None: the first item an id, the others ids a bare line would take
        (bare_id_pattern: `16615,2025` is no list), none a placeholder, and where ids look like
        words every item generated-looking (`Qw3rTy,Az9Bc1`, never `beach,house`)."""
        if self._word_ids and not all(_looks_coded(item) for item in items):
            return None
        if not fullmatch(items[0]) or not all(self._bare_fullmatch(item) for item in items[1:]):
            return None
        if any(is_placeholder(item) for item in items):
            return None
        ids = tuple(dict.fromkeys(self._case(item) if self._case else item for item in items))
        return ids[0] if len(ids) == 1 else ids

    def _near_id(
        self, candidate: str, match: re.Match[str], page: bool, target: str, query: str
    ) -> ParseResult | None:
        """A candidate that is no id as it stands: a placeholder, the id(s) it holds around
        spaces or as a list (`_accept_slowly`), or None to go on to the next pattern."""
        # Letters and digits alone hold no space or separator to look past: such a word is
        # still a placeholder if it is one (`XXXXXXXX`: the caller has looked the word up as
        # written and sends only those whose first and last characters match); so is
        # punctuation (`/properties/-`).
        if candidate.isalnum():
            return _PLACEHOLDER_ID if is_placeholder(candidate) else None
        accepted = self._accept_slowly(candidate)
        if is_placeholder(accepted if type(accepted) is str else candidate):
            return _PLACEHOLDER_ID
        if not accepted:
            return None
        self._found = (match, query) if page else None
        if query and self._query_patterns and self._id_search(query):
            return self._and_query_ids(accepted, target, query)
        return accepted

    def _no_path_id(self, text: str, target: str, query: str, found: bool) -> ParseResult:
        """Why the path gave no id, unless the query holds one (Mews `?ids=`) or an encoded
        `?`, `#`, quote or bracket in the path cut it (`_cut_at`)."""
        if query and self._query_patterns:
            outcome = self._query_id(target, query)
            if type(outcome) is not Reject or outcome is _PLACEHOLDER_ID:
                return outcome
            found = found or outcome is _MALFORMED_ID
        if "%" in text:
            cut = text_rules.ENCODED_END.search(text)
            if cut and cut.start() < len(text_rules.used_part(text)):
                return self._cut_at(text, cut)
        return _MALFORMED_ID if found else _NO_ID

    def _query_id(self, target: str, query: str) -> ParseResult:
        """The ids query patterns find in "<host><path>?<query>" (query percent-decoded), every
        one once in query order (a parameter repeated: `?ids=U1&ids=U2`), else PLACEHOLDER_ID or
        MALFORMED_ID when a pattern matched but no id of it did, else NO_ID."""
        if "%" in query:
            query = unquote(query, errors="replace")
        head = target + "?"
        found: dict[str, Any] = {}  # id -> where its booking URL comes from
        reason = _NO_ID
        for pattern, page in self._query_patterns:
            target = head + query
            match = pattern.search(target)
            while match:
                accepted = self._accept(match["id"])
                if type(accepted) is str and (
                    accepted in PLACEHOLDER_FORMS
                    or (accepted[0] == accepted[-1] and is_placeholder(accepted))
                ):
                    reason = _PLACEHOLDER_ID
                elif accepted:
                    for property_id in (accepted,) if type(accepted) is str else accepted:
                        found.setdefault(property_id, (match, "") if page else None)
                elif reason is _NO_ID:
                    reason = _MALFORMED_ID
                match = self._next_in_query(pattern, match, head)
        if not found:
            return reason
        ids = tuple(found)
        self._found = found if len(ids) > 1 else found[ids[0]]
        return ids[0] if len(ids) == 1 else ids

    @staticmethod
    def _next_in_query(pattern: re.Pattern[str], match: re.Match[str], head: str) -> Any:
        """The next match of a query pattern after `match`: the rest of the query is read
        again, only when it names the parameter again (`ids`, `ids[]`: most lines do not)."""
        target = match.string
        rest = target[match.end() :]
        if "&" not in rest:
            return None
        start = match.start("id")
        name = target[max(target.rfind("&", 0, start), target.rfind("?", 0, start)) + 1 : start]
        if name.partition("[")[0].rstrip("=") not in rest:
            return None
        return pattern.search(head + rest)

    def _and_query_ids(self, path_ids: str | tuple[str, ...], target: str, query: str) -> Any:
        """The ids of a URL's path (`_found` set for them) and then those of its query
        (`/distributor/U1?ids=U2`: U1, U2), each once, each with its own booking URL."""
        if type(path_ids) is str:
            path_ids = (self._case(path_ids) if self._case else path_ids,)
        where = self._found
        more = self._query_id(target, query)
        if type(more) is Reject:
            self._found = where
            return path_ids[0] if len(path_ids) == 1 else path_ids
        query_where = self._found
        found = dict.fromkeys(path_ids, where)
        for property_id in (more,) if type(more) is str else cast("tuple[str, ...]", more):
            place = query_where.get(property_id) if type(query_where) is dict else query_where
            found.setdefault(property_id, place)
        ids = tuple(found)
        self._found = found if len(ids) > 1 else where
        return ids[0] if len(ids) == 1 else ids

    def _cut_at(self, text: str, cut: re.Match[str]) -> ParseResult:
        """`.../Qw3rTy%3Futm_source%3Dx`, `.../Qw3rTy%22%3E`: when the whole path gives no id,
        an encoded `?` in it is read as where the query starts, an encoded `#`, quote or angle
        bracket as where the URL ends (ids may hold them: tried first)."""
        if cut[1] != "3F" and cut[1] != "3f":
            return self._parse_url(text[: cut.start()])
        query = unquote(text[cut.end() :], errors="replace")  # encoded with the `?`
        return self._parse_url(f"{text[: cut.start()]}?{query}")
