"""Wrappers around a crawled URL: redirectors, archives, caches and proxies that carry it.

A line whose URL is a search engine's click redirect, a web archive's copy, an AMP cache's page
or a translation proxy's page names the URL inside it (`LineParser._one` reads each of
`redirect_targets` when the outer URL is of no engine's host). Nothing here names an engine:
a target is a lead only if the engine's own rules read an id in it, so a wrapper never makes a
URL of another host one.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable

from stages.rules.crawl_text import decoded_url

# Redirect wrappers that carry the real URL in a query parameter: Google's /url?q=, Facebook's
# and Instagram's link shims, YouTube's /redirect, Outlook's safe links, DuckDuckGo's /l/?uddg=,
# Google Translate's /translate?u=. Their parameter may hold a URL without a scheme.
_REDIRECT = re.compile(
    r"(?:www\.)?google\.[a-z.]{2,6}/url"
    r"|l[m]?\.facebook\.com/l\.php|l\.instagram\.com/?"
    r"|(?:www\.)?youtube\.com/redirect|[\w-]+\.safelinks\.protection\.outlook\.com/?"
    r"|(?:html\.|lite\.)?duckduckgo\.com/l/?|translate\.google\.[a-z.]{2,6}/translate",
    re.I,
)
# The carried URL: with a scheme or `//` (maybe percent-encoded), or a host and path without
# a scheme as people paste them (`q=hotels.cloudbeds.com/reservation/...`).
_REDIRECT_TARGET = re.compile(
    r"(?:^|&)(?:q|u|url|target|uddg)="
    r"((?:https?(?::|%(?:25)*3A)|//|(?:%(?:25)*2F){2}|(?:[\w-]+\.)+[A-Za-z]{2,}(?:/|%(?:25)*2F))"
    r"[^&]*)",
    re.I,
)
# Any other page's parameter whose value is an absolute URL, maybe percent-encoded: affiliate
# and ad click trackers (`?murl=`, `?dest=`, `?redirect_to=`), share links, analytics hits. No
# list of sites can be complete; only a value with a scheme is read here (one without could be
# any text), and only the engine's own rules decide whether it names a property.
_ANY_TARGET = re.compile(
    r"(?:^|&)[\w.\[\]-]+=((?:https?(?::|%(?:25){0,2}3A)|(?:%(?:25){0,2}2F){2})[^&]*)", re.I
)
# Bing's click redirect: `bing.com/ck/a?...&u=a1<the URL in URL-safe base64, unpadded>`.
_BING = re.compile(r"(?:www\.)?bing\.com/ck/a", re.I)
_BING_TARGET = re.compile(r"(?:^|&)u=a1([\w-]+)")
# Yahoo's click redirect puts the URL in its path: `r.search.yahoo.com/.../RU=<url>/RK=...`.
_YAHOO = re.compile(r"r\.search\.yahoo\.com/.*?/RU=([^/]+)/", re.I)
# The Wayback Machine's copy, `web.archive.org/web/<timestamp>[id_]/<url>`, and its listing of
# captures, `/web/2023*/<url>*` or `/web/*/<url>`: the URL may come without its scheme, and a
# listing's `*` after it asks for every URL it begins.
_WAYBACK = re.compile(r"(?:web\.|wayback\.)?archive\.org/web/[0-9]*(\*?)[a-z_]*/(.+)", re.I)
# archive.today (.ph, .is, .li, .vn, .md, .fo): `archive.ph/o/<capture>/<url>`,
# `archive.ph/<timestamp>/<url>`, `archive.ph/newest/<url>`; the copied URL has its scheme.
_ARCHIVE_TODAY = re.compile(
    r"archive\.(?:today|ph|is|li|vn|md|fo)/(?:o/\w+/|[0-9.]+-?[0-9]*/|newest/|oldest/)?"
    r"(https?:/.+)",
    re.I,
)
# An AMP cache's copy: `<host with dashes>.cdn.ampproject.org/<c|v|i|wp|r>/[s/]<host>/<path>`
# (`s/`: the page is https), and Google's AMP viewer `google.com/amp/s/<host>/<path>`.
_AMP = re.compile(
    r"(?:[\w-]+\.cdn\.ampproject\.org/(?:c|v|i|r|wp)|(?:www\.)?google\.[a-z.]{2,6}/amp)/(s/)?(.+)",
    re.I,
)
# Google's cache of a page: `webcache.googleusercontent.com/search?q=cache:[<key>:]<url>+`
# (the `+` is the space that ended the search).
_CACHE = re.compile(
    r"webcache\.googleusercontent\.com/search\?(?:.*&)?q=cache:(?:[\w-]+:)?([^&]+?)\+*(?:&|$)",
    re.I,
)
# Any other page whose path carries a whole URL (CORS and reading proxies, `/out/https://...`).
_PATH_URL = re.compile(r"[^?#]*?/(https?:/.+)", re.I)
# Google Translate's proxy writes the host into its own: `hotels-cloudbeds-com.translate.goog`
# for hotels.cloudbeds.com (a `-` of the host is doubled), with `_x_tr_*` parameters added.
_TRANSLATE_PROXY = re.compile(r"([a-z0-9-]+)\.translate\.goog(/[^?#]*)?(?:\?([^#]*))?", re.I)


# A host (dotted labels, a letter-led TLD) as a segment of a path: where a wrapper's copy of a
# URL without its scheme begins.
_HOST_IN_PATH = re.compile(r"/(?:[\w-]+\.)+[A-Za-z][\w-]*/")


def mentions_of(hosts: tuple[str, ...]) -> Callable[[str], bool]:
    """A test of whether a wrapper's text may carry a URL of one of `hosts`: it names one's
    first label, with its dashes or without (a translation proxy's `direct--book-com`, an AMP
    cache's), in any case, or holds Bing's base64 parameter (`u=a1<base64>`). A URL of
    another site that names none of them is no wrapper of ours, and the wrapper rules, the
    slow part of a line, are skipped for it."""
    labels = tuple(sorted({host.split(".")[0].replace("-", "") for host in hosts} | {"u=a1"}))

    def may_name(text: str) -> bool:
        # Substring tests of the lower-cased text: a case-blind regex alternation is 10x slower.
        folded = text.lower().replace("-", "")
        return any(label in folded for label in labels)

    return may_name


def may_carry_url(text: str) -> bool:
    """Whether a plain line whose host is none of the engine's may be a wrapper around a URL
    that is (so `LineParser` reads it with `redirect_targets`): a query or an encoded URL, a
    translation proxy, a URL after something that is not its own scheme
    (`web.archive.org/web/2023/https://...`), or a host in its path (an AMP cache's copy,
    `/web/2023*/hotels.cloudbeds.com/...`). Cheap: it runs on every wrong_host line."""
    if "=" in text or "%" in text[:8] or ".translate.goog" in text or text.count("//") > 1:
        return True
    slashes = text.find("//")
    if slashes > 0 and text[:slashes].lower() not in ("http:", "https:"):
        return True
    return _HOST_IN_PATH.search(text, slashes + 2 if slashes >= 0 else 0) is not None


def redirect_targets(url: str) -> list[str]:
    """The URLs a redirect wrapper, an archive or cache copy or a proxy carries, most likely
    first, or []; a target in a query is decoded until it reads as a URL
    (`https%253A%252F%252F...`), at most three times, so its own encoded query stays encoded
    once. Raises nothing: a target that cannot be decoded is no target."""
    rest = url[url.find("//") + 2 :] if "//" in url[:8] else url
    wayback = _WAYBACK.match(rest)
    if wayback:
        target = decoded_url(wayback[2])
        return [target.rstrip("*") if wayback[1] else target]
    for pattern in (_YAHOO, _ARCHIVE_TODAY, _CACHE):
        found = pattern.match(rest)
        if found:
            return [decoded_url(found[1])]
    amp = _AMP.match(rest)
    if amp:  # the cache's and viewer's own parameters (`amp_js_v`, `usqp`) are not the page's
        page, _, query = amp[2].partition("?")
        query = _without(query, ("amp_", "usqp="))
        return [("https://" if amp[1] else "http://") + page + (f"?{query}" if query else "")]
    proxy = _TRANSLATE_PROXY.fullmatch(rest.partition("#")[0])
    if proxy:
        return [_translated_from(proxy)]
    path, _, query = rest.partition("#")[0].partition("?")
    embedded = _PATH_URL.match(path)
    if embedded:
        return [embedded[1] + url[len(url) - len(rest) + len(path) :]]
    if not query:
        return []
    if _BING.fullmatch(path):
        bing = _bing_targets(query)
        if bing:
            return bing
    if _REDIRECT.fullmatch(path):
        found = _REDIRECT_TARGET.search(query)
        if found:
            return [decoded_url(found[1])]
    return [decoded_url(found[1]) for found in _ANY_TARGET.finditer(query)]


def _bing_targets(query: str) -> list[str]:
    """The URL of Bing's `u=a1<base64url>` parameter, decoded, or []."""
    found = _BING_TARGET.search(query)
    if not found:
        return []
    encoded = found[1] + "=" * (-len(found[1]) % 4)
    try:
        return [base64.urlsafe_b64decode(encoded).decode("utf-8")]
    except (binascii.Error, UnicodeDecodeError):
        return []


def _translated_from(proxy: re.Match[str]) -> str:
    """The page a translate.goog URL translates: its host undashed, without `_x_tr_*`."""
    host = proxy[1].replace("--", "\0").replace("-", ".").replace("\0", "-")
    query = _without(proxy[3] or "", ("_x_tr_",))
    return f"https://{host}{proxy[2] or ''}" + (f"?{query}" if query else "")


def _without(query: str, prefixes: tuple[str, ...]) -> str:
    """`query` without the parameters a wrapper added (those starting with `prefixes`)."""
    return "&".join(p for p in query.split("&") if p and not p.startswith(prefixes))
