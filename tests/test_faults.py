"""Faults survived: S3 errors, resets, stalls and cut-short bodies are retried within the budget
and fail clearly beyond it; a stage killed with SIGKILL, or PostgreSQL restarted under a load,
leaves a state from which `dvc repro` ends exactly where an undisturbed run ends; two `dvc repro`
at once finish (other engines) or refuse safely (the same engine).

Nothing waits on a clock: a stage is killed once a real signal shows it mid-way (a request the
fault proxy holds, a backend waiting on a table lock the test holds), and every wait has a
generous deadline that only a hung run reaches. tests/test_download.py already covers 500, 503
and resets within the budget, 503 beyond it, a cut-short body resumed and a stalled response.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from stages import download, export, ingest, publish
from stages.store import db
from tests.support.faultproxy import Fault, FaultProxy
from tests.support.pg import create_database, drop_database, private_pg_server
from tests.support.pg import lead_rows as pg_lead_rows
from tests.support.project import Project
from tests.support.s3 import FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY, s3_client, use_s3_source

ENGINE = "rms"
PIPELINE = f"publish@{ENGINE}"
STAGES = [f"{stage}@{ENGINE}" for stage in ("download", "ingest", "export", "publish")]
CRAWL_KEY = "crawls/rms.txt"
PUBLISHED_KEY = "out/rms_leads.xlsx"
HUNG = 120  # seconds: a deadline only a hung run reaches, never a measurement
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


# --- helpers --------------------------------------------------------------------------------


def wait_until(condition: Callable[[], Any], what: str, process=None) -> Any:
    """Poll `condition` until it returns something true; fail if `process` ends first."""
    deadline = time.monotonic() + HUNG
    while not (found := condition()):
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the run ended before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)
    return found


def pipeline_env(database_url: str) -> dict[str, str]:
    """What a stage sees under `dvc repro`: this venv on PATH, fake AWS keys, the database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        AWS_ACCESS_KEY_ID=FAKE_ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY=FAKE_SECRET_ACCESS_KEY,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE="/nonexistent/aws/config",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent/aws/credentials",
        NO_PROXY="127.0.0.1,localhost",
        DATABASE_URL=database_url,
    )
    env.pop("CRAWL_PIPELINE_ROOT", None)
    return env


