"""Marking pandas/polars absent for DuckDB's sake must not break pyarrow in a fresh process (an Airflow task)."""

from __future__ import annotations

import subprocess
import sys

from tests.support.paths import REPO

INCLUDE = REPO / "include"


def test_pyarrow_still_works_after_a_store_connection_in_a_fresh_process():
    code = ("from dynadex.store.catalog.extensions import connect\n"
            "con = connect()\n"
            "import pyarrow as pa\n"
            "print(pa.array([1, 2]).to_pylist(), pa.Table.from_pylist([{'a': 1}]).num_rows)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PYTHONPATH": str(INCLUDE), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[1, 2] 1"
