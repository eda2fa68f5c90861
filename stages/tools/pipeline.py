"""The one reader of dvc.yaml: the stage kinds run per engine, their files, and the stage names.

Everything outside DVC that needs the pipeline's shape asks here (status and the dashboard, the
parallel runner, prune-lock, the benchmarks), so they all follow one rule: a stage kind is a
stage of dvc.yaml with `foreach: ${engines}`, and its stage for engine E is `<kind>@E`, as DVC
names it. Paths are as dvc.yaml writes them (`${paths.raw}/${key}.txt`); `expand()` fills in
params.yaml's values for one engine.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages.errors import PipelineError

DVCFILE = "dvc.yaml"
ENGINES_FOREACH = "${engines}"
# DVC's ${...} interpolation: a dotted key into params.yaml, `key` (the engine) or `item.<key>`.
_INTERPOLATION = re.compile(r"\$\{\s*([\w.]+)\s*\}")


@dataclass(frozen=True)
class StageKind:
    """One per-engine stage of dvc.yaml: its name and its files as dvc.yaml writes them."""

    name: str
    deps: tuple[str, ...]
    outs: tuple[str, ...]
    metrics: tuple[str, ...]
    plots: tuple[str, ...]

    def stage(self, engine: str) -> str:
        """DVC's name for this kind's stage of `engine`: `ingest@mews`."""
        return f"{self.name}@{engine}"


def load_yaml(path: Path) -> dict[str, Any]:
    """The YAML mapping at `path`; {} when it is missing or damaged (a dvc.lock a killed dvc
    cut short is reported by stages.tools.dvcstate, not here)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available: 10x faster
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=loader) or {}
    except (OSError, ValueError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def stage_kinds(root: Path) -> list[StageKind]:
    """The stage kinds `root`/dvc.yaml runs per engine, in dvc.yaml order ([] when it has none
    or cannot be read)."""
    stages = load_yaml(root / DVCFILE).get("stages") or {}
    kinds = []
    for name, spec in stages.items():
        if not isinstance(spec, dict) or spec.get("foreach") != ENGINES_FOREACH:
            continue  # one-off stages are not part of the per-engine grid
        body = spec.get("do") or {}
        files = {key: tuple(_paths(body.get(key))) for key in ("deps", "outs", "metrics", "plots")}
        kinds.append(StageKind(name=str(name), **files))
    return kinds


def engine_stages(root: Path, engine: str) -> list[str]:
    """The stages dvc.yaml declares for `engine`, in order: ["download@E", ...].

    Raises PipelineError when dvc.yaml has no stage with `foreach: ${engines}`."""
    names = [kind.stage(engine) for kind in stage_kinds(root)]
    if not names:
        raise PipelineError(f"{root / DVCFILE} has no stage with `foreach: {ENGINES_FOREACH}`.")
    return names


def pipeline_graph(root: Path) -> dict[str, Any]:
    """The stage kinds run per engine (in dvc.yaml order) and which feeds which:
    {"stages": ["download", ...], "edges": [["download", "ingest"], ...]}.

    An edge A -> B means an output of A (as written in dvc.yaml) is a dependency of B.
    """
    kinds = stage_kinds(root)
    outs = {kind.name: {*kind.outs, *kind.metrics, *kind.plots} for kind in kinds}
    deps = {kind.name: set(kind.deps) for kind in kinds}
    names = [kind.name for kind in kinds]
    edges = [[a, b] for a in names for b in names if a != b and outs[a] & deps[b]]
    return {"stages": names, "edges": edges}


def expand(path: str, values: dict[str, Any], engine: str) -> str:
    """`path` as DVC interpolates it for `engine`: `${key}` is the engine, `${item.x}` its
    params.yaml entry's x, any other `${a.b}` params.yaml's value at a.b. Raises KeyError
    naming a key params.yaml does not have."""
    item = (values.get("engines") or {}).get(engine) or {}

    def value(match: re.Match[str]) -> str:
        key = match[1]
        if key == "key":
            return engine
        found: Any = {"item": item, **values}
        for part in key.split("."):
            if not isinstance(found, dict) or part not in found:
                raise KeyError(key)
            found = found[part]
        return str(found)

    return _INTERPOLATION.sub(value, path)


def declared_stages(root: Path, then: str = "the command again") -> set[str]:
    """The names of every stage `root`/dvc.yaml declares, foreach groups expanded by DVC's own
    parser against params.yaml (`ingest@mews`, ...): prune-lock drops what is not here, so it
    must agree with DVC on every form dvc.yaml may take. Raises PipelineError when DVC cannot
    read dvc.yaml (then nothing may be pruned: every entry would look stale), saying to run
    `then` once it is fixed."""
    from dvc.dvcfile import load_file
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(str(root)) as repo:
            return set(load_file(repo, DVCFILE).stages.keys())
    except DvcException as exc:
        raise PipelineError(
            f"dvc.yaml in {root} cannot be read ({exc}); fix it (`dvc status` shows where), "
            f"then run {then}."
        ) from None


def _paths(entries: Any) -> Iterable[str]:
    """The paths of a deps/outs/metrics/plots list: plain strings or {path: options}."""
    for entry in entries or []:
        if isinstance(entry, str):
            yield entry
        elif isinstance(entry, dict):
            yield from (str(key) for key in entry)