def start_dvc(project: Project, database_url: str, *args: str) -> subprocess.Popen:
    """`python -m dvc <args>` in the project, its output in a temp file (read with `output`)."""
    log = tempfile.TemporaryFile("w+")  # noqa: SIM115 - `output` reads and closes it
    process = subprocess.Popen(
        [sys.executable, "-m", "dvc", *args],
        cwd=project.root,
        env=pipeline_env(database_url),
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    process.log = log  # type: ignore[attr-defined]
    return process


def output(process: subprocess.Popen) -> str:
    """Wait for a `start_dvc` process and return what it printed."""
    process.wait(timeout=HUNG)
    with process.log as log:  # type: ignore[attr-defined]
        log.seek(0)
        return log.read()


def run_dvc(project: Project, database_url: str, *args: str) -> tuple[int, str]:
    process = start_dvc(project, database_url, *args)
    text = output(process)
    return process.returncode, text


def stage_process(dvc: subprocess.Popen, stage: str):
    """The `python -m stages.<stage>` process DVC started, or None."""
    import psutil

    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(dvc.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if f"stages.{stage}" in child.cmdline():
                    return child
    return None


def migrate(database_url: str) -> None:
    from stages.store import db

    db.connect(database_url).close()


@contextlib.contextmanager
def hotels_locked(database_url: str) -> Iterator[psycopg.Connection]:
    """Hold ACCESS EXCLUSIVE on `hotels`: an ingest then waits after its COPY, an export
    before its first row, until the block ends."""
    conn = psycopg.connect(database_url)
    try:
        conn.execute("LOCK TABLE hotels IN ACCESS EXCLUSIVE MODE")
        yield conn
    finally:
        with contextlib.suppress(psycopg.Error):
            conn.rollback()
        conn.close()


def waiting_backends(database_url: str) -> list[int]:
    """Pipeline backends waiting on a lock."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'crawl-pipeline'"
            " AND wait_event_type = 'Lock'"
        ).fetchall()
    return [row[0] for row in rows]


def backend_gone(database_url: str, pid: int) -> bool:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return db.scalar(conn, "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid]) == 0


def lead_rows(database_url: str, engine: str = ENGINE) -> list[tuple]:
    return pg_lead_rows(database_url, engine)


def loads(database_url: str, engine: str = ENGINE) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT l.source_tag, l.seen_at, l.valid, l.unique_ids, l.inserted, l.updated,"
            " l.unchanged, l.leads FROM ingest_loads l"
            " JOIN booking_engines e ON e.id = l.engine_id WHERE e.name = %s"
            " ORDER BY l.finished_at",
            [engine],
        ).fetchall()


def hotel_count(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        return db.scalar(conn, "SELECT count(*) FROM hotels")


def marker(project: Project, engine: str = ENGINE) -> dict:
    return json.loads((project.root / "data/ingest" / f"{engine}.json").read_text())


def use_s3_target(project: Project, bucket_name: str, endpoint_url: str) -> None:
    project.add_s3_remote("leads", f"s3://{bucket_name}/out", endpoint_url)
    project.edit_params(lambda p: p["publish"].update(to="remote://leads"))


def a_workbook(project: Project, engine: str, content: bytes) -> Path:
    """What export@engine leaves for publish: publish uploads the bytes, whatever they are."""
    path = project.root / "data/exports" / f"{engine}.xlsx"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def temp_leftovers(project: Project) -> list[str]:
    return sorted(p.name for p in (project.root / "data").rglob(".*.tmp"))


# --- download: faults beyond the retry budget -----------------------------------------------

BEYOND_BUDGET = [
    Fault.status(500, "InternalError", method="GET"),
    Fault.reset(method="GET"),
    Fault.stall(30, method="GET"),
    Fault.truncate(1_000, method="GET"),
]


@pytest.mark.parametrize("fault", BEYOND_BUDGET, ids=["500", "reset", "stall", "cut-short"])
def test_a_download_fault_outlasting_the_retries_fails_clearly_and_writes_nothing(
    project, s3_bucket, fault_proxy, capsys, fault
):
    use_s3_source(project, s3_bucket, fault_proxy.endpoint_url)
    project.edit_params(lambda p: p["source"].update(timeout=1))
    fault_proxy.fail_always(fault)
    assert download.main(["--engine", "mews"]) == 1
    error = capsys.readouterr().err
    assert f"download@mews failed: s3://{s3_bucket.name}/crawls/mews.txt" in error
    assert "Gave up after 3 attempt(s)" in error and "dvc repro" in error
    assert len([r for r in fault_proxy.requests if r.method == "GET"]) == 3  # retries: 2
    assert not (project.root / "data/raw/mews.txt").exists()
    assert temp_leftovers(project) == []


def test_a_read_timeout_mid_body_is_resumed_from_the_bytes_already_read(
    project, s3_bucket, fault_proxy
):
    use_s3_source(project, s3_bucket, fault_proxy.endpoint_url)
    project.edit_params(lambda p: p["source"].update(timeout=1))
    body = b"".join(b"%d\n" % (10**9 + i) for i in range(200_000))
    s3_bucket.put("crawls/rms.txt", body)
    fault_proxy.plan(Fault.truncate(1_048_576, stall=30, method="GET"))
    assert download.main(["--engine", "rms"]) == 0
    assert project.raw("rms") == body
    gets = [r for r in fault_proxy.requests if r.method == "GET"]
    assert [g.range for g in gets] == [None, "bytes=1048576-"]


class ObjectSwappingProxy(FaultProxy):
    """A fault proxy that replaces the object on the server as the second GET of it arrives,
    and optionally strips If-Match, as an S3-compatible store without conditional reads would."""

    def __init__(self, upstream_url: str, swap: Callable[[], None], *, honour_if_match: bool):
        super().__init__(upstream_url)
        self._swap, self._gets, self._honour = swap, 0, honour_if_match

    def _take_fault(self, method, path, query, headers):
        if method == "GET" and path.endswith(".txt"):
            self._gets += 1
            if self._gets == 2:
                self._swap()
        return super()._take_fault(method, path, query, headers)

    def _forward(self, client, reader, method, start, lines, headers, fault, keep_alive):
        if not self._honour:
            lines = [line for line in lines if not line.lower().startswith(b"if-match:")]
        return super()._forward(client, reader, method, start, lines, headers, fault, keep_alive)


@pytest.mark.parametrize("honour_if_match", [True, False], ids=["if-match", "no-if-match"])
def test_an_object_replaced_between_attempts_is_never_spliced(
    project, s3_bucket, s3_server, honour_if_match
):
    old = b"".join(b"%d\n" % (10**9 + i) for i in range(100_000))
    new = b"".join(b"%d\n" % (2 * 10**9 + i) for i in range(100_000))
    with ObjectSwappingProxy(
        s3_server.endpoint_url,
        lambda: s3_bucket.put("crawls/rms.txt", new),
        honour_if_match=honour_if_match,
    ) as proxy:
        use_s3_source(project, s3_bucket, proxy.endpoint_url)
        s3_bucket.put("crawls/rms.txt", old)
        proxy.plan(Fault.truncate(300_000, method="GET"))
        assert download.main(["--engine", "rms"]) == 0
    assert project.raw("rms") == new
    assert project.source_meta("rms")["etag"] == s3_bucket.head("crawls/rms.txt")["ETag"]


# --- publish: faults within and beyond the retry budget -------------------------------------

WITHIN_BUDGET = [
    Fault.status(500, "InternalError", method="PUT"),
    Fault.status(503, "ServiceUnavailable", method="PUT"),
    Fault.reset(method="PUT"),
    Fault.stall(30, method="PUT"),
]


@pytest.mark.parametrize("fault", WITHIN_BUDGET, ids=["500", "503", "reset", "stall"])
def test_publish_survives_two_faults_in_a_row(project, s3_bucket, fault_proxy, fault):
    workbook = a_workbook(project, "mews", b"workbook bytes " * 1000)
    use_s3_target(project, s3_bucket.name, fault_proxy.endpoint_url)
    project.edit_params(lambda p: p["publish"].update(timeout=1))
    fault_proxy.plan(fault, fault)  # publish.retries: 2
    assert publish.main(["--engine", "mews"]) == 0
    assert s3_bucket.get("out/mews_leads.xlsx") == workbook.read_bytes()
    record = json.loads((project.root / "data/published/mews.json").read_text())
    assert record["attempts"] == 3 and record["published"] is True


PUBLISH_BEYOND_BUDGET = [
    Fault.status(503, "SlowDown", method="PUT"),
    Fault.reset(method="PUT"),
    Fault.stall(30, method="PUT"),
]


@pytest.mark.parametrize("fault", PUBLISH_BEYOND_BUDGET, ids=["503", "reset", "stall"])
def test_a_publish_fault_outlasting_the_retries_keeps_what_was_live(
    project, s3_bucket, fault_proxy, capsys, fault
):
    use_s3_target(project, s3_bucket.name, fault_proxy.endpoint_url)
    project.edit_params(lambda p: p["publish"].update(timeout=1))
    a_workbook(project, "mews", b"version one")
    assert publish.main(["--engine", "mews"]) == 0
    live_record = (project.root / "data/published/mews.json").read_bytes()
    a_workbook(project, "mews", b"version two")
    fault_proxy.fail_always(fault)
    capsys.readouterr()
    assert publish.main(["--engine", "mews"]) == 1
    error = capsys.readouterr().err
    assert f"publish@mews failed: s3://{s3_bucket.name}/out/mews_leads.xlsx" in error
    assert "Gave up" in error and "dvc repro" in error
    assert len([r for r in fault_proxy.requests if r.method == "PUT"]) == 1 + 3
    assert s3_bucket.get("out/mews_leads.xlsx") == b"version one"
    assert (project.root / "data/published/mews.json").read_bytes() == live_record


# --- kill -9 mid-stage, then `dvc repro` ----------------------------------------------------


@dataclass
class CrawlWorld:
    """The S3 crawl object every run of this section downloads: same ETag, same date."""

    bucket: str
    endpoint_url: str

    def client(self):
        return s3_client(self.endpoint_url)

    def new_bucket(self) -> str:
        name = f"published-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return name


@pytest.fixture(scope="module")
def crawl_world(s3_server, project_template) -> Iterator[CrawlWorld]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in pipeline_env("").items():
            if name.startswith("AWS_"):
                patch.setenv(name, value)
        world = CrawlWorld(f"crawl-{uuid.uuid4().hex[:16]}", s3_server.endpoint_url)
        client = world.client()
        client.create_bucket(Bucket=world.bucket)
        source = project_template.root / "data/sources/rms.txt"
        client.put_object(Bucket=world.bucket, Key=CRAWL_KEY, Body=source.read_bytes())
        yield world


def configure(project: Project, world: CrawlWorld, endpoint_url: str, publish_bucket: str):
    """Crawl file from the world's bucket and workbook to `publish_bucket`, via `endpoint_url`;
    timeouts long enough that a held request stays held until the stage is killed."""
    project.add_s3_remote("crawls", f"s3://{world.bucket}/crawls", endpoint_url)
    use_s3_target(project, publish_bucket, endpoint_url)
    project.edit_params(lambda p: p["source"].update(root="remote://crawls", timeout=HUNG))
    project.edit_params(lambda p: p["publish"].update(timeout=HUNG))


# Outputs that record a time, a duration or a load id: compared without those fields.
VOLATILE = {
    "data/raw/rms.download.json": ("downloaded_at", "seconds"),
    ".dvc/config": (),  # a dependency of publish; it holds each run's own S3 endpoint
    "data/ingest/rms.json": ("seconds", "database"),
    "data/exports/rms.json": ("seconds", "database"),  # its `leads` equals `rows`, compared
    "data/published/rms.json": ("time", "uri"),
}


def snapshot(project: Project, database_url: str, world: CrawlWorld, publish_bucket: str):
    """Everything a run leaves: data files, dvc.lock, leads, loads, the published object."""
    files: dict[str, Any] = {}
    for path in sorted((project.root / "data").rglob("*")):
        name = str(path.relative_to(project.root))
        # .gitignore: DVC's own bookkeeping (a failed run rolls back the entries it added, DVC
        # issue 11091); the repository commits its own for data/, which these copies lack.
        if (
            not path.is_file()
            or name.startswith("data/sources")
            or path.name == ".gitignore"
            or name.endswith(".tmp")
        ):
            continue
        if name in VOLATILE:
            record = json.loads(path.read_text())
            files[name] = {k: v for k, v in record.items() if k not in VOLATILE[name]}
        else:
            files[name] = path.read_bytes()
    lock = yaml.safe_load((project.root / "dvc.lock").read_text())
    for stage in lock["stages"].values():
        for entry in stage.get("deps", []) + stage.get("outs", []):
            if entry["path"] in VOLATILE:
                for key in ("md5", "size", "hash"):
                    entry.pop(key, None)
    published = world.client().get_object(Bucket=publish_bucket, Key=PUBLISHED_KEY)
    return {
        "files": files,
        "dvc.lock": lock,
        "leads": lead_rows(database_url),
        "hotels": hotel_count(database_url),
        "loads": loads(database_url),
        "published": published["Body"].read(),
    }


@pytest.fixture(scope="module")
def undisturbed(crawl_world, project_template, pg_server, tmp_path_factory):
    """What one `dvc repro publish@rms` without any fault leaves behind."""
    root = tmp_path_factory.mktemp("undisturbed") / "project"
    shutil.copytree(project_template.root, root, symlinks=True)
    project = Project(root)
    configure(project, crawl_world, crawl_world.endpoint_url, bucket := crawl_world.new_bucket())
    name, url = create_database(pg_server)
    try:
        code, text = run_dvc(project, url, "repro", PIPELINE)
        assert code == 0, text
        assert project.ran_stages(text) == STAGES
        return snapshot(project, url, crawl_world, bucket)
    finally:
        drop_database(pg_server, name)


def kill_midway(project: Project, database_url: str, stage: str, ready: Callable[[], Any]):
    """Run `dvc repro publish@rms` and SIGKILL the `stage` process once `ready()` holds."""
    dvc = start_dvc(project, database_url, "repro", PIPELINE)
    try:
        victim = wait_until(
            lambda: stage_process(dvc, stage) if ready() else None, f"{stage} mid-way", dvc
        )
        victim.send_signal(signal.SIGKILL)
        text = output(dvc)
    finally:
        if dvc.poll() is None:
            dvc.kill()
            dvc.wait()
    assert dvc.returncode != 0
    assert f"failed to reproduce '{stage}@{ENGINE}'" in text, text
    return text


def resume(project: Project, database_url: str, expected_stages: list[str]) -> None:
    code, text = run_dvc(project, database_url, "repro", PIPELINE)
    assert code == 0, text
    assert project.ran_stages(text) == expected_stages


@pytest.fixture
def publish_bucket(crawl_world, aws_env) -> str:
    return crawl_world.new_bucket()


def test_repro_after_a_download_killed_midway_ends_as_an_undisturbed_run(
    project, database_url, fault_proxy, crawl_world, publish_bucket, undisturbed
):
    configure(project, crawl_world, fault_proxy.endpoint_url, publish_bucket)
    fault_proxy.fail_always(
        Fault.stall(HUNG, method="GET", path=f"/{crawl_world.bucket}/{CRAWL_KEY}")
    )

    def held() -> bool:
        return any(r.fault and r.method == "GET" for r in fault_proxy.requests)

    kill_midway(project, database_url, "download", held)
    assert not (project.root / "data/raw/rms.txt").exists()
    fault_proxy.clear()
    resume(project, database_url, STAGES)
    assert snapshot(project, database_url, crawl_world, publish_bucket) == undisturbed
    assert temp_leftovers(project) == []


def test_repro_after_an_ingest_killed_midway_ends_as_an_undisturbed_run(
    project, database_url, crawl_world, publish_bucket, undisturbed
):
    configure(project, crawl_world, crawl_world.endpoint_url, publish_bucket)
    migrate(database_url)
    backends: list[int] = []

    def waiting_after_copy() -> list[int]:
        backends[:] = waiting_backends(database_url)
        return backends

    with hotels_locked(database_url):
        kill_midway(project, database_url, "ingest", waiting_after_copy)
    # The killed client's backend wakes when the lock goes, finds its client gone, rolls back.
    wait_until(lambda: backend_gone(database_url, backends[0]), "the orphaned backend to end")
    assert lead_rows(database_url) == [] and loads(database_url) == []
    assert hotel_count(database_url) == 0
    assert not (project.root / "data/ingest/rms.json").exists()
    resume(project, database_url, STAGES[1:])
    assert snapshot(project, database_url, crawl_world, publish_bucket) == undisturbed
    assert temp_leftovers(project) == []


def test_repro_after_an_export_killed_midway_ends_as_an_undisturbed_run(
    project, database_url, crawl_world, publish_bucket, undisturbed
):
    configure(project, crawl_world, crawl_world.endpoint_url, publish_bucket)
    code, text = run_dvc(project, database_url, "repro", f"ingest@{ENGINE}")
    assert code == 0, text
    with hotels_locked(database_url):
        kill_midway(project, database_url, "export", lambda: waiting_backends(database_url))
    assert not (project.root / "data/exports/rms.xlsx").exists()
    resume(project, database_url, STAGES[2:])
    assert snapshot(project, database_url, crawl_world, publish_bucket) == undisturbed


def test_repro_after_a_publish_killed_midway_ends_as_an_undisturbed_run(
    project, database_url, fault_proxy, crawl_world, publish_bucket, undisturbed
):
    configure(project, crawl_world, fault_proxy.endpoint_url, publish_bucket)
    fault_proxy.fail_always(Fault.stall(HUNG, method="PUT"))

    def held() -> bool:
        return any(r.fault and r.method == "PUT" for r in fault_proxy.requests)

    kill_midway(project, database_url, "publish", held)
    assert not (project.root / "data/published/rms.json").exists()
    fault_proxy.clear()
    resume(project, database_url, STAGES[3:])
    assert snapshot(project, database_url, crawl_world, publish_bucket) == undisturbed
    assert temp_leftovers(project) == []


def test_a_killed_export_leaves_no_temp_file_once_the_stage_has_run_again(project, database_url):
    project.write_raw("siteminder", "alpha\nbeta\n", datetime(2026, 9, 1, tzinfo=UTC))
    assert ingest.main(["--engine", "siteminder"]) == 0
    with hotels_locked(database_url):
        stage = subprocess.Popen(
            [sys.executable, "-m", "stages.export", "--engine", "siteminder"],
            cwd=project.root,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_until(
                lambda: waiting_backends(database_url) and temp_leftovers(project),
                "the export to wait with its temp workbook open",
                stage,
            )
        finally:
            stage.kill()
            stage.wait()
    assert export.main(["--engine", "siteminder"]) == 0
    assert temp_leftovers(project) == []


# --- PostgreSQL restarted or dropping the connection under a load ---------------------------

SEEN = datetime(2026, 9, 1, tzinfo=UTC)
# RMS client numbers a bare line gives (params.yaml bare_id_pattern: 4 to 7 digits, no year),
# none a run of zeros (a placeholder, crawl_outcome.is_placeholder).
FIRST_FILE = "1234\n1222\n"
SECOND_FILE = "".join(f"{n}\n" for n in range(12100, 14100))


@pytest.fixture(scope="module")
def restartable_pg():
    """A PostgreSQL server of this module's own, so restarting it disturbs no other test."""
    with private_pg_server("restartable") as server:
        yield server


class LeadCountWatcher:
    """Reads the lead count over and over from its own connection while a load runs."""

    def __init__(self, database_url: str):
        self.url, self._stop = database_url, threading.Event()
        self.seen: set[int] = set()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> LeadCountWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(HUNG)

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=2) as conn:
                    while not self._stop.is_set():
                        self.seen.add(db.scalar(conn, "SELECT count(*) FROM hotel_booking_engines"))
                        time.sleep(0.01)
            except psycopg.Error:
                time.sleep(0.05)  # the server is restarting


def load_then_block_second_load(project, url, retries: int):
    """Load FIRST_FILE, then start loading SECOND_FILE and return once it waits after its COPY."""
    project.edit_params(lambda p: p["ingest"].update(retries=retries, retry_delay=0.2))
    project.write_raw(ENGINE, FIRST_FILE, SEEN)
    assert (
        subprocess.run(
            [sys.executable, "-m", "stages.ingest", "--engine", ENGINE],
            cwd=project.root,
            env=pipeline_env(url),
            capture_output=True,
        ).returncode
        == 0
    )
    project.write_raw(ENGINE, SECOND_FILE, SEEN)
    holder = psycopg.connect(url)
    holder.execute("LOCK TABLE hotels IN ACCESS EXCLUSIVE MODE")
    stage = subprocess.Popen(
        [sys.executable, "-m", "stages.ingest", "--engine", ENGINE],
        cwd=project.root,
        env=pipeline_env(url),
        stderr=subprocess.PIPE,
        text=True,
    )
    backend = wait_until(lambda: waiting_backends(url), "the ingest to wait after its COPY", stage)
    return holder, stage, backend[0]


def test_an_ingest_retries_through_a_postgres_restart_and_loads_exactly_once(
    project, restartable_pg
):
    name, url = create_database(restartable_pg.url)
    try:
        holder, stage, _ = load_then_block_second_load(project, url, retries=8)
        with LeadCountWatcher(url) as watcher:
            wait_until(lambda: watcher.seen, "a first reading of the lead count")
            restartable_pg.restart()
            _, err = stage.communicate(timeout=HUNG)
            wait_until(lambda: 2002 in watcher.seen, "a reading after the load")
        holder.close()
        assert stage.returncode == 0, err
        assert "retrying" in err
        assert len(lead_rows(url)) == 2 + 2000 == marker(project)["leads"]
        assert [load[4] for load in loads(url)] == [2, 2000]  # inserted, per load
        assert watcher.seen <= {2, 2002}, "a partial load was visible"
    finally:
        drop_database(restartable_pg.url, name)


def test_an_ingest_without_retries_fails_cleanly_when_postgres_restarts(project, restartable_pg):
    name, url = create_database(restartable_pg.url)
    try:
        holder, stage, _ = load_then_block_second_load(project, url, retries=0)
        before, before_marker = lead_rows(url), marker(project)
        with LeadCountWatcher(url) as watcher:
            wait_until(lambda: watcher.seen, "a first reading of the lead count")
            restartable_pg.restart()
            _, err = stage.communicate(timeout=HUNG)
        holder.close()
        assert stage.returncode == 1, err
        assert "ingest@rms" in err and "nothing was changed" in err and "Traceback" not in err
        assert lead_rows(url) == before and len(loads(url)) == 1
        assert marker(project) == before_marker
        assert watcher.seen <= {2}, "a partial load was visible"
    finally:
        drop_database(restartable_pg.url, name)


def test_an_ingest_whose_connection_is_dropped_mid_load_retries_and_loads_once(
    project, database_url
):
    holder, stage, backend = load_then_block_second_load(project, database_url, retries=1)
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [backend])
    holder.close()
    _, err = stage.communicate(timeout=HUNG)
    assert stage.returncode == 0, err
    assert [load[4] for load in loads(database_url)] == [2, 2000]
    assert len(lead_rows(database_url)) == 2002


