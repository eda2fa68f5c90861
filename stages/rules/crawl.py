"""Crawl-file lines to property ids: the reading and parsing rules every stage shares.

`LineParser` turns one line into an engine's property id(s) or a reason code. The rest lives
beside it by role and is re-exported here, so `from stages.rules import crawl` gives it all:
`crawl_files` (`open_crawl`, `iter_lines`: files whatever they arrived as, as raw lines),
`crawl_text` (the debris, escapes and fields around URLs in a line), `crawl_wrappers`
(redirectors, archives and translation proxies around a URL), `crawl_bare` (lines
without a URL, and ids that need more than one look) and `crawl_evidence` (`evidence_text`,
`evidence_line`, `safe_text`).

The engine rules are data (params.yaml `engines`); nothing here names an engine.

Outcome of `LineParser.parse`, one per physical line:

- a `str`: the accepted property id, case-normalised per `id_case`;
- a `tuple` of str: several ids named by one line (an engine with `id_separator`, such as
  Mews `<uuid>;<uuid>`), in line order, without repeats;
- `BLANK`: the line holds only whitespace (not a rejection; count it apart);
- a `Reject`: why the line was refused. The codes are fixed; checks run in this order and
  the first that fails names the reason: too_long, invalid_utf8 (unless read as Windows-1252
  it names ids), control_chars (both only for the part before the query; NULs at a field's
  ends are padding),
  unsupported_scheme, wrong_host, then the percent-decoded path (invalid_utf8 or
  control_chars again), no_id, malformed_id, placeholder_id (an id a template or test data
  left: `undefined`, `XXXXXX`, the all-zero UUID; `crawl_outcome.is_placeholder`). A line
  without a URL may instead be header_row (every word of it a crawl export's column name:
  url, status, ...) or text_word (a word that is text, the same for every engine: see `crawl_bare`).

Before a line is read as a URL, the debris of HTML or text extraction around it is dropped
(quotes, `href=`, brackets the URL does not balance, `&quot;`, trailing `;,.)`: `crawl_text`),
so `$booking="https://x/reservation/Qw3rTy";` names Qw3rTy like the bare URL.

`Reject` and `Blank` are plain enums, not `str`, so `type(outcome) is str` means accepted.
After an accepted line, `LineParser.booking_url(id)` gives the page that line named.
"""

from __future__ import annotations

import re
from typing import Any, cast

from stages.rules import crawl_text as text_rules
from stages.rules.config import Engine
from stages.rules.crawl_bare import BareIds
from stages.rules.crawl_cuts import ELLIPSIS, path_apostrophes

# Re-exported: the public names of the crawl rules, wherever they live (`import x as x`).
from stages.rules.crawl_evidence import booking_page
from stages.rules.crawl_evidence import evidence_line as evidence_line
from stages.rules.crawl_evidence import evidence_text as evidence_text
from stages.rules.crawl_evidence import safe_text as safe_text
from stages.rules.crawl_files import BINARY_SHARE as BINARY_SHARE
from stages.rules.crawl_files import CHUNK_SIZE as CHUNK_SIZE
from stages.rules.crawl_files import MAX_LINE_LENGTH as MAX_LINE_LENGTH
from stages.rules.crawl_files import UnreadableFile as UnreadableFile
from stages.rules.crawl_files import decoded_line, windows_1252
from stages.rules.crawl_files import iter_lines as iter_lines
from stages.rules.crawl_files import open_crawl as open_crawl
from stages.rules.crawl_outcome import BLANK as BLANK
from stages.rules.crawl_outcome import PLACEHOLDER_FORMS, SHORT_PAGE, case_forms, is_placeholder
from stages.rules.crawl_outcome import PLACEHOLDERS as PLACEHOLDERS
from stages.rules.crawl_outcome import RULES_VERSION as RULES_VERSION
from stages.rules.crawl_outcome import Blank as Blank
from stages.rules.crawl_outcome import ParseResult as ParseResult
from stages.rules.crawl_outcome import Reject as Reject
from stages.rules.crawl_outcome import rules_fingerprint as rules_fingerprint
from stages.rules.crawl_paths import SLASH_MARK, after_scheme, read_path
from stages.rules.crawl_text import CONTROL, NOT_PLAIN, TRAILING, TRAILING_BYTES, UNICODE_SPACE
from stages.rules.crawl_wrappers import may_carry_url, mentions_of, redirect_targets

