"""DVC's team features on this pipeline: dvc.lock, metrics and load history in git, `dvc metrics
diff`, `dvc plots`, experiments, and code dependencies that follow the stages' imports."""

from __future__ import annotations

import ast
import json
import re
import socket
import subprocess
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from stages.report.metrics import LOAD_COLUMNS, METRICS, write_engine_metrics
from stages.rules.config import EngineFiles, load_params
from stages.tools.pipeline import expand, stage_kinds
from tests.support.imports import import_closure, module_path
from tests.support.pg import create_database, drop_database, forget_database
from tests.support.pipeline import ENGINES, pipeline_copy, ran_pipeline
from tests.support.project import REPO, Project

STAGES = ("download", "ingest", "export", "publish")
# Modules that change how a stage runs or reports, not what it writes or loads (dvc.yaml's
# header states the rule); what they import is theirs, not the stage's.
OBSERVERS = frozenset(
    {
        "stages.runner",
        "stages.errors",
        "stages.store.retry",
        "stages.store.secrets",
        # stages/observe: run history, progress, alerts, status; it only watches.
        *(f"stages.observe.{path.stem}" for path in (REPO / "stages/observe").glob("*.py")),
    }
)
# The package and its subpackages: their __init__ holds a docstring only (checked below), so
# importing through them changes nothing a stage writes.
ROLES = ("rules", "store", "report", "observe", "tools")
PACKAGES = frozenset({"stages", *(f"stages.{role}" for role in ROLES)})
# Files a module reads at run time, which are dependencies wherever the module is one.
MODULE_DATA = {"stages/store/db.py": "stages/store/migrations"}
TERMINAL_WIDTH = 100  # what `dvc metrics show` must fit (issue 13)


def code_deps(stage: str) -> set[str]:
    pipeline = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))
    return {dep for dep in pipeline["stages"][stage]["do"]["deps"] if dep.startswith("stages/")}


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_depends_on_every_module_its_imports_reach_that_can_change_its_result(stage):
    reached = import_closure(f"stages.{stage}", REPO, stop=OBSERVERS) - OBSERVERS - PACKAGES
    expected = {module_path(module, REPO) for module in reached}
    expected |= {MODULE_DATA[path] for path in expected if path in MODULE_DATA}
    assert code_deps(stage) == expected


@pytest.mark.unit
@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_a_package_init_holds_its_docstring_alone(package):
    init = REPO.joinpath(*package.split("."), "__init__.py")
    body = ast.parse(init.read_text(encoding="utf-8")).body
    assert len(body) == 1
    assert isinstance(body[0], ast.Expr)
    assert isinstance(body[0].value, ast.Constant)


@pytest.mark.unit
def test_dvc_yaml_declares_as_outs_and_metrics_exactly_the_files_config_names_for_them():
    values = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params = load_params(REPO)
    for engine in params.engines:
        files = params.files(engine)
        named = {
            (role, spec.metadata[role], getattr(files, spec.name).relative_to(REPO).as_posix())
            for spec in fields(EngineFiles)
            for role in ("out", "metric")
            if spec.metadata[role]
        }
        declared = {
            (role, kind.name, expand(path, values, engine))
            for kind in stage_kinds(REPO)
            for role, paths in (("out", kind.outs), ("metric", kind.metrics))
            for path in paths
        }
        assert declared == named, engine


def test_config_which_normalises_hosts_is_a_dependency_of_every_stage():
    for stage in STAGES:
        assert "stages/rules/config.py" in code_deps(stage), stage


@pytest.fixture(scope="module")
def ran(project_template, pg_server, tmp_path_factory):
    """The pipeline ran once on an empty database, and its record committed, as a user would."""
    folder = tmp_path_factory.mktemp("native")
    with ran_pipeline(project_template, pg_server, folder, committed=True) as pipeline:
        pipeline.project.commit("Reproduce the pipeline")
        yield pipeline


@pytest.fixture
def pipeline(ran, pg_server, tmp_path, monkeypatch):
    """A copy of the committed project, with a copy of its database (DATABASE_URL)."""
    yield from pipeline_copy(ran, pg_server, tmp_path, monkeypatch)


