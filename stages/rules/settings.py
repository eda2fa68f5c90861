"""Declaring a params.yaml setting and the one validator that checks every section against it.

A section of params.yaml is a frozen dataclass in stages.rules.config whose fields are declared
with `setting()`; `build()` turns the YAML mapping at a key into an instance of it, or raises
ConfigError naming the key (`section.name`) and the fix. `read_yaml()` reads the file itself:
YAML it cannot read and a key given twice are one-line errors too.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, field, fields
from pathlib import Path
from typing import Any

from stages.errors import ConfigError

# Where the keys of params.yaml's other sections live, for "it belongs in `export`" hints:
# {"export": ["source_tag", "rows_per_sheet", ...], "engines.<name>": [...], ...}.
Elsewhere = Mapping[str, Sequence[str]]


def setting(
    default: Any = MISSING,
    *,
    least: float | None = None,
    above: float | None = None,
    most: float | None = None,
    choices: tuple[str, ...] | None = None,
    parse: typing.Callable[[str, Any], Any] | None = None,
) -> Any:
    """A params.yaml key of a section class: its default (none: required) and allowed values.

    `least`/`most` bound a number inclusively, `above` exclusively; `choices` lists the allowed
    words; `parse(key, value)` replaces the type check for values that need more (a regex), and
    returns the value to store or raises ConfigError.
    """
    rules = {"least": least, "above": above, "most": most, "choices": choices, "parse": parse}
    return field(default=default, metadata=rules)


def build(kind: type, data: Any, key: str, *, elsewhere: Elsewhere, **internal: Any) -> Any:
    """An instance of the section class `kind` from the YAML mapping `data` at `key`;
    `elsewhere` holds the other sections' keys, named when a key sits in the wrong one."""
    if data is MISSING:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"params.yaml: `{key}` must be a mapping of settings.")
    refuse_unknown(key, data, declared_keys(kind), elsewhere)
    hints = typing.get_type_hints(kind)
    values = dict(internal)
    for spec in (f for f in fields(kind) if not f.metadata.get("internal")):
        name = f"{key}.{spec.name}"
        if spec.name not in data:
            if spec.default is MISSING and spec.default_factory is MISSING:
                raise ConfigError(f"params.yaml: `{key}` is missing `{spec.name}`; add it.")
            continue
        values[spec.name] = _value(name, data[spec.name], hints[spec.name], spec.metadata)
    return kind(**values)


def declared_keys(kind: type) -> list[str]:
    """The params.yaml keys of the section class `kind`, in declaration order."""
    return [f.name for f in fields(kind) if not f.metadata.get("internal")]


def refuse_unknown(
    section: str, data: dict[Any, Any], known: Sequence[str], elsewhere: Elsewhere
) -> None:
    """ConfigError for the first key of `data` that `section` does not take: named with the
    section that does take it (`source.rows_per_sheet` -> `export.rows_per_sheet`), else with
    the nearest valid key of `section`, else with "remove it"."""
    for name in data:
        if name in known:
            continue
        import difflib  # only on this error path

        key = f"{section}.{name}" if section else str(name)
        homes = [h for h, keys in elsewhere.items() if name in keys and h != section]
        if isinstance(data[name], dict):
            homes = []  # a mapping is a section or an engine, never a setting: `exports:`
        nearest = difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)
        if homes:
            places = " or ".join(f"`{home}.{name}`" for home in homes)
            hint = f"it belongs in another section: move it to {places}."
        elif nearest:
            hint = f"did you mean `{section + '.' if section else ''}{nearest[0]}`?"
        else:
            hint = "remove it."
        where = f"`{section}`" if section else "params.yaml"
        raise ConfigError(
            f"params.yaml: `{key}` is not a known setting; {hint} "
            f"{where} takes: {', '.join(known)}."
        )


def read_yaml(path: Path, text: str) -> Any:
    """The YAML `text` of `path` as Python values (libyaml's parser when installed).

    Raises ConfigError in one line naming the file, line and column and the fix for text that
    is not YAML (a tab where YAML wants spaces, most often), and naming the key and both lines
    for a key given twice in one mapping: YAML itself would silently keep the last."""
    import yaml  # heavy third-party: not needed by a stage's --help

    # libyaml when available: 15x faster than PyYAML's own parser.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _refuse_twice_given(node, "")
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(_yaml_error(path, text, exc)) from None
    except yaml.YAMLError as exc:
        said = " ".join(str(exc).split())
        raise ConfigError(f"{path} is not valid YAML ({said}); fix it.") from None
    finally:
        loader.dispose()


