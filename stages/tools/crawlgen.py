"""Deterministic, realistic crawl files: the bundled samples and the benchmark inputs.

    python -m stages.tools.crawlgen --out data/sources --lines 400 [--engine E] [--seed N]

writes one file per engine, named by its `file` in params.yaml. Lines mix full URLs with query
strings and fragments, scheme-less host/path lines, bare ids and case variants, in the shapes
real crawls hold (localised and regional paths, group prefixes, sub-pages, RMS agents and
units, Mews `?ids=`, `<uuid>;<uuid>` and `/rates/<room uuid>`, regional language tags, about
5 % wrapped in HTML/text extraction debris, and about REAL_SHARE as crawler export rows or
columns after a comma, several URLs on a line, JSON-escaped URLs, or inside the wrappers of
`_WRAPPERS`: redirects, archives, AMP caches), with about 30 % repeated ids, 2 % blank lines
and 2 % junk (other sites, lookalike hosts, cut-off lines, export header rows, placeholders
and site-page words where an id belongs).
The truth about real lines is tests/corpus/, not this module.
The same seed gives the same bytes. Files are written line by line, so memory stays flat.

Engines without built-in line shapes (one just added to params.yaml) get generic lines: the
canonical `booking_url` and bare ids, with ids from the first simple alphabet whose samples
fully match `id_pattern`; when none does, a ConfigError says to add shapes here.
"""

from __future__ import annotations

import argparse
import base64
import random
import string
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from stages.errors import ConfigError, PipelineError
from stages.rules.config import Engine, load_params
from stages.tools.crawlgen_junk import junk_line

DEFAULT_SEED = 1
BLANK_SHARE = 0.02
JUNK_SHARE = 0.02
REPEAT_SHARE = 0.30
RECENT_IDS = 5000  # repeats are drawn from a bounded pool, so memory stays flat
BATCH_LINES = 10_000
REAL_SHARE = 0.04  # URL lines in the shapes of `_REAL_SHAPES`: few, so benchmarks see them

_ALNUM = string.ascii_letters + string.digits
_WORDS = (
    *("harbour", "beach", "bay", "palm", "coral", "ocean", "river", "lake", "forest", "alpine"),
    *("ridge", "valley", "garden", "park", "city", "central", "grand", "royal", "old", "town"),
    *("sunset", "seaside", "island", "lodge", "inn", "hotel", "motel", "resort", "suites"),
    *("villas", "cabins", "retreat", "house", "manor", "hostel", "apartments", "heritage"),
)
_QUERIES = (
    "",
    "",
    "",
    "?utm_source=google&utm_medium=cpc",
    "?currency=EUR",
    "?checkin=2024-11-02&checkout=2024-11-05&adults=2",
    "#rooms",
    "?lang=en#availability",
    "?ref=tripadvisor&gclid=Cj0KCQiA",
)
# How HTML or text extraction leaves a URL in a line ({} is the URL).
_DEBRIS = (
    '"{}"',
    "href='{}'",
    'src="{}"',
    "({})",
    "{};",
    "{},",
    "{}.",
    "&quot;{}&quot;",
    '$booking="{}";',
    '<a href="{}" class="btn">Book now</a>',
)

# Crawler export rows around a URL ({} is the URL): a status, MIME type or title column.
_EXPORT_ROWS = (
    "{}\t200",
    "{},200",
    '"{}",200,"text/html"',
    "{};301",
    "{}|200",
    "200\t{}",
    '"Hotel, Bay";"{}";200',
    "{},Sydney",
    "{} text/html",
)
# Wrappers real crawls hold a URL in: {u} the URL, {q} it percent-encoded, {p} without its
# scheme, {b} in Bing's base64, {d} its host as an AMP cache writes it.
_WRAPPERS = (
    "https://www.google.com/url?q={q}&sa=D&source=editors",
    "https://web.archive.org/web/2023/{u}",
    "web.archive.org/web/20230101000000id_/{p}",
    "https://web.archive.org/web/2023*/{p}*",
    "https://www.bing.com/ck/a?!&&p=0f1e2d&u=a1{b}&ntb=1",
    "https://{d}.cdn.ampproject.org/c/s/{p}",
    "https://archive.ph/o/AbCdE/{u}",
    "https://click.example.net/track?murl={q}",
    "https://duckduckgo.com/l/?uddg={q}&rut=abc",
)
# Regional language tags before a Cloudbeds page, rarer than the plain ones.
_REGIONAL_TAGS = ("/es-419", "/zh-Hant-TW", "/de-CH-1996", "/pt_BR")


