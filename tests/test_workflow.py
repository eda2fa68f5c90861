"""The CI reproduction workflow, .github/workflows/reproduce.yml, and the script it shares with
.ci/run: triggers, the engine matrix from params.yaml, the PostgreSQL service, secrets, the
steps, and the gate on `dvc status`."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.project import REPO

WORKFLOWS = REPO / ".github" / "workflows"
WORKFLOW = WORKFLOWS / "reproduce.yml"
CI_WORKFLOW = WORKFLOWS / "ci.yml"
SCRIPT = REPO / ".ci" / "reproduce"
SHA_PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


def triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    return workflow["on"] if "on" in workflow else workflow[True]  # YAML 1.1: bare `on` is True


def step_using(job: dict[str, Any], action: str) -> dict[str, Any]:
    found = [s for s in job["steps"] if str(s.get("uses", "")).startswith(f"{action}@")]
    assert len(found) == 1, f"one step should use {action}"
    return found[0]


def step_running(job: dict[str, Any], text: str) -> dict[str, Any]:
    found = [s for s in job["steps"] if text in s.get("run", "")]
    assert len(found) == 1, f"one step should run {text!r}"
    return found[0]


@pytest.mark.unit
def test_it_runs_daily_and_on_demand_with_an_optional_engine(workflow):
    on = triggers(workflow)
    (schedule,) = on["schedule"]
    minute, hour, day, month, weekday = schedule["cron"].split()
    assert (day, month, weekday) == ("*", "*", "*") and minute.isdigit() and hour.isdigit()
    engine = on["workflow_dispatch"]["inputs"]["engine"]
    assert engine["required"] is False and engine["default"] == ""


def test_the_first_job_lists_the_engines_of_params_yaml(workflow):
    job = workflow["jobs"]["engines"]
    step = step_running(job, "stages.tools.parallel --list")
    assert job["outputs"]["engines"] == f"${{{{ steps.{step['id']}.outputs.engines }}}}"
    assert step["env"]["ENGINE"] == "${{ inputs.engine }}"
    command = re.search(r"uv run --frozen (python -m stages\.tools\.parallel --list)", step["run"])
    assert command, "the engine list must come from stages.tools.parallel"
    listed = subprocess.run(
        [sys.executable, *command[1].split()[1:]], cwd=REPO, capture_output=True, text=True
    )
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert json.loads(listed.stdout) == list(params["engines"])


@pytest.mark.unit
def test_the_matrix_has_one_job_per_listed_engine_and_no_fail_fast(workflow):
    job = workflow["jobs"]["reproduce"]
    assert "engines" in _needs(job)
    assert job["strategy"]["matrix"] == {"engine": "${{ fromJSON(needs.engines.outputs.engines) }}"}
    assert job["strategy"]["fail-fast"] is False


@pytest.mark.unit
def test_each_engine_job_has_a_postgresql_service_and_uses_it_unless_a_secret_names_another(
    workflow,
):
    job = workflow["jobs"]["reproduce"]
    postgres = job["services"]["postgres"]
    assert postgres["image"].startswith("postgres:")
    assert "pg_isready" in postgres["options"]
    assert "5432:5432" in postgres["ports"]
    env = postgres["env"]
    local_url = f"postgresql://{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}@localhost:5432/"
    assert step_running(job, ".ci/reproduce")["env"]["DATABASE_URL"] == (
        f"${{{{ secrets.DATABASE_URL || '{local_url}{env['POSTGRES_DB']}' }}}}"
    )


@pytest.mark.unit
def test_credentials_come_from_the_secret_store_only(workflow):
    env = step_running(workflow["jobs"]["reproduce"], ".ci/reproduce")["env"]
    assert env["AWS_ACCESS_KEY_ID"] == "${{ secrets.AWS_ACCESS_KEY_ID }}"
    assert env["AWS_SECRET_ACCESS_KEY"] == "${{ secrets.AWS_SECRET_ACCESS_KEY }}"
    assert env["DVC_REMOTE_URL"].startswith("${{ ")  # a repository variable, never a literal


@pytest.mark.unit
def test_each_engine_job_sets_up_uv_runs_the_shared_script_and_uploads_the_workbook(workflow):
    job = workflow["jobs"]["reproduce"]
    setup = step_using(job, "astral-sh/setup-uv")
    reproduce = step_running(job, ".ci/reproduce")
    upload = step_using(job, "actions/upload-artifact")
    order = [job["steps"].index(s) for s in (setup, reproduce, upload)]
    assert order == sorted(order)

    assert reproduce["env"]["ENGINE"] == "${{ matrix.engine }}"
    workdir = re.search(
        r'\.ci/reproduce "\$ENGINE" --workdir "\$RUNNER_TEMP/([^"]+)"', reproduce["run"]
    )
    assert workdir, "the script must keep its clone where the upload step looks"
    exports = yaml.safe_load((REPO / "params.yaml").read_text())["paths"]["exports"]
    workbook = f"${{{{ runner.temp }}}}/{workdir[1]}/{exports}/${{{{ matrix.engine }}}}.xlsx"
    assert workbook in upload["with"]["path"].splitlines()
    assert upload["if"] == "always()"  # the logs matter most when the run failed


@pytest.mark.unit
def test_inputs_reach_shell_commands_only_through_the_environment(workflow):
    """`${{ inputs.* }}` inside a run script would let a crafted input run commands."""
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            assert not re.search(r"\$\{\{\s*(inputs|matrix|github\.event)", step.get("run", ""))


@pytest.mark.unit
def test_the_gate_waits_for_every_engine_and_runs_even_when_one_failed(workflow):
    gate = workflow["jobs"]["gate"]
    assert {"engines", "reproduce"} <= set(_needs(gate))
    assert gate["if"] == "always()"
    assert step_using(gate, "actions/download-artifact")["with"]["pattern"] == "reproduce-*"


@pytest.mark.skipif(shutil.which("jq") is None, reason="the gate uses jq, as GitHub runners have")
@pytest.mark.parametrize(
    ("reports", "result", "passes"),
    [
        ({"mews": {}, "rms": {}}, "success", True),
        (
            {"mews": {}, "rms": {"ingest@rms": [{"changed outs": {"x": "deleted"}}]}},
            "success",
            False,
        ),
        ({"mews": {}}, "success", False),
        ({"mews": {}, "rms": {}}, "failure", False),
    ],
    ids=["all-clean", "one-stale", "one-missing", "a-job-failed"],
)
def test_the_gate_passes_only_when_every_engine_reported_a_clean_status(
    workflow, tmp_path, reports, result, passes
):
    for engine, status in reports.items():
        report = tmp_path / "reports" / f"reproduce-{engine}" / "dvc-status.json"
        report.parent.mkdir(parents=True)
        report.write_text(json.dumps(status))
    gate = step_running(workflow["jobs"]["gate"], "dvc-status.json")
    env = {
        **os.environ,
        "ENGINES": json.dumps(["mews", "rms"]),
        "RESULT": result,
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
    }
    run = subprocess.run(
        ["bash", "-e", "-c", gate["run"]], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert (run.returncode == 0) is passes, run.stdout + run.stderr
    if not passes and result == "success":
        assert "::error::rms" in run.stdout


def test_the_shared_script_is_valid_bash_and_documents_its_modes():
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0
    usage = subprocess.run(["bash", str(SCRIPT), "--help"], capture_output=True, text=True)
    assert usage.returncode == 0
    for option in ("ENGINE", "--remote", "--endpoint", "--workdir", "--local-services"):
        assert option in usage.stdout


def test_the_local_ci_runs_the_shared_script():
    run = (REPO / ".ci" / "run").read_text()
    assert "bash .ci/reproduce" in run


def _needs(job: dict[str, Any]) -> list[str]:
    needs = job.get("needs", [])
    return [needs] if isinstance(needs, str) else list(needs)


def every_workflow() -> list[tuple[str, dict[str, Any]]]:
    return [
        (path.name, yaml.safe_load(path.read_text(encoding="utf-8")))
        for path in sorted(WORKFLOWS.glob("*.yml"))
    ]


@pytest.mark.unit
def test_ci_runs_the_lint_and_tests_of_the_local_ci_on_every_push_and_pull_request():
    ci = yaml.safe_load(CI_WORKFLOW.read_text(encoding="utf-8"))
    assert {"push", "pull_request"} <= set(triggers(ci))
    (job,) = ci["jobs"].values()
    assert step_running(job, "bash .ci/run lint")
    assert step_running(job, "bash .ci/run test")
    assert "secrets." not in CI_WORKFLOW.read_text(encoding="utf-8")


@pytest.mark.unit
def test_every_third_party_action_is_pinned_to_a_commit_sha():
    for name, workflow in every_workflow():
        for job in workflow["jobs"].values():
            for step in job.get("steps", []):
                if "uses" in step:
                    assert SHA_PINNED.match(step["uses"]), f"{name}: {step['uses']}"


@pytest.mark.unit
def test_every_checkout_keeps_no_credentials_in_the_clone():
    for name, workflow in every_workflow():
        for job in workflow["jobs"].values():
            for step in job.get("steps", []):
                if str(step.get("uses", "")).startswith("actions/checkout@"):
                    assert step.get("with", {}).get("persist-credentials") is False, name


@pytest.mark.unit
def test_secrets_reach_only_the_steps_that_use_them():
    for name, workflow in every_workflow():
        assert "secrets." not in json.dumps(workflow.get("env", {})), name
        for job in workflow["jobs"].values():
            assert "secrets." not in json.dumps(job.get("env", {})), name
    steps_with_secrets = [
        step.get("name")
        for _, workflow in every_workflow()
        for job in workflow["jobs"].values()
        for step in job.get("steps", [])
        if "secrets." in json.dumps(step)
    ]
    assert steps_with_secrets == ["Reproduce ${{ matrix.engine }}"]


@pytest.mark.unit
def test_only_the_proposing_job_may_write_and_only_after_the_gate(workflow):
    assert workflow["permissions"] == {"contents": "read"}
    writers = {
        name: job
        for name, job in workflow["jobs"].items()
        if "write" in str(job.get("permissions"))
    }
    assert list(writers) == ["propose"]
    assert "gate" in _needs(writers["propose"]) and "if" not in writers["propose"]


def test_the_local_ci_checks_both_workflows_with_zizmor_and_the_workflow_schema():
    run = (REPO / ".ci" / "run").read_text()
    assert "zizmor" in run and "vendor.github-workflows" in run
    assert ".github/workflows/*.yml" in run


def test_collect_merges_each_engines_lock_entries_metrics_and_load_history(tmp_path):
    """What the proposing job commits: from each engine job's report, that engine's stages."""
    checkout = tmp_path / "checkout"
    shutil.copytree(
        REPO / "stages", checkout / "stages", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(REPO / ".ci", checkout / ".ci")
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy2(REPO / name, checkout / name)
    entry: dict[str, Any] = {"cmd": "python -m stages.ingest --engine {}", "outs": []}
    committed: dict[str, Any] = {
        "schema": "2.0",
        "stages": {
            f"ingest@{e}": {**entry, "cmd": entry["cmd"].format(e)} for e in ("mews", "rms")
        },
    }
    (checkout / "dvc.lock").write_text(yaml.safe_dump(committed, sort_keys=False))
    report = tmp_path / "reports" / "reproduce-rms"
    (report / "data" / "metrics").mkdir(parents=True)
    (report / "data" / "loads").mkdir(parents=True)
    (report / "data" / "metrics" / "rms.json").write_text('{"leads": 300}\n')
    (report / "data" / "loads" / "rms.csv").write_text("load,leads,new_leads,rejected,crawl\n")
    job_lock = {
        "schema": "2.0",
        "stages": {
            "ingest@rms": {"cmd": "python -m stages.ingest --engine rms", "outs": ["new"]},
            "ingest@mews": {"cmd": "stale copy of mews", "outs": []},
        },
    }
    (report / "dvc.lock").write_text(yaml.safe_dump(job_lock, sort_keys=False))

    run = subprocess.run(
        ["bash", str(checkout / ".ci" / "reproduce"), "--collect", str(tmp_path / "reports")],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "VIRTUAL_ENV": sys.prefix,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        },
    )
    assert run.returncode == 0, run.stderr
    merged = yaml.safe_load((checkout / "dvc.lock").read_text())["stages"]
    assert merged["ingest@rms"]["outs"] == ["new"]
    assert merged["ingest@mews"] == committed["stages"]["ingest@mews"]
    assert (checkout / "data" / "metrics" / "rms.json").read_text() == '{"leads": 300}\n'
    assert (checkout / "data" / "loads" / "rms.csv").is_file()
