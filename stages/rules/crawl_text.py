"""Crawl-line text to URL candidates: the debris, escapes and fields around URLs in real lines.

What `stages.rules.crawl.LineParser` reads before it looks for an engine's id: which lines are
plain, where a line breaks into words, which words hold URLs (`urls_in`), the debris of HTML or
text extraction around them (`cleaned`, `balanced`: brackets a URL does not open), JSON
escapes and character references (`unescaped`), the columns of crawler exports (`url_field`,
`field_end`, `is_header_row`), encoded URLs (`decoded_url`; redirect wrappers are in
`crawl_wrappers`), hosts (`host_of`). Nothing
here names an engine.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import quote, unquote

# Whitespace that may surround a line: ASCII whitespace (bytes.strip), and for lines that are
# not ASCII also Unicode spaces and the BOM (files joined with `cat` carry one mid-file).
UNICODE_SPACE = (
    " \t\n\r\x0b\x0c\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
# Unicode forms of the debris around a URL (word processors' curly quotes, guillemets, CJK
# corner brackets, fullwidth punctuation) read as their ASCII forms, and zero-width and
# bidirectional format characters (U+200B, U+2060, U+200E, ...) as a space: invisible debris of
# copy and paste, never part of a URL or an id. Only lines that are not ASCII pay for it.
UNICODE_DEBRIS = str.maketrans(
    {
        **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb\u300c\u300d\u300e\u300f", '"'),
        **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u2039\u203a", "'"),
        **dict.fromkeys("\u200b\u200c\u200d\u200e\u200f\u2060\u00ad\u061c", " "),
        **dict.fromkeys("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069", " "),
        # Fullwidth punctuation, not letters, digits nor what builds a URL (`／`, `：`, `．`,
        # `％`, `＠`): `ｃｌｏｕｄｂｅｄｓ.com` stays a lookalike host, never cloudbeds.com.
        **{chr(0xFEE0 + ord(c)): c for c in "!\"'(),;<>[]{}`|"},
        "\u2026": "...", "\u3001": ",", "\u3010": "[", "\u3011": "]", "\u3008": "<", "\u3009": ">",
    }
)  # fmt: skip
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL, C1
CONTROL_BYTES = bytes(range(0x20)) + b"\x7f"  # the same, for ASCII lines
CONTROL_BUT_TAB = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


# A plain line, the common case, takes the fast path of `parse`: ASCII without these bytes and
# not ending in punctuation. The bytes are controls (a tab separates the fields of a crawler
# export), space, quotes, brackets, backtick, backslash (JSON's `\/`), and `;` `,` `|` (HTML
# entities, CSV fields, URLs glued together). Any other line takes `_messy`. One bytes.translate
# tells them apart: far cheaper than a regex scan of the line.
NOT_PLAIN = CONTROL_BYTES + b" \"'<>()[]{}`\\;,|"
# Punctuation after a URL in running text or code (`<url>.`, `<url>)`), or an opening bracket
# before more text glued on (`<url>(official)`, `<url>（公式）`).
TRAILING = ".,;:!?)]}>'\"([{"
TRAILING_BYTES = TRAILING.encode()
_LEADING = "([{<'\""
_ENCODED_QUOTES = ("%22", "%27")
# Character references that stand for a character a URL or its debris holds: named ones of
# HTML5 and numeric ones (`&#38;`, `&#x26;`), read as browsers do only with their `;`. Pages
# escaped twice write `&amp;amp;`: undone pass by pass, as JSON in JSON is.
_REFERENCE = re.compile(r"&(?:#([0-9]{1,7})|#[xX]([0-9A-Fa-f]{1,6})|([A-Za-z]{2,8}));")
_NAMED = {
    "amp": "&", "quot": '"', "apos": "'", "lt": "<", "gt": ">", "sol": "/", "colon": ":",
    "equals": "=", "quest": "?", "num": "#", "percnt": "%", "period": ".", "comma": ",",
    "semi": ";", "lpar": "(", "rpar": ")", "lsqb": "[", "rsqb": "]", "lbrack": "[",
    "rbrack": "]", "lcub": "{", "rcub": "}", "lbrace": "{", "rbrace": "}", "plus": "+",
    "excl": "!", "dollar": "$", "commat": "@", "tilde": "~", "lowbar": "_", "hyphen": "-",
    "ast": "*", "verbar": "|", "vert": "|", "grave": "`", "nbsp": " ",
}  # fmt: skip
_REFERENCE_DEPTH = 3  # `&amp;amp;amp;`; deeper nesting is not seen in crawls
# JSON escapes of scraped inline JSON: `https:\/\/host\/path`, `\u0026` for &, `\"`, and `\\`
# for a backslash, so JSON inside JSON (`https:\\\/\\\/`) is undone pass by pass.
_JSON_ESCAPE = re.compile(r"\\(?:u([0-9A-Fa-f]{4})|([/\"'\\]))")
_JSON_DEPTH = 3  # JSON in JSON in JSON; deeper nesting is not seen in crawls
# A value in raw quotes inside a query (`?q="hi there"&x=1`): part of the URL, not its end.
QUOTED_VALUE = re.compile(r"([?&][\w.\[\]-]+=)([\"'])([^\"'\n]*)\2(?=[&#]|$|\s)")
# Where a line breaks into words: whitespace, quotes, markup, and an opening bracket before a
# URL (`[link](https://...)`). Other brackets stay in the word: a query holds them
# (`?rooms[0][adults]=2`, `?x=(1)`); `cleaned` drops those the URL does not balance.
# Text of scripts no booking URL holds ends a URL glued to it (`without_glued_text`:
# `.../Jq1Jq2。`, `.../16615/1公式`,
# `...Kr1Kr2입니다`, `...16615/1бронь`, an emoji, `—rates from`): Greek, Cyrillic, Hebrew,
# Arabic, Devanagari, Thai, Hangul, kana, CJK, fullwidth forms, dashes, super- and subscripts,
# currency signs, fractions, arrows, circled numbers, the degree and numero signs,
# the trade mark sign (not all letterlike symbols: matched without case, the Kelvin sign is a
# `k`), emoji and other symbols. A Latin letter with a mark may be part of a
# slug (`hotel-müller`: an id the pattern refuses), so Latin is not among them.
_NOT_IN_URLS = (
    "\u00a2-\u00a5\u00a9\u00ae\u00b0\u00b2\u00b3\u00b9\u00bc-\u00be\u2116\u20a0-\u20cf"
    "\u2150-\u21ff\u2460-\u24ff"
    "\u0370-\u03ff\u0400-\u052f\u0590-\u05ff\u0600-\u06ff"
    "\u0900-\u097f\u0e00-\u0e7f\u1100-\u11ff\u2010-\u2015\u2070-\u209f\u2122"
    "\u2600-\u27bf\u3000-\u303f\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff"
    "\uac00-\ud7af\uf900-\ufaff\uff00-\uffef\U0001f000-\U0001faff"
)
TOKEN_SPLIT = re.compile(r"[\s\"'<>`]+|[(\[{]+(?=(?:https?:)?//)", re.I)
_GLUED_TEXT = re.compile(f"[{_NOT_IN_URLS}]")


def without_glued_text(url: str) -> str:
    """`url` up to text of a script no booking URL holds glued on after its host
    (`.../Jq1Jq2。`, `.../16615/1公式`, `...Qw3rTy—rates from $99`), with an opening bracket
    before it (`（公式）`). In the host it stays: a lookalike host is a wrong host."""
    glued = _GLUED_TEXT.search(url)
    if glued is None:
        return url
    host = url.find("//") + 2 if "//" in url[:9] else 0
    if url.find("/", host) not in range(0, glued.start()):
        return url  # in the host, or no path before it
    return url[: glued.start()].rstrip("([{")


_WORD_SPLIT = re.compile(r"[()\[\]{}]+")  # the words of a word that holds no URL
_OPENER = {")": "(", "]": "[", "}": "{"}
_NESTED_DEPTH = 3  # percent-encoding undone at most this often (`https%253A%252F%252F`)
# A comma, semicolon or bar where the next URL begins (`<url>,<url>` of an export row).
_NEXT_URL = re.compile(r"[,;|](?=(?:https?:)?//|[\w-]+(?:\.[\w-]+)+/)", re.I)
_EMBEDDED_URL = re.compile(r"(?:https?:)?//", re.I)  # where a URL starts inside a word
_ATTRIBUTE = re.compile(r"^[\w$.-]+=")  # href=, src=, $booking=, data-url=
# A scheme other than the web's (`mailto:`, `data:`); a port (`host:443`) is none, and neither is
# a header's name (`Location: <url>`, `WARC-Target-URI: <url>`): a URI holds no space there.
OTHER_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:(?![\d\s])")
# "&utm_source=" glued on a path without its "?": where the query begins. A `&` ending the
# path (`.../Qw3rTy&`) or doubled begins an empty query: debris, not part of the id.
_GLUED_QUERY = re.compile(r"&(?=[\w.\[\]-]+=|&*$)")
# Columns of a crawler export glued to a URL (`?currency=usd,200`, `;301;text/html`, and
# `<uuid>,200` where `,` also separates Mews ids): an HTTP status or a MIME type after `,` `;`
# `|` ends the URL's field.
_EXPORT_COLUMNS = re.compile(
    r"[,;|](?:[1-5][0-9]{2}|(?:text|application|image)/[\w.+-]+)(?:[,;|].*)?$", re.I
)
# A URL percent-encoded as a whole, maybe more than once (copied out of a query string):
# `https%3A%2F%2F...`, `https%253A%252F%252F...`, `%2F%2Fhost/...`.
_ENCODED_URL = re.compile(r"(?:https?%(?:25){0,2}3A)?(?:%(?:25){0,2}2F){2}", re.I)
# Column names of crawl exports (Screaming Frog, Sitebulb, wget logs, `url<TAB>status`): a line
# made of these alone is a header row, never a lead.
# fmt: off
HEADER_WORDS = frozenset((
    "url", "urls", "uri", "link", "links", "href", "src", "page", "pages", "address", "source",
    "target", "final_url", "redirect", "redirect_url", "canonical", "location", "status",
    "status_code", "statuscode", "http_status", "code", "response", "content", "type",
    "content_type", "mime", "title", "name", "id", "ids", "property", "property_id", "hotel",
    "engine", "booking_url", "domain", "host", "hostname", "path", "query", "referrer",
    "referer", "anchor", "anchor_text", "text", "date", "time", "timestamp", "crawled", "depth",
    "size", "length", "indexability", "indexability_status", "inlinks", "outlinks", "word",
    "count", "word_count", "crawl", "crawl_depth", "meta", "description", "h1", "h2", "bytes",
    "response_time", "last_modified", "language", "hash", "canonical_link_element",
))
# fmt: on
MIN_WORD_ID = 3  # characters: the shortest real slug seen is far longer (`seasidehoteldirect`)
FIELDS = re.compile(r"[\s\"'<>()\[\]{}`,;|=]+")  # the words of a header row
# An encoded `?` or `#`, or a double quote or angle bracket (`%22%3E`, `%3C%2Fa%3E`: the markup
# after a URL, encoded with it): where the path ends when the whole path gives no id. Not `%27`:
# an id may end with it (`cleaned` drops it only after an opening one).
ENCODED_END = re.compile(r"%(3F|23|22|3C|3E)", re.I)
_FIELD_END = re.compile(r"[,;|]")  # the end of a URL's field in a CSV-like export row


# What a host written without a scheme looks like: dotted labels ending in a letter-led TLD,
# maybe a port or userinfo, maybe percent-encoded (`hotel.com`, `www.hotel.com.au:8080`,
# `https%3A%2F%2Fhotel.com`); `N/A`, `16615.0`, `...` are not.
_HOST_LIKE = re.compile(r"(?:[^@/]*@)?(?:[\w%-]+\.)+[A-Za-z%][\w%-]*\.?(?::\d*)?")


def names_a_host(text: str, authority: str) -> bool:
    """Whether a line whose host is none of the engine's is a URL at all (so wrong_host, else
    text): it has a scheme, or no authority (a path), or its authority looks like a host."""
    return (
        text[: len(authority)] != authority
        or not authority
        or bool(_HOST_LIKE.fullmatch(authority))
    )


def is_header_row(text: str) -> bool:
    """Whether every field of `text` is a crawl export's column name (`Address<TAB>Status Code`);
    a digit alone may number one (`Title 1`)."""
    fields = [field.lower() for field in FIELDS.split(text) if field]
    return any(field in HEADER_WORDS for field in fields) and all(
        field in HEADER_WORDS or (len(field) == 1 and field.isdigit()) for field in fields
    )


def host_of(authority: str, fullmatch: Callable[[str], object]) -> str:
    """The lower-cased host of a URL's `authority` if `fullmatch` takes it, else ""."""
    host = authority.rpartition("@")[2]  # drop userinfo; the host follows the last '@'
    host, _, port = host.partition(":")
    if port and not (port.isascii() and port.isdigit()):
        return ""
    # isascii before lower(): the Kelvin sign lower-cases to an ASCII 'k'.
    if not host.isascii():
        return ""
    host = host.lower()
    if host.endswith("."):
        host = host[:-1]  # "cloudbeds.com." is the fully qualified cloudbeds.com
    return host if fullmatch(host) else ""


