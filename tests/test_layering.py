"""The layers: the library (include/dynadex) never imports Airflow (every module imports in a process where
Airflow cannot) nor the plugins; plugins/dynadex_airflow glues Airflow to the library; dags/ are wiring
only. Settings come from the environment in one place, ``dynadex.settings``: the plugins and DAG files
never read the environment themselves."""

from __future__ import annotations

from tests.support.paths import REPO  # noqa: I001 - before the path it builds is used
import ast
import subprocess
import sys
from pathlib import Path

ROOT = REPO
INCLUDE = ROOT / "include"
PLUGINS = ROOT / "plugins"
DAGS = ROOT / "dags"

PROBE = r"""
import importlib, pkgutil, sys

class NoAirflow:
    def find_spec(self, name, path=None, target=None):
        if name == "airflow" or name.startswith("airflow."):
            raise ImportError(f"dynadex imported {name}")
        return None

sys.meta_path.insert(0, NoAirflow())
import dynadex
names = [m.name for m in pkgutil.walk_packages(dynadex.__path__, "dynadex.")]
for name in names:
    importlib.import_module(name)
print(len(names))
"""


def test_every_library_module_imports_without_airflow():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         env={"PYTHONPATH": str(INCLUDE), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert int(out.stdout.strip()) > 30  # the walk found the modules (not an empty package)


# modules that may read DYNADEX_* variables themselves, and why
OWN_SETTINGS = {
    "settings.py": "the declarations",
}


def test_the_library_reads_its_settings_in_one_module():
    import re

    reads = re.compile(r"""(environ\.get|getenv|environ\[)\(?\s*f?["']DYNADEX_""")
    found = []
    for path in sorted((INCLUDE / "dynadex").rglob("*.py")):
        rel = path.relative_to(INCLUDE / "dynadex").as_posix()
        if rel in OWN_SETTINGS:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if reads.search(line):
                found.append(f"{rel}:{n}: {line.strip()}")
    assert not found, "declare these in dynadex/settings.py and read them from there:\n" + "\n".join(found)
    from dynadex import settings

    for setting in settings.SETTINGS.values():
        assert setting.env.startswith("DYNADEX_") and len(setting.doc) > 40, setting.env
        assert "\n" not in setting.doc and setting.group in settings.GROUPS, setting.env


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def _imported(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, module) of every import, relative ones as written."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            out.append((node.lineno, "." * node.level + (node.module or "")))
    return out


def _environment_uses(tree: ast.Module) -> list[int]:
    """Lines that touch the process environment directly: ``os.environ``, ``os.getenv``, ``from os import environ``."""
    names = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in names:
            out.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "os" and {a.name for a in node.names} & names:
            out.append(node.lineno)
    return out


def _sources(*roots: Path) -> list[Path]:
    return sorted(p for root in roots for p in root.rglob("*.py"))


def test_the_library_never_imports_the_plugins():
    found = [f"{path.relative_to(ROOT)}:{line}: {name}" for path in _sources(INCLUDE / "dynadex")
             for line, name in _imported(_tree(path)) if name.split(".")[0] == "dynadex_airflow"]
    assert not found, "the library is below the plugins:\n" + "\n".join(found)


def test_plugins_and_dags_read_no_environment():
    """Their settings are ``dynadex.settings`` declarations (``from dynadex import settings``), read there."""
    found = [f"{path.relative_to(ROOT)}:{line}" for path in _sources(PLUGINS, DAGS)
             for line in _environment_uses(_tree(path))]
    assert not found, "read these through a Setting declared in dynadex/settings.py:\n" + "\n".join(found)


# what a DAG file may import: Airflow's DAG API, dates, and the two layers below it
DAG_IMPORTS = {"__future__", "pendulum", "airflow", "dynadex", "dynadex_airflow"}


def test_dags_are_wiring_only():
    """A DAG file declares DAGs and tasks whose bodies call ``plugins/dynadex_airflow`` (which calls the
    library): it imports nothing else (no ``os``: settings come from ``dynadex.settings``), and defines no
    classes."""
    paths = sorted(DAGS.glob("*.py"))
    assert len(paths) >= 3
    found = []
    for path in paths:
        tree = _tree(path)
        found += [f"{path.name}:{line}: import {name}" for line, name in _imported(tree)
                  if name.split(".")[0] not in DAG_IMPORTS]
        found += [f"{path.name}:{node.lineno}: class {node.name}" for node in ast.walk(tree)
                  if isinstance(node, ast.ClassDef)]
    assert not found, "move this into plugins/dynadex_airflow (or include/dynadex):\n" + "\n".join(found)


# exception classes defined outside an errors module, and why
OWN_EXCEPTIONS = {
    "dynadex.airflow_local.Stop": "the launcher's own signal (a stop signal arrived), raised and caught in its "
                                  "module: never seen outside it",
    "dynadex.stream.images._Other": "a private signal of the fast walk, one instance raised without traceback for "
                                    "speed and caught in the same function's module: never seen outside it",
}


def test_the_library_defines_its_exceptions_in_errors_modules():
    """One ``errors`` module per package (dynadex, dynadex.store, dynadex.stream, dynadex.local_aws) holds its
    exception classes, so their bases (``DynadexError``: fail at once; ``TransientError``: keep the retries)
    are read in one place."""
    import importlib
    import inspect
    import pkgutil

    import dynadex

    found = []
    for info in pkgutil.walk_packages(dynadex.__path__, "dynadex."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == info.name
                    and not info.name.endswith(".errors") and f"{info.name}.{name}" not in OWN_EXCEPTIONS):
                found.append(f"{info.name}.{name}")
    assert not found, "move these to their package's errors module:\n" + "\n".join(found)


def test_test_modules_import_from_tests_support_only():
    """Shared fixtures and helpers live in ``tests/support/`` (conftest files wire fixtures in): a test module
    that imports another test module (or a conftest) runs that module's tests' imports and couples the two."""
    found = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        if "support" in path.relative_to(ROOT / "tests").parts:
            continue
        for line, name in _imported(_tree(path)):
            if name.startswith(".") or (name.startswith("tests.") and not name.startswith("tests.support")):
                found.append(f"{path.relative_to(ROOT)}:{line}: {name}")
    assert not found, "import these from tests/support instead:\n" + "\n".join(found)