# --- two `dvc repro` at once ----------------------------------------------------------------


def test_two_repros_of_different_engines_at_once_both_finish(project, database_url):
    migrate(database_url)
    engines = ("cloudbeds", "mews")
    with hotels_locked(database_url):
        runs = [
            start_dvc(project, database_url, "--wait-for-lock", "repro", f"publish@{engine}")
            for engine in engines
        ]
        # Both runs are mid-pipeline at the same moment: each ingest waits on the lock.
        wait_until(lambda: len(waiting_backends(database_url)) == 2, "both ingests to wait")
    for run in runs:
        text = output(run)
        assert run.returncode == 0, text
    for engine in engines:
        assert len(loads(database_url, engine)) == 1
        assert len(lead_rows(database_url, engine)) == marker(project, engine)["unique"] > 0
    status = project.dvc("status", *(f"publish@{engine}" for engine in engines)).stdout
    assert "up to date" in status


def test_the_same_engine_twice_at_once_loads_once_and_the_second_run_stops(project, database_url):
    migrate(database_url)
    with hotels_locked(database_url):
        first = start_dvc(project, database_url, "repro", PIPELINE)
        wait_until(lambda: waiting_backends(database_url), "the first ingest to wait", first)
        code, text = run_dvc(project, database_url, "--wait-for-lock", "repro", PIPELINE)
        # DVC locks each stage's files while its command runs and does not wait for them:
        # the second run stops at once instead of loading the same file again.
        assert code != 0 and "is busy" in text, text
        assert project.ran_stages(text) == []
    first_text = output(first)
    assert first.returncode == 0, first_text
    assert len(loads(database_url)) == 1
    assert len(lead_rows(database_url)) == marker(project)["unique"] > 0
    assert "up to date" in project.dvc("status", PIPELINE).stdout
