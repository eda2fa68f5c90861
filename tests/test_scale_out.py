"""Scale-out: engines side by side on one machine (stages.tools.parallel), and machines that
share work through a DVC remote on S3 (with the run-cache) instead of anything home-made.

Each scenario runs once per module (DVC is slow to start) and the tests read its results.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from stages.tools.pipeline import engine_stages
from tests.support.pg import create_database, drop_database
from tests.support.project import REPO, Project
from tests.support.s3 import FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY, REGION, s3_client

CONCURRENT = ("cloudbeds", "mews")
SHARED = "mews"
CACHED = ("data/raw/mews.txt", "data/raw/mews.meta.json", "data/exports/mews.xlsx")
# The output DVC does not cache and git does not hold: on a fresh clone it is missing until its
# stage runs again, which is what makes the load run on every machine. (The run records beside
# it, data/ingest/mews.json and the like, are not declared; the load history is in git.)
UNCACHED = {"data/ingest/mews.rejects.tsv"}


@dataclass(kw_only=True)
class Machine(Project):
    """A workspace of the project with its own database (and S3 settings), like one CI runner."""

    database: str
    database_url: str
    outputs: dict[str, Any] = field(default_factory=dict)

    def use_remote(self, url: str, endpoint_url: str) -> None:
        """What CI does with `dvc remote add --local -d storage URL` + `modify endpointurl`."""
        from configobj import ConfigObj

        config = ConfigObj(str(self.root / ".dvc" / "config.local"))
        config["core"] = {"remote": "storage", "analytics": "false"}
        config['remote "storage"'] = {"url": url, "endpointurl": endpoint_url}
        config.write()

    def leads(self, engines: tuple[str, ...]) -> list[tuple]:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(
                "SELECT e.name, l.property_id, l.booking_url, l.sources, l.detection_method,"
                " l.first_seen_at, l.last_seen_at FROM hotel_booking_engines l"
                " JOIN booking_engines e ON e.id = l.engine_id WHERE e.name = ANY(%s)"
                " ORDER BY 1, 2",
                [list(engines)],
            ).fetchall()

    def read(self, path: str) -> bytes:
        return (self.root / path).read_bytes()


def machine_env(database_url: str, s3: bool = False, scratch: Path | None = None) -> dict[str, str]:
    """The environment of a runner: venv first on PATH, its database, fake S3 credentials only."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "PG", "DATABASE_URL", "CRAWL_PIPELINE_ROOT"))
        and name.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DATABASE_URL"] = database_url
    if s3:
        absent = scratch or Path("/nonexistent")
        env.update(
            AWS_ACCESS_KEY_ID=FAKE_ACCESS_KEY_ID,
            AWS_SECRET_ACCESS_KEY=FAKE_SECRET_ACCESS_KEY,
            AWS_DEFAULT_REGION=REGION,
            AWS_CONFIG_FILE=str(absent / "aws-config"),
            AWS_SHARED_CREDENTIALS_FILE=str(absent / "aws-credentials"),
            AWS_EC2_METADATA_DISABLED="true",
            NO_PROXY="127.0.0.1,localhost",
        )
    return env


@pytest.fixture(scope="module")
def machines(pg_server: str) -> Iterator[list[Machine]]:
    """Machines made in this module; their databases are dropped at the end."""
    made: list[Machine] = []
    yield made
    for machine in made:
        drop_database(pg_server, machine.database)


def new_machine(
    machines: list[Machine], pg_server: str, root: Path, *, s3: bool = False
) -> Machine:
    database, url = create_database(pg_server)
    env = machine_env(url, s3=s3, scratch=root.parent)
    machine = Machine(root, env, database=database, database_url=url)
    machines.append(machine)
    return machine


def copy_of(template: Project, destination: Path) -> Path:
    shutil.copytree(template.root, destination, symlinks=True)
    return destination


def engine_stage_names(*engines: str) -> list[str]:
    return [name for engine in engines for name in engine_stages(REPO, engine)]


def ran(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if "Running stage '" in line]


# --- engines side by side on one machine -------------------------------------------------------


@pytest.fixture(scope="module")
def concurrent(project_template, pg_server, machines, tmp_path_factory) -> Machine:
    """cloudbeds and mews brought up to date at once: two `dvc repro` processes, one workspace."""
    machine = new_machine(
        machines, pg_server, copy_of(project_template, tmp_path_factory.mktemp("par") / "p")
    )
    run = machine.run(sys.executable, "-m", "stages.tools.parallel", "--jobs", "2", *CONCURRENT)
    machine.outputs["parallel"] = run.stdout
    return machine


