"""Hostile crawl files: the ingest never crashes, counts every line once, keeps memory flat,
stores crawled text verbatim (SQL goes through parameters and COPY), and the workbook made from
it executes nothing.

Every case of tests/support/hostile.py is ingested once, by the real stage process, into a
database of its own; the tests below read what those runs left behind.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import sys
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from tests.support.hostile import (
    CASES,
    DUPLICATE_LINES,
    PERMISSIVE,
    PERMISSIVE_ENGINE,
    duplicates,
    physical_lines,
)
from tests.support.measure import run_measured, stage_env
from tests.support.pg import create_database, drop_database
from tests.support.project import Project

REPO = Path(__file__).resolve().parents[1]
# What "flat" allows on top of the reference run: a 1 MiB read chunk, one 65,536-id COPY block
# and allocator slack; holding the 10 MB line or the duplicate ids would take far more.
FLAT_SLACK_MIB = 8
FORMULA_ELEMENT = re.compile(rb"<(?:\w+:)?f[\s>/]")
# Random bytes are not a crawl file: ingest fails naming the format ("Real crawls, exactly").
UNREADABLE = ("binary_garbage",)
READABLE = [kind for kind in CASES if kind not in UNREADABLE]


@dataclass
class IngestRun:
    """What one ingest of one hostile file left behind."""

    returncode: int
    stderr: str
    peak_mib: float
    physical_lines: int
    marker: dict = field(default_factory=dict)
    rejects: list[list[str]] = field(default_factory=list)
    stored_ids: list[str] = field(default_factory=list)
    workbook: Path | None = None


def _ingest(project: Project, pg_server: str, engine: str, write) -> IngestRun:
    """Write the crawl file, run `python -m stages.ingest` on it, then export in-process."""
    raw = project.root / "data/raw" / f"{engine}.txt"
    raw.parent.mkdir(parents=True, exist_ok=True)
    write(raw)
    (project.root / "data/raw" / f"{engine}.meta.json").write_text(
        json.dumps({"source_modified": datetime(2026, 7, 1, tzinfo=UTC).isoformat()})
    )
    name, url = create_database(pg_server)
    try:
        result, peak = run_measured(
            [sys.executable, "-m", "stages.ingest", "--engine", engine],
            cwd=project.root,
            env=stage_env(url),
        )
        run = IngestRun(result.returncode, result.stderr, peak, physical_lines(raw))
        if result.returncode != 0:
            return run
        run.marker = json.loads((project.root / "data/ingest" / f"{engine}.json").read_text())
        rejects = (project.root / run.marker["rejects_file"]).read_text(encoding="utf-8")
        run.rejects = [row.split("\t") for row in rejects.split("\n") if row]
        with psycopg.connect(url) as conn:
            run.stored_ids = [
                row[0]
                for row in conn.execute(
                    "SELECT l.property_id FROM hotel_booking_engines l"
                    " JOIN booking_engines e ON e.id = l.engine_id WHERE e.name = %s",
                    [engine],
                )
            ]
        run.workbook = _export(project, url, engine)
        return run
    finally:
        drop_database(pg_server, name)
        raw.unlink()


def accepted(kind: str) -> frozenset[str]:
    """The exact ids case `kind` stores (it must be a case with a known answer)."""
    ids = CASES[kind].accepted
    assert ids is not None, f"{kind} is random input: no exact ids"
    return ids


def _export(project: Project, url: str, engine: str) -> Path | None:
    from stages import export

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATABASE_URL", url)
        patch.setenv("CRAWL_PIPELINE_ROOT", str(project.root))
        if export.main(["--engine", engine]) != 0:
            return None
    kept = project.root / f"{engine}-{len(list(project.root.glob('*.xlsx')))}.xlsx"
    shutil.copyfile(project.root / "data/exports" / f"{engine}.xlsx", kept)
    return kept


@pytest.fixture(scope="module")
def hostile_project(project_template: Project, tmp_path_factory) -> Project:
    root = tmp_path_factory.mktemp("hostile") / "project"
    shutil.copytree(project_template.root, root, symlinks=True)
    project = Project(root)
    project.edit_params(lambda p: p["engines"].update({PERMISSIVE: PERMISSIVE_ENGINE}))
    # These files are junk on purpose: accept any rejected share (the collapse guard has its
    # own tests in test_ingest.py).
    project.edit_params(lambda p: p["ingest"].update(max_rejected_share=1))
    return project


@pytest.fixture(scope="module")
def runs(hostile_project: Project, pg_server: str) -> dict[str, IngestRun]:
    """Every hostile case ingested once, plus two reference runs for the memory figures."""
    done = {
        kind: _ingest(hostile_project, pg_server, case.engine, case.write)
        for kind, case in CASES.items()
    }
    done["reference_small_file"] = _ingest(
        hostile_project,
        pg_server,
        "cloudbeds",
        lambda path: path.write_text("https://hotels.cloudbeds.com/reservation/small1\n"),
    )
    done["reference_tenth_of_the_duplicates"] = _ingest(
        hostile_project, pg_server, "cloudbeds", duplicates(DUPLICATE_LINES // 10)
    )
    print("\npeak RSS of the ingest stage process (MiB):")
    for kind, run in done.items():
        print(f"  {kind:40} {run.peak_mib:7.1f}  lines {run.physical_lines}")
    return done


@pytest.mark.parametrize("kind", READABLE)
def test_the_ingest_survives_and_counts_every_line_once(runs, kind):
    run = runs[kind]
    assert run.returncode == 0, run.stderr
    stats = run.marker
    assert stats["lines"] == run.physical_lines
    assert stats["lines"] == stats["blank"] + stats["rejected"] + stats["accepted_lines"]
    assert stats["rejected"] == sum(stats["rejected_by_reason"].values())
    assert stats["valid"] == stats["unique"] + stats["duplicates"]
    assert stats["unique"] == stats["inserted"] + stats["updated"] + stats["unchanged"]
    header, *rejected = run.rejects
    assert header == ["line", "reason", "text"]
    numbers = [int(row[0]) for row in rejected]
    assert len(numbers) == len(set(numbers)) == stats["rejected"]
    assert all(1 <= number <= stats["lines"] for number in numbers)
    assert all(len(row) == 3 for row in rejected), "a reject's text broke the TSV"


@pytest.mark.parametrize("kind", READABLE)
def test_exactly_the_expected_ids_are_stored_and_nothing_else(runs, kind, hostile_project):
    run, case = runs[kind], CASES[kind]
    assert run.returncode == 0, run.stderr
    assert len(run.stored_ids) == run.marker["unique"]
    if case.accepted is not None:
        assert sorted(run.stored_ids) == sorted(case.accepted)
    if case.reasons is not None:
        assert set(run.marker["rejected_by_reason"]) == case.reasons
    id_pattern = hostile_project.params_engine(case.engine).id_pattern
    assert all(id_pattern.fullmatch(found) for found in run.stored_ids)


def test_random_bytes_fail_the_ingest_with_one_line_naming_the_format(runs):
    run = runs["binary_garbage"]
    failed = [line for line in run.stderr.splitlines() if "failed" in line]
    assert run.returncode == 1 and len(failed) == 1
    assert "ingest@cloudbeds" in failed[0] and "cloudbeds.txt is binary data" in failed[0]
    assert run.stored_ids == []


def test_sql_looking_text_is_stored_verbatim(runs):
    run = runs["sql_looking_lines"]
    assert sorted(run.stored_ids) == sorted(accepted("sql_looking_lines"))


@pytest.mark.parametrize("kind", READABLE)
def test_the_workbook_made_from_hostile_input_executes_nothing(runs, kind):
    run = runs[kind]
    assert run.workbook is not None, "the export failed"
    with zipfile.ZipFile(run.workbook) as archive:
        for part in archive.namelist():
            data = archive.read(part)
            assert not FORMULA_ELEMENT.search(data), f"{part} holds a formula"
            assert b"externalLink" not in data and b"ddeLink" not in data
    from openpyxl import load_workbook

    sheet = load_workbook(run.workbook, read_only=True)["Leads"]
    ids = [row[6] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert sorted(ids, key=str) == sorted(run.stored_ids)  # key=str: a cell may be no text


def test_formula_looking_ids_reach_the_workbook_as_text(runs):
    run = runs["formula_looking_lines"]
    from openpyxl import load_workbook

    sheet = load_workbook(run.workbook)["Leads"]
    cells = [row[6] for row in sheet.iter_rows(min_row=2)]
    values = [cell.value for cell in cells]
    assert sorted(values, key=str) == sorted(accepted("formula_looking_lines"))
    assert {cell.data_type for cell in cells} == {"s"}
    # Quote-prefixed, so Excel keeps them text even when someone edits the cell.
    risky = [cell for cell in cells if str(cell.value).startswith(("=", "+", "-", "@", "#"))]
    assert len(risky) == 7 and all(cell.quotePrefix for cell in risky)


@pytest.mark.parametrize("kind", ["ten_megabyte_line", "binary_garbage"])
def test_a_huge_line_or_random_bytes_do_not_raise_peak_memory(runs, kind):
    baseline = runs["reference_small_file"]
    assert runs[kind].returncode == (1 if kind in UNREADABLE else 0) and baseline.returncode == 0
    assert runs[kind].peak_mib <= baseline.peak_mib + FLAT_SLACK_MIB


def test_peak_memory_does_not_grow_with_millions_of_duplicates(runs):
    tenth = runs["reference_tenth_of_the_duplicates"]
    full = runs["millions_of_duplicates"]
    assert full.marker["valid"] == DUPLICATE_LINES == 10 * tenth.marker["valid"]
    assert full.peak_mib <= tenth.peak_mib + FLAT_SLACK_MIB


@pytest.mark.slow
def test_peak_memory_stays_flat_at_ten_million_lines(hostile_project, pg_server, runs):
    soak = _ingest(hostile_project, pg_server, "cloudbeds", duplicates(10_000_000))
    print(f"\npeak RSS at 10,000,000 lines: {soak.peak_mib:.1f} MiB")
    assert soak.returncode == 0, soak.stderr
    assert soak.marker["lines"] == 10_000_000
    assert soak.peak_mib <= runs["reference_tenth_of_the_duplicates"].peak_mib + FLAT_SLACK_MIB


# --- SQL is never assembled from runtime values ---------------------------------------------

SQL_CALLS = {"execute", "executemany", "copy", "SQL"}


def _constant_only(node: ast.AST) -> bool:
    """An expression built only from literals and UPPER_CASE module constants."""
    return all(
        isinstance(child, ast.Constant | ast.BinOp | ast.UnaryOp | ast.operator | ast.unaryop)
        or (isinstance(child, ast.Name) and child.id.isupper())
        or isinstance(child, ast.Load)
        for child in ast.walk(node)
    )


def _assembled_sql(tree: ast.AST) -> list[int]:
    """Lines where a SQL call's statement is an f-string, `%` or `.format` of runtime values."""
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and node.args):
            continue
        name = getattr(node.func, "attr", getattr(node.func, "id", None))
        statement = node.args[0]
        if name not in SQL_CALLS:
            continue
        if isinstance(statement, ast.JoinedStr):
            parts = [p.value for p in statement.values if isinstance(p, ast.FormattedValue)]
            assembled = not all(_constant_only(part) for part in parts)
        elif isinstance(statement, ast.BinOp):
            assembled = not _constant_only(statement)
        else:
            assembled = (
                isinstance(statement, ast.Call) and getattr(statement.func, "attr", "") == "format"
            )
        if assembled:
            found.append(node.lineno)
    return found


def test_no_stage_module_assembles_sql_from_runtime_values():
    offenders = {
        path.name: lines
        for path in sorted((REPO / "stages").glob("*.py"))
        if (lines := _assembled_sql(ast.parse(path.read_text(encoding="utf-8"))))
    }
    assert offenders == {}


def test_the_sql_check_catches_an_f_string_built_from_crawled_text():
    bad = ast.parse("cur.execute(f\"SELECT * FROM hotels WHERE id = '{property_id}'\")")
    also_bad = ast.parse('conn.execute("DELETE FROM hotels WHERE id = %s" % property_id)')
    fine = ast.parse('conn.execute(f"SET statement_timeout = {TIMEOUT * 1000}")')
    assert _assembled_sql(bad) and _assembled_sql(also_bad) and not _assembled_sql(fine)
