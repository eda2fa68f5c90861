"""A DATABASE_URL password with characters a URL reserves (`@ : / % '"` and spaces), pasted
without percent-encoding, never shows up anywhere: not whole, not in the pieces libpq cuts it
into and echoes ("failed to resolve host 'ssw0rd@127.0.0.1'"), not percent-decoded. Every
failure path is tried: each stage that uses the database, `dvc repro`, the database CLI, the
status view and the run history; then the console, the logs, the run history file, the markers
and every other file of the project are searched.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest

from stages.store.secrets import connection_secrets, redact

SEEN = datetime(2026, 9, 14, tzinfo=UTC)
# Pieces long enough to be recognisable, joined by the character under test.
PIECES = ("Kq7vB", "Wm4xZ", "Rt9pL")
SPECIAL = {
    "at": "@",
    "colon": ":",
    "slash": "/",
    "space": " ",
    "percent": "%",
    "single-quote": "'",
    "double-quote": '"',
}
# libpq cannot read these unencoded in a URL: the stage must say to percent-encode them.
MUST_BE_ENCODED = {"@", "/", " ", "%"}


def password_with(character: str) -> str:
    return character.join(PIECES)


def leaks(text: str, password: str) -> list[str]:
    """The parts of `password` found in `text`: itself, decoded forms, and each piece."""
    forms = {password, quote(password, safe=""), *PIECES}
    return sorted(form for form in forms if form in text)


def leaks_in_files(root: Path, password: str) -> dict[str, list[str]]:
    found = {}
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and ".git" not in path.parts:
            hits = leaks(path.read_bytes().decode("utf-8", "replace"), password)
            if hits:
                found[str(path.relative_to(root))] = hits
    return found


@pytest.mark.parametrize("character", SPECIAL.values(), ids=SPECIAL.keys())
def test_a_password_with_reserved_characters_is_never_echoed(project, monkeypatch, character):
    password = password_with(character)
    monkeypatch.setenv("DATABASE_URL", f"postgresql://leads:{password}@127.0.0.1:1/leads")
    project.write_raw("rms", "12345\nbookings.rmscloud.com/Search/Index/9876/1/\n", SEEN)
    (project.root / "data/ingest").mkdir(parents=True, exist_ok=True)
    (project.root / "data/ingest/rms.json").write_text('{"database": {}}\n')
    project.edit_params(lambda p: p["export"].update(retry_delay=0.01))
    commands = [
        ("stages.ingest", "--engine", "rms"),
        ("stages.export", "--engine", "rms"),
        ("stages.store.db", "status"),
    ]
    if character == "@":  # the paths that only show what the ones above recorded
        commands += [
            ("stages.observe.status",),
            ("stages.observe.history", "--limit", "50"),
            ("dvc", "repro", "ingest@rms"),
        ]
    console = []
    for command in commands:
        result = project.run(sys.executable, "-m", *command, check=False)
        output = result.stdout + result.stderr
        console.append(output)
        if command[0] not in ("stages.observe.status", "stages.observe.history"):
            assert result.returncode != 0, output
        assert "Traceback" not in output, output
    everything = "\n".join(console)
    assert leaks(everything, password) == []
    assert leaks_in_files(project.root, password) == {}
    assert (project.root / "logs/history.jsonl").is_file()
    assert list(project.root.glob("logs/ingest/rms.log"))
    if character in MUST_BE_ENCODED:
        assert "percent-encode" in console[0] and "%40" in console[0], console[0]
    else:
        assert "127.0.0.1:1" in console[0], console[0]


@pytest.mark.unit
@pytest.mark.parametrize("character", SPECIAL.values(), ids=SPECIAL.keys())
def test_redaction_hides_every_piece_of_the_configured_password(monkeypatch, character):
    password = password_with(character)
    url = f"postgresql://leads:{password}@db.example.com:5432/leads"
    monkeypatch.setenv("DATABASE_URL", url)
    echoed = [
        f"failed to resolve host '{PIECES[1]}{character}{PIECES[2]}@db.example.com'",
        f'invalid integer value "{PIECES[2]}@db.example.com:5432" for connection option "port"',
        f'unexpected spaces found in "{PIECES[1]}{character}{PIECES[2]}@db"',
        url,
    ]
    for message in echoed:
        assert leaks(redact(message), password) == [], redact(message)


@pytest.mark.unit
def test_the_secrets_of_a_url_include_the_pieces_an_unencoded_at_leaves():
    secrets = connection_secrets("postgresql://leads:p@ssw0rd-Qz7@127.0.0.1:1/leads")
    assert "ssw0rd-Qz7" in secrets and "p@ssw0rd-Qz7" in secrets
    assert "127.0.0.1" not in secrets and "leads" not in secrets


@pytest.mark.unit
def test_a_percent_encoded_password_is_accepted_and_hidden_decoded_too(monkeypatch):
    password = password_with("@")
    url = f"postgresql://leads:{quote(password, safe='')}@db.example.com/leads"
    monkeypatch.setenv("DATABASE_URL", url)
    assert leaks(redact(f"password for {password} and {url}"), password) == []
