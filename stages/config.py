"""The one place that knows the project root, params.yaml and the paths derived from it.

Every stage reads its settings through `load_params()`, which validates them before any work
is done, so a typo in params.yaml fails with the key's name instead of half-way through a run.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from stages.errors import ConfigError

ID_CASES = ("preserve", "lower", "upper")
ENGINE_FIELDS = {
    "file",
    "display_name",
    "hosts",
    "url_patterns",
    "id_pattern",
    "id_case",
    "booking_url",
}
ENGINE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def project_root() -> Path:
    """The folder holding dvc.yaml: DVC runs stage commands there, tests chdir into copies."""
    start = Path(os.environ.get("CRAWL_PIPELINE_ROOT", Path.cwd())).resolve()
    for folder in (start, *start.parents):
        if (folder / "dvc.yaml").is_file():
            return folder
    raise ConfigError(f"No dvc.yaml found in {start} or above; run the command from the project.")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a transient failure is retried."""

    retries: int
    first_delay: float
    max_delay: float = 600.0


@dataclass(frozen=True)
class Engine:
    """One booking engine: where its crawl file is and how a line becomes a property id."""

    name: str
    file: str
    display_name: str
    hosts: tuple[str, ...]
    url_patterns: tuple[re.Pattern[str], ...]
    id_pattern: re.Pattern[str]
    id_case: str
    booking_url: str

    def canonical_url(self, property_id: str) -> str:
        return self.booking_url.replace("{id}", property_id)


@dataclass(frozen=True)
class Params:
    """params.yaml, validated."""

    root: Path
    raw: dict[str, Any]
    engines: dict[str, Engine]

    @cached_property
    def source_root(self) -> str:
        return str(self.raw["source"]["root"]).rstrip("/")

    def retry_policy(self, section: str) -> RetryPolicy:
        block = self.raw.get(section, {})
        return RetryPolicy(
            retries=int(block.get("retries", 0)),
            first_delay=float(block.get("retry_delay", 1.0)),
            max_delay=float(block.get("max_retry_delay", 600.0)),
        )

    def path(self, kind: str, engine: str, suffix: str) -> Path:
        """data/<kind>/<engine><suffix>, with the folder taken from params `paths`."""
        return self.root / self.raw["paths"][kind] / f"{engine}{suffix}"

    def engine(self, name: str) -> Engine:
        try:
            return self.engines[name]
        except KeyError:
            known = ", ".join(sorted(self.engines)) or "none"
            raise ConfigError(
                f"Unknown engine {name!r}: params.yaml `engines` has {known}."
            ) from None


def load_params(root: Path | None = None) -> Params:
    """Read and validate params.yaml of the project at `root` (default: the current project)."""
    root = root or project_root()
    path = root / "params.yaml"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing.") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    for section in ("source", "paths", "engines"):
        if not isinstance(raw.get(section), dict):
            raise ConfigError(f"params.yaml: `{section}` must be a mapping.")
    if not raw["source"].get("root"):
        raise ConfigError("params.yaml: `source.root` must name a folder or remote://<remote>.")
    publish_to = str((raw.get("publish") or {}).get("to") or "")
    if publish_to and not publish_to.startswith(("s3://", "remote://")):
        raise ConfigError(
            f"params.yaml: `publish.to` is {publish_to!r}; use s3://<bucket>/<prefix>/, "
            "remote://<dvc remote>/<prefix>, or leave it empty to publish nothing."
        )
    engines = {name: _engine(name, spec) for name, spec in raw["engines"].items()}
    return Params(root=root, raw=raw, engines=engines)


def _engine(name: str, spec: Any) -> Engine:
    key = f"engines.{name}"
    if not ENGINE_NAME.match(str(name)):
        raise ConfigError(f"params.yaml: `{key}`: engine names are lower-case letters, digits, _.")
    if not isinstance(spec, dict):
        raise ConfigError(f"params.yaml: `{key}` must be a mapping of engine fields.")
    unknown = set(spec) - ENGINE_FIELDS
    if unknown:
        raise ConfigError(
            f"params.yaml: `{key}` has unknown field(s) {', '.join(sorted(unknown))}; "
            f"allowed: {', '.join(sorted(ENGINE_FIELDS))}."
        )
    missing = ENGINE_FIELDS - set(spec) - {"id_case"}
    if missing:
        raise ConfigError(f"params.yaml: `{key}` is missing {', '.join(sorted(missing))}.")
    id_case = spec.get("id_case", "preserve")
    if id_case not in ID_CASES:
        raise ConfigError(f"params.yaml: `{key}.id_case` must be one of {', '.join(ID_CASES)}.")
    hosts = spec["hosts"]
    if not isinstance(hosts, list) or not hosts or not all(isinstance(h, str) for h in hosts):
        raise ConfigError(f"params.yaml: `{key}.hosts` must be a non-empty list of host names.")
    patterns = spec["url_patterns"]
    if not isinstance(patterns, list) or not patterns:
        raise ConfigError(f"params.yaml: `{key}.url_patterns` must be a non-empty list of regexes.")
    url_patterns = tuple(
        _regex(f"{key}.url_patterns[{i}]", p, needs_id_group=True) for i, p in enumerate(patterns)
    )
    if "{id}" not in str(spec["booking_url"]):
        raise ConfigError(f"params.yaml: `{key}.booking_url` must contain the placeholder {{id}}.")
    return Engine(
        name=name,
        file=str(spec["file"]),
        display_name=str(spec["display_name"]),
        hosts=tuple(h.lower().strip(".") for h in hosts),
        url_patterns=url_patterns,
        id_pattern=_regex(f"{key}.id_pattern", spec["id_pattern"], needs_id_group=False),
        id_case=id_case,
        booking_url=str(spec["booking_url"]),
    )


def _regex(key: str, pattern: Any, *, needs_id_group: bool) -> re.Pattern[str]:
    try:
        compiled = re.compile(str(pattern))
    except re.error as exc:
        raise ConfigError(f"params.yaml: `{key}` is not a valid regex: {exc}.") from None
    if needs_id_group and "id" not in compiled.groupindex:
        raise ConfigError(f"params.yaml: `{key}` needs a named group (?P<id>...) for the id.")
    return compiled