@dataclass(frozen=True)
class Shapes:
    """How one engine's ids and URLs look in the wild."""

    new_id: Callable[[random.Random], str]
    # host + path (no scheme, no query) of a URL carrying `property_id`
    url: Callable[[random.Random, str], str]
    # an equivalent spelling of the id (case), or the id itself where case matters
    id_variant: Callable[[random.Random, str], str] = lambda rng, property_id: property_id


def generate_lines(engine: Engine, lines: int, seed: int = DEFAULT_SEED) -> Iterator[str]:
    """`lines` crawl lines for `engine` (without line ends), the same for the same seed."""
    rng = random.Random(f"{seed}:{engine.name}")  # str seeds hash stably across runs
    shapes = shapes_for(engine)
    recent: list[str] = []
    for _ in range(lines):
        roll = rng.random()
        if roll < BLANK_SHARE:
            yield rng.choice(("", "", " ", "\t"))
        elif roll < BLANK_SHARE + JUNK_SHARE:
            yield junk_line(rng, shapes, engine.site_pages, _WORDS)
        else:
            if recent and rng.random() < REPEAT_SHARE:
                property_id = rng.choice(recent)
            else:
                property_id = shapes.new_id(rng)
                if len(recent) < RECENT_IDS:
                    recent.append(property_id)
                else:
                    recent[rng.randrange(RECENT_IDS)] = property_id
            yield _line(rng, shapes, property_id)


def write_crawl_file(engine: Engine, path: Path, lines: int, seed: int = DEFAULT_SEED) -> None:
    """Write `lines` generated lines to `path` atomically, in batches (flat memory)."""
    from stages.store.files import atomic_output

    batch: list[str] = []
    with atomic_output(path, "wb") as handle:
        for line in generate_lines(engine, lines, seed):
            batch.append(line)
            if len(batch) == BATCH_LINES:
                handle.write(("\n".join(batch) + "\n").encode("utf-8"))
                batch.clear()
        if batch:
            handle.write(("\n".join(batch) + "\n").encode("utf-8"))


def _line(rng: random.Random, shapes: Shapes, property_id: str) -> str:
    if rng.random() < 0.15:
        property_id = shapes.id_variant(rng, property_id)
    kind = rng.random()
    if kind < 0.10:
        line = property_id
    else:
        url = shapes.url(rng, property_id)
        if rng.random() < 0.08:
            host, slash, path = url.partition("/")
            url = host.upper() + slash + path
        query = rng.choice(_QUERIES)
        if "?" in url:  # the id is in the query already: more parameters follow with &
            url += query.replace("?", "&", 1)
        else:
            if rng.random() < 0.10 and not url.endswith("/"):
                url += "/"
            url += query
        if kind < 0.25:
            line = url  # scheme-less, as crawlers often record them
        elif kind < 0.32:
            line = "http://" + url
        elif kind < 0.34:
            line = "HTTPS://" + url
        else:
            line = "https://" + url
    roll = rng.random()
    # Only around URLs: a bare id in quotes or brackets is text (parser's text_word rule).
    if roll < 0.05 and kind >= 0.10:
        line = rng.choice(_DEBRIS).format(line)
    elif 0.05 <= roll < 0.05 + REAL_SHARE and kind >= 0.10:
        line = _real_shape(rng, shapes, line)
    if rng.random() < 0.02:
        line = rng.choice((" ", "\t", "  ")) + line + rng.choice(("", " ", "\t"))
    return line


