"""What every benchmark script runs on: a private PostgreSQL, cached crawl files, throw-away
projects, an S3-protocol server, seeded leads and the environment of child processes (the
timing itself is benchmarks.timing). Services come from the test kit (tests/support).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks import timing
from stages.rules.config import DATABASE_VARIABLES
from tests.support.pg import create_database, drop_database, private_pg_server, url_for_database
from tests.support.project import copy_project, make_project
from tests.support.s3 import fake_aws_variables, without_aws

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
# Generated crawl files are kept between runs: 10,000,000 lines take about a minute to write.
CACHE = Path(os.environ.get("BENCH_CACHE", Path(tempfile.gettempdir()) / "crawl-bench-cache"))
SEEN_AT = "2026-06-01T00:00:00+00:00"  # the crawl time of a first load
SEEN_AGAIN_AT = "2026-06-08T00:00:00+00:00"  # a week later: a re-load moves every lead


# --- child processes ------------------------------------------------------------------------


def child_env(**overrides: str) -> dict[str, str]:
    """The environment for a stage or dvc child: the venv first on PATH, no inherited database
    or project root, quiet platformdirs, byte code cached."""
    env = dict(os.environ)
    for name in (*DATABASE_VARIABLES, "CRAWL_PIPELINE_ROOT"):
        env.pop(name, None)
    # Byte code cached, as on a user's machine: this sandbox sets PYTHONDONTWRITEBYTECODE=1,
    # which makes every process compile every module it imports. The cache is a folder of its
    # own keyed by source path, so fresh project copies at the same path reuse it.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.setdefault("PYTHONPYCACHEPREFIX", str(CACHE / "pycache"))
    env["PATH"] = f"{Path(PYTHON).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())
    env.update(overrides)
    return env


# --- crawl files ----------------------------------------------------------------------------


def crawl_file(engine_name: str, lines: int, seed: int = 1) -> Path:
    """A generated crawl file of `lines` lines for `engine_name` (params.yaml of this checkout),
    written once by stages.tools.crawlgen and kept in CACHE."""
    from stages.rules.config import load_params
    from stages.tools.crawlgen import write_crawl_file

    path = CACHE / f"{engine_name}-{lines}-{seed}.txt"
    if not path.is_file():
        engine = load_params(REPO).engine(engine_name)
        write_crawl_file(engine, path, lines, seed)
    return path


# --- PostgreSQL -----------------------------------------------------------------------------


@contextlib.contextmanager
def postgres(base_url: str | None = None) -> Iterator[str]:
    """A PostgreSQL server to create benchmark databases on: `base_url` when given, else a
    private embedded one, the test kit's (stopped and deleted afterwards)."""
    if base_url:
        yield base_url
        return
    with private_pg_server("bench") as server:
        yield server.url


def _create_database(base_url: str, template: str | None) -> str:
    """A new database (a copy of `template` when given, its files copied: fast for the big
    templates benchmarks make); returns its name."""
    return create_database(base_url, "bench", template=template, copy_files=True)[0]


def vacuum(url: str) -> None:
    """Leave the tables as a weekly run finds them: vacuumed and analysed (no hint-bit work)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (FREEZE, ANALYZE)")
        conn.execute("CHECKPOINT")


class Databases:
    """Databases on one server for one benchmark: kept ones (templates) live until `drop_all`;
    a fresh one lives until the next is made."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.kept: list[str] = []
        self.current: str | None = None

    def url(self, name: str) -> str:
        return url_for_database(self.base_url, name)

    def migrated(self) -> str:
        """A kept database holding the pipeline's schema and nothing else; returns its name."""
        from stages.store import db

        name = self.copy(None)
        with db.connect(self.url(name)) as conn:
            conn.execute("VACUUM ANALYZE")
        return name

    def copy(self, template: str | None) -> str:
        """A kept copy of `template` (an empty database for None); returns its name."""
        name = _create_database(self.base_url, template)
        self.kept.append(name)
        return name

    def fresh(self, template: str | None = None) -> str:
        """A new database's URL; the previous fresh one is dropped first (disk stays small)."""
        if self.current:
            drop_database(self.base_url, self.current)
        self.current = _create_database(self.base_url, template)
        return self.url(self.current)

    def drop_all(self) -> None:
        for name in [*self.kept, self.current]:
            if name:
                drop_database(self.base_url, name)
        self.kept, self.current = [], None


# --- projects -------------------------------------------------------------------------------