def used_part(text: str) -> str:
    """`text` up to its query or fragment: the part whose bytes must be clean."""
    cut = len(text)
    for mark in "?#":
        found = text.find(mark)
        if 0 <= found < cut:
            cut = found
    return text[:cut]


def rescuable(text: str) -> bool:
    """Whether `LineParser._messy` may find an id in a plain line the fast path rejected: a
    query glued on with `&`, an attribute (`href=`), encoded quotes around it (a wrapper
    around it: `crawl_wrappers.may_carry_url`)."""
    if "&" in text or "=" in text:
        head = text.partition("?")[0]  # a fragment in it only costs a needless second look
        if "&" in head or "=" in head:
            return True
    return "%2" in text and (text[:3] in _ENCODED_QUOTES or text[-3:] in _ENCODED_QUOTES)


def decoded_url(text: str) -> str:
    """`text` percent-decoded until it reads as a URL (`https://`, `//`), at most
    _NESTED_DEPTH times, so the URL's own encoded query stays encoded once."""
    for _ in range(_NESTED_DEPTH):
        text = unquote(text, errors="replace")
        if _EMBEDDED_URL.match(text) or "/" in text.partition("?")[0]:
            break  # a URL, maybe without its scheme (`hotels.cloudbeds.com/reservation/...`)
    return text


