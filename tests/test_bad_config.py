"""Bad configuration fails before any work, with one message that names the key to fix.

Every stage validates all of params.yaml first, so a mistake anywhere stops the pipeline at
its first stage, with nothing downloaded, loaded or written.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime

import pytest

from stages import download, export, ingest
from stages.errors import ConfigError
from stages.rules.config import SECTIONS, load_params
from stages.rules.patterns import can_match_an_id
from tests.support.pg import url_for_database

DATABASE_PASSWORD = "Cfg-Pw-0c8e51"
SEEN = datetime(2026, 8, 1, tzinfo=UTC)


def outputs(project) -> list[str]:
    """Every file the pipeline's stages may write, that exists (logs and the committed
    .gitignore files excluded)."""
    return sorted(
        str(path.relative_to(project.root))
        for folder in ("raw", "ingest", "exports", "published")
        for path in (project.root / "data" / folder).glob("*")
        if not path.name.startswith(".")
    )


def wrote_nothing(project, folder: str) -> bool:
    """No file, not even a temp file, under data/<folder> (its committed .gitignore aside)."""
    path = project.root / "data" / folder
    return not path.exists() or all(f.name == ".gitignore" for f in path.iterdir())


def fails_naming(capsys, stage_main, *keys: str, engine: str = "rms") -> str:
    """Run one stage in-process; it must exit 1, and its last line (the error: one line)
    must name every key."""
    assert stage_main(["--engine", engine]) == 1
    error = capsys.readouterr().err
    last = error.strip().splitlines()[-1]
    assert f"@{engine} failed: " in last, error
    for key in keys:
        assert key in last, error
    assert "Traceback" not in error
    return error


# --- engines --------------------------------------------------------------------------------


def _set(field, value):
    return lambda engine: engine.update({field: value})


@pytest.mark.parametrize(
    ("change", "keys"),
    [
        (_set("booking_urls", "https://x/{id}"), ["`engines.rms`", "booking_urls"]),
        (_set("id_case", "title"), ["`engines.rms.id_case`"]),
        (_set("hosts", "rmscloud.com"), ["`engines.rms.hosts`"]),
        (_set("url_patterns", ["^[^/]+/(?P<ident>\\d+)$"]), ["`engines.rms.url_patterns[0]`"]),
        (_set("booking_url", "https://bookings.rmscloud.com/"), ["`engines.rms.booking_url`"]),
        (lambda engine: engine.pop("display_name"), ["`engines.rms`", "display_name"]),
    ],
    ids=[
        "unknown-field",
        "bad-id-case",
        "hosts-not-a-list",
        "no-id-group",
        "no-id-placeholder",
        "missing-field",
    ],
)
def test_a_wrong_engine_entry_stops_the_first_stage(project, capsys, change, keys):
    project.edit_params(lambda p: change(p["engines"]["rms"]))
    fails_naming(capsys, download.main, *keys)
    assert outputs(project) == []


@pytest.mark.parametrize("field", ["url_patterns", "id_pattern"])
def test_an_invalid_regex_is_named_with_its_key(project, capsys, field):
    bad = "[0-9" if field == "id_pattern" else ["^[^/]+/(?P<id>[0-9+$"]
    project.edit_params(lambda p: p["engines"]["rms"].update({field: bad}))
    key = "engines.rms.id_pattern" if field == "id_pattern" else "engines.rms.url_patterns[0]"
    error = fails_naming(capsys, download.main, f"`{key}`", "not a valid regex")
    assert "unterminated" in error or "missing" in error


NEVER_MATCHING = [
    "[^\\s\\S]+",
    "a^b",
    "$[0-9]+",
    "[0-9]{0}",
    "",
    "(?:)",
    "x\\Zy",
    # word boundaries where they can never hold: between two word characters, between two
    # non-word ones, before a leading non-word character, \B beside the text's edge
    "a\\bb",
    "[0-9]+\\b[a-z]+",
    "[0-9]{6}\\B-",
    "-\\b-[0-9]+",
    "\\b-[0-9]+",
    "\\B[A-Z]{2}[0-9]+",
    "(?:hotel|inn)\\b[0-9]+",
    "\\b\\B[a-z]+",
]


@pytest.mark.parametrize("pattern", NEVER_MATCHING)
def test_an_id_pattern_that_can_never_match_is_refused(project, capsys, pattern):
    project.edit_params(lambda p: p["engines"]["rms"].update(id_pattern=pattern))
    fails_naming(capsys, download.main, "`engines.rms.id_pattern`", "can never match")


SATISFIABLE = [
    "[A-Za-z0-9]{2,10}",
    "[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}",
    "[0-9A-Fa-f]{16}|[0-9]+",
    "(?i)[a-z][a-z0-9_-]*",
    "(?=.*[0-9])[a-z0-9]{6,12}",  # a lookahead: undecided, so accepted
    "(?!admin$)[a-z]+",
    "([a-z])\\1[0-9]+",
    "\\bhotel\\d+\\b",
    "[A-Z]{2}\\b-[0-9]+",  # the boundary holds between the letter and the dash
    "[a-z0-9]+\\b[_-]?[0-9]+",  # `_` is a word character, `-` is not: only "a-1" matches
    "-\\B-[0-9]+",  # \B holds between two non-word characters
    "[a-z!]\\b[a-z!]",  # the class has both kinds: "a!" matches
    "!\\b(?:[a-z]|!)*\\B!",  # matches "!a!!" only: a repeat's first and last copies differ
    "(?:\\b[a-z]+-)+",  # a boundary inside a repeat: undecided, so accepted
    "(?:^a|b$){2}",  # matches only "ab": the branches must be mixed
    "[^\\x00-\\x7f]+",  # only non-ASCII text
    "\\d{3}(?:-\\d{2}){0,3}",
    "[\U0001f600-\U0001f64f]",
]


@pytest.mark.unit
@pytest.mark.parametrize("pattern", SATISFIABLE)
def test_the_never_match_check_accepts_every_pattern_that_can_match(pattern):
    assert can_match_an_id(re.compile(pattern))


@pytest.mark.unit
@pytest.mark.parametrize("pattern", NEVER_MATCHING)
def test_the_never_match_check_is_right_about_what_it_refuses(pattern):
    compiled = re.compile(pattern)
    samples = ["a", "ab", "0", "12", "x\ny", "aaa", "a0b1", "_", " ", "\n"]
    assert not any(compiled.fullmatch(text) for text in samples)
    assert not can_match_an_id(compiled)


# --- sections and targets -------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    ["/tmp/leads", "https://bucket.s3.amazonaws.com/x", "s3:/bucket/x", "s3://", "s3:// x/"],
)
def test_a_publish_target_that_is_not_an_s3_url_stops_the_first_stage(project, capsys, target):
    project.edit_params(lambda p: p["publish"].update(to=target))
    fails_naming(capsys, download.main, "`publish.to`", "s3://<bucket>")
    assert outputs(project) == []


def test_an_s3_source_without_a_bucket_is_named(project, capsys):
    project.edit_params(lambda p: p["source"].update(root="s3:///crawls"))
    fails_naming(capsys, download.main, "`source.root`")


@pytest.mark.parametrize(
    ("section", "name", "value"),
    [
        ("source", "retries", "two"),
        ("source", "retries", -1),
        ("ingest", "retries", 1.5),
        ("publish", "timeout", 0),
        ("source", "retry_delay", "soon"),
        ("export", "retry_delay", -5),
    ],
)
def test_a_retry_setting_that_is_not_a_number_is_named(project, capsys, section, name, value):
    project.edit_params(lambda p: p[section].update({name: value}))
    fails_naming(capsys, download.main, f"`{section}.{name}`")
    assert outputs(project) == []


@pytest.mark.parametrize(
    ("section", "name", "hint"),
    [
        ("ingest", "retires", "did you mean `ingest.retries`"),
        ("source", "retry_dealy", "did you mean `source.retry_delay`"),
        ("export", "rows_per_sheets", "did you mean `export.rows_per_sheet`"),
        ("publish", "too", "did you mean `publish.to`"),
        ("paths", "export", "did you mean `paths.exports`"),
        # a key of another section: named with the section that takes it
        ("source", "rows_per_sheet", "move it to `export.rows_per_sheet`"),
        ("export", "id_case", "move it to `engines.<name>.id_case`"),
        ("ingest", "to", "move it to `publish.to`"),
        ("paths", "timeout", "move it to `source.timeout` or `publish.timeout`"),
    ],
)
def test_an_unknown_key_is_named_with_the_nearest_valid_one_or_the_section_that_takes_it(
    project, capsys, section, name, hint
):
    project.edit_params(lambda p: p[section].update({name: 3}))
    fails_naming(capsys, download.main, f"`{section}.{name}`", hint)
    assert outputs(project) == []


def test_an_unknown_section_is_named_with_the_nearest_valid_one(project, capsys):
    project.edit_params(lambda p: p.update(exports={"rows_per_sheet": 100}))
    fails_naming(capsys, download.main, "`exports`", "did you mean `export`")


def test_an_unknown_engine_field_is_named_with_the_nearest_valid_one(project, capsys):
    project.edit_params(lambda p: p["engines"]["mews"].update(id_patern="[0-9]+"))
    fails_naming(capsys, download.main, "`engines.mews.id_patern`", "`engines.mews.id_pattern`")


def test_a_section_key_at_the_top_level_is_named_with_its_section(project, capsys):
    project.edit_params(lambda p: p.update(rows_per_sheet=5))
    fails_naming(capsys, download.main, "`rows_per_sheet`", "`export.rows_per_sheet`")


# --- the file itself ------------------------------------------------------------------------


def edit_text(project, old: str, new: str) -> int:
    """Replace the first `old` in params.yaml with `new`; the 1-based line where it was."""
    path = project.root / "params.yaml"
    text = path.read_text(encoding="utf-8")
    assert old in text, text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return text[: text.index(old)].count("\n") + 1


def test_a_key_given_twice_is_named_with_both_lines(project, capsys):
    line = edit_text(project, "  retries: 2\n", "  retries: 2\n  retries: 5\n")
    key = "`source.retries` is given twice"
    fails_naming(capsys, download.main, key, f"(lines {line} and {line + 1})")
    assert outputs(project) == []


def test_an_engine_rule_given_twice_is_named_with_both_lines(project, capsys):
    first = edit_text(project, "  rms:\n", "  rms:\n    id_case: lower\n") + 1
    lines = (project.root / "params.yaml").read_text().splitlines()
    second = next(n for n in range(first + 1, len(lines) + 1) if "id_case" in lines[n - 1])
    key = "`engines.rms.id_case` is given twice"
    fails_naming(capsys, download.main, key, f"(lines {first} and {second})")


def test_a_tab_in_params_yaml_is_one_line_naming_the_file_line_and_column(project, capsys):
    line = edit_text(project, "  root: data/sources", "\troot: data/sources")
    where = f"params.yaml, line {line}, column 1"
    error = fails_naming(capsys, download.main, where, "replace it with spaces")
    assert str(project.root) not in error
    assert outputs(project) == []


def test_params_yaml_that_is_not_yaml_is_one_line_naming_where(project, capsys):
    line = edit_text(project, "  root: data/sources\n", "  root: [data/sources\n")
    error = fails_naming(capsys, download.main, "failed: params.yaml, line")
    assert f"line {line}," in error or f"line {line + 1}," in error
    assert str(project.root) not in error


@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("source: {root: a, root: b}\n", "`source.root` is given twice (lines 1 and 1)"),
        ("engines:\n  rms: {}\n  rms: {}\n", "`engines.rms` is given twice (lines 2 and 3)"),
        ("source:\n  root: a\nsource: {}\n", "`source` is given twice (lines 1 and 3)"),
        ("source:\n\troot: a\n", "params.yaml, line 2, column 1: a tab character"),
        ("source:\n  root: a\n\tretries: 2\n", "params.yaml, line 3, column 1: a tab"),
    ],
    ids=["flow-mapping", "engine", "section", "tab-indent", "tab-after-a-key"],
)
def test_the_file_is_read_strictly_before_its_settings(tmp_path, text, error):
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_params(tmp_path)
    assert error in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.unit
def test_the_same_value_under_two_keys_and_merge_keys_are_not_duplicates(tmp_path):
    text = "source: &s {root: data/sources}\nengines: {}\npublish: {<<: {to: ''}, retries: 1}\n"
    (tmp_path / "params.yaml").write_text(text)
    assert load_params(tmp_path).publish.retries == 1


@pytest.mark.parametrize(
    ("section", "name", "value", "fix"),
    [
        ("export", "rows_per_sheet", "abc", "a whole number from 1 to 1048575"),
        ("export", "rows_per_sheet", 0, "a whole number from 1 to 1048575"),
        ("export", "rows_per_sheet", 2_000_000, "a whole number from 1 to 1048575"),
        ("export", "not_seen_loads", 0, "a whole number, 1 or more"),
        ("ingest", "max_rejected_share", 1.5, "a number from 0 to 1"),
        ("ingest", "min_previous_share", "half", "a number from 0 to 1"),
        ("ingest", "source_tag", "", "is empty"),
        ("export", "source_tag", 2026, "use text"),
        ("paths", "raw", None, "use text"),
        ("publish", "retries", True, "a whole number, 0 or more"),
        ("source", "timeout", ".5", "a number above 0"),
    ],
)
def test_every_value_is_checked_before_the_first_stage_does_any_work(
    project, capsys, section, name, value, fix
):
    project.edit_params(lambda p: p[section].update({name: value}))
    fails_naming(capsys, download.main, f"`{section}.{name}`", fix)
    assert outputs(project) == []


# Every float setting of every section: a timeout, a delay, a share.
FLOAT_SETTINGS = [
    f"{section}.{setting.name}"
    for section, kind in SECTIONS.items()
    for setting in dataclasses.fields(kind)
    if setting.type in (float, "float")
]


@pytest.mark.unit
@pytest.mark.parametrize("key", FLOAT_SETTINGS)
@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan"])
def test_a_float_setting_that_is_infinite_or_not_a_number_is_refused(tmp_path, key, value):
    section, name = key.split(".")
    settings = {"source": ["root: data/sources"]}
    settings.setdefault(section, []).append(f"{name}: {value}")
    text = "".join(f"{part}: {{{', '.join(lines)}}}\n" for part, lines in settings.items())
    (tmp_path / "params.yaml").write_text(text + "engines: {}\n")
    with pytest.raises(ConfigError) as caught:
        load_params(tmp_path)
    assert f"`{key}` is " in str(caught.value)
    assert "use a finite number" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_bad_export_setting_stops_dvc_repro_at_the_download(project):
    project.edit_params(lambda p: p["export"].update(rows_per_sheet="abc"))
    result = project.dvc("repro", "export@rms", check=False)
    assert result.returncode != 0
    assert project.ran_stages(result.stdout) == ["download@rms"]
    assert "`export.rows_per_sheet` is 'abc'" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert outputs(project) == []


@pytest.mark.unit
def test_settings_left_out_take_their_defaults(tmp_path):
    (tmp_path / "params.yaml").write_text("source: {root: data/sources}\nengines: {}\n")
    params = load_params(tmp_path)
    assert params.ingest.max_rejected_share == 0.5 and params.ingest.min_previous_share == 0.5
    assert params.export.not_seen_loads == 2 and params.export.rows_per_sheet == 1_048_575
    assert params.publish.to == "" and params.source.retry_policy.retries == 2
    assert params.path("raw", "rms", ".txt") == tmp_path / "data/raw/rms.txt"


def test_settings_are_typed_and_frozen(project):
    params = load_params(project.root)
    assert not hasattr(params, "raw")
    assert isinstance(params.export.rows_per_sheet, int)
    assert isinstance(params.source.retry_delay, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.export.rows_per_sheet = 5  # type: ignore[misc]


def test_a_missing_source_file_stops_dvc_before_any_stage_runs(project):
    (project.root / "data/sources/rms.txt").unlink()
    result = project.dvc("repro", "publish@rms", check=False)
    assert result.returncode != 0
    assert "data/sources/rms.txt" in result.stderr + result.stdout
    assert project.ran_stages(result.stdout) == []
    assert outputs(project) == []


def test_bad_params_stop_dvc_repro_at_its_first_stage(project):
    project.edit_params(lambda p: p["engines"]["mews"].update(id_pattern="[^\\s\\S]"))
    result = project.dvc("repro", check=False)
    assert result.returncode != 0
    assert "`engines.mews.id_pattern`" in result.stdout + result.stderr
    assert len(project.ran_stages(result.stdout)) == 1
    assert outputs(project) == []


# --- the database ---------------------------------------------------------------------------


def test_an_unreachable_database_fails_the_ingest_before_it_reads_a_line(
    project, monkeypatch, capsys
):
    url = f"postgresql://leads:{DATABASE_PASSWORD}@127.0.0.1:1/leads"
    monkeypatch.setenv("DATABASE_URL", url)
    project.write_raw("rms", "12345\n", SEEN)
    error = fails_naming(capsys, ingest.main, "postgresql://leads:***@127.0.0.1:1/leads")
    assert "reachable" in error and DATABASE_PASSWORD not in error
    assert wrote_nothing(project, "ingest")


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://leads:{DATABASE_PASSWORD}@[::1/leads",
        f"postgresql://leads:{DATABASE_PASSWORD.replace('-', ' ', 1)}@127.0.0.1/leads",
        f"mysql://leads:{DATABASE_PASSWORD}@127.0.0.1/leads",
        f"postgresql://leads:{DATABASE_PASSWORD}@127.0.0.1:notaport/leads",
        f"postgresql://leads:{DATABASE_PASSWORD}@127.0.0.1/leads?nosuchoption=1",
        f"host=127.0.0.1 password={DATABASE_PASSWORD} port",
    ],
    ids=["ipv6-unclosed", "space", "not-libpq", "port", "unknown-option", "key-value"],
)
def test_a_malformed_database_url_is_named_without_its_password(project, monkeypatch, capsys, url):
    monkeypatch.setenv("DATABASE_URL", url)
    project.write_raw("rms", "12345\n", SEEN)
    error = fails_naming(capsys, ingest.main, "DATABASE_URL")
    assert DATABASE_PASSWORD not in error and DATABASE_PASSWORD[4:] not in error
    assert wrote_nothing(project, "ingest")


def test_a_malformed_database_url_stops_the_export_too(project, monkeypatch, capsys):
    (project.root / "data/ingest").mkdir(parents=True, exist_ok=True)
    (project.root / "data/ingest/rms.json").write_text('{"database": {}}')
    monkeypatch.setenv("DATABASE_URL", f"host=127.0.0.1 password={DATABASE_PASSWORD} port")
    error = fails_naming(capsys, export.main, "DATABASE_URL")
    assert DATABASE_PASSWORD not in error
    assert wrote_nothing(project, "exports")


def test_a_database_url_naming_a_missing_database_is_refused(
    project, pg_server, monkeypatch, capsys
):
    monkeypatch.setenv("DATABASE_URL", url_for_database(pg_server, "no_such_leads_db"))
    project.write_raw("rms", "12345\n", SEEN)
    fails_naming(capsys, ingest.main, "DATABASE_URL", "no_such_leads_db")
    assert wrote_nothing(project, "ingest")
