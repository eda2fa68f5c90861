r"""Can an engine's id pattern match anything? (params.yaml `engines.<name>.id_pattern`)

Whether a regex matches some non-empty string is decided on its parse tree: each node offers
a few candidate texts (a class its first member, a repeat its minimum and one more, a branch
each alternative), their combinations are tried with fullmatch, and one hit proves the
pattern can match. No hit is proof of the opposite only when every node was one whose
candidates are complete: literals, classes, dots, groups, branches, greedy or lazy repeats
and \A, \Z, ^, $ (without MULTILINE). Lookarounds, backreferences, conditionals, word
boundaries, possessive repeats, atomic groups and scoped flags make the answer "maybe", and
a maybe is accepted: the check must never refuse a pattern that can match.
"""

from __future__ import annotations

import re
from typing import Any

_CANDIDATE_LIMIT = 256
_PRINTABLE = "".join(map(chr, range(0x21, 0x7F))) + " \t\n"


def can_match_an_id(pattern: re.Pattern[str]) -> bool:
    """False only when `pattern` provably fully matches no non-empty string."""
    try:
        # private, stable since 3.11; any surprise below means "maybe"
        from re import _parser  # type: ignore[attr-defined]  # typeshed has no stub for it

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
    from re import _constants as sre  # type: ignore[attr-defined]  # private: no stub

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
    from re import _compiler, _parser  # type: ignore[attr-defined]  # private: no stub

    node = _compiler.compile(_parser.SubPattern(state, [(op, av)]), state.flags)
    found = node.search(_PRINTABLE) or node.search(_all_characters())
    return found.group() if found else None


_ALL_CHARACTERS: list[str] = []


def _all_characters() -> str:
    if not _ALL_CHARACTERS:
        _ALL_CHARACTERS.append("".join(map(chr, range(0x110000))))
    return _ALL_CHARACTERS[0]