# Reading an enum member off its class runs Python code in 3.11 (about 0.2 µs, as much as the
# rest of a rejected line's check); the parser returns these module-level names instead.
(
    _TOO_LONG, _INVALID_UTF8, _CONTROL_CHARS, _UNSUPPORTED_SCHEME, _WRONG_HOST, _NO_ID,
    _MALFORMED_ID, _HEADER_ROW, _TEXT_WORD, _PLACEHOLDER_ID,
) = Reject  # fmt: skip
_NOT_OURS = (_WRONG_HOST, _UNSUPPORTED_SCHEME, _TEXT_WORD)
# NUL bytes at a line's or a field's ends are padding (fixed-width records, C strings).
_NUL_PADDING = re.compile(rb"\x00+(?=[\t ]|$)|(?<![^\t ])\x00+")

_GROUPED = re.compile(r"/\d{1,3}(?:,\d{3})+(?=/)")  # `/4,321/`: a formatted number
# Distinct authorities remembered (up to a DNS name's 255 characters each): crawl files
# repeat a few hosts, and the cache stays small whatever the input.
_HOST_CACHE_SIZE = 4096


class LineParser(BareIds):
    """Parse crawl lines for one engine; `parse` is the hot loop of ingest, keep it lean.

    How a URL is read, as a browser would where it matters for safety: the scheme is optional
    and any run of slashes may follow it; "<host>:<digits>" is a port, not a scheme; a
    backslash is a slash; userinfo (up to the last '@') and the port are dropped; the host
    must be ASCII before it is lower-cased and may end with a dot; the path is
    percent-decoded once, but an encoded slash is no separator: it is a `/` inside the id
    (malformed_id where the id pattern takes no slash, never the id's first part).
    Surrounding ASCII whitespace, Unicode spaces and a BOM are ignored.
    A url pattern is searched in "<host><path>"; one holding a literal `\\?` is searched in
    "<host><path>?<query>" (query percent-decoded) instead, for ids outside the path.
    Whitespace around an id (`%20Qw3rTy%20`) is extraction debris: the id is what it surrounds.
    """

    def __init__(self, engine: Engine, max_length: int = MAX_LINE_LENGTH) -> None:
        self.engine = engine
        self.max_length = max_length
        # (pattern, is a page): a pattern anchored at the host ("^...") matches the page itself,
        # so the booking URL is read from the line; an unanchored one finds the id anywhere,
        # and the template gives the URL.
        patterns = [(p, p.pattern[:1] == "^") for p in engine.url_patterns]
        self._path_patterns = tuple(pair for pair in patterns if "\\?" not in pair[0].pattern)
        self._query_patterns = tuple(pair for pair in patterns if "\\?" in pair[0].pattern)
        self._id_fullmatch = engine.id_pattern.fullmatch
        self._id_search = engine.id_pattern.search
        self._bare_fullmatch = (engine.bare_id_pattern or engine.id_pattern).fullmatch
        self._site_pages = engine.site_pages
        # The words an id position may hold that are no id, as a URL writes them: the engine's
        # site pages (True: no match, the next pattern is tried) and the placeholders (False:
        # placeholder_id). One dict lookup in the hot loop: a site page of up to SHORT_PAGE
        # letters is there in every case (`SignIn`: 64 forms of a Cloudbeds word), a longer
        # one as lower, upper and title case, and only an id with a capital letter is
        # lower-cased to look for it (where such a page exists).
        self._not_ids: dict[str, bool] = dict.fromkeys(PLACEHOLDER_FORMS, False)
        for page in engine.site_pages:
            self._not_ids.update(dict.fromkeys(case_forms(page), True))
        self._long_pages = any(len(page) > SHORT_PAGE for page in engine.site_pages)
        self._in_row = False  # the URL being read is one field of several (see `_one`)
        self._case = {"lower": str.lower, "upper": str.upper}.get(engine.id_case)
        self._separators = engine.id_separator
        # Ids that look like words (the id_pattern takes `status`: SiteMinder slugs, Cloudbeds
        # codes): a bare line must pass `_word` too, or every text line would be a lead.
        self._word_ids = any(
            engine.id_pattern.fullmatch(w) for w in text_rules.HEADER_WORDS if w.isalpha()
        )
        # Only an exact ASCII host or a subdomain of one counts; labels are checked too.
        hosts = "|".join(re.escape(host) for host in engine.hosts)
        self._host_fullmatch = re.compile(rf"(?:[a-z0-9_-]+\.)*(?:{hosts})").fullmatch
        self._hosts: dict[str, str] = {}  # authority -> normalised host, "" if not ours
        self._may_name_ours = mentions_of(engine.hosts)
        # What the last accepted line named: (match, query) of its URL, None for a bare id or
        # an unanchored pattern, or a dict of those by id when the line held several URLs.
        self._found: Any = None
        # URLs of the engine's hosts that gave no id on a line whose other URLs gave ids:
        # how many so far, and (reason, URL) of the last such line (see `_several`).
        self.misses = 0
        self.missed: list[tuple[Reject, str]] = []
        # Items of an id list (`<uuid>;zzz`) that are no id, on a line whose other items are:
        # how many so far, and the items of the last such line (see `_accept_slowly`).
        self.item_misses = 0
        self.missed_items: list[str] = []

    def parse(self, raw: bytes | None) -> ParseResult:
        """The property id(s) in `raw` (one line from `iter_lines`), BLANK, or a Reject."""
        if raw is None or len(raw) > self.max_length:
            return _TOO_LONG
        line = raw.strip()
        if not line:
            return BLANK
        # The plain line (nearly every line of a real crawl file): one URL or id, nothing else.
        if (
            line.isascii()
            and line[-1] not in TRAILING_BYTES
            and len(line.translate(None, NOT_PLAIN)) == len(line)
        ):
            text = line.decode("ascii")
            if "/" not in text and ":" not in text and "." not in text:
                outcome = self._bare(text)
            else:
                outcome = self._parse_url(text)
            if type(outcome) is not Reject or not (
                text_rules.rescuable(text)
                or (outcome is _WRONG_HOST and self._may_name_ours(text) and may_carry_url(text))
            ):
                return outcome
        return self._messy(line)

    def _messy(self, line: bytes) -> ParseResult:
        """Any line but the plain one: not ASCII, or holding extraction debris, escapes, fields
        of an export row or several URLs. Every URL on the line is read (`_several`)."""
        if b"\x00" in line:
            line = _NUL_PADDING.sub(b"", line).strip()
            if not line:
                return _CONTROL_CHARS  # NULs alone: a zeroed stretch of the file, not a blank
        if line.isascii():
            return self._text(line.decode("ascii"))
        text = decoded_line(line)
        if text is not None:
            return self._text(text.translate(text_rules.UNICODE_DEBRIS).strip(UNICODE_SPACE))
        # No UTF-8: Windows-1252 (a Windows text file's smart quotes 0x93 0x94 around a URL), for
        # the ids it names; else the file's encoding is what to fix. Ids are ASCII in every
        # engine, so 1252 only changes the debris around them.
        text = windows_1252(line)
        outcome = self._text(text.translate(text_rules.UNICODE_DEBRIS).strip(UNICODE_SPACE))
        return outcome if type(outcome) is str or type(outcome) is tuple else _INVALID_UTF8

    def _text(self, text: str) -> ParseResult:
        """A messy line as text: its URLs (or bare id) read one by one."""
        if not text:
            return BLANK
        # A tab separates the fields of an export row (`<url>\t200`): whitespace, no control.
        if text_rules.CONTROL_BUT_TAB.search(text):
            if text_rules.CONTROL_BUT_TAB.search(text_rules.used_part(text)):
                return _CONTROL_CHARS
            text = CONTROL.sub(" ", text)  # in the query: a separator, not data
        if "\\" in text or "&" in text:
            text = text_rules.unescaped(text)
        # data:, mailto:, ...: never mined for a URL; javascript: names the page it opens
        # (`javascript:window.open('https://...')`).
        scheme = text_rules.OTHER_SCHEME.match(text)
        name = scheme.group().lower() if scheme else "https:"
        if name not in ("http:", "https:") and (name != "javascript:" or "//" not in text):
            return self._parse_url(text)
        if "?" in text and ('="' in text or "='" in text):  # `?q="hi there"`: one value
            text = text_rules.QUOTED_VALUE.sub(text_rules.encoded_value, text)
        text = path_apostrophes(text)  # `/properties/o'reillys`: no quote ends the URL
        words = [word for word in text_rules.TOKEN_SPLIT.split(text) if word]
        urls = [url for word in words for url in text_rules.urls_in(word)]
        if not urls:
            return self._no_url(text)
        self._in_row = len(words) > 1
        try:
            if len(urls) > 1:
                return self._several(text, urls)
            outcome = self._one(urls[0])
            return self._spaced(text, urls[0], outcome) if self._in_row else outcome
        finally:
            self._in_row = False

    def _one(self, url: str) -> ParseResult:
        """One URL (or bare id) of a messy line: a query glued on with `&` is read as the
        query; when it gives no id, punctuation after it (running text) is dropped, then the
        URL's field may have ended at a `,` `;` or `|` (`<url>,200`). One shown shortened
        (`.../seasideho...`) is read without its ellipsis unless that cut its id."""
        if not url.isascii():
            url = text_rules.without_glued_text(url)
        if url.endswith(ELLIPSIS) and url.rstrip(".\u2026"):
            return self._shortened(url)
        if "/" not in url and ":" not in url and "." not in url:
            outcome = self._bare(url)
            if type(outcome) is Reject and url[-1] in TRAILING and url.rstrip(TRAILING):
                retry = self._bare(url.rstrip(TRAILING))
                if type(retry) is not Reject and self._word_ids:
                    return _TEXT_WORD  # `seasidedirect.`: running text, not a list of ids
                return outcome if type(retry) is Reject else retry
            return outcome
        # `/4,321/1`: a number with a thousands separator is no id, no list and no column.
        grouped = "," in url and _GROUPED.search(url)
        if not grouped and ("," in url or ";" in url or "|" in url or "&" in url):
            url = text_rules.url_field(url)
        whole = url
        fields = not grouped and ("," in url or ";" in url)
        if fields:
            url = text_rules.path_field(url, self._separators)
        outcome = self._parse_url(url)
        if type(outcome) is Reject and fields and ("," in url or ";" in url):
            # `/16615,16616/1` is a list; `/Qw3rTy,N/A` gave none: the `,` ended a column
            shorter = text_rules.path_field(whole, self._separators, inner=False)
            if shorter != url:
                url, outcome = shorter, self._parse_url(shorter)
        if outcome is _WRONG_HOST and self._may_name_ours(url):
            for target in redirect_targets(url):  # the first of the engine's hosts tells
                carried = self._one(target)
                if carried not in _NOT_OURS:
                    return carried
        if type(outcome) is Reject:
            # The URL's field ends at a `|` only on a row of several fields (`,` and `;` always
            # end it: `text_rules.path_field`).
            cut = text_rules.field_end(url) if self._in_row else len(url)
            for shorter in (url.rstrip(TRAILING), url[:cut]):
                if shorter and shorter != url:
                    retry = self._parse_url(shorter)
                    # A cut id is as weak as a bare word: `/properties/a,b` names no `a`.
                    if type(retry) is str and self._word_ids:
                        retry = self._word(retry)
                    if type(retry) is not Reject:
                        return retry
        return outcome

    def _several(self, text: str, urls: list[str]) -> ParseResult:
        """Every id of several URLs on one line, in line order without repeats, each with its
        own booking URL. A URL of the engine's hosts that gives no id while others do is
        counted in `misses` and listed in `missed`; the line is rejected only when none gives
        an id, with the reason of the first URL of the engine's hosts (else of the first)."""
        found: dict[str, tuple[re.Match[str], str] | None] = {}
        first: Reject | None = None
        own: Reject | None = None
        missed: list[tuple[Reject, str]] = []
        for url in urls:
            outcome = self._spaced(text, url, self._one(url))
            if type(outcome) is Reject:
                first = first or outcome
                # Not a URL of the engine's hosts: another host's, or a word with a slash
                # (`text/html`, the content-type column of a crawler log).
                if outcome not in _NOT_OURS:
                    own = own or outcome
                    missed.append((outcome, url))
                continue
            where = self._found
            # Neither a Reject (skipped above) nor BLANK (a URL is never blank): one id or several.
            ids = (outcome,) if type(outcome) is str else cast("tuple[str, ...]", outcome)
            for property_id in ids:
                found.setdefault(property_id, where)
        if not found:
            return own or first or _NO_ID
        if missed:
            self.misses += len(missed)
            self.missed = missed
        self._found = found
        ids = tuple(found)
        return ids[0] if len(ids) == 1 else ids

    def booking_url(self, property_id: str) -> str:
        """The booking page of `property_id` as the last accepted line named it.

        The crawled host (region, subdomain), the path up to the end of the pattern's match
        (group prefix, RMS agent and unit) and the query without tracking parameters (utm_*,
        _ga, _gl, gclid, fbclid) and empty values are kept, as https; a bare id, or a pattern
        not anchored at the host, gives the engine's `booking_url` template. Call it right
        after `parse`.
        """
        found = self._found
        if type(found) is dict:  # several URLs on the line: each id has its own
            found = found.get(property_id)
        if found is None:
            return self.engine.canonical_url(property_id)
        match, query = found
        return booking_page(match, query, property_id)

    def _parse_url(self, text: str) -> ParseResult:
        """The id(s) the url patterns find in "<host><path>" of one URL, or why none: a site
        page in the id position (`/properties/contact`) is no match. The hot loop of nearly
        every line, in one method, split by hand: faster than urllib.parse or one regex."""
        colon = text.find(":")
        scheme = text[:colon] if colon > 0 else ""
        if scheme == "https" or scheme == "http":
            rest = text[colon + 1 :].lstrip("/")  # any run of slashes, as browsers accept
        else:
            after = after_scheme(text, scheme, colon)
            if type(after) is Reject:
                return after
            rest = cast(str, after)
        rest, _, query = rest.partition("#")[0].partition("?")
        slash = rest.find("/")
        authority, path = (rest, "") if slash == -1 else (rest[:slash], rest[slash:])
        host = self._hosts.get(authority)
        if host is None:
            host = self._host_of(authority)
        if not host:  # without a scheme, text that names no host is text (`N/A`, `16615.0`)
            return _WRONG_HOST if text_rules.names_a_host(text, authority) else _TEXT_WORD
        encoded = "%" in path
        if encoded or "//" in path:  # most paths hold neither: the hot loop skips the call
            decoded = read_path(path)
            if type(decoded) is Reject:
                return decoded
            path = cast(str, decoded)
        elif path.endswith("/"):
            path = path[:-1]
        target = host + path
        found = False
        for pattern, page in self._path_patterns:
            match = pattern.search(target)
            if match:
                candidate = match["id"]
                if encoded and SLASH_MARK in candidate:
                    candidate = candidate.replace(SLASH_MARK, "/")
                site_page = self._not_ids.get(candidate)
                if site_page is None and self._long_pages and not candidate.islower():
                    site_page = candidate.lower() in self._site_pages or None  # `FAQs`
                if site_page is not None:
                    if site_page:
                        continue
                    return _PLACEHOLDER_ID
                found = True
                if self._id_fullmatch(candidate):  # `_accept` inlined: the hot loop
                    # The rest of `is_placeholder`: one character repeated has first and last alike.
                    if candidate[0] == candidate[-1] and is_placeholder(candidate):
                        return _PLACEHOLDER_ID
                    self._found = (match, query) if page else None
                    if query and self._query_patterns and self._id_search(query):
                        # `/distributor/U1?ids=U2`: both (only a query holding an id may).
                        return self._and_query_ids(candidate, target, query)
                    return self._case(candidate) if self._case else candidate
                if candidate.isalnum() and candidate[0] != candidate[-1]:
                    continue  # a word that does not fit and is no placeholder: the common miss
                outcome = self._near_id(candidate, match, page, target, query)
                if outcome is not None:
                    return outcome
        return self._no_path_id(text, target, query, found)

    def _host_of(self, authority: str) -> str:
        """The engine's host `authority` names ("" if none), remembered for the next line."""
        host = text_rules.host_of(authority, self._host_fullmatch)
        if len(self._hosts) < _HOST_CACHE_SIZE and len(authority) <= 255:
            self._hosts[authority] = host
        return host
