"""The corpus of realistic lines (tests/corpus/): the source of truth, not the generator; and the
evidence kept per lead."""

from __future__ import annotations

import pytest

from stages.rules.crawl import (
    Reject,
    evidence_line,
    evidence_text,
    safe_text,
)
from tests.support.crawl import (
    ENGINES,
    PARSERS,
    corpus_rows,
    outcome_text,
)

pytestmark = pytest.mark.unit  # pure logic: no services, no other programs


# --- safe_text -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"https://hotels.cloudbeds.com/reservation/Qw3rTy",
        b"\thttps://hotels.cloudbeds.com/reservation/Qw3rTy\r",
        b"https://hotels.cloudbeds.com/reservation/Qw3rTy?q=caf\xe9",
        b"C:\\x41\\n and \\\\ and \\u0041 as written",
        b"nul\x00 del\x7f nel\xc2\x85 zwsp\xe2\x80\x8b emoji\xf0\x9f\x8f\xa8",
    ],
)
def test_evidence_text_gives_back_the_very_bytes_of_the_line(raw):
    text = evidence_text(raw)
    assert "\x00" not in text  # PostgreSQL text cannot hold NUL
    assert evidence_line(text) == raw


def test_safe_text_keeps_printable_text():
    assert safe_text("https://hôtel.example/ä".encode()) == "https://hôtel.example/ä"


def test_safe_text_escapes_tabs_controls_invalid_utf8_and_bidi():
    raw = b"a\tb\x00c\xffd\x1b" + "\u202e".encode() + b"e\r\n"
    assert safe_text(raw) == "a\\tb\\x00c\\xffd\\x1b\\u202ee\\r\\n"


def test_safe_text_truncates_with_an_ellipsis():
    text = safe_text(b"x" * 300, limit=20)
    assert text == "x" * 19 + "…"


def test_safe_text_at_the_limit_is_not_truncated():
    assert safe_text(b"x" * 20, limit=20) == "x" * 20


def test_safe_text_never_cuts_an_escape_in_half():
    assert safe_text(b"\x00" * 10, limit=10) == "\\x00\\x00…"


# --- the corpus of realistic lines: the source of truth, not the generator ------------------


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_every_corpus_line_gives_exactly_its_expected_outcome(engine):
    rows = corpus_rows(engine)
    assert len(rows) >= 250
    wrong = [
        (line, expected, outcome_text(PARSERS[engine].parse(line)))
        for line, expected in rows
        if outcome_text(PARSERS[engine].parse(line)) != expected
    ]
    assert wrong == []


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_no_corpus_line_of_the_engines_own_host_is_called_wrong_host(engine):
    own = [line for line, expected in corpus_rows(engine) if not expected.startswith("reject:")]
    assert not [line for line in own if PARSERS[engine].parse(line) == Reject.WRONG_HOST]
