"""The `unit` marker's promise: a unit test uses no PostgreSQL, S3 server, webhook or project
copy. A test marked `unit` that asks for one of their fixtures stops the run at collection, so
`uv run pytest -m unit -n 0` stays fast and needs no services.

With `-m unit` a test module that marks nothing `unit` is not imported at all: importing the
integration modules (psycopg, openpyxl, the status and dashboard code, pytest's assertion
rewriting of each) was half of the quick run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SERVICE_FIXTURES = frozenset(
    {
        "pg_server",
        "database_url",
        "project_template",
        "project",
        "s3_server",
        "s3_bucket",
        "fault_proxy",
        "aws_env",
        "webhook",
    }
)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Refuse a `unit` test whose fixtures (directly or through others) start a service."""
    for item in session.items:
        if item.get_closest_marker("unit") is None:
            continue
        services = SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if services:
            raise pytest.UsageError(
                f"{item.nodeid} is marked unit but uses {', '.join(sorted(services))}; "
                "drop the mark or the fixture."
            )


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Under `-m unit`, skip a test module whose text never says `mark.unit`: none of its
    tests can be selected (marks come from the module itself; no hook here adds `unit`)."""
    if config.getoption("markexpr", "") != "unit":
        return None
    if collection_path.suffix != ".py" or not collection_path.name.startswith("test_"):
        return None
    return None if "mark.unit" in collection_path.read_text(encoding="utf-8") else True