def stage_project(destination: Path, *, stages_from: Path | None = None) -> Path:
    """The test kit's project copy (no git or DVC) for stages run by hand; `stages_from` runs
    another copy of the package (a proposed change) instead of this one."""
    return copy_project(destination, stages_from=stages_from).root


def place_raw(root: Path, engine: str, source: Path, seen_at: str = SEEN_AT) -> None:
    """Put `source` where ingest@engine reads it (a symlink) with the download's metadata."""
    import json

    raw = root / "data" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    target = raw / f"{engine}.txt"
    target.unlink(missing_ok=True)
    target.symlink_to(source)
    meta = {"source": str(source), "bytes": source.stat().st_size, "source_modified": seen_at}
    (raw / f"{engine}.meta.json").write_text(json.dumps(meta), encoding="utf-8")


@contextlib.contextmanager
def databases(base_url: str | None = None) -> Iterator[Databases]:
    """`Databases` on the server at `base_url` (else a private one, see `postgres`), every
    database it made dropped on leaving."""
    with postgres(base_url) as url:
        made = Databases(url)
        try:
            yield made
        finally:
            made.drop_all()


@contextlib.contextmanager
def scratch(prefix: str, keep: bool = False) -> Iterator[Path]:
    """A temp folder for one benchmark run, removed afterwards unless `keep`."""
    folder = Path(tempfile.mkdtemp(prefix=f"crawl-bench-{prefix}-"))
    try:
        yield folder
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


# --- leads for export -----------------------------------------------------------------------

_SEED_SQL = """
WITH words AS (
    SELECT ARRAY['harbour','beach','bay','palm','coral','ocean','river','lake','forest',
                 'alpine','ridge','valley','garden','park','grand','royal','sunset','island',
                 'lodge','heritage'] AS w,
           ARRAY['Sydney','Melbourne','Brisbane','Perth','Auckland','Queenstown','Lisbon',
                 'Porto','Barcelona','Prague','Vienna','Bali','Phuket','Hanoi','Cusco',
                 'Cape Town','Denver','Austin','Byron Bay','Hobart'] AS city,
           ARRAY['AU','AU','NZ','PT','ES','CZ','AT','ID','TH','VN','PE','ZA','US'] AS country
)
INSERT INTO hotels (id, name, city, country, website)
SELECT g,
       CASE WHEN mod(g, 2) = 0
            THEN initcap(w[1 + mod(g, 20)]) || ' ' || initcap(w[1 + mod(g / 20, 20)]) || ' '
                 || (ARRAY['Hotel','Resort','Inn','Suites','Lodge'])[1 + mod(g, 5)]
       END,
       CASE WHEN mod(g, 2) = 0 THEN city[1 + mod(g / 7, 20)] END,
       CASE WHEN mod(g, 3) <> 0 THEN country[1 + mod(g / 11, 13)] END,
       CASE WHEN mod(g, 4) = 0
            THEN 'https://www.' || w[1 + mod(g, 20)] || w[1 + mod(g / 20, 20)] || g || '.com'
       END
FROM words, generate_series(1, %(rows)s) AS g
"""

_SEED_LEADS_SQL = """
INSERT INTO hotel_booking_engines (engine_id, property_id, hotel_id, booking_url, sources,
                                   detection_method, first_seen_at, last_seen_at)
SELECT %(engine_id)s, p.id, g, replace(%(booking_url)s::text, '{id}', p.id),
       CASE WHEN mod(g, 10) = 0 THEN ARRAY['commoncrawl', 'manual'] ELSE ARRAY['commoncrawl'] END,
       'crawl',
       timestamptz '2025-01-01 00:00:00+00' + mod(g, 500) * interval '1 day 37 minutes',
       timestamptz '2026-06-01 00:00:00+00' - mod(g, 50) * interval '1 day'
FROM generate_series(1, %(rows)s) AS g,
     LATERAL (SELECT (ARRAY['harbour','beach','bay','palm','coral','ocean','river','lake'])
                     [1 + mod(g, 8)] || '-' || (ARRAY['grand','royal','sunset','island','lodge'])
                     [1 + mod(g / 8, 5)] || g AS id) AS p
"""


