"""Spreading the tests over pytest-xdist workers without building a module's world twice.

`uv run pytest` runs with `-n auto --dist loadgroup` (pyproject.toml). A module-scoped fixture
(a pipeline run many tests read, a prepared project) would be built again on every worker that
gets one of its tests, so each test that uses one, directly or through another fixture, is put
in its module's `xdist_group`: that module's users run on one worker, its other tests anywhere.
"""

from __future__ import annotations

import pytest


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook turns the marks into group names
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test whose fixture closure holds a module-scoped fixture of its module."""
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None or not isinstance(item, pytest.Function):  # only functions have modules
            continue
        for definitions in info.name2fixturedefs.values():
            if definitions and definitions[-1].scope == "module":
                item.add_marker(pytest.mark.xdist_group(item.module.__name__))
                break
