"""When the machine, not the data, fails, the user reads one line that names the file, the
setting or the database and the fix, never a traceback: a full disk during a download or an
export, a read-only output folder, an output folder under a file, the database CLI with the
database down (which must not start anything), `stages.observe.status | head`, publishing to a
missing bucket, and a permission error that must not be called "unreachable".
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg import sql

from stages import download, ingest, publish
from stages.observe.dbview import database_view
from tests.support.disk import can_mount, on_full_disk, on_read_only_folder
from tests.support.pg import forget_database, url_for_database

SEEN = datetime(2026, 9, 21, tzinfo=UTC)


def one_line_failure(result: subprocess.CompletedProcess) -> str:
    """The stage's error line; the run must have failed with exit 1 and no traceback."""
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output and "a bug" not in output, output
    return next(line for line in result.stderr.splitlines() if " failed: " in line)


def test_a_full_disk_during_a_download_names_the_file_and_the_fix(project):
    command = [sys.executable, "-m", "stages.download", "--engine", "rms"]
    result = project.run(*on_full_disk(project.root / "data/raw", command), check=False)
    line = one_line_failure(result)
    assert line.startswith("download@rms failed: data/raw/rms.txt: "), line
    if can_mount():
        assert "no space left on the device (ENOSPC); free disk space" in line, line
    else:
        assert "file size limit (EFBIG); raise the limit (ulimit -f)" in line, line
    assert not list((project.root / "logs").glob("**/*.tmp"))


def test_a_full_disk_during_an_export_names_the_workbook_and_keeps_no_part_of_it(
    project, database_url
):
    assert download.main(["--engine", "rms"]) == 0
    assert ingest.main(["--engine", "rms"]) == 0
    exports = project.root / "data/exports"
    command = [sys.executable, "-m", "stages.export", "--engine", "rms"]
    result = project.run(*on_full_disk(exports, command, size_kib=4), check=False)
    line = one_line_failure(result)
    assert line.startswith("export@rms failed: data/exports/rms.xlsx: "), line
    assert "(ENOSPC)" in line or "(EFBIG)" in line, line
    assert [f.name for f in exports.iterdir() if f.name != ".gitignore"] == []


@pytest.mark.skipif(not can_mount(), reason="needs the right to mount a tmpfs (unshare -m)")
def test_a_read_only_output_folder_is_named_with_the_fix(project):
    command = [sys.executable, "-m", "stages.download", "--engine", "rms"]
    result = project.run(*on_read_only_folder(project.root / "data/raw", command), check=False)
    line = one_line_failure(result)
    assert "data/raw/rms.txt: read-only file system (EROFS)" in line, line
    assert "`paths`" in line


def test_an_output_folder_under_a_file_is_named_with_the_fix(project, capsys):
    project.edit_params(lambda p: p["paths"].update(raw="data/sources/rms.txt/raw"))
    assert download.main(["--engine", "rms"]) == 1
    error = capsys.readouterr().err
    assert "Traceback" not in error
    assert "data/sources/rms.txt/raw: a part of the path is a file, not a folder" in error


# --- the database CLI -----------------------------------------------------------------------


def test_db_status_with_the_embedded_server_stopped_starts_nothing(project, monkeypatch):
    forget_database(monkeypatch)
    try:
        result = project.stage("store.db", "status")
        assert result.returncode == 1, result.stdout + result.stderr
        assert "Traceback" not in result.stdout + result.stderr
        assert "not running" in result.stdout and "stages.store.db start" in result.stdout
        assert not (project.root / ".pgdata/postmaster.pid").exists()
    finally:
        if (project.root / ".pgdata/postmaster.pid").exists():  # what main did: stop it again
            project.stage("store.db", "stop")


def test_db_status_with_the_server_down_says_so_in_one_line(project, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://leads@127.0.0.1:1/leads")
    result = project.stage("store.db", "status")
    assert result.returncode == 1
    assert result.stdout == "" and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "127.0.0.1:1" in lines[0] and "down or unreachable" in lines[0]


# --- status into a closed pipe --------------------------------------------------------------


def test_status_into_a_pipe_closed_early_exits_quietly(project):
    process = subprocess.Popen(
        [sys.executable, "-m", "stages.observe.status"],
        cwd=project.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    process.stdout.close()  # `| head` that has read enough, or never read at all
    _, stderr = process.communicate(timeout=120)
    assert stderr.decode() == ""
    assert process.returncode == 141


# --- naming the right setting ---------------------------------------------------------------


def test_publishing_to_a_missing_bucket_names_publish_to(project, s3_bucket, capsys):
    (project.root / "data/exports").mkdir(parents=True, exist_ok=True)
    (project.root / "data/exports/rms.xlsx").write_bytes(b"PK\x03\x04 workbook")
    project.add_s3_remote("leads", "s3://no-such-leads-bucket/out", s3_bucket.endpoint_url)
    project.edit_params(lambda p: p["publish"].update(to="remote://leads"))
    assert publish.main(["--engine", "rms"]) == 1
    error = capsys.readouterr().err
    assert "NoSuchBucket" in error and "`publish.to`" in error
    assert "source.root" not in error


@pytest.fixture
def database_without_access(pg_server):
    """A database whose CONNECT privilege was revoked from a login role; that role's URL."""
    role, name = f"noaccess_{uuid.uuid4().hex[:8]}", f"locked_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        conn.execute(
            sql.SQL("REVOKE CONNECT ON DATABASE {} FROM PUBLIC").format(sql.Identifier(name))
        )
    url = url_for_database(pg_server, name).replace("://postgres:", f"://{role}:", 1)
    yield url
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_a_permission_error_is_not_called_unreachable(
    project, database_without_access, monkeypatch
):
    monkeypatch.setenv("DATABASE_URL", database_without_access)
    view = database_view(project.root, {}, start_db=False)
    assert view.state == "error"
    assert "permission denied" in view.message
