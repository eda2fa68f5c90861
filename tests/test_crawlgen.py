"""The sample crawl-file generator: deterministic, realistic, and in step with data/sources."""

from __future__ import annotations

import collections
import dataclasses
import re
from pathlib import Path

import pytest

from stages.errors import ConfigError
from stages.rules.config import load_params
from stages.rules.crawl import BLANK, LineParser, Reject, iter_lines
from stages.rules.crawl_outcome import is_placeholder
from stages.tools.crawlgen import DEFAULT_SEED, generate_lines, main, write_crawl_file

pytestmark = pytest.mark.unit  # pure logic: no services, no other programs

ROOT = Path(__file__).resolve().parents[1]
PARAMS = load_params(ROOT)
ENGINES = sorted(PARAMS.engines)
SAMPLES = ROOT / "data" / "sources"


def outcomes(engine: str, path: Path) -> list:
    parser = LineParser(PARAMS.engines[engine])
    with path.open("rb") as handle:
        return [parser.parse(raw) for raw in iter_lines(handle)]


@pytest.mark.parametrize("engine", ENGINES)
def test_same_seed_gives_the_same_bytes(engine, tmp_path):
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    write_crawl_file(PARAMS.engines[engine], first, 2000, seed=7)
    write_crawl_file(PARAMS.engines[engine], second, 2000, seed=7)
    assert first.read_bytes() == second.read_bytes()


def test_another_seed_gives_other_lines():
    engine = PARAMS.engines["mews"]
    assert list(generate_lines(engine, 200, seed=1)) != list(generate_lines(engine, 200, seed=2))


@pytest.mark.parametrize("engine", ENGINES)
def test_file_has_exactly_the_lines_asked_for(engine, tmp_path):
    path = tmp_path / "crawl.txt"
    write_crawl_file(PARAMS.engines[engine], path, 1234)
    assert path.read_bytes().count(b"\n") == 1234
    assert len(outcomes(engine, path)) == 1234