def encoded_value(match: re.Match[str]) -> str:
    """A query value written in raw quotes, percent-encoded so it stays one word of the URL."""
    return match[1] + quote(match[2] + match[3] + match[2], safe="")


def field_end(url: str) -> int:
    """Where a URL's field of a CSV-like row ends: its first `,` `;` `|` before the query."""
    field_end = _FIELD_END.search(used_part(url))
    return field_end.start() if field_end else len(url)


def _json_char(match: re.Match[str]) -> str:
    """The character of one JSON escape; `\\u` of a control or non-ASCII one stays as written."""
    if match[2]:
        return match[2]
    char = chr(int(match[1], 16))
    return char if " " <= char <= "~" else match[0]


def cleaned(word: str) -> str:
    """`word` without the debris of extraction around it: what comes before a URL's scheme
    (`href=`, `$booking=`), encoded quotes (`%22...%22`), opening brackets and quotes.

    A closing %22 is debris after an opening one, or at the end of a path; inside a query or
    fragment it is the value's own (`?q=%22hi%22`). A closing %27 only after an opening one
    (it may end an id)."""
    opened, openings = word[:3], 0
    while word[:3] in _ENCODED_QUOTES:
        word, openings = word[3:].lstrip(_LEADING), openings + 1
    start = _EMBEDDED_URL.search(word)  # `$booking=https://...`, `url:https://...`
    word = word[start.start() :] if start else _ATTRIBUTE.sub("", word).lstrip(_LEADING)
    while True:
        end = word.rstrip(TRAILING)
        closing = end[-3:]
        if not (
            (closing == "%22" and ((opened == "%22" and openings) or end == used_part(end)))
            or (closing == "%27" and opened == "%27" and openings)
        ):
            return word  # trailing punctuation stays: `LineParser._one` drops it if the URL fails
        word, openings = end[:-3], openings - 1  # one closing quote per opening one


