"""The dependency declarations and their locks (docs/dependencies.md).

pyproject.toml declares what the code imports, runtime apart from the test, bench and
lint groups; uv.lock resolves them once; requirements/<set>.txt are its hashed exports,
one per set, and what the Makefile and the Dockerfile install. These tests fail when
an import is undeclared, when pyproject.toml changed without ``make lock``, or when a
lock file drifted from uv.lock.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterable
from importlib.metadata import packages_distributions
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOCK = tomllib.loads((ROOT / "uv.lock").read_text())
SETS = {"runtime": (), "test": ("test",), "bench": ("bench",), "lint": ("lint",)}
LOCAL = {"app", "tasks", "wsgi", "orders", "tests", "bench"}


def group(name: str) -> list[str]:
    """A dependency group's requirement strings, included groups flattened (PEP 735)."""
    result: list[str] = []
    for item in PYPROJECT["dependency-groups"][name]:
        result += group(item["include-group"]) if isinstance(item, dict) else [item]
    return result


def declared(groups: Iterable[str] = ()) -> set[str]:
    requirements = list(PYPROJECT["project"]["dependencies"])
    for name in groups:
        requirements += group(name)
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def imported(paths: Iterable[Path]) -> set[str]:
    """Top-level third-party modules imported anywhere in ``paths`` (nested imports too)."""
    modules: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - LOCAL


def python_files(*names: str) -> list[Path]:
    files: list[Path] = []
    for name in names:
        path = ROOT / name
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return files


AREAS = {
    "runtime": (("app.py", "tasks.py", "wsgi.py", "gunicorn.conf.py", "orders", "migrations"), ()),
    "tests": (("tests",), ("test",)),
    "bench": (("bench",), ("bench",)),
}


@pytest.mark.parametrize("area", AREAS)
def test_every_imported_package_is_declared_in_its_own_group(area: str) -> None:
    """Declared directly, not merely pulled in by another package (hypothesis by
    schemathesis, werkzeug and click by Flask used to be)."""
    sources, groups = AREAS[area]
    modules = imported(python_files(*sources))
    providers = packages_distributions()
    allowed = declared(groups)
    undeclared = {
        module: providers.get(module)
        for module in sorted(modules)
        if not {canonicalize_name(d) for d in providers.get(module, [])} & allowed
    }
    assert modules and undeclared == {}


def lock_requirements(name: str) -> dict[str, tuple[str, set[str]]]:
    """requirements/<name>.txt as {package: (version, hashes)}; every line pinned and hashed."""
    text = (ROOT / "requirements" / f"{name}.txt").read_text().replace("\\\n", " ")
    result: dict[str, tuple[str, set[str]]] = {}
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        spec, *options = line.split(" --hash=")
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)(\s*;.*)?", spec.strip())
        assert match, f"{name}.txt: not an exact pin: {line[:80]}"
        hashes = {h.split()[0] for h in options}
        assert hashes and all(h.startswith("sha256:") for h in hashes), line[:80]
        package = canonicalize_name(match.group(1))
        assert package not in result, f"{name}.txt: {package} twice"
        result[package] = (match.group(2), hashes)
    return result


def locked_packages() -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in LOCK["package"]}


def lock_closure(groups: Iterable[str]) -> dict[str, str]:
    """What uv.lock resolves for the project plus ``groups``: {package: version}."""
    packages = locked_packages()
    root = packages[PYPROJECT["project"]["name"]]
    todo = [dict(d) for d in root["dependencies"]]
    for name in groups:
        todo += [dict(d) for d in root["dev-dependencies"][name]]
    seen: dict[str, str] = {}
    while todo:
        dep = todo.pop()
        package = packages[dep["name"]]
        for extra in dep.get("extra", []):
            todo += package["optional-dependencies"][extra]
        if dep["name"] in seen:
            continue
        seen[dep["name"]] = package["version"]
        todo += package.get("dependencies", [])
    return seen


def lock_hashes(package: str) -> set[str]:
    entry = locked_packages()[package]
    files = [*entry.get("wheels", []), *([entry["sdist"]] if "sdist" in entry else [])]
    return {f["hash"] for f in files}


def normalized(requirements: Iterable[str]) -> set[tuple[str, tuple[str, ...], str]]:
    parsed = [Requirement(r) for r in requirements]
    return {(canonicalize_name(r.name), tuple(sorted(r.extras)), str(r.specifier)) for r in parsed}


