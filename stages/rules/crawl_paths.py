"""A URL as the url patterns read it: what follows its scheme, and its path percent-decoded,
its slash runs read as one.

Servers read `//reservation/X` as `/reservation/X`, and an encoded character as itself; an
encoded slash (`seaside%2Fhotel`) stays inside the id it is in, and encoded whitespace around
an id (`Qw3rTy%0A`, an href scraped with its line end) is space, as `%20` is.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from stages.rules.crawl_outcome import Reject
from stages.rules.crawl_text import CONTROL, UNICODE_DEBRIS

# An encoded slash in a path is decoded to this private-use character while the patterns
# look for `/`, and to a slash inside the id they find: the id is not cut at it.
SLASH_MARK = "\uf000"
_SLASH_RUN = re.compile("//+")
# What a decoded path's whitespace controls and invisible characters read as: a space.
_ENCODED_SPACES = {**UNICODE_DEBRIS, **dict.fromkeys(map(ord, "\t\n\r\x0b\x0c"), " ")}
_INVALID_UTF8, _CONTROL_CHARS = Reject.INVALID_UTF8, Reject.CONTROL_CHARS
_UNSUPPORTED_SCHEME = Reject.UNSUPPORTED_SCHEME
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_PORT = re.compile(r"\d+(?:[/?#]|$)")  # "<host>:<port>..." has no scheme
_WEB_SCHEMES = frozenset({"http", "https"})


def after_scheme(text: str, scheme: str, colon: int) -> str | Reject:
    """What follows the scheme of `text` (its first `:` at `colon`, `scheme` before it) when it
    is no lower-case http(s): the URL after any case of http(s) and its slashes, after the
    `//` of a scheme-relative one, or all of it when `scheme` is none (`<host>:<port>/...`);
    Reject.UNSUPPORTED_SCHEME for another scheme (`mailto:`, `ftp:`)."""
    if scheme and _SCHEME.fullmatch(scheme) and not _PORT.match(text, colon + 1):
        if scheme.lower() not in _WEB_SCHEMES:
            return _UNSUPPORTED_SCHEME
        return text[colon + 1 :].lstrip("/")
    if text.startswith("//"):
        return text[2:]  # scheme-relative
    return text


def read_path(path: str) -> str | Reject:
    """`path` (from its first `/`, without query or fragment) as the patterns read it, with
    no trailing slash; encoded slashes become SLASH_MARK. Reject.INVALID_UTF8 when its
    percent-escapes are no UTF-8, Reject.CONTROL_CHARS when they hold a control character
    other than whitespace."""
    if "%" in path:
        if "%2" in path and ("%2F" in path or "%2f" in path):
            path = path.replace("%2F", "%EF%80%80").replace("%2f", "%EF%80%80")
        try:
            path = unquote(path, errors="strict")
        except UnicodeDecodeError:
            return _INVALID_UTF8
        if not path.isascii() or CONTROL.search(path):
            path = path.translate(_ENCODED_SPACES)
            if CONTROL.search(path):
                return _CONTROL_CHARS
    if "//" in path:
        path = _SLASH_RUN.sub("/", path)
    return path[:-1] if path.endswith("/") else path