def balanced(url: str) -> str:
    """`url` without the first closing bracket after it that it does not open, nor what
    follows (`(https://x?a=(1)).` keeps `?a=(1)`); a bracket it opened stays, and trailing
    punctuation without a bracket is left to `LineParser._one` (an id may end with it)."""
    if url[-1:] not in TRAILING:
        return url
    head = url.rstrip(TRAILING)
    tail = url[len(head) :]
    if not any(char in _OPENER for char in tail):
        return url
    for char in tail:
        opener = _OPENER.get(char)
        if opener and head.count(opener) <= head.count(char):
            break
        head += char
    return head


def words_of(text: str) -> list[str]:
    """The words of a line without a URL: brackets split them too (`(notes)`, `[todo]`)."""
    return [w for word in TOKEN_SPLIT.split(text) if word for w in _WORD_SPLIT.split(word) if w]


def urls_in(word: str) -> list[str]:
    """The URLs one word of a line holds (none, one, or several glued with `,` `;` `|`),
    each from its scheme (or its host) on, without debris; a URL has a '/'. A word of
    another scheme (ftp:, mailto:) is kept whole, to be rejected as such."""
    urls = []
    for piece in _NEXT_URL.split(word) if ("," in word or ";" in word or "|" in word) else (word,):
        scheme = OTHER_SCHEME.match(piece)
        if scheme and scheme.group().lower() not in ("http:", "https:"):
            if "/" in piece:
                urls.append(piece)
            continue
        url = cleaned(piece)
        if _ENCODED_URL.match(url):
            url = decoded_url(url)
        if "/" in url:
            urls.append(balanced(url))
    return urls


