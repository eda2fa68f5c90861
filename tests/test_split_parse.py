"""A large crawl file parsed by several processes gives what one process gives: the same ids
on the same line numbers, the same first line (URL and evidence) for each id, the same counts
and the same rejects file; a worker that fails stops the load with one line, and no worker
outlives the reading."""

from __future__ import annotations

import dataclasses
import io
import json
import multiprocessing
from collections import defaultdict
from pathlib import Path

import psycopg
import pytest

from stages import ingest
from stages.rules.config import load_params
from stages.rules.crawl import LineParser, iter_lines
from stages.rules.crawl_tally import LineTally, Span
from stages.store import split_parse
from stages.store.staging import copy_text_blocks
from tests.support.crawl import corpus_rows
from tests.support.project import REPO

ENGINES = load_params(REPO).engines


def crawl_bytes() -> bytes:
    """Every corpus line of every engine (so each engine meets the others' lines too), three
    times over, with every kind of line end, blank lines, an over-long line and a BOM first:
    what a real file's spans may hold."""
    lines = [line for engine in sorted(ENGINES) for line, _ in corpus_rows(engine)]
    ends = (b"\n", b"\r\n", b"\r")
    body = b"".join(
        line + ends[n % 3] + (b"\n" if n % 17 == 0 else b"") for n, line in enumerate(lines * 3)
    )
    return b"\xef\xbb\xbf" + body + b"x" * 3000 + b"\n" + lines[0]  # the last has no line end


def staged(blocks) -> tuple[dict[str, tuple[int, str, str]], list[tuple[str, int]]]:
    """What the merge takes from COPY text blocks: per id its first line with evidence
    (line, URL, evidence), and every (id, line) row."""
    first: dict[str, tuple[int, str, str]] = {}
    rows = []
    for text, count in blocks:
        lines = text.split("\n")[:-1]
        assert len(lines) == count
        for row in lines:
            property_id, number, url, evidence = row.split("\t")
            rows.append((property_id, int(number)))
            if evidence and (property_id not in first or int(number) < first[property_id][0]):
                first[property_id] = (int(number), url, evidence)
    return first, sorted(rows)


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_spans_in_several_processes_stage_count_and_reject_what_one_process_does(engine, tmp_path):
    crawl = tmp_path / "crawl.txt"
    crawl.write_bytes(crawl_bytes())
    one, split = io.StringIO(), io.StringIO()
    alone = LineTally(one)
    expected = staged(copy_text_blocks(alone.found(crawl, LineParser(ENGINES[engine]))))

    together = LineTally(split)
    blocks = split_parse.parsed_blocks(crawl, ENGINES[engine], together, processes=3)

    assert staged(blocks) == expected
    assert together.summary() == alone.summary()
    assert split.getvalue() == one.getvalue()
    assert together.rejected and together.valid > 1000  # a real mix, not an empty file


def test_spans_end_at_line_ends_and_number_lines_as_the_whole_file_does(tmp_path):
    crawl = tmp_path / "crawl.txt"
    crawl.write_bytes(b"a\r\nb\rc\n\n\xef\xbb\xbfd\ne\r\r\nf")
    whole = list(iter_lines(crawl.open("rb")))

    for parts in range(1, 9):
        spans, total = split_parse.line_spans(crawl, parts, chunk_size=2)
        assert total == len(whole)
        assert spans[0].start == 0 and spans[-1].end == crawl.stat().st_size
        assert all(a.end == b.start for a, b in zip(spans, spans[1:], strict=False))
        read = []
        for span in spans:
            tally = LineTally()
            numbers = [n for n, _, _ in tally.outcomes(crawl, LineParser(ENGINES["rms"]), span)]
            assert all(n >= span.first_line for n in numbers)
            read += _lines_of(crawl, span)
        assert read == whole, parts  # no line lost, split, doubled or BOM-stripped