def _yaml_error(path: Path, text: str, exc: Any) -> str:
    """One line for PyYAML's several: where the file went wrong and how to fix it."""
    mark = exc.problem_mark or exc.context_mark
    if mark is None:
        return f"{path} is not valid YAML: {exc.problem or exc}; fix it."
    where = f"{path}, line {mark.line + 1}, column {mark.column + 1}"
    lines = text.splitlines()
    line = lines[mark.line] if mark.line < len(lines) else ""
    if "tab" in str(exc.problem) or "\t" in line[: mark.column + 1]:
        return f"{where}: a tab character; YAML indents with spaces only: replace it with spaces."
    return f"{where}: {exc.problem}; fix the YAML there (quote a value holding : or #)."


def _refuse_twice_given(node: Any, key: str) -> None:
    """ConfigError when a mapping under `node` (at dotted `key`) holds one key twice."""
    import yaml

    if isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _refuse_twice_given(item, f"{key}[{index}]")
    if not isinstance(node, yaml.MappingNode):
        return
    seen_at: dict[tuple[str, str], int] = {}
    for name_node, value_node in node.value:
        if not isinstance(name_node, yaml.ScalarNode) or name_node.value == "<<":
            continue  # merge keys (`<<`) may repeat; YAML's own rules settle them
        name = f"{key}.{name_node.value}" if key else name_node.value
        line = name_node.start_mark.line + 1
        seen = seen_at.get((name_node.tag, name_node.value))
        seen_at.setdefault((name_node.tag, name_node.value), line)
        if seen is not None:
            raise ConfigError(
                f"params.yaml: `{name}` is given twice (lines {seen} and {line}) and YAML "
                "would keep only the last; delete the one you do not mean."
            )
        _refuse_twice_given(value_node, name)


def _value(key: str, value: Any, kind: Any, rules: Any) -> Any:
    """`value` checked against the type `kind` and the `setting()` rules; the value to store."""
    if rules.get("parse"):
        return rules["parse"](key, value)
    if kind is str:
        text = as_text(key, value)
        if rules.get("choices") and text not in rules["choices"]:
            raise ConfigError(
                f"params.yaml: `{key}` is {text!r}; use one of {', '.join(rules['choices'])}."
            )
        return text
    if kind is int or kind is float:
        whole = kind is int
        number = isinstance(value, int) if whole else isinstance(value, int | float)
        in_range = number and not isinstance(value, bool) and _in_range(value, rules)
        if not in_range:
            fix = _describe(whole, rules, value)
            raise ConfigError(f"params.yaml: `{key}` is {value!r}; use {fix}.")
        return value if whole else float(value)
    raise TypeError(f"{key}: settings of type {kind!r} need a parse function")


def _in_range(value: float, rules: Any) -> bool:
    # NaN passes no bound; an infinite timeout or delay would wait forever, so no bound allows it
    if not math.isfinite(value):
        return False
    least, above, most = rules.get("least"), rules.get("above"), rules.get("most")
    return (
        (least is None or value >= least)
        and (above is None or value > above)
        and (most is None or value <= most)
    )


def _describe(whole: bool, rules: Any, value: Any) -> str:
    """ "a whole number from 1 to 1048575", "a number above 0", ... for an error message
    about `value` ("a finite number ..." when it is .inf, -.inf or .nan)."""
    infinite = isinstance(value, float) and not math.isfinite(value)
    noun = "a whole number" if whole else "a finite number" if infinite else "a number"
    least, above, most = rules.get("least"), rules.get("above"), rules.get("most")
    if least is not None and most is not None:
        return f"{noun} from {least} to {most}"
    if above is not None:
        return f"{noun} above {above}"
    if least is not None:
        return f"{noun}, {least} or more"
    return noun


def as_text(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"params.yaml: `{key}` is {value!r}; use text (quote it in YAML).")
    return value
