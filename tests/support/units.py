"""The `unit` marker's promise: a unit test uses no PostgreSQL, S3 server, webhook or project
copy. A test marked `unit` that asks for one of their fixtures stops the run at collection, so
`uv run pytest -m unit` stays fast and needs no services."""

from __future__ import annotations

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
