"""Wrappers around a crawled URL: redirectors, archives and translation proxies that carry it.

A line whose URL is a search engine's click redirect, a web archive's copy or a translation
proxy's page names the URL inside it (`LineParser._one` reads that when the outer URL is of
no engine's host). Nothing here names an engine.
"""

from __future__ import annotations

import re

from stages.rules.crawl_text import decoded_url

# Redirect wrappers that carry the real URL in a query parameter: Google's /url?q=, Facebook's
# and Instagram's link shims, YouTube's /redirect, Outlook's safe links, DuckDuckGo's /l/?uddg=,
# Google Translate's /translate?u=.
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
# Yahoo's click redirect puts the URL in its path: `r.search.yahoo.com/.../RU=<url>/RK=...`.
_YAHOO = re.compile(r"r\.search\.yahoo\.com/.*?/RU=([^/]+)/", re.I)
# The Wayback Machine's copy: `web.archive.org/web/<timestamp>[id_]/<url>`.
_ARCHIVE = re.compile(r"web\.archive\.org/web/[0-9]+[a-z_]*/(.+)", re.I)
# Google Translate's proxy writes the host into its own: `hotels-cloudbeds-com.translate.goog`
# for hotels.cloudbeds.com (a `-` of the host is doubled), with `_x_tr_*` parameters added.
_TRANSLATE_PROXY = re.compile(r"([a-z0-9-]+)\.translate\.goog(/[^?#]*)?(?:\?([^#]*))?", re.I)


def redirect_target(url: str) -> str | None:
    """The URL a redirect wrapper, an archive copy or a translation proxy carries, else None;
    a target in a query is decoded until it reads as a URL (`https%253A%252F%252F...`), at
    most three times, so its own encoded query stays encoded once."""
    rest = url[url.find("//") + 2 :] if "//" in url[:8] else url
    for pattern in (_ARCHIVE, _YAHOO):
        found = pattern.match(rest)
        if found:
            return decoded_url(found[1])
    proxy = _TRANSLATE_PROXY.fullmatch(rest.partition("#")[0])
    if proxy:
        return _translated_from(proxy)
    path, _, query = rest.partition("#")[0].partition("?")
    if not query or not _REDIRECT.fullmatch(path):
        return None
    found = _REDIRECT_TARGET.search(query)
    return decoded_url(found[1]) if found else None


def _translated_from(proxy: re.Match[str]) -> str:
    """The page a translate.goog URL translates: its host undashed, without `_x_tr_*`."""
    host = proxy[1].replace("--", "\0").replace("-", ".").replace("\0", "-")
    query = "&".join(p for p in (proxy[3] or "").split("&") if p and not p.startswith("_x_tr_"))
    return f"https://{host}{proxy[2] or ''}" + (f"?{query}" if query else "")
