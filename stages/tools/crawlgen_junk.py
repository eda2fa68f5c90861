"""The junk lines of stages.tools.crawlgen's files: what real crawls hold besides leads, and
the parser must turn down (`tests/test_crawlgen.py` checks it does).
"""

from __future__ import annotations

import random
from typing import Any

# Other sites' pages ({w}, {w2} words, {n} a number): wrong_host, or an engine's API page.
OTHER_SITES = (
    "https://www.booking.com/hotel/au/{w}-{w2}.html?aid=304142&label=gen173",
    "https://www.facebook.com/{w}{w2}hotel/",
    "https://www.google.com/maps/place/{w}+{w2}/@-33.86,151.20,17z",
    "https://www.tripadvisor.com/Hotel_Review-g255060-d{n}-Reviews-{w}.html",
    "https://{w}{w2}.com/book-now",
    "mailto:reservations@{w}{w2}.com",
    "https://hotels.cloudbeds.com/booking/rooms?propertyID={n}",
    "https://hotels.cloudbeds.com/booking/prepare",
    'href="https://{w}-{w2}.com.au/"',
    "www.expedia.com/{w}-{w2}-Hotel.h{n}.Hotel-Information",
)

# Header rows of crawl exports: junk that must never become a lead.
HEADER_ROWS = ("url", "url\tstatus", '"url","status"', '"Address","Status Code","Content Type"')

# Template values where an id belongs, every one a placeholder; a fixed list, so the samples
# stay put when stages.rules.crawl_outcome.PLACEHOLDERS learns a word.
# fmt: off
TEMPLATE_WORDS = frozenset((
    "undefined", "XXXXXX", "null", "nil", "nan", "none", "object", "true", "false", "unknown",
    "default", "example", "sample", "test", "testing", "demo", "slug", "placeholder",
    "your-hotel", "yourhotel", "your_hotel", "your-property", "yourproperty", "hotel-name",
    "hotelname", "property-slug", "property-name", "propertyname", "your-property-slug",
    "hotel-slug", "n/a", "na", "yes", "no", "ok", "tbd", "todo", "html",
))
# fmt: on


def junk_line(
    rng: random.Random, shapes: Any, site_pages: frozenset[str], words: tuple[str, ...]
) -> str:
    """One junk line for an engine whose line shapes are `shapes` (stages.tools.crawlgen.Shapes:
    its `url(rng, id)` and `new_id(rng)`): an export's header row, a placeholder or site page
    where the id belongs, another site (named with `words`), a lookalike host, a URL whose id
    was cut off, or a line truncated anywhere."""
    kind = rng.random()
    if kind < 0.05:
        return rng.choice(HEADER_ROWS)
    if kind < 0.15:  # a template's placeholder or a site page where the id belongs
        word = rng.choice(sorted(site_pages | TEMPLATE_WORDS))
        return "https://" + shapes.url(rng, word)
    if kind < 0.5:
        template = rng.choice(OTHER_SITES)
        fill = {"w": rng.choice(words), "w2": rng.choice(words), "n": rng.randrange(10**6)}
        return template.format(**fill)
    url = "https://" + shapes.url(rng, shapes.new_id(rng))
    if kind < 0.65:
        host, slash, path = url[8:].partition("/")
        return f"https://{host}.{rng.choice(('evil.example', 'com.ru', 'xyz'))}{slash}{path}"
    if kind < 0.80:
        return url.rpartition("/")[0] + "/"  # the id cut off
    return url[: rng.randrange(8, len(url))]  # a line truncated anywhere