def _reference(match: re.Match[str]) -> str:
    """The character of one character reference; an unknown or non-printable one stays."""
    if match[3]:
        return _NAMED.get(match[3].lower(), match[0])
    code = int(match[1]) if match[1] else int(match[2], 16)
    return chr(code) if 0x20 <= code <= 0x7E else match[0]


def unescaped(text: str) -> str:
    """`text` with JSON escapes undone (JSON inside JSON too), any other backslash read as a
    slash as browsers do, and character references decoded: named and numeric, nested
    (`&amp;amp;`, `&#38;`, `&#x26;`, `&amp;#38;` all read as `&`)."""
    if "\\" in text:
        for _ in range(_JSON_DEPTH):  # scraped inline JSON, maybe JSON inside JSON
            once = _JSON_ESCAPE.sub(_json_char, text)
            if once == text:
                break
            text = once
        text = text.replace("\\", "/")
    if "&" in text:
        for _ in range(_REFERENCE_DEPTH):
            once = _REFERENCE.sub(_reference, text)
            if once == text:
                break
            text = once
    return text


# A matrix (path) parameter at a path segment's end (`;jsessionid=ABC`): the server's session,
# never part of the id, so it is dropped before the id is read.
_MATRIX = re.compile(r";[A-Za-z_][\w.-]*=[^/?#;,]*")
# An unencoded comma (or `;`) in a URL's path: a CSV or export field separator. A crawl row's
# comma is a column far more often than a list: Cloudbeds, SiteMinder and RMS document no comma
# list in their URLs (only Mews documents `<uuid>;<uuid>`, its `id_separator`). The fields after
# it are read as URLs only if they are URLs (`_NEXT_URL`), never as ids.
_PATH_FIELD_END = {sep: re.compile(f"[{sep}]") for sep in (",;", ",", ";")}
_AFTER_SLASH = re.compile(r"(?<=/)[,;]")


def path_field(url: str, separators: str, inner: bool = True) -> str:
    """`url` without matrix parameters (`;jsessionid=...`) and cut at the first unencoded `,`
    or `;` in its path that is not one of the engine's `separators`
    (`.../Qw3rTy,Sydney` -> `.../Qw3rTy`); a `,` `;` ending its query is dropped too. With
    `inner`, one followed by more path (`/16615,16616/1`) is inside the path: a column never
    holds a path, so only one in the last segment is cut at."""
    head = used_part(url)
    if ";" in head and "=" in head:
        url = _MATRIX.sub("", head) + url[len(head) :]
        head = used_part(url)
    ends = "".join(sep for sep in ",;" if sep not in separators)
    host = head.find("//") + 2 if "//" in head[:8] else 0
    start = max(host, head.rfind("/") + 1) if inner else host
    cut = _PATH_FIELD_END[ends].search(head, start) if ends else None
    if not cut and separators:  # `<uuid>/,Sydney`: no item of an id list follows a slash
        cut = _AFTER_SLASH.search(head, host)
    if cut:
        return url[: cut.start()]
    if len(head) < len(url) and url[-1] in ",;":
        url = url.rstrip(",;")  # `?currency=usd,`: the row's separator, not the value's
    return url


def url_field(url: str) -> str:
    """`url` without the export columns after it (`?currency=usd,200`: the status is the next
    column) and with a query glued on by `&` (`.../Qw3rTy&utm_source=x`) given its `?`."""
    if "," in url or ";" in url or "|" in url:
        columns = _EXPORT_COLUMNS.search(url)
        if columns:
            url = url[: columns.start()]
    if "&" in url:
        head = used_part(url)
        after_host = head.find("//") + 2 if "//" in head else 0
        path = head.find("/", after_host)
        glued = _GLUED_QUERY.search(head, path) if path >= 0 else None
        if glued:
            url = f"{url[: glued.start()]}?{url[glued.end() :]}"
    return url