def add_rms_crawl_lines(project: Project, count: int) -> None:
    """Append `count` RMS booking links of properties the samples do not hold (made-up ids)."""
    lines = [f"https://bookings.rmscloud.com/Search/Index/7E1C{n:012X}/1/" for n in range(count)]
    with (project.root / "data" / "sources" / "rms.txt").open("a", encoding="utf-8") as crawl:
        crawl.write("\n".join(lines) + "\n")


def test_a_run_leaves_in_git_only_the_lock_metrics_and_load_history_and_commits_them(pipeline):
    tracked = pipeline.run("git", "ls-files").stdout.splitlines()
    assert "dvc.lock" in tracked
    for engine in ENGINES:
        assert f"data/metrics/{engine}.json" in tracked
        assert f"data/loads/{engine}.csv" in tracked
    assert not [path for path in tracked if path.endswith((".xlsx", ".txt.gz", ".rejects.tsv"))]
    assert pipeline.git_status() == []


def test_metrics_are_seven_counts_per_engine_as_integers_that_match_the_ingest_marker(pipeline):
    for engine in ENGINES:
        figures = json.loads((pipeline.root / "data" / "metrics" / f"{engine}.json").read_text())
        assert sorted(figures) == sorted(METRICS)
        assert all(type(value) is int for value in figures.values())
        ingest = json.loads((pipeline.root / "data" / "ingest" / f"{engine}.json").read_text())
        assert figures["lines"] == ingest["lines"] > figures["rejected"] == ingest["rejected"]
        assert figures["new"] == ingest["inserted"] == figures["leads"]  # an empty database
        assert figures["rows"] == figures["leads"] > 0
        assert (figures["retracted"], figures["sheets"]) == (0, 1)


def test_dvc_metrics_show_has_one_row_per_engine_and_fits_100_columns(pipeline):
    table = pipeline.dvc("metrics", "show").stdout.splitlines()
    assert max(len(line) for line in table) <= TERMINAL_WIDTH
    assert table[0].split() == ["Path", *sorted(METRICS)]
    rows = {line.split()[0]: line.split()[1:] for line in table[1:]}
    assert set(rows) == {f"data/metrics/{engine}.json" for engine in ENGINES}
    assert all(value.isdigit() for values in rows.values() for value in values)


def test_dvc_metrics_show_fits_100_columns_for_every_engine_at_realistic_crawl_sizes(project):
    # design.md: up to 25,000 ids per engine, so five digits in every column.
    params = load_params(project.root)
    ingest = {"lines": 26_250, "rejected": 1_250, "leads": 24_980, "inserted": 24_980}
    for engine in params.engines:
        write_engine_metrics(params, engine, {**ingest, "retracted": 10_250}, 24_980, 1)
    table = project.dvc("metrics", "show").stdout.splitlines()
    assert len(table) == 1 + len(params.engines) == 5
    assert max(len(line) for line in table) <= TERMINAL_WIDTH


def test_metrics_diff_and_plots_diff_compare_a_new_crawl_with_the_committed_run(pipeline):
    add_rms_crawl_lines(pipeline, 50)
    ran = pipeline.ran_stages(pipeline.dvc("repro").stdout)
    assert ran == ["download@rms", "ingest@rms", "export@rms", "publish@rms"]

    diff = json.loads(pipeline.dvc("metrics", "diff", "--json").stdout)
    assert set(diff) == {"data/metrics/rms.json"}
    rms = diff["data/metrics/rms.json"]
    lines = rms["lines"]["old"]
    assert rms["lines"] == {"old": lines, "new": lines + 50, "diff": 50}
    assert rms["new"] == {
        "old": rms["leads"]["old"],
        "new": 50,
        "diff": 50 - rms["leads"]["old"],
    }
    assert rms["leads"]["diff"] == 50 and rms["rows"]["diff"] == 50

    plots = json.loads(pipeline.dvc("plots", "diff", "HEAD", "--json", "--split").stdout)
    (rendered,) = plots["data"]["data/loads/rms.csv"]
    assert sorted(rendered["revisions"]) == ["HEAD", "workspace"]
    rejected = json.loads((pipeline.root / "data" / "metrics" / "rms.json").read_text())["rejected"]
    loads = (pipeline.root / "data" / "loads" / "rms.csv").read_text().splitlines()
    assert loads[0].split(",") == list(LOAD_COLUMNS)
    first, new = rms["leads"]["old"], rms["leads"]["new"]
    assert [row.split(",")[:4] for row in loads[1:]] == [
        ["1", str(first), str(first), str(rejected)],
        ["2", str(new), "50", str(rejected)],
    ]