@pytest.mark.parametrize("engine", ENGINES)
def test_bundled_sample_is_what_the_command_writes(engine, tmp_path):
    sample = SAMPLES / PARAMS.engines[engine].file
    lines = sample.read_bytes().count(b"\n")
    regenerated = tmp_path / "regenerated.txt"
    write_crawl_file(PARAMS.engines[engine], regenerated, lines, DEFAULT_SEED)
    assert sample.read_bytes() == regenerated.read_bytes(), (
        "run `python -m stages.tools.crawlgen --out data/sources --lines 400`"
        " after changing crawlgen"
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_every_sample_line_gets_exactly_one_outcome(engine):
    sample = SAMPLES / PARAMS.engines[engine].file
    results = outcomes(engine, sample)
    assert len(results) == sample.read_bytes().count(b"\n")
    assert all(type(r) in (str, tuple) or isinstance(r, Reject) or r is BLANK for r in results)


@pytest.mark.parametrize("engine", ENGINES)
def test_generated_file_mixes_ids_repeats_blanks_and_junk(engine, tmp_path):
    path = tmp_path / "crawl.txt"
    write_crawl_file(PARAMS.engines[engine], path, 5000)
    results = outcomes(engine, path)
    accepted = [r for r in results if type(r) is str]
    rejected = [r for r in results if isinstance(r, Reject)]
    repeat_share = 1 - len(set(accepted)) / len(accepted)
    assert len(accepted) > 0.9 * len(results)
    assert 0.2 < repeat_share < 0.4
    assert 0.01 < results.count(BLANK) / len(results) < 0.04
    assert 0.005 < len(rejected) / len(results) < 0.04
    assert Reject.WRONG_HOST in rejected


@pytest.mark.parametrize("engine", ENGINES)
def test_generated_lines_come_in_every_shape(engine):
    lines = list(generate_lines(PARAMS.engines[engine], 3000))
    assert any(line.startswith("https://") and "?" in line for line in lines)
    assert any(line.startswith("https://") and "#" in line for line in lines)
    assert any(re.match(r"[a-z0-9-]+\.[a-z.]+/", line, re.IGNORECASE) for line in lines)
    assert any("/" not in line and "." not in line and line.strip() for line in lines)


@pytest.mark.parametrize("engine", ["mews", "rms", "siteminder"])
def test_case_variants_of_one_id_appear(engine):
    parser = LineParser(PARAMS.engines[engine])
    spellings = collections.defaultdict(set)
    for line in generate_lines(PARAMS.engines[engine], 3000):
        property_id = parser.parse(line.encode())
        if type(property_id) is str and property_id.lower() in line.lower():
            start = line.lower().index(property_id.lower())
            spellings[property_id].add(line[start : start + len(property_id)])
    assert any(len(spelled) > 1 for spelled in spellings.values())


def test_engine_without_built_in_shapes_gets_generic_lines():
    engine = dataclasses.replace(
        PARAMS.engines["cloudbeds"],
        name="newengine",
        hosts=("newengine.example",),
        url_patterns=(re.compile(r"^[^/]+/book/(?P<id>[^/]+)$"),),
        id_pattern=re.compile("[0-9]{4,7}"),
        booking_url="https://newengine.example/book/{id}",
    )
    parser = LineParser(engine)
    results = [parser.parse(line.encode()) for line in generate_lines(engine, 500)]
    assert sum(type(r) is str for r in results) > 0.9 * len(results)


def test_engine_whose_ids_no_generic_alphabet_fits_is_a_config_error():
    engine = dataclasses.replace(
        PARAMS.engines["cloudbeds"], name="oddengine", id_pattern=re.compile("ZZ[0-9]{3}")
    )
    with pytest.raises(ConfigError, match="oddengine"):
        next(generate_lines(engine, 10))


def test_command_writes_one_engine_under_its_file_name(tmp_path, monkeypatch):
    monkeypatch.setenv("CRAWL_PIPELINE_ROOT", str(ROOT))
    assert main(["--out", str(tmp_path), "--lines", "50", "--engine", "cloudbeds"]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["cloudbeds_deduped.txt"]
    assert (tmp_path / "cloudbeds_deduped.txt").read_bytes().count(b"\n") == 50


def test_command_writes_every_engine_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv("CRAWL_PIPELINE_ROOT", str(ROOT))
    assert main(["--out", str(tmp_path), "--lines", "10"]) == 0
    expected = sorted(engine.file for engine in PARAMS.engines.values())
    assert sorted(p.name for p in tmp_path.iterdir()) == expected


def test_command_names_an_unknown_engine(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CRAWL_PIPELINE_ROOT", str(ROOT))
    assert main(["--out", str(tmp_path), "--engine", "nosuch"]) == 1
    assert "nosuch" in capsys.readouterr().err


REAL_SHAPES = {
    "cloudbeds": [
        r"us2\.cloudbeds\.com/",
        r"/reservas/",
        r"/booking/reservation/",
        r"/widget/load/",
    ],
    "mews": [r"\?ids=", r"/distributor/[0-9a-fA-F-]{36};[0-9a-fA-F-]{36}"],
    "rms": [r"ibe\d+\.rmscloud\.com/\w+/1\b", r"/Index/\w+/\d+/\d+"],
    "siteminder": [r"-group/properties/", r"/properties/[\w-]+/contact", r"littlehotelier\.com"],
}


@pytest.mark.parametrize("engine", ENGINES)
def test_generated_lines_hold_the_shapes_of_real_crawls(engine):
    lines = list(generate_lines(PARAMS.engines[engine], 3000))
    for shape in REAL_SHAPES[engine]:
        assert any(re.search(shape, line) for line in lines), shape
    assert any(line.startswith(('"', "href=", "(", "&quot;", "$booking")) for line in lines)


def test_generated_cloudbeds_api_lines_are_rejected_as_junk():
    parser = LineParser(PARAMS.engines["cloudbeds"])
    api = [
        line for line in generate_lines(PARAMS.engines["cloudbeds"], 5000) if "/booking/r" in line
    ]
    api = [line for line in api if "/booking/reservation/" not in line]
    assert api and all(parser.parse(line.encode()) == Reject.NO_ID for line in api)


@pytest.mark.parametrize("engine", ENGINES)
def test_generated_lines_hold_export_rows_several_urls_and_escaped_urls(engine):
    lines = list(generate_lines(PARAMS.engines[engine], 5000))
    assert any(re.search(r"\t200$|,200$|;301$|\|200$", line) for line in lines)
    assert any(line.count("://") >= 2 and "google.com/url" not in line for line in lines)
    assert any("\\/" in line for line in lines)
    assert any(line in ("url", "url\tstatus", '"url","status"') for line in lines)


@pytest.mark.parametrize("engine", ENGINES)
def test_generated_export_rows_and_escaped_urls_give_ids(engine):
    parser = LineParser(PARAMS.engines[engine])
    shaped = [
        line
        for line in generate_lines(PARAMS.engines[engine], 5000)
        if re.search(r"\t200|,200|;301|\|200|\\/|google\.com/url", line)
    ]
    assert shaped
    assert all(type(parser.parse(line.encode())) in (str, tuple) for line in shaped)


def test_generated_cloudbeds_lines_use_regional_language_tags():
    lines = list(generate_lines(PARAMS.engines["cloudbeds"], 5000))
    assert any(re.search(r"/(es-419|zh-Hant-TW|de-CH-1996|pt_BR)/", line) for line in lines)


WRAPPED = r"web\.archive\.org|bing\.com/ck|ampproject\.org|archive\.ph|murl=|uddg=|google\.com/url"


@pytest.mark.parametrize("engine", ENGINES)
def test_generated_lines_hold_wrappers_and_columns_that_give_ids(engine):
    parser = LineParser(PARAMS.engines[engine])
    lines = list(generate_lines(PARAMS.engines[engine], 20000))
    wrapped = [line for line in lines if re.search(WRAPPED, line)]
    columns = [line for line in lines if line.endswith((",Sydney", " text/html"))]
    assert len({found for line in wrapped for found in re.findall(WRAPPED, line)}) >= 6
    assert columns
    assert all(type(parser.parse(line.encode())) in (str, tuple) for line in wrapped + columns)


@pytest.mark.parametrize("engine", ENGINES)
def test_generated_placeholders_and_site_pages_where_an_id_belongs_are_junk(engine):
    placeholders = PARAMS.engines[engine].site_pages | crawlgen_template_words()
    words = "|".join(map(re.escape, sorted(placeholders)))
    where = re.compile(
        rf"/(?:reservation|reservas|properties|reservations|distributor|index|rmscloud\.com)/(?:{words})(?:/|$)",
        re.I,
    )
    parser = LineParser(PARAMS.engines[engine])
    junk = [line for line in generate_lines(PARAMS.engines[engine], 20000) if where.search(line)]
    assert junk
    assert all(isinstance(parser.parse(line.encode()), Reject) for line in junk)


def crawlgen_template_words() -> frozenset[str]:
    from stages.tools.crawlgen_junk import TEMPLATE_WORDS

    return TEMPLATE_WORDS


def test_every_word_crawlgen_writes_where_an_id_belongs_is_a_placeholder():
    assert all(is_placeholder(word) for word in crawlgen_template_words())
