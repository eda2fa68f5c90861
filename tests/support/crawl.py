"""The crawl-rule test kit: the project's engines and parsers, and readers of lines and files."""

from __future__ import annotations

from pathlib import Path

from stages.rules.config import load_params
from stages.rules.crawl import LineParser, Reject, iter_lines, open_crawl

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "corpus"
ENGINES = load_params(ROOT).engines
PARSERS = {name: LineParser(engine) for name, engine in ENGINES.items()}
UUID = "6e2a6e1d-0a5b-4c53-9c6a-ab1e00c9d9c7"
SECOND = "0b9f3c2a-7d4e-4f51-8a6b-1c2d3e4f5a6b"
SAMPLE = (
    "https://hotels.cloudbeds.com/reservation/Qw3rTy\r\nAbC123\n\n"
    "hotels.cloudbeds.com/es/reservas/Zx9Wv8\n"
)


def parse(engine: str, line: str | bytes):
    """What the project's parser of `engine` makes of one line."""
    raw = line.encode("utf-8") if isinstance(line, str) else line
    return PARSERS[engine].parse(raw)


def booking_url(engine: str, line: str) -> str:
    """The booking URL of the one id `line` names (asserted to name exactly one)."""
    parser = PARSERS[engine]
    found = parser.parse(line.encode())
    assert isinstance(found, str), found
    return parser.booking_url(found)


def corpus_rows(engine: str) -> list[tuple[bytes, str]]:
    """(line, expected) rows of tests/corpus/<engine>.tsv; lines may hold Latin-1 bytes."""
    rows = []
    for row in (CORPUS / f"{engine}.tsv").read_bytes().splitlines():
        if row and not row.startswith(b"#"):
            expected, _, line = row.partition(b"\t")
            rows.append((line, expected.decode()))
    return rows


def outcome_text(outcome) -> str:
    """An outcome as the corpus writes it: ids comma-joined, or reject:<code>."""
    if isinstance(outcome, Reject):
        return f"reject:{outcome.value}"
    return ",".join(outcome) if isinstance(outcome, tuple) else str(outcome)


def table(text: str) -> list[tuple[str, str, str]]:
    """(engine, line, expected) rows of a kind test's table, one `<engine> <line> -> <expected>`
    a line, expected as the corpus writes it (`outcome_text`)."""
    rows = []
    for row in text.strip("\n").splitlines():
        head, _, expected = row.rpartition(" -> ")
        engine, _, line = head.strip().partition(" ")
        rows.append((engine, line.strip(), expected.strip()))
    return rows


def lines_of_file(path: Path) -> list[bytes | None]:
    """The raw lines of a crawl file as ingest reads them (tiny chunks: boundaries tested)."""
    with open_crawl(path) as stream:
        return list(iter_lines(stream, chunk_size=7))
