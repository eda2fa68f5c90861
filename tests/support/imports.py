"""The project modules a stage module imports, directly or through other project modules, at
the top of a file or inside a function (the stages import heavy modules lazily)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "stages"


def imported_modules(source: Path, package_root: Path) -> set[str]:
    """Dotted names of the project modules `source` imports itself (`stages.x`)."""
    return {name for _, name in project_imports(source, package_root)}


def project_imports(source: Path, package_root: Path) -> list[tuple[int, str]]:
    """(line, dotted name) of each project module `source` imports, wherever the import stands
    (top of the file, inside a function, under TYPE_CHECKING), in the order of the file."""
    tree = ast.parse(source.read_text(encoding="utf-8"))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
            # `from stages import db` imports the module stages.store.db
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
    return sorted(
        (line, name) for line, name in found if _module_file(name, package_root) is not None
    )


def import_closure(module: str, package_root: Path, stop: frozenset[str] = frozenset()) -> set[str]:
    """`module` and every project module it reaches through imports, not looking inside the
    modules in `stop` (they are reached, but what they import is theirs)."""
    seen: set[str] = set()
    pending = [module]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in stop:
            continue
        pending.extend(imported_modules(_project_file(name, package_root), package_root))
    return seen


def module_path(module: str, package_root: Path) -> str:
    """The repository-relative file of a project module, as dvc.yaml names it."""
    return _project_file(module, package_root).relative_to(package_root).as_posix()


def _project_file(module: str, package_root: Path) -> Path:
    found = _module_file(module, package_root)
    if found is None:
        raise LookupError(f"{module} is not a module of the {PACKAGE} package")
    return found


def _module_file(module: str, package_root: Path) -> Path | None:
    if module != PACKAGE and not module.startswith(f"{PACKAGE}."):
        return None
    base = package_root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None
