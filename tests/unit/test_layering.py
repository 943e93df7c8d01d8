"""The library under include/dynadex never imports Airflow (ARCHITECTURE.md: importable WITHOUT Airflow)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

LIB = Path(__file__).resolve().parents[2] / "include" / "dynadex"


def test_no_module_of_the_library_imports_airflow():
    pattern = re.compile(r"^\s*(import airflow|from airflow)", re.M)
    offenders = [str(p.relative_to(LIB)) for p in LIB.rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []


def test_importing_the_library_loads_no_airflow_module():
    modules = sorted(p.relative_to(LIB.parent).with_suffix("").as_posix().replace("/", ".")
                     for p in LIB.rglob("*.py") if p.name != "__main__.py")
    code = ("import importlib, sys\n"
            f"for m in {[m.removesuffix('.__init__') for m in modules]!r}: importlib.import_module(m)\n"
            "print(sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=LIB.parent,
                          env={"PYTHONPATH": str(LIB.parent), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"

