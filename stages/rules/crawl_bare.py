"""Lines that hold no URL, and ids that need more than one look: the bare-id rules of `LineParser`.

A line without a URL is a header row, a bare id (alone, or followed by a crawl export's status
column), or text. One reason for the same kind of line whatever the engine:

- header_row: every field is a crawl export's column name (`url`, `Address<TAB>Status Code`);
- text_word: a word that is text, not an id: wrapped in quotes other than a CSV field's,
  brackets or markup (`(notes)`, `<html>`, `'Qw3rTy'`), a number or date where ids need more
  (`200`, `2025-03-01`), a placeholder (`todo`, `undefined`, `000000`), one of the engine's
  site-page words, several words (`Hotel Sol Sydney`), or (for an engine whose ids look like
  words) too short or letter-less (see `BareIds._word`);
- malformed_id: a word with a letter that is near an id but is none (`Qw3rT`, a UUID
  without dashes).

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
# The columns of an export row that holds no URL: a space alone separates words, not columns.
_COLUMNS = re.compile(r"\s*[\t,;|]\s*")
# A crawl export's status column after a bare id (`12345<TAB>200`, `Qw3rTy,200`).
_STATUS_COLUMN = re.compile(r"[1-5][0-9]{2}|(?i:non-indexable|indexable|ok)")
# An HTTP reason phrase after a status code (`404<TAB>Not Found`, `301<TAB>Moved Permanently`).
_REASON_PHRASE = re.compile(r"[A-Za-z][A-Za-z' -]{0,40}")


def _csv_field(column: str) -> str:
    """One column of an export row without the double quotes CSV puts around a field."""
    if len(column) > 2 and column[0] == column[-1] == '"':
        return column[1:-1]
    return column


def _is_status(columns: list[str]) -> bool:
    """Whether the columns after a bare id are a crawl export's status: a status (`200`, `OK`,
    `Indexable`) each, or a status code followed by its reason phrase (`404`, `Not Found`)."""
    if all(_STATUS_COLUMN.fullmatch(column) for column in columns):
        return True
    return (
        len(columns) > 1
        and _STATUS_COLUMN.fullmatch(columns[0]) is not None
        and all(_REASON_PHRASE.fullmatch(column) for column in columns[1:])
    )


class BareIds:
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
    item_misses: int
    missed_items: list[str]
    _one: Callable[[str], ParseResult]  # LineParser's: one URL or bare word of a messy line

    def _no_url(self, text: str) -> ParseResult:
        """A messy line without a URL: a header row, a bare id in CSV quotes or followed by
        status columns (`"Qw3rTy"`, `12345<TAB>404<TAB>Not Found`, `"Qw3rTy","200"`: the same
        in every engine), or one word in other quotes or brackets that is a bare id
        (`$booking="<uuid>";`) unless the engine's ids are word-like (`_word`)."""
        if text_rules.is_header_row(text):
            return _HEADER_ROW
        if len(text) > 2 and text[0] == text[-1] == '"' and '"' not in text[1:-1]:
            return self._no_url(text[1:-1])  # the quotes of a CSV field, not debris: any engine
        columns = [_csv_field(c) for c in _COLUMNS.split(text) if c]
        if len(columns) > 1 and _is_status(columns[1:]):
            return self._no_url(columns[0])
        words = text_rules.words_of(text)
        bare = [w for w in (text_rules.cleaned(w).rstrip(TRAILING) for w in words) if w]
        if len(bare) != 1:
            return _TEXT_WORD  # several words and no URL (`Hotel Sol Sydney`, `200 OK`): text
        outcome = self._one(bare[0])
        wrapped = bare[0] != text and outcome is not _HEADER_ROW
        if wrapped and (type(outcome) is Reject or self._word_ids):
            return _TEXT_WORD  # a word in quotes, brackets, markup or punctuation is text
        return outcome

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
                or word in PLACEHOLDERS
                or word in self._site_pages
            ):
                return _TEXT_WORD
            return _MALFORMED_ID
        if type(accepted) is str and is_placeholder(accepted):
            return _TEXT_WORD  # `undefined`, `000000`: a template's value, not a property
        if self._word_ids and type(accepted) is str:
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
            or word == word.upper()
            or word in PLACEHOLDERS
            or word in self._site_pages
        ):
            return _TEXT_WORD  # `word == word.upper()` after lower(): no letter in it
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
