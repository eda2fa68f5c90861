"""The one place that knows the project root, params.yaml and the settings it holds.

`load_params()` reads params.yaml once into frozen, typed objects, one per section (`Source`,
`Paths`, `Ingest`, `Export`, `Publish`, and an `Engine` per engine), and validates every key
and value before a stage does any work: an unknown key is named with the nearest valid one, a
value of the wrong type or out of range is named with the range. Stage code reads attributes
(`params.export.rows_per_sheet`), never the YAML dict.

Adding a setting is one line in its section's class below: `name: type = setting(default, ...)`
(stages.rules.settings holds the validator; stages.rules.patterns the id-pattern check).
"""

from __future__ import annotations

import os
import re
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from stages.errors import ConfigError
from stages.rules.patterns import bare_id_pattern, id_pattern, url_patterns
from stages.rules.settings import (
    as_text,
    build,
    declared_keys,
    read_yaml,
    refuse_unknown,
    setting,
)

ID_CASES = ("preserve", "lower", "upper")
ENGINE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# Excel's 1,048,576 rows per sheet, less the header row.
MAX_ROWS_PER_SHEET = 1_048_575
# An S3 bucket name: today's rules allow 3-63 of [a-z0-9.-]; legacy us-east-1 buckets may also
# hold capitals and underscores, so only what no bucket can hold is refused.
S3_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$")


def project_root() -> Path:
    """The folder holding dvc.yaml: DVC runs stage commands there, tests chdir into copies."""
    start = Path(os.environ.get("CRAWL_PIPELINE_ROOT", Path.cwd())).resolve()
    for folder in (start, *start.parents):
        if (folder / "dvc.yaml").is_file():
            return folder
    raise ConfigError(f"No dvc.yaml found in {start} or above; run the command from the project.")


# The environment variables that name a database server: DATABASE_URL, or libpq's own. When
# none is set the pipeline uses its embedded PostgreSQL (stages.store.db.database_url).
DATABASE_VARIABLES = ("DATABASE_URL", "PGHOST", "PGHOSTADDR", "PGSERVICE")


def database_configured() -> bool:
    """True when the environment names a database server (not the embedded default)."""
    return any(os.environ.get(name, "").strip() for name in DATABASE_VARIABLES)


@dataclass(frozen=True, kw_only=True)
class _Retrying:
    """A section whose transient failures are retried: `retries` more attempts, the first after
    `retry_delay` seconds, doubling up to `max_retry_delay`."""

    retries: int = setting(1, least=0)
    retry_delay: float = setting(5.0, least=0)
    max_retry_delay: float = setting(600.0, least=0)

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(self.retries, self.retry_delay, self.max_retry_delay)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a transient failure is retried (seconds)."""

    retries: int
    first_delay: float
    max_delay: float = 600.0


# --- the sections -----------------------------------------------------------------------------


def _location(key: str, value: Any) -> str:
    """A folder, s3://<bucket>/<prefix> or remote://<dvc remote>/<prefix>, without trailing /."""
    text = as_text(key, value)
    if text.startswith(("s3://", "remote://")) and not _names_a_bucket(text):
        raise ConfigError(
            f"params.yaml: `{key}` is {text!r}; name a bucket (s3://<bucket>/<prefix>) or a DVC "
            "remote (remote://<name>)."
        )
    if "://" in text and not text.startswith(("s3://", "remote://")):
        raise ConfigError(
            f"params.yaml: `{key}` is {text!r}; use a folder, s3://<bucket>/<prefix> or "
            "remote://<dvc remote>."
        )
    if not text:
        raise ConfigError(f"params.yaml: `{key}` must name a folder or remote://<remote>.")
    return text.rstrip("/") or text


def _publish_target(key: str, value: Any) -> str:
    """Empty (publish nothing), s3://<bucket>/<prefix>/ or remote://<dvc remote>/<prefix>."""
    text = "" if value is None else as_text(key, value)
    if text and not _names_a_bucket(text):
        raise ConfigError(
            f"params.yaml: `{key}` is {text!r}; use s3://<bucket>/<prefix>/, "
            "remote://<dvc remote>/<prefix>, or leave it empty to publish nothing."
        )
    return text


def _non_empty(key: str, value: Any) -> str:
    text = as_text(key, value)
    if not text.strip():
        raise ConfigError(f"params.yaml: `{key}` is empty; give it a value.")
    return text


@dataclass(frozen=True, kw_only=True)
class _Remote(_Retrying):
    """A section that talks to object storage: more patient retries, and a timeout per request."""

    retries: int = setting(2, least=0)
    retry_delay: float = setting(60.0, least=0)
    timeout: float = setting(60.0, above=0)


@dataclass(frozen=True, kw_only=True)
class Source(_Remote):
    """`source`: where the crawl files are and how patiently they are fetched."""

    root: str = setting(parse=_location)