@pytest.fixture(scope="module")
def sequential(project_template, pg_server, machines, tmp_path_factory) -> Machine:
    """The same two chains run one after the other by a single `dvc repro`."""
    machine = new_machine(
        machines, pg_server, copy_of(project_template, tmp_path_factory.mktemp("seq") / "p")
    )
    machine.dvc("repro", *engine_stage_names(*CONCURRENT))
    return machine


def test_the_two_chains_run_side_by_side(concurrent):
    lines = [line for line in concurrent.outputs["parallel"].splitlines() if line.startswith("[")]
    first = {e: next(i for i, x in enumerate(lines) if x.startswith(f"[{e}]")) for e in CONCURRENT}
    last = {e: max(i for i, x in enumerate(lines) if x.startswith(f"[{e}]")) for e in CONCURRENT}
    a, b = CONCURRENT
    # Run one after the other, one engine's lines would all come before the other's.
    assert first[a] < last[b] and first[b] < last[a]


def test_dvc_lock_records_every_stage_of_both_engines(concurrent):
    # dvc.lock is one file; each process rewrites it under DVC's repo lock after each stage.
    lock = yaml.safe_load((concurrent.root / "dvc.lock").read_text())
    assert sorted(lock["stages"]) == sorted(engine_stage_names(*CONCURRENT))


def test_nothing_is_stale_after_the_concurrent_run(concurrent):
    status = concurrent.dvc("status", "--json", *engine_stage_names(*CONCURRENT))
    assert json.loads(status.stdout) == {}


def test_concurrent_workbooks_equal_the_sequential_ones(concurrent, sequential):
    for engine in CONCURRENT:
        workbook = f"data/exports/{engine}.xlsx"
        assert concurrent.read(workbook) == sequential.read(workbook)


def test_concurrent_loads_leave_the_same_leads_as_a_sequential_run(concurrent, sequential):
    loaded = concurrent.leads(CONCURRENT)
    assert {row[0] for row in loaded} == set(CONCURRENT)
    assert loaded == sequential.leads(CONCURRENT)


def test_a_failed_chain_fails_the_run_and_names_its_engine(project, database_url):
    (project.root / "data/sources/rms.txt").unlink()
    result = project.run(sys.executable, "-m", "stages.tools.parallel", "rms", check=False)
    assert result.returncode == 1
    assert "rms: FAILED" in result.stdout
    assert "rms failed" in result.stderr


def test_the_engine_list_for_a_ci_matrix_comes_from_params(project):
    listed = project.run(sys.executable, "-m", "stages.tools.parallel", "--list").stdout
    assert json.loads(listed) == list(project.params["engines"])
    narrowed = project.run(sys.executable, "-m", "stages.tools.parallel", "--list", "rms").stdout
    assert json.loads(narrowed) == ["rms"]


def test_an_unknown_engine_is_refused_before_anything_runs(project):
    result = project.run(
        sys.executable, "-m", "stages.tools.parallel", "--list", "nosuch", check=False
    )
    assert result.returncode == 1
    assert "Unknown engine 'nosuch'" in result.stderr


def test_a_new_engine_gets_its_chain_without_code_changes(project):
    def add_engine(params):
        params["engines"]["newengine"] = {**params["engines"]["rms"], "file": "ibe.txt"}

    project.edit_params(add_engine)
    stages = project.run(
        sys.executable, "-m", "stages.tools.parallel", "--stages", "newengine"
    ).stdout
    assert stages.split() == [
        "download@newengine",
        "ingest@newengine",
        "export@newengine",
        "publish@newengine",
    ]


# --- machines sharing work through the DVC remote ------------------------------------------------


@pytest.fixture(scope="module")
def remote(s3_server) -> Iterator[str]:
    """An empty bucket on the S3-protocol test server; the DVC remote's URL in it."""
    with pytest.MonkeyPatch.context() as env:
        for name, value in machine_env("", s3=True).items():
            if name.startswith("AWS_"):
                env.setenv(name, value)
        client = s3_client(s3_server.endpoint_url)
        bucket = f"dvc-{uuid.uuid4().hex[:16]}"
        client.create_bucket(Bucket=bucket)  # the client keeps the credentials it read now
    yield f"s3://{bucket}/crawl-pipeline"
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=item["Key"])
    client.delete_bucket(Bucket=bucket)


