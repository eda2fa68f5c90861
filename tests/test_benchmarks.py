"""Every benchmark runs end to end at a tiny size and prints its figure beside its baseline.

These are smoke runs that keep the benchmark scripts working: nothing here looks at how long
anything took. Each benchmark uses the test session's PostgreSQL server where it needs one.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from benchmarks import (
    common,
    download,
    export,
    ingest,
    parse,
    parse_split,
    pipeline,
    repro,
    scale,
    startup,
    versus_prefect,
)

TINY = ["--repeat", "1", "--no-warmup"]


@pytest.fixture(autouse=True)
def crawl_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Generated crawl files go to a folder of the test, not the shared benchmark cache."""
    cache = tmp_path / "crawl-cache"
    monkeypatch.setattr(common, "CACHE", cache)
    return cache


def figure_lines(output: str) -> list[str]:
    """The summary's figure lines: `<figure> <what> ours ... baseline ... ratio ... target`."""
    summary = output.split("# summary\n", 1)[1]
    return [line for line in summary.splitlines() if line.strip()]


def what(line: str) -> str:
    """What a figure line measured: the text between the figure number and `ours`."""
    return line.split(maxsplit=1)[1].split(" ours ")[0].strip()


def test_ingest_is_timed_against_the_floor_for_a_first_load_and_a_reload(pg_server, capsys):
    assert ingest.main(["--lines", "300", "--pg", pg_server, *TINY]) == 0

    out = capsys.readouterr().out
    assert out.count("floor and ours leave the same leads: yes") == 2
    lines = figure_lines(out)
    assert [what(line) for line in lines] == [
        "ingest 300 lines, first load",
        "ingest 300 lines, re-load a week later",
    ]
    assert all("ratio" in line and "target <= 1.30x" in line for line in lines)


def test_ingest_can_also_be_timed_against_row_by_row_upserts(pg_server, capsys):
    assert ingest.main(["--lines", "100", "--executemany", "--pg", pg_server, *TINY]) == 0

    lines = figure_lines(capsys.readouterr().out)
    assert sum("vs executemany" in line for line in lines) == 2


def test_export_is_timed_against_a_bare_openpyxl_script(pg_server, capsys):
    assert export.main(["--rows", "200", "--pg", pg_server, *TINY]) == 0

    (line,) = figure_lines(capsys.readouterr().out)
    assert what(line) == "export of 200 leads" and "target <= 1.15x" in line


def test_download_is_timed_against_boto3_download_file(capsys):
    assert download.main(["--mb", "0.2", *TINY]) == 0

    lines = figure_lines(capsys.readouterr().out)
    assert what(lines[0]).startswith("download of") and "target >= 0.80x" in lines[0]
    assert "MB/s" in lines[0]


def test_a_no_op_repro_is_timed_against_dvc_status(pg_server, capsys):
    assert repro.main(["--engines", "1", "--lines", "20", "--pg", pg_server, *TINY]) == 0

    (line,) = figure_lines(capsys.readouterr().out)
    assert what(line) == "no-op dvc repro, 1 engines (4 stages)" and "target <= 1.20x" in line


def test_start_up_is_timed_for_every_stage_in_dvc_yaml(pg_server, capsys):
    assert startup.main(["--pg", pg_server, *TINY]) == 0

    lines = figure_lines(capsys.readouterr().out)
    help_lines = [line for line in lines if "start-up of stages." in line]
    timed = [line.split("start-up of stages.")[1].split()[0] for line in help_lines]
    assert timed == startup.stage_kinds()
    assert all("target <= 0.35 s" in line for line in help_lines)


def test_a_stage_with_nothing_to_do_is_timed_against_a_bare_interpreter(pg_server, capsys):
    assert startup.main(["--pg", pg_server, "--only", "ingest", *TINY]) == 0

    lines = figure_lines(capsys.readouterr().out)
    no_work = [what(line) for line in lines if "with nothing to do" in line]
    assert no_work == [
        "stages.ingest with nothing to do, whole process",
        "stages.export with nothing to do, whole process",
    ]
    assert all("own cost (less a bare interpreter)" in line for line in lines[1:])