@dataclass(frozen=True, kw_only=True)
class Paths:
    """`paths`: the folders of the stages' outputs, relative to the project root."""

    raw: str = setting("data/raw", parse=_non_empty)
    ingest: str = setting("data/ingest", parse=_non_empty)
    exports: str = setting("data/exports", parse=_non_empty)
    published: str = setting("data/published", parse=_non_empty)
    metrics: str = setting("data/metrics", parse=_non_empty)  # in git: dvc metrics
    loads: str = setting("data/loads", parse=_non_empty)  # in git: dvc plots


@dataclass(frozen=True, kw_only=True)
class Ingest(_Retrying):
    """`ingest`: the tag added to each lead's sources, retries, and the collapse guard."""

    source_tag: str = setting("commoncrawl", parse=_non_empty)
    max_rejected_share: float = setting(0.5, least=0, most=1)
    min_previous_share: float = setting(0.5, least=0, most=1)
    parse_processes: int = setting(0, least=0, most=64)  # 0: one per CPU (large files only)


@dataclass(frozen=True, kw_only=True)
class Export(_Retrying):
    """`export`: which leads go into the workbook and how it is laid out."""

    source_tag: str = setting("")
    rows_per_sheet: int = setting(MAX_ROWS_PER_SHEET, least=1, most=MAX_ROWS_PER_SHEET)
    not_seen_loads: int = setting(2, least=1)


@dataclass(frozen=True, kw_only=True)
class Publish(_Remote):
    """`publish`: where workbooks are uploaded (empty: nowhere)."""

    to: str = setting("", parse=_publish_target)


def _hosts(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(h, str) for h in value):
        raise ConfigError(f"params.yaml: `{key}` must be a non-empty list of host names.")
    return tuple(host.lower().strip(".") for host in value)


def _id_separator(key: str, value: Any) -> str:
    text = "" if value is None else as_text(key, value)
    if any(char.isalnum() or char.isspace() for char in text):
        raise ConfigError(
            f"params.yaml: `{key}` must be punctuation that splits ids, such as ';,'."
        )
    return text


def _booking_url(key: str, value: Any) -> str:
    text = as_text(key, value)
    if "{id}" not in text:
        raise ConfigError(f"params.yaml: `{key}` must contain the placeholder {{id}}.")
    return text


def _site_pages(key: str, value: Any) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(w, str) and w for w in value):
        raise ConfigError(f"params.yaml: `{key}` must be a list of path words (contact, rooms).")
    return frozenset(word.lower() for word in value)


@dataclass(frozen=True, kw_only=True)
class Engine:
    """One booking engine: where its crawl file is and how a line becomes a property id."""

    name: str = field(metadata={"internal": True})  # the key under `engines`
    file: str = setting(parse=_non_empty)
    display_name: str = setting(parse=_non_empty)
    hosts: tuple[str, ...] = setting(parse=_hosts)
    url_patterns: tuple[re.Pattern[str], ...] = setting(parse=url_patterns)
    id_pattern: re.Pattern[str] = setting(parse=id_pattern)
    id_case: str = setting("preserve", choices=ID_CASES)
    booking_url: str = setting(parse=_booking_url)
    # Characters that separate several ids in one id (Mews `<uuid>;<uuid>`); "" for none.
    id_separator: str = setting("", parse=_id_separator)
    # What a line that is a bare id alone must fully match, when stricter than id_pattern
    # (RMS: `200` alone is a status code, in a URL's client position a client id).
    bare_id_pattern: re.Pattern[str] | None = setting(None, parse=bare_id_pattern)
    # Path words of the engine's own site pages in the id position, never an id (any case).
    site_pages: frozenset[str] = setting(frozenset(), parse=_site_pages)

    def canonical_url(self, property_id: str) -> str:
        return self.booking_url.replace("{id}", property_id)


# Where each per-engine file is declared in dvc.yaml: as an `out` or a `metric` of a stage kind,
# or not at all (records of a run that DVC must not hash). tests/test_dvc_native.py holds
# dvc.yaml's outs and metrics to exactly these.
def _file(folder: str, suffix: str, *, out: str = "", metric: str = "") -> Any:
    return field(metadata={"folder": folder, "suffix": suffix, "out": out, "metric": metric})


@dataclass(frozen=True)
class EngineFiles:
    """Every file the pipeline keeps for one engine, as absolute paths (params `paths` folder +
    `<engine><suffix>`): the one place that names them (`Params.files`)."""

    raw: Path = _file("raw", ".txt", out="download")  # the crawl file
    source: Path = _file("raw", ".meta.json", out="download")  # its identity: ingest's dep
    download_record: Path = _file("raw", ".download.json")  # when, how long, attempts
    rejects: Path = _file("ingest", ".rejects.tsv", out="ingest")
    marker: Path = _file("ingest", ".json")  # counts and database fingerprint
    loads: Path = _file("loads", ".csv", out="ingest")  # load history, in git: dvc plots
    workbook: Path = _file("exports", ".xlsx", out="export")
    export_record: Path = _file("exports", ".json")  # rows, sheets, the snapshot it read
    metrics: Path = _file("metrics", ".json", metric="export")  # in git: dvc metrics
    published: Path = _file("published", ".json")  # what publish uploaded, and where


