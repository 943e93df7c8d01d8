"""The library (include/dynadex) never imports Airflow: every module imports in a process where Airflow cannot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

INCLUDE = Path(__file__).resolve().parents[2] / "include"

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
    "stream/sync.py": "SyncSettings: the sync's knobs, one field and docstring each",
    "local_aws/config.py": "the emulator's Knobs",
    "airflow_local.py": "a launcher: passes the environment on to the Airflow it starts",
    "demo.py": "a launcher: the demo's size",
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


# exception classes defined outside an errors module, and why
OWN_EXCEPTIONS = {
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
