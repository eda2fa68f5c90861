"""Declaring a params.yaml setting and the one validator that checks every section against it.

A section of params.yaml is a frozen dataclass in stages.rules.config whose fields are declared
with `setting()`; `build()` turns the YAML mapping at a key into an instance of it, or raises
ConfigError naming the key (`section.name`) and the fix.
"""

from __future__ import annotations

import typing
from dataclasses import MISSING, field, fields
from typing import Any

from stages.errors import ConfigError


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


def build(kind: type, data: Any, key: str, **internal: Any) -> Any:
    """An instance of the section class `kind` from the YAML mapping `data` at `key`."""
    if data is MISSING:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"params.yaml: `{key}` must be a mapping of settings.")
    declared = [f for f in fields(kind) if not f.metadata.get("internal")]
    refuse_unknown(key, data, [f.name for f in declared])
    hints = typing.get_type_hints(kind)
    values = dict(internal)
    for spec in declared:
        name = f"{key}.{spec.name}"
        if spec.name not in data:
            if spec.default is MISSING and spec.default_factory is MISSING:
                raise ConfigError(f"params.yaml: `{key}` is missing `{spec.name}`; add it.")
            continue
        values[spec.name] = _value(name, data[spec.name], hints[spec.name], spec.metadata)
    return kind(**values)


def refuse_unknown(section: str, data: dict[Any, Any], known: list[str]) -> None:
    for name in data:
        if name in known:
            continue
        import difflib  # only on this error path

        key = f"{section}.{name}" if section else str(name)
        nearest = difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)
        hint = f"did you mean `{section + '.' if section else ''}{nearest[0]}`?" if nearest else ""
        where = f"`{section}`" if section else "params.yaml"
        raise ConfigError(
            f"params.yaml: `{key}` is not a known setting; {hint or 'remove it.'} "
            f"{where} takes: {', '.join(known)}."
        )


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
            raise ConfigError(f"params.yaml: `{key}` is {value!r}; use {_describe(whole, rules)}.")
        return value if whole else float(value)
    raise TypeError(f"{key}: settings of type {kind!r} need a parse function")


def _in_range(value: float, rules: Any) -> bool:
    if value != value:  # NaN passes no bound
        return False
    least, above, most = rules.get("least"), rules.get("above"), rules.get("most")
    return (
        (least is None or value >= least)
        and (above is None or value > above)
        and (most is None or value <= most)
    )


def _describe(whole: bool, rules: Any) -> str:
    """ "a whole number from 1 to 1048575", "a number above 0", ... for an error message."""
    noun = "a whole number" if whole else "a number"
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
