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