def _real_shape(rng: random.Random, shapes: Shapes, url: str) -> str:
    """`url` as real crawl files also hold it: in an export row, beside another URL of the
    engine, JSON-escaped (scraped inline JSON), or inside a wrapper (`_WRAPPERS`)."""
    kind = rng.random()
    if kind < 0.40:
        return rng.choice(_EXPORT_ROWS).format(url)
    if kind < 0.60:
        other = "https://" + shapes.url(rng, shapes.new_id(rng))
        return url + rng.choice((" ", ",", "|")) + other
    if kind < 0.75:
        return url.replace("/", "\\/")
    page = url.partition("://")[2] or url
    return rng.choice(_WRAPPERS).format(
        u=url if "://" in url else "https://" + url,
        q=quote(url if "://" in url else "https://" + url, safe=""),
        p=page,
        b=base64.urlsafe_b64encode(url.encode()).decode().rstrip("="),
        d=page.partition("/")[0].lower().replace("-", "--").replace(".", "-"),
    )


def shapes_for(engine: Engine) -> Shapes:
    """The built-in shapes for a known engine, else generic ones derived from its params."""
    builtin = _BUILTIN.get(engine.name)
    return builtin if builtin is not None else _generic_shapes(engine)


def _cloudbeds_url(rng: random.Random, property_id: str) -> str:
    host = rng.choice(("hotels", "hotels", "hotels", "us2", rng.choice(_WORDS))) + ".cloudbeds.com"
    if rng.random() < 0.05:
        return f"{host}/widget/load/{property_id}/vertical"
    prefix = rng.choice(("", "", "", "", "/es", "/en", "/pt-br"))
    if rng.random() < 0.03:
        prefix = rng.choice(_REGIONAL_TAGS)
    kind = rng.choice(("reservation", "reservation", "reservas", "booking/reservation"))
    sub = rng.choice(("", "", "", "", "/guests", "/rooms"))
    return f"{host}{prefix}/{kind}/{property_id}{sub}"


def _mews_url(rng: random.Random, property_id: str) -> str:
    roll = rng.random()
    if roll < 0.05:  # a known crawl bug: the path written twice
        return f"app.mews.com/distributor/app.mews.com/distributor/{property_id}"
    host = "www.mews.li" if roll < 0.12 else "app.mews.com"
    if roll > 0.9:
        return f"{host}/distributor?ids={property_id}"
    if roll > 0.85:  # several properties of one group in one line
        return f"{host}/distributor/{property_id};{_mews_id(rng)}"
    if roll > 0.80:  # a booking step with the room it opens (the room is no property)
        return f"{host}/distributor/{property_id}/{rng.choice(('rates', 'rooms'))}/{_mews_id(rng)}"
    return f"{host}/distributor/{property_id}"


def _mews_id(rng: random.Random) -> str:
    hex32 = f"{rng.getrandbits(128):032x}"
    variant = "89ab"[int(hex32[16], 16) % 4]  # a version-4 UUID, as Mews issues them
    return f"{hex32[:8]}-{hex32[8:12]}-4{hex32[13:16]}-{variant}{hex32[17:20]}-{hex32[20:]}"


def _rms_id(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return f"{rng.getrandbits(64):016X}"
    # A client number as a bare line may give it (params.yaml rms.bare_id_pattern): no year.
    number = rng.randrange(1000, 29800)
    return str(number + 200 if number >= 1900 else number)


def _rms_url(rng: random.Random, property_id: str) -> str:
    agent = rng.choice(("/1", "/1", "/1", "/90", "/53", ""))
    if rng.random() < 0.3:
        return f"ibe{rng.randrange(1, 20)}.rmscloud.com/{property_id}{agent}"
    host = rng.choice(("bookings", "bookings", "bookings8", "bookings12")) + ".rmscloud.com"
    prefix = rng.choice(("", "", "/obookings", "/obookings3"))
    segments = rng.choice(("Search/Index", "Search/Index", "search/index", "Rates/Index"))
    unit = f"/{rng.randrange(1, 400)}" if agent and rng.random() < 0.2 else ""
    return f"{host}{prefix}/{segments}/{property_id}{agent}{unit}"


def _siteminder_id(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randrange(2, 4))]
    tail = rng.choice(("", "direct", f"{rng.randrange(100)}", f"-{rng.randrange(1000)}"))
    joiner = rng.choice(("", "", "-", "_"))
    return joiner.join(words) + tail