def test_the_whole_pipeline_runs_from_clean_and_peak_memory_is_reported(pg_server, capsys):
    arguments = ["--lines", "20", "--ingest-lines", "50", "100", "--export-rows", "10", "20"]
    assert pipeline.main([*arguments, "--pg", pg_server, *TINY]) == 0

    lines = figure_lines(capsys.readouterr().out)
    assert [what(line) for line in lines] == [
        "whole pipeline, 4 engines x 20 lines",
        "peak RSS of ingest, 100 lines vs 50",
        "peak RSS of export, 20 rows vs 10",
    ]
    assert all("target <= 250 MB" in line for line in lines[1:])


def test_dvc_repro_is_timed_against_a_shell_loop_and_the_planned_prefect_flow(pg_server, capsys):
    pytest.importorskip("prefect", reason="Prefect is in the `bench` group: uv sync --group bench")
    assert versus_prefect.main(["--lines", "20", "--pg", pg_server, *TINY]) == 0

    lines = figure_lines(capsys.readouterr().out)
    assert [what(line) for line in lines] == [
        "dvc repro vs shell loop, 4 engines x 20 lines",
        "dvc repro vs Prefect flow, 4 engines x 20 lines",
        "stages.tools.parallel --jobs 2 vs shell loop, 4 engines x 20 lines",
        "stages.tools.parallel --jobs 2 vs Prefect flow, 4 engines x 20 lines",
    ]
    assert "target <= 1.50x" in lines[0] and "target <= 0.50x" in lines[1]
    assert "Prefect flow body alone: median" in lines[1]


def test_the_scale_curve_prints_a_table_row_per_engine_count_and_the_cost_per_stage_figure(
    pg_server, capsys
):
    # 5 engines: the fifth is a params entry copied from the first, as a user adds one.
    assert scale.main(["--engines", "1", "5", "--lines", "20", "--pg", pg_server]) == 0

    output = capsys.readouterr().out
    table = output.split("# table (Markdown)\n", 1)[1].split("# load average", 1)[0]
    rows = [line for line in table.splitlines()[2:] if line.startswith("|")]
    assert [row.split("|")[1:3] for row in rows] == [
        [" 1 ", " 4 "],
        [" 5 ", " 20 "],
    ]
    (line,) = figure_lines(output)
    assert what(line) == "DVC's cost per stage, 5 vs 1 engines" and "target <= 1.30x" in line


def test_the_parse_hot_loop_is_timed_against_a_baseline_tree(capsys):
    # This tree as its own baseline: a shallow clone holds no first-release commit.
    assert parse.main(["--lines", "200", "--old", str(common.REPO), *TINY]) == 0

    lines = figure_lines(capsys.readouterr().out)
    assert [what(line) for line in lines] == [
        f"parse, {engine}, 200 lines, best of 1" for engine in parse.ENGINES
    ]
    assert all("target <= 1.30x" in line and "ratio of medians" in line for line in lines)


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind counts the instructions")
def test_the_parse_hot_loop_can_be_counted_in_instructions_instead(capsys):
    args = ["--lines", "200", "--old", str(common.REPO), "--engines", "rms", "--instructions"]
    assert parse.main([*args, "50", *TINY]) == 0

    (line,) = figure_lines(capsys.readouterr().out)
    assert what(line) == "parse, rms, instructions a line (50 lines)"
    assert "ratio   1.00x" in line  # the same tree on both sides: the same count, exactly


def test_ingests_python_share_is_timed_split_over_processes_against_one(capsys):
    assert parse_split.main(["--lines", "300", "--processes", "3", *TINY]) == 0

    (line,) = figure_lines(capsys.readouterr().out)
    assert what(line) == "ingest's Python share, 300 lines, in 3 processes"