def locked_as(entries: Iterable[dict[str, Any]]) -> set[tuple[str, tuple[str, ...], str]]:
    return {
        (e["name"], tuple(sorted(e.get("extras", []))), e.get("specifier", "")) for e in entries
    }


def test_uv_lock_is_current_with_pyproject() -> None:
    """pyproject.toml edited without ``make lock`` fails here (what ``uv lock --check`` says)."""
    metadata = locked_packages()[PYPROJECT["project"]["name"]]["metadata"]
    assert locked_as(metadata["requires-dist"]) == normalized(PYPROJECT["project"]["dependencies"])
    groups = PYPROJECT["dependency-groups"]
    assert set(metadata["requires-dev"]) == set(groups)
    for name in groups:
        assert locked_as(metadata["requires-dev"][name]) == normalized(group(name)), name
    assert LOCK["requires-python"] == PYPROJECT["project"]["requires-python"]
    sources = {str(p["source"]) for p in LOCK["package"] if "registry" in p["source"]}
    assert sources == {str({"registry": "https://pypi.org/simple"})}


def test_direct_dependencies_are_exact_pins() -> None:
    """A version moves only by an edit here and ``make lock``, never by a re-resolve."""
    everything = [*PYPROJECT["project"]["dependencies"], *group("lint")]
    loose = [r for r in everything if not re.fullmatch(r"[\w.\-\[\]]+==[\w.]+", r)]
    assert loose == []


@pytest.mark.parametrize("name", SETS)
def test_each_requirements_file_is_its_set_exported_from_uv_lock(name: str) -> None:
    exported = lock_requirements(name)
    assert {p: v for p, (v, _) in exported.items()} == lock_closure(SETS[name])
    for package, (_, hashes) in exported.items():
        assert hashes <= lock_hashes(package), package


def test_the_sets_are_apart_and_agree() -> None:
    runtime, test, bench, lint = (lock_requirements(n) for n in SETS)
    assert not {"pytest", "playwright", "matplotlib", "aiohttp", "ruff", "mypy"} & set(runtime)
    assert "honcho" not in set(runtime) | set(lint)
    assert {"gunicorn", "huey", "redis", "psycopg-binary", "opentelemetry-sdk"} <= set(runtime)
    assert {"pytest", "pytest-timeout", "jsonschema", "hypothesis"} <= set(test)
    assert {"matplotlib", "py-spy"} <= set(bench) and "pytest" not in bench
    assert {"ruff", "mypy", "import-linter", "types-requests", "types-pyyaml"} <= set(lint)
    for other in (test, bench, lint):  # one resolution: the same runtime everywhere
        assert {p: other[p][0] for p in runtime} == {p: v for p, (v, _) in runtime.items()}


def test_nothing_reads_the_old_flat_requirements_file() -> None:
    assert not (ROOT / "requirements.txt").exists()
    files = [*python_files("tests"), *(ROOT / "docs").glob("*.md")]
    readers = [".ci/run", "Makefile", "Dockerfile", "docker-compose.yml"]
    readers += [str(path.relative_to(ROOT)) for path in files]
    readers.remove("tests/test_dependencies.py")
    mentions = [
        path
        for path in readers
        if re.search(r"(?<![/\w])requirements\.txt", (ROOT / path).read_text())
    ]
    assert mentions == []


def test_each_make_target_installs_its_own_lock() -> None:
    makefile = (ROOT / "Makefile").read_text()
    prerequisites = dict(re.findall(r"^([\w-]+):\s*([^\n#]*)", makefile, re.M))
    assert prerequisites["release"].split() == ["$(VENV)/.installed-runtime"]
    assert prerequisites["run"].split() == ["release"]
    for target, lock in [("test", "test"), ("test-fast", "test"), ("lint", "lint")]:
        assert prerequisites[target].split() == [f"$(VENV)/.installed-{lock}"], target
    for target in ("bench", "bench-full"):
        assert prerequisites[target].split() == ["$(VENV)/.installed-bench"], target
    rule = re.search(
        r"^\$\(VENV\)/\.installed-%: requirements/%\.txt.*\n((?:\t.*\n)+)", makefile, re.M
    )
    assert rule, "the stamp rule depends on its lock file"
    assert "$(BIN)/pip install --quiet --require-hashes --no-deps -r $<" in rule.group(1)
    assert "honcho" not in makefile
