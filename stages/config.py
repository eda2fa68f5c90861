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
# Sections whose retries/retry_delay/timeout the stages read (RetryPolicy, storage timeouts).
RETRY_SECTIONS = ("source", "ingest", "export", "publish")
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
    if publish_to and not _names_a_bucket(publish_to):
        raise ConfigError(
            f"params.yaml: `publish.to` is {publish_to!r}; use s3://<bucket>/<prefix>/, "
            "remote://<dvc remote>/<prefix>, or leave it empty to publish nothing."
        )
    source_root = str(raw["source"]["root"])
    if source_root.startswith(("s3://", "remote://")) and not _names_a_bucket(source_root):
        raise ConfigError(
            f"params.yaml: `source.root` is {source_root!r}; name a bucket "
            "(s3://<bucket>/<prefix>) or a DVC remote (remote://<name>)."
        )
    for section in RETRY_SECTIONS:
        _check_retry_settings(section, raw.get(section))
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
        id_pattern=_id_pattern(f"{key}.id_pattern", spec["id_pattern"]),
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


def _names_a_bucket(location: str) -> bool:
    """Whether an s3:// or remote:// location names a valid bucket or a remote."""
    if location.startswith("remote://"):
        return bool(location.removeprefix("remote://").partition("/")[0])
    if location.startswith("s3://"):
        return bool(S3_BUCKET.match(location.removeprefix("s3://").partition("/")[0]))
    return False


def _check_retry_settings(section: str, block: Any) -> None:
    """`retries` a whole number >= 0, delays >= 0 and `timeout` > 0 seconds, when present."""
    if block is None:
        return
    if not isinstance(block, dict):
        raise ConfigError(f"params.yaml: `{section}` must be a mapping.")
    retries = block.get("retries", 0)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigError(
            f"params.yaml: `{section}.retries` is {retries!r}; use a whole number, 0 or more."
        )
    for name, least in (("retry_delay", 0), ("max_retry_delay", 0), ("timeout", 1e-3)):
        value = block.get(name, least)
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= least:
            raise ConfigError(
                f"params.yaml: `{section}.{name}` is {value!r}; use a number of seconds"
                + (" above 0." if least else ", 0 or more.")
            )


def _id_pattern(key: str, pattern: Any) -> re.Pattern[str]:
    compiled = _regex(key, pattern, needs_id_group=False)
    if not can_match_an_id(compiled):
        raise ConfigError(
            f"params.yaml: `{key}` ({compiled.pattern!r}) can never match an id: no non-empty "
            "text fully matches it; fix the regex."
        )
    return compiled


# --- can an id pattern match anything? ------------------------------------------------------
#
# Whether a regex matches some non-empty string is decided on its parse tree: each node offers
# a few candidate texts (a class its first member, a repeat its minimum and one more, a branch
# each alternative), their combinations are tried with fullmatch, and one hit proves the
# pattern can match. No hit is proof of the opposite only when every node was one whose
# candidates are complete: literals, classes, dots, groups, branches, greedy or lazy repeats
# and \A, \Z, ^, $ (without MULTILINE). Lookarounds, backreferences, conditionals, word
# boundaries, possessive repeats, atomic groups and scoped flags make the answer "maybe", and
# a maybe is accepted: the check must never refuse a pattern that can match.

_CANDIDATE_LIMIT = 256
_PRINTABLE = "".join(map(chr, range(0x21, 0x7F))) + " \t\n"


def can_match_an_id(pattern: re.Pattern[str]) -> bool:
    """False only when `pattern` provably fully matches no non-empty string."""
    try:
        from re import _parser  # private, stable since 3.11; any surprise below means "maybe"

        tree = _parser.parse(pattern.pattern, pattern.flags)
        candidates, exact = _candidates(tree, tree.state)
    except Exception:
        return True
    if any(text and pattern.fullmatch(text) for text in candidates):
        return True
    return not exact


def _candidates(nodes: Any, state: Any) -> tuple[list[str], bool]:
    """Candidate texts for a sequence of parse-tree nodes, and whether they are complete."""
    texts, exact = [""], True
    for op, av in nodes:
        options, node_exact = _node_candidates(op, av, state)
        exact = exact and node_exact
        texts = [head + tail for head in texts for tail in options]
        if len(texts) > _CANDIDATE_LIMIT:
            texts, exact = texts[:_CANDIDATE_LIMIT], False
    return texts, exact


def _node_candidates(op: Any, av: Any, state: Any) -> tuple[list[str], bool]:
    from re import _constants as sre

    if op is sre.LITERAL:
        return [chr(av)], True
    if op in (sre.NOT_LITERAL, sre.ANY, sre.IN):
        member = _class_member(op, av, state)
        return ([member] if member is not None else []), True
    if op is sre.SUBPATTERN:
        _group, add_flags, del_flags, body = av
        texts, exact = _candidates(body, state)
        return texts, exact and not (add_flags or del_flags)
    if op is sre.BRANCH:
        texts, exact = [], True
        for branch in av[1]:
            found, branch_exact = _candidates(branch, state)
            texts += found
            exact = exact and branch_exact
        return texts, exact
    if op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
        least, most, body = av
        found, exact = _candidates(body, state)
        texts = []
        for count in (n for n in (least, least + 1) if n <= most):
            repeated = [""]
            for _ in range(count):
                repeated = [head + tail for head in repeated for tail in found]
                if len(repeated) > _CANDIDATE_LIMIT:
                    repeated, exact = repeated[:_CANDIDATE_LIMIT], False
            texts += repeated
        return texts, exact
    if op is sre.AT:
        multiline = state.flags & re.MULTILINE and av in (sre.AT_BEGINNING, sre.AT_END)
        simple = (sre.AT_BEGINNING, sre.AT_END, sre.AT_BEGINNING_STRING, sre.AT_END_STRING)
        return [""], av in simple and not multiline
    # Lookarounds, backreferences, conditionals, possessive repeats, atomic groups: a maybe.
    return [""], False


def _class_member(op: Any, av: Any, state: Any) -> str | None:
    """A character the one-character node matches, preferring printable ASCII; None if none."""
    from re import _compiler, _parser

    node = _compiler.compile(_parser.SubPattern(state, [(op, av)]), state.flags)
    found = node.search(_PRINTABLE) or node.search(_all_characters())
    return found.group() if found else None


_ALL_CHARACTERS: list[str] = []


def _all_characters() -> str:
    if not _ALL_CHARACTERS:
        _ALL_CHARACTERS.append("".join(map(chr, range(0x110000))))
    return _ALL_CHARACTERS[0]