@pytest.fixture(scope="module")
def machine_a(project_template, pg_server, s3_server, remote, machines, tmp_path_factory):
    """Machine A runs mews's chain, pushes outputs and run-cache, and commits dvc.lock."""
    root = copy_of(project_template, tmp_path_factory.mktemp("machine-a") / "repo")
    # The repository's ignore files, so that git sees what a real checkout would commit.
    for ignore in (REPO / ".gitignore", *REPO.glob("data/*/.gitignore")):
        target = root / ignore.relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ignore, target)
    a = new_machine(machines, pg_server, root, s3=True)
    a.use_remote(remote, s3_server.endpoint_url)
    a.dvc("repro", *engine_stage_names(SHARED))
    a.dvc("push", "--run-cache")
    a.run("git", "add", "-A")
    a.run("git", "-c", "user.name=A", "-c", "user.email=a@example.com", "commit", "-qm", "run")
    return a


@pytest.fixture(scope="module")
def machine_b(machine_a, pg_server, s3_server, remote, machines, tmp_path_factory):
    """Machine B: a fresh clone of A's repository, the same remote and an empty database."""
    root = tmp_path_factory.mktemp("machine-b") / "repo"
    subprocess.run(["git", "clone", "--quiet", str(machine_a.root), str(root)], check=True)
    b = new_machine(machines, pg_server, root, s3=True)
    b.use_remote(remote, s3_server.endpoint_url)
    stages = engine_stage_names(SHARED)
    b.dvc("pull", "--run-cache", *stages)
    b.outputs["status after pull"] = json.loads(b.dvc("status", "--json", *stages).stdout)
    b.outputs["pulled"] = {path: b.read(path) for path in CACHED if (root / path).is_file()}
    b.outputs["repro"] = b.dvc("repro", *stages).stdout
    return b


def test_a_fresh_clone_pulls_the_cached_outputs_of_the_other_machine(machine_a, machine_b):
    assert machine_b.outputs["pulled"] == {path: machine_a.read(path) for path in CACHED}


def test_after_the_pull_only_the_uncached_markers_are_missing(machine_b):
    changes: dict[str, Any] = {}
    for stage_changes in machine_b.outputs["status after pull"].values():
        for change in stage_changes:
            for kind in ("changed deps", "changed outs"):
                changes.update(change.get(kind, {}) if isinstance(change, dict) else {})
    assert set(changes) == UNCACHED
    assert set(changes.values()) == {"deleted"}


def test_on_an_empty_database_only_the_load_runs_again(machine_b):
    # download and the workbook are restored from the remote; ingest must load the new database.
    # The committed load history already holds this crawl, so export and publish are up to date:
    # the workbook would be the same bytes, and they are live already.
    assert ran(machine_b.outputs["repro"]) == [f"ingest@{SHARED}"]


def test_the_empty_database_gets_the_same_leads(machine_a, machine_b):
    assert machine_b.leads((SHARED,)) == machine_a.leads((SHARED,))
    assert machine_b.leads((SHARED,))


def test_the_workbook_on_the_second_machine_is_byte_identical(machine_a, machine_b):
    assert machine_b.read("data/exports/mews.xlsx") == machine_a.read("data/exports/mews.xlsx")


def test_the_second_machine_ends_clean(machine_b):
    status = machine_b.dvc("status", "--json", *engine_stage_names(SHARED))
    assert json.loads(status.stdout) == {}


def test_a_runner_without_dvc_lock_downloads_again_instead_of_using_the_run_cache(
    machine_a, pg_server, s3_server, remote, machines, tmp_path_factory
):
    """A CI runner has the commit's dvc.lock, often none: `dvc repro --pull` then runs the
    download again (its outputs are persisted, so that a failed download keeps the last good
    file, which keeps the stage out of DVC's run-cache) and gets the same bytes."""
    root = tmp_path_factory.mktemp("runner") / "repo"
    subprocess.run(["git", "clone", "--quiet", str(machine_a.root), str(root)], check=True)
    (root / "dvc.lock").unlink()
    runner = new_machine(machines, pg_server, root, s3=True)
    runner.use_remote(remote, s3_server.endpoint_url)
    output = runner.dvc("repro", "--pull", "--single-item", f"download@{SHARED}").stdout
    assert ran(output) == [f"download@{SHARED}"]
    assert runner.read("data/raw/mews.txt") == machine_a.read("data/raw/mews.txt")


def test_an_unreachable_default_remote_does_not_affect_repro_or_status(project, database_url):
    """A remote is used by push and pull only: a laptop without access still runs the pipeline."""
    from configobj import ConfigObj

    config = ConfigObj(str(project.root / ".dvc" / "config"))
    config["core"] = {**config.get("core", {}), "remote": "storage"}
    config['remote "storage"'] = {"url": "s3://nowhere/dvc", "endpointurl": "http://127.0.0.1:9"}
    config.write()
    project.dvc("repro", "--single-item", "download@rms")
    status = project.dvc("status", "--json", "download@rms")
    assert json.loads(status.stdout) == {}
