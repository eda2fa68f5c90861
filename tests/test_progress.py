"""Progress that tells the truth: the last line of a phase holds its true count, a terminal gets a
tqdm bar with the total, CI logs get a plain line every few seconds, and each phase (read,
merge, write) is named."""

from __future__ import annotations

import io
import json
import logging
import time

import pytest

from stages.observe.progress import Progress, byte_size, phase
from stages.rules.config import load_params
from stages.rules.crawl import LineParser
from stages.rules.crawl_tally import LineTally
from tests.support.project import REPO


@pytest.fixture
def progress_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="stages.observe.progress")
    return caplog


def rms_parser() -> LineParser:
    return LineParser(load_params(REPO).engine("rms"))


def reading_tally() -> LineTally:
    """A tally that reports its reading, as ingest's does."""
    return LineTally(progress=lambda label: Progress(label, unit="lines"))


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records]


def test_reading_a_150000_line_file_ends_on_150000_lines(tmp_path, progress_log):
    crawl = tmp_path / "rms.txt"
    lines = (f"https://bookings.rmscloud.com/Search/Index/{n:016X}/1/" for n in range(150_000))
    crawl.write_text("\n".join(lines) + "\n", encoding="utf-8")

    tally = reading_tally()
    for _ in tally.outcomes(crawl, rms_parser()):
        pass

    assert tally.lines == 150_000
    assert messages(progress_log)[-1].startswith("read rms.txt: 150,000 lines in ")


@pytest.mark.unit
def test_reading_a_sample_file_ends_on_its_line_count_not_zero(progress_log):
    sample = REPO / "data" / "sources" / "rms.txt"
    tally = reading_tally()
    for _ in tally.outcomes(sample, rms_parser()):
        pass

    (line,) = messages(progress_log)
    assert tally.lines > 0 and line.startswith(f"read rms.txt: {tally.lines:,} lines in ")


@pytest.mark.unit
def test_off_a_terminal_a_line_gives_the_count_share_rate_and_eta(progress_log):
    progress = Progress("read mews.txt", unit="lines", every=0, tty=False)
    progress.update(200_000, fraction=0.25)

    (line,) = messages(progress_log)
    assert line.startswith("read mews.txt: 200,000 lines (25%, ")
    assert "lines/s" in line and "ETA " in line


@pytest.mark.unit
def test_off_a_terminal_a_known_total_is_shown_beside_the_count(progress_log):
    progress = Progress("read siteminder.txt", total=4 << 20, unit="B", every=0, tty=False)
    progress.update(1 << 20)
    progress.finish(4 << 20)

    first, last = messages(progress_log)
    assert first.startswith("read siteminder.txt: 1.0 MB of 4.0 MB (25%, ")
    assert last.startswith("read siteminder.txt: 4.0 MB in ")


@pytest.mark.unit
def test_on_a_terminal_a_tqdm_bar_ends_at_the_total(progress_log):
    terminal = io.StringIO()
    progress = Progress("read cloudbeds.txt", total=1_500, unit="lines", stream=terminal, tty=True)
    progress.update(700)
    progress.finish(1_500)

    drawn = terminal.getvalue()
    assert "read cloudbeds.txt" in drawn and "1500/1500" in drawn and "100%" in drawn
    assert messages(progress_log) == []  # the bar, not log lines


@pytest.mark.unit
def test_a_step_with_nothing_to_count_reports_its_elapsed_time_while_it_runs(progress_log):
    with phase("merge mews leads into PostgreSQL", every=0.02):
        # The step runs until its first report, not a fixed time: quick, and never too short.
        deadline = time.monotonic() + 10
        while not any(" running for " in line for line in messages(progress_log)):
            assert time.monotonic() < deadline, "no report while the step ran"
            time.sleep(0.01)

    lines = messages(progress_log)
    assert lines[0] == "merge mews leads into PostgreSQL: started"
    assert any(line.startswith("merge mews leads into PostgreSQL: running for") for line in lines)
    assert lines[-1].startswith("merge mews leads into PostgreSQL: done in ")


@pytest.mark.unit
def test_a_step_that_fails_says_it_stopped_not_that_it_is_done(progress_log):
    with pytest.raises(RuntimeError), phase("merge rms leads into PostgreSQL"):
        raise RuntimeError("connection lost")

    assert messages(progress_log)[-1].startswith("merge rms leads into PostgreSQL: stopped after ")


def test_the_stages_name_their_phases_and_end_on_true_counts(project, database_url):
    for stage in ("download", "ingest", "export"):
        assert project.stage(stage, "--engine", "rms").returncode == 0, stage
    source = json.loads((project.root / "data" / "raw" / "rms.meta.json").read_text())
    log = (project.root / "logs" / "download" / "rms.log").read_text()
    assert f"read rms.txt: {byte_size(source['bytes'])} in " in log  # storage's byte meter
    counts = json.loads((project.root / "data" / "ingest" / "rms.json").read_text())
    log = (project.root / "logs" / "ingest" / "rms.log").read_text()
    assert f"read rms.txt: {counts['lines']:,} lines in " in log
    assert "merge rms leads into PostgreSQL: done in " in log
    log = (project.root / "logs" / "export" / "rms.log").read_text()
    assert f"read leads, write rms.xlsx: {counts['leads']:,} rows in " in log