def _lines_of(crawl: Path, span: Span) -> list[bytes | None]:
    data = crawl.read_bytes()[span.start : span.end]
    assert span.start == 0 or not data.startswith(b"\xef\xbb\xbf")
    return list(iter_lines(io.BytesIO(data)))


def test_a_worker_that_fails_stops_the_reading_with_one_line_and_leaves_no_process(tmp_path):
    crawl = tmp_path / "crawl.txt"
    crawl.write_bytes(crawl_bytes())
    engine = ENGINES["cloudbeds"]
    broken = dataclasses.replace(engine, url_patterns=None)  # type: ignore[arg-type]

    with pytest.raises(RuntimeError, match=r"the process parsing bytes \d+-\d+ .*failed: "):
        list(split_parse.parsed_blocks(crawl, broken, LineTally(), processes=2))

    assert not multiprocessing.active_children()


def test_a_reader_that_stops_early_stops_every_worker(tmp_path):
    crawl = tmp_path / "crawl.txt"
    crawl.write_bytes(crawl_bytes() * 4)
    blocks = split_parse.parsed_blocks(crawl, ENGINES["rms"], LineTally(), processes=2)

    next(blocks)
    blocks.close()

    assert not multiprocessing.active_children()


def test_a_small_or_decoded_file_is_parsed_in_one_process(tmp_path, monkeypatch):
    crawl = tmp_path / "crawl.txt"
    crawl.write_bytes(b"x\n" * 10)
    assert split_parse.parse_processes(4, crawl, plain=True) == 1  # below SPLIT_MIN_BYTES
    monkeypatch.setattr(split_parse, "SPLIT_MIN_BYTES", 0)
    assert split_parse.parse_processes(4, crawl, plain=True) == 4
    assert split_parse.parse_processes(4, crawl, plain=False) == 1  # gzip, UTF-16: one stream
    assert split_parse.parse_processes(0, crawl, plain=True) >= 1  # one per CPU


def lead_rows(database_url: str) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT property_id, booking_url, evidence, sources FROM hotel_booking_engines"
            " ORDER BY property_id"
        ).fetchall()


def test_an_ingest_in_several_processes_leaves_the_leads_marker_and_rejects_of_one(
    project, database_url, monkeypatch
):
    monkeypatch.setattr(split_parse, "SPLIT_MIN_BYTES", 0)  # the samples are small
    raw = project.root / "data/raw/siteminder.txt"
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_bytes(crawl_bytes())
    results: list[tuple] = []
    for processes in (1, 3):
        project.edit_params(
            lambda params, n=processes: params["ingest"].update(
                parse_processes=n,
                max_rejected_share=1,  # most lines are other engines'
            )
        )
        if results:  # the second run loads into an empty database too
            with psycopg.connect(database_url, autocommit=True) as conn:
                conn.execute("TRUNCATE hotel_booking_engines, hotels, ingest_loads CASCADE")
        assert ingest.main(["--engine", "siteminder"]) == 0
        marker = (project.root / "data/ingest/siteminder.json").read_text()
        rejects = (project.root / "data/ingest/siteminder.rejects.tsv").read_text()
        results.append((lead_rows(database_url), _without_times(marker), rejects))

    assert results[0] == results[1]
    assert len(results[0][0]) > 50


def _without_times(marker: str) -> dict:
    stats = json.loads(marker)
    for key in ("seconds", "database"):
        stats.pop(key)
    return stats


def test_the_workers_progress_reaches_the_files_line_count(tmp_path):
    crawl = tmp_path / "crawl.txt"
    crawl.write_bytes(crawl_bytes())
    seen: dict[str, list] = defaultdict(list)

    class Report:
        def update(self, done: int, *, fraction: float | None = None) -> None:
            seen["update"].append((done, fraction))

        def finish(self, done: int | None = None) -> None:
            seen["finish"].append(done)

    tally = LineTally()
    list(split_parse.parsed_blocks(crawl, ENGINES["mews"], tally, processes=3, progress=Report()))

    assert seen["finish"] == [tally.lines]
    assert all(0 <= fraction <= 1 for _, fraction in seen["update"])