def _siteminder_url(rng: random.Random, property_id: str) -> str:
    host = rng.choice(
        (
            "direct-book.com",
            "direct-book.com",
            "app.thebookingbutton.com",
            "www.thebookingbutton.com.au",
            "book-directonline.com",
            "app-apac.thebookingbutton.com",
            "app.littlehotelier.com",
        )
    )
    kind = "reservations" if "thebookingbutton" in host and rng.random() < 0.5 else "properties"
    group = f"/{rng.choice(_WORDS)}-group" if rng.random() < 0.1 else ""
    sub = rng.choice(("", "", "", "", "", "/contact", "/rooms"))
    return f"{host}{group}/{kind}/{property_id}{sub}"


def _swap_case(rng: random.Random, property_id: str) -> str:
    return property_id.upper() if rng.random() < 0.7 else property_id.title()


_BUILTIN: dict[str, Shapes] = {
    "cloudbeds": Shapes(
        new_id=lambda rng: "".join(rng.choices(_ALNUM, k=6)),  # every real code has 6
        url=_cloudbeds_url,  # cloudbeds ids are case-sensitive: no case variants
    ),
    "mews": Shapes(new_id=_mews_id, url=_mews_url, id_variant=lambda rng, i: i.upper()),
    "rms": Shapes(new_id=_rms_id, url=_rms_url, id_variant=lambda rng, i: i.lower()),
    "siteminder": Shapes(new_id=_siteminder_id, url=_siteminder_url, id_variant=_swap_case),
}

# Simple id alphabets tried, in order, for an engine without built-in shapes.
_GENERIC_IDS: tuple[Callable[[random.Random], str], ...] = (
    lambda rng: "".join(rng.choices(string.ascii_lowercase + string.digits, k=8)),
    lambda rng: str(rng.randrange(1000, 10**6)),
    _mews_id,
    lambda rng: f"{rng.getrandbits(64):016x}",
    lambda rng: "".join(rng.choices(string.ascii_lowercase, k=8)),
)


def _generic_shapes(engine: Engine) -> Shapes:
    probe = random.Random(engine.name)
    template = engine.booking_url.partition("://")[2] or engine.booking_url
    for new_id in _GENERIC_IDS:
        if all(engine.id_pattern.fullmatch(new_id(probe)) for _ in range(20)):
            return Shapes(new_id=new_id, url=lambda rng, i: template.replace("{id}", i))
    raise ConfigError(
        f"Engine {engine.name!r}: no generic id fits its id_pattern; add its line shapes to "
        "_BUILTIN in stages/tools/crawlgen.py to generate crawl files for it."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stages.tools.crawlgen",
        description="Write deterministic sample crawl files.",
    )
    parser.add_argument("--out", type=Path, default=Path("data/sources"), help="output folder")
    parser.add_argument("--lines", type=int, default=400, help="lines per file")
    parser.add_argument("--engine", help="only this engine (default: every engine in params)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    if args.lines < 0:
        parser.error("--lines must be 0 or more")
    try:
        params = load_params()
        engines = [params.engine(args.engine)] if args.engine else list(params.engines.values())
        for engine in engines:
            path = args.out / engine.file
            started = time.perf_counter()
            write_crawl_file(engine, path, args.lines, args.seed)
            seconds = time.perf_counter() - started
            rate = args.lines / seconds if seconds else 0.0
            print(f"{path}: {args.lines:,} lines in {seconds:.2f} s ({rate:,.0f} lines/s)")
    except PipelineError as exc:
        print(f"crawlgen: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
