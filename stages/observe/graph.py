"""The pipeline as dvc.yaml declares it: the stage kinds run per engine and which feeds which."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml


def load_yaml(path: Path) -> dict[str, Any]:
    """The YAML mapping at `path`; {} when it is missing, damaged or not a mapping (a dvc.lock a
    killed dvc cut short is reported by stages.tools.dvcstate, not here)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available: 10x faster
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=loader) or {}
    except (OSError, ValueError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def pipeline_graph(root: Path) -> dict[str, Any]:
    """`{"stages": [kind, ...], "edges": [[a, b], ...]}`: the `foreach` stage kinds of
    `root`/dvc.yaml in its order, and an edge A -> B where an output of A (as written in
    dvc.yaml: outs, metrics or plots) is a dependency of B. One-off stages are left out."""
    stages = load_yaml(root / "dvc.yaml").get("stages") or {}
    kinds, outs, deps = [], {}, {}
    for name, spec in stages.items():
        if not isinstance(spec, dict) or "foreach" not in spec:
            continue  # one-off stages are not part of the per-engine grid
        body = spec.get("do") or {}
        kinds.append(name)
        outs[name] = {p for key in ("outs", "metrics", "plots") for p in _paths(body.get(key))}
        deps[name] = set(_paths(body.get("deps")))
    edges = [[a, b] for a in kinds for b in kinds if a != b and outs[a] & deps[b]]
    return {"stages": kinds, "edges": edges}


def _paths(entries: Any) -> Iterable[str]:
    for entry in entries or []:
        if isinstance(entry, str):
            yield entry
        elif isinstance(entry, dict):
            yield from (str(key) for key in entry)