def seed_leads(url: str, engine_name: str, rows: int) -> dict[str, Any]:
    """Put `rows` leads of `engine_name` (half with hotel name and place) into the database at
    `url`, as an ingest would leave them; return the ingest marker export checks against."""
    from stages.rules.config import load_params
    from stages.store import db

    engine = load_params(REPO).engine(engine_name)
    with db.connect(url) as conn, conn.transaction():
        engine_id = db.scalar(
            conn,
            "INSERT INTO booking_engines (name, display_name) VALUES (%s, %s) RETURNING id",
            [engine.name, engine.display_name],
        )
        conn.execute(_SEED_SQL, {"rows": rows})
        conn.execute("SELECT setval(pg_get_serial_sequence('hotels', 'id'), %s)", [rows])
        conn.execute(
            _SEED_LEADS_SQL,
            {"engine_id": engine_id, "booking_url": engine.booking_url, "rows": rows},
        )
        load_id = db.scalar(
            conn,
            "INSERT INTO ingest_loads (engine_id, source_tag, seen_at, valid, unique_ids,"
            " inserted, updated, unchanged, leads)"
            " VALUES (%s, 'commoncrawl', now(), %s, %s, %s, 0, 0, %s) RETURNING id::text",
            [engine_id, rows, rows, rows, rows],
        )
        identity = db.database_identity(conn)
    vacuum(url)
    fingerprint = {"load_id": load_id, "engine": engine.name, "leads": rows, **identity}
    return {"engine": engine.name, "database": fingerprint}


# --- S3 -------------------------------------------------------------------------------------

AWS_ENV = fake_aws_variables(Path("/nonexistent/aws"))  # the test kit's fake account

_S3_SERVER = """
import logging, sys
from moto.server import ThreadedMotoServer
logging.getLogger("werkzeug").setLevel(logging.WARNING)
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()  # until the benchmark closes the pipe
server.stop()
"""


@contextlib.contextmanager
def s3_server() -> Iterator[str]:
    """moto's S3-protocol server on 127.0.0.1 in a process of its own (so that it does not
    share a GIL with the client being measured); yields its endpoint URL."""
    env = {**without_aws(child_env()), **AWS_ENV}
    server = subprocess.Popen(
        [PYTHON, "-c", _S3_SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        assert server.stdin is not None
        server.stdin.close()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def s3_env(endpoint_url: str) -> dict[str, str]:
    """A child's environment for S3 on `endpoint_url` with fake credentials only."""
    return {**without_aws(child_env()), **AWS_ENV, "AWS_ENDPOINT_URL": endpoint_url}


def s3_client(endpoint_url: str) -> Any:
    """A boto3 S3 client for `endpoint_url` with the fake credentials, path-style."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(
        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        region_name=AWS_ENV["AWS_DEFAULT_REGION"],
    )
    return session.client(
        "s3", endpoint_url=endpoint_url, config=Config(s3={"addressing_style": "path"})
    )


# --- whole-pipeline projects ----------------------------------------------------------------


def pipeline_project(destination: Path, engines: int, lines: int) -> Path:
    """A git + DVC repository of the pipeline with `engines` engines, each with a generated
    crawl file of `lines` lines in data/sources. Past the four in params.yaml, engines are
    copies of them under new names (`cloudbeds_02`, ...), whose files are the original's line
    shapes from another seed: one params entry each, as a user adds an engine."""
    project = make_project(destination)
    root = project.root
    originals: dict[str, tuple[str, int]] = {}  # engine -> (engine copied, seed)

    def set_engines(params: dict[str, Any]) -> None:
        known = list(params["engines"].items())
        chosen: dict[str, Any] = {}
        for index in range(engines):
            original, spec = known[index % len(known)]
            name, copy = original, index // len(known)
            if copy:
                name = f"{original}_{copy + 1:02d}"
                spec = {**spec, "display_name": f"{spec['display_name']} {index + 1}"}
            chosen[name] = {**spec, "file": f"{name}.txt"}
            originals[name] = (original, copy + 1)
        params["engines"] = chosen

    project.edit_params(set_engines)
    sources = root / "data" / "sources"
    shutil.rmtree(sources, ignore_errors=True)
    sources.mkdir(parents=True)
    for name, (original, seed) in originals.items():
        # A cached file, hard-linked (DVC hashes the content).
        cached = crawl_file(original, lines, seed)
        try:
            os.link(cached, sources / f"{name}.txt")
        except OSError:  # another file system
            shutil.copy2(cached, sources / f"{name}.txt")
    return root


def dvc(root: Path, *args: str, env: dict[str, str]) -> timing.Measured:
    """Run `python -m dvc ARGS` in the project at `root`, measured."""
    return timing.run_measured([PYTHON, "-m", "dvc", *args], cwd=root, env=env)
