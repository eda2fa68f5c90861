r"""An engine's regexes from params.yaml (`url_patterns`, `id_pattern`, `bare_id_pattern`):
compiled, checked for the `id` group a URL pattern needs, and whether an id pattern can match
anything at all.

Whether a regex matches some non-empty string is decided on its parse tree: each node offers
a few candidate texts (a class its first member, a repeat its minimum and one more, a branch
each alternative), their combinations are tried with fullmatch, and one hit proves the
pattern can match. No hit is proof of the opposite only when every node was one whose
candidates are complete: literals, classes, dots, groups, branches, greedy or lazy repeats,
\A, \Z, ^, $ (without MULTILINE), and \b, \B outside a repeat. Lookarounds, backreferences,
conditionals, word boundaries inside a repeat, possessive repeats, atomic groups and scoped
flags make the answer "maybe", and a maybe is accepted: the check must never refuse a pattern
that can match.

A word boundary holds or not by whether the characters beside it are word characters, so in
a pattern with \b or \B a class offers a word and a non-word member (when it has both), and a
repeat one more count (its first and last copies may then differ): `a\bb` or `[0-9]+\b[a-z]`
are refused, `[a-z]+\b-` is not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from stages.errors import ConfigError

_CANDIDATE_LIMIT = 256
_PRINTABLE = "".join(map(chr, range(0x21, 0x7F))) + " \t\n"
# Members of a class looked at for a word and a non-word one before giving up (a "maybe").
_MEMBER_LIMIT = 4096


@dataclass(frozen=True)
class _Context:
    """What every node's candidates depend on: the parser state (flags), whether the pattern
    holds a word boundary, and whether the node is inside a repeat."""

    state: Any
    boundaries: bool
    in_repeat: bool = False


def can_match_an_id(pattern: re.Pattern[str]) -> bool:
    """False only when `pattern` provably fully matches no non-empty string."""
    try:
        # private, stable since 3.11; any surprise below means "maybe"
        from re import _parser  # type: ignore[attr-defined]  # typeshed has no stub for it

        tree = _parser.parse(pattern.pattern, pattern.flags)
        context = _Context(tree.state, _has_boundary(tree))
        candidates, exact = _candidates(tree, context)
    except Exception:
        return True
    if any(text and pattern.fullmatch(text) for text in candidates):
        return True
    return not exact


def _has_boundary(nodes: Any) -> bool:
    """Whether a parse tree holds \\b or \\B anywhere (in groups, branches, repeats, ...)."""
    from re import _constants as sre  # type: ignore[attr-defined]  # private: no stub
    from re import _parser  # type: ignore[attr-defined]

    for op, av in nodes:
        if op is sre.AT and av in (sre.AT_BOUNDARY, sre.AT_NON_BOUNDARY):
            return True
        for part in av if isinstance(av, tuple | list) else ():
            for sub in part if isinstance(part, list) else [part]:
                if isinstance(sub, _parser.SubPattern) and _has_boundary(sub):
                    return True
    return False


def _candidates(nodes: Any, context: _Context) -> tuple[list[str], bool]:
    """Candidate texts for a sequence of parse-tree nodes, and whether they are complete."""
    texts, exact = [""], True
    for op, av in nodes:
        options, node_exact = _node_candidates(op, av, context)
        exact = exact and node_exact
        texts = [head + tail for head in texts for tail in options]
        if len(texts) > _CANDIDATE_LIMIT:
            texts, exact = texts[:_CANDIDATE_LIMIT], False
    return texts, exact


def _node_candidates(op: Any, av: Any, context: _Context) -> tuple[list[str], bool]:
    from re import _constants as sre  # type: ignore[attr-defined]  # private: no stub

    if op is sre.LITERAL:
        return [chr(av)], True
    if op in (sre.NOT_LITERAL, sre.ANY, sre.IN):
        return _class_members(op, av, context)
    if op is sre.SUBPATTERN:
        _group, add_flags, del_flags, body = av
        texts, exact = _candidates(body, context)
        return texts, exact and not (add_flags or del_flags)
    if op is sre.BRANCH:
        texts, exact = [], True
        for branch in av[1]:
            found, branch_exact = _candidates(branch, context)
            texts += found
            exact = exact and branch_exact
        return texts, exact
    if op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
        return _repeat_candidates(av, context)
    if op is sre.AT:
        return [""], _assertion_is_exact(av, context)
    # Lookarounds, backreferences, conditionals, possessive repeats, atomic groups: a maybe.
    return [""], False


def _repeat_candidates(av: Any, context: _Context) -> tuple[list[str], bool]:
    """A repeat's body `least` times and once more; twice more when the pattern has a word
    boundary, so the first and the last copy can differ at the boundary beside them."""
    least, most, body = av
    found, exact = _candidates(body, _Context(context.state, context.boundaries, True))
    extra = 2 if context.boundaries else 1
    texts = []
    for count in (n for n in range(least, least + extra + 1) if n <= most):
        repeated = [""]
        for _ in range(count):
            repeated = [head + tail for head in repeated for tail in found]
            if len(repeated) > _CANDIDATE_LIMIT:
                repeated, exact = repeated[:_CANDIDATE_LIMIT], False
        texts += repeated
    return texts, exact


def _assertion_is_exact(av: Any, context: _Context) -> bool:
    """Whether the candidates decide an anchor or a word boundary: ^ and $ unless MULTILINE,
    \\A and \\Z always, \\b and \\B outside a repeat (inside one they need longer runs)."""
    from re import _constants as sre  # type: ignore[attr-defined]  # private: no stub

    if av in (sre.AT_BOUNDARY, sre.AT_NON_BOUNDARY):
        return not context.in_repeat
    multiline = context.state.flags & re.MULTILINE and av in (sre.AT_BEGINNING, sre.AT_END)
    simple = (sre.AT_BEGINNING, sre.AT_END, sre.AT_BEGINNING_STRING, sre.AT_END_STRING)
    return av in simple and not multiline


def _class_members(op: Any, av: Any, context: _Context) -> tuple[list[str], bool]:
    """Characters the one-character node matches, preferring printable ASCII: one, or with
    word boundaries in the pattern a word and a non-word one where the class has both."""
    from re import _compiler, _parser  # type: ignore[attr-defined]  # private: no stub

    flags = context.state.flags
    node = _compiler.compile(_parser.SubPattern(context.state, [(op, av)]), flags)
    if not context.boundaries:
        found = node.search(_PRINTABLE) or node.search(_all_characters())
        return ([found.group()] if found else []), True
    word = re.compile(r"\w", flags & re.ASCII)
    members: dict[bool, str] = {}
    for text in (_PRINTABLE, _all_characters()):
        for count, found in enumerate(node.finditer(text)):
            members.setdefault(bool(word.match(found.group())), found.group())
            if len(members) == 2:
                return list(members.values()), True
            if count >= _MEMBER_LIMIT:
                return list(members.values()), False
    return list(members.values()), True


_ALL_CHARACTERS: list[str] = []


def _all_characters() -> str:
    if not _ALL_CHARACTERS:
        _ALL_CHARACTERS.append("".join(map(chr, range(0x110000))))
    return _ALL_CHARACTERS[0]


def url_patterns(key: str, value: Any) -> tuple[re.Pattern[str], ...]:
    """`engines.<name>.url_patterns` (`key`): a non-empty list of regexes, each with a named
    group `id`. Raises ConfigError naming the key and the fix."""
    if not isinstance(value, list) or not value:
        raise ConfigError(f"params.yaml: `{key}` must be a non-empty list of regexes.")
    return tuple(
        _regex(f"{key}[{i}]", pattern, needs_id_group=True) for i, pattern in enumerate(value)
    )


def _regex(key: str, pattern: Any, *, needs_id_group: bool) -> re.Pattern[str]:
    if not isinstance(pattern, str):
        raise ConfigError(f"params.yaml: `{key}` is {pattern!r}; use a regex in quotes.")
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"params.yaml: `{key}` is not a valid regex: {exc}.") from None
    if needs_id_group and "id" not in compiled.groupindex:
        raise ConfigError(f"params.yaml: `{key}` needs a named group (?P<id>...) for the id.")
    return compiled


def bare_id_pattern(key: str, pattern: Any) -> re.Pattern[str] | None:
    """`engines.<name>.bare_id_pattern` (`key`): None when unset, else as `id_pattern`."""
    return None if pattern is None else id_pattern(key, pattern)


def id_pattern(key: str, pattern: Any) -> re.Pattern[str]:
    """`engines.<name>.id_pattern` (`key`): a regex some non-empty text fully matches (checked
    with `can_match_an_id`). Raises ConfigError naming the key and the fix."""
    compiled = _regex(key, pattern, needs_id_group=False)
    if not can_match_an_id(compiled):
        raise ConfigError(
            f"params.yaml: `{key}` ({compiled.pattern!r}) can never match an id: no non-empty "
            "text fully matches it; fix the regex."
        )
    return compiled