def test_dvc_plots_show_renders_leads_new_leads_and_rejected_lines_per_load_of_every_engine(
    pipeline,
):
    plots = json.loads(pipeline.dvc("plots", "show", "--json").stdout)["data"]
    assert set(plots) == {f"data/loads/{engine}.csv" for engine in ENGINES}
    for engine in ENGINES:
        (plot,) = plots[f"data/loads/{engine}.csv"]
        spec = plot["content"]
        assert spec["encoding"]["x"]["field"] == "load"
        assert spec["encoding"]["strokeDash"]["scale"]["domain"] == [
            "leads",
            "new_leads",
            "rejected",
        ]
        assert {row["field"] for row in spec["data"]["values"]} == {
            "leads",
            "new_leads",
            "rejected",
        }
    page = pipeline.dvc("plots", "show").stdout.strip().splitlines()[-1]
    assert "vega" in Path(page.removeprefix("file://")).read_text(encoding="utf-8")
    assert pipeline.git_status() == []  # dvc_plots/ is git-ignored


def test_reloading_the_same_crawl_changes_no_tracked_file_and_leaves_export_up_to_date(pipeline):
    ran = pipeline.ran_stages(
        pipeline.dvc("repro", "--single-item", "--force", "ingest@rms").stdout
    )
    assert ran == ["ingest@rms"]
    assert pipeline.git_status() == []
    assert pipeline.dvc("status").stdout.strip() == "Data and pipelines are up to date."


def test_an_experiment_on_rows_per_sheet_reruns_only_exports_and_lists_every_engines_metrics(
    pipeline,
):
    run = pipeline.dvc("exp", "run", "--name", "small-sheets", "-S", "export.rows_per_sheet=100")
    assert sorted(pipeline.ran_stages(run.stdout)) == sorted(
        f"{stage}@{engine}" for stage in ("export", "publish") for engine in ENGINES
    )
    shown = json.loads(pipeline.dvc("exp", "show", "--json").stdout)
    experiments = {
        exp["name"]: exp
        for baseline in shown
        for experiment in (baseline.get("experiments") or [])
        for exp in experiment["revs"]
    }
    data = experiments["small-sheets"]["data"]
    assert data["params"]["params.yaml"]["data"]["export"]["rows_per_sheet"] == 100
    metrics = {path: found["data"] for path, found in data["metrics"].items()}
    assert set(metrics) == {f"data/metrics/{engine}.json" for engine in ENGINES}
    for figures in metrics.values():
        assert figures["sheets"] == -(-figures["rows"] // 100)


def test_a_fresh_clone_reproduces_the_committed_run_without_changing_a_tracked_file(
    ran, pg_server, tmp_path, monkeypatch
):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ran.project.root), str(clone)], check=True)
    name, url = create_database(pg_server, "clone")
    forget_database(monkeypatch)
    monkeypatch.setenv("DATABASE_URL", url)
    try:
        project = Project(clone)
        project.dvc("repro")
        assert project.git_status() == []
    finally:
        drop_database(pg_server, name)


def test_the_committed_dvc_lock_holds_only_repository_relative_paths_and_no_host():
    text = (REPO / "dvc.lock").read_text(encoding="utf-8")
    lock = yaml.safe_load(text)
    paths = [
        entry["path"]
        for stage in lock["stages"].values()
        for entry in stage.get("deps", []) + stage.get("outs", [])
    ]
    assert paths and not [path for path in paths if path.startswith("/") or ".." in path]
    assert not re.search(rf"\b{re.escape(socket.gethostname())}\b", text)
    assert str(Path.home()) not in text
    assert not re.search(r"://[^/\s]*@", text)  # no URL carries a user or password