@dataclass(frozen=True)
class Params:
    """params.yaml, validated: one typed object per section, engines by name."""

    root: Path
    source: Source
    paths: Paths = field(default_factory=Paths)
    ingest: Ingest = field(default_factory=Ingest)
    export: Export = field(default_factory=Export)
    publish: Publish = field(default_factory=Publish)
    engines: dict[str, Engine] = field(default_factory=dict)

    @property
    def source_root(self) -> str:
        return self.source.root

    def path(self, kind: str, engine: str, suffix: str) -> Path:
        """data/<kind>/<engine><suffix>, with the folder taken from params `paths`."""
        return self.root / getattr(self.paths, kind) / f"{engine}{suffix}"

    def files(self, engine: str) -> EngineFiles:
        """Every per-engine file of `engine` (EngineFiles), under this project's root."""
        return EngineFiles(
            **{
                spec.name: self.path(spec.metadata["folder"], engine, spec.metadata["suffix"])
                for spec in fields(EngineFiles)
            }
        )

    def engine(self, name: str) -> Engine:
        try:
            return self.engines[name]
        except KeyError:
            known = ", ".join(sorted(self.engines)) or "none"
            raise ConfigError(
                f"Unknown engine {name!r}: params.yaml `engines` has {known}."
            ) from None


# Sections that are one typed object each (`engines` is a mapping of them).
SECTIONS: dict[str, type] = {
    "source": Source,
    "paths": Paths,
    "ingest": Ingest,
    "export": Export,
    "publish": Publish,
}


# Every section's keys, so a key in the wrong section is named with the one that takes it.
_KEYS: dict[str, list[str]] = {
    **{name: declared_keys(kind) for name, kind in SECTIONS.items()},
    "engines.<name>": declared_keys(Engine),
}


# The last params.yaml read, by project root and text: validating 4 engines' rules costs a
# stage more start-up than parsing the file, and a stage reads it twice (its own settings, then
# the run history's marker path). Keyed on the text, so an edited file is read again.
_last_loaded: list[Any] = []


def load_params(root: Path | None = None) -> Params:
    """Read and validate params.yaml of the project at `root` (default: the current project).

    Raises ConfigError naming the key (`section.name`) and the fix for: a missing or invalid
    file (with its line and column), a key given twice, an unknown section or key (with the
    section that takes it, or the nearest valid name), a missing required key, a value of the
    wrong type or out of range, and an engine rule that cannot work. Reading an
    unchanged file again gives back the same (frozen) Params.
    """
    root = root or project_root()
    path = root / "params.yaml"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing.") from None
    except UnicodeDecodeError:
        raise ConfigError("params.yaml is not UTF-8 text; save it as UTF-8.") from None
    if _last_loaded and _last_loaded[0] == (root, text):
        return _last_loaded[1]  # a stage and its run history read the same file
    # Named as every other settings error names it: relative to the project root.
    raw = read_yaml(Path("params.yaml"), text) or {}
    if not isinstance(raw, dict):
        raise ConfigError(
            "params.yaml must be a mapping of sections (source, paths, engines, ...)."
        )
    refuse_unknown("", raw, [*SECTIONS, "engines"], _KEYS)
    sections = {
        name: build(kind, raw.get(name, MISSING), name, elsewhere=_KEYS)
        for name, kind in SECTIONS.items()
    }
    engines = raw.get("engines")
    if not isinstance(engines, dict):
        raise ConfigError("params.yaml: `engines` must be a mapping of engine name to its rules.")
    params = Params(
        root=root,
        engines={name: _engine(name, spec) for name, spec in engines.items()},
        **sections,
    )
    _last_loaded[:] = [(root, text), params]
    return params


def _engine(name: Any, spec: Any) -> Engine:
    key = f"engines.{name}"
    if not isinstance(name, str) or not ENGINE_NAME.match(name):
        raise ConfigError(f"params.yaml: `{key}`: engine names are lower-case letters, digits, _.")
    return build(Engine, spec, key, elsewhere=_KEYS, name=name)


def _names_a_bucket(location: str) -> bool:
    """Whether an s3:// or remote:// location names a valid bucket or a remote."""
    if location.startswith("remote://"):
        return bool(location.removeprefix("remote://").partition("/")[0])
    if location.startswith("s3://"):
        return bool(S3_BUCKET.match(location.removeprefix("s3://").partition("/")[0]))
    return False
