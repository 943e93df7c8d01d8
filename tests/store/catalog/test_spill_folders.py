"""Each DuckDB connection spills into a folder of its own (store/catalog/extensions.py).

DuckDB names its spill files alike in every instance: two processes spilling into one folder overwrite each
other's blocks. Before the fix, two parallel chunk builds of 1 M items each crashed the second one (a
segfault in DuckDB) every time, and two plain sorts sharing a folder segfaulted or failed with "Could not
read enough bytes from file …duckdb_temp_storage_S64K-0.tmp".
"""

from __future__ import annotations

from tests.support.paths import REPO  # noqa: I001 - before the path it builds is used
import ast
import os
import socket
import subprocess
import sys
from pathlib import Path

INCLUDE = REPO / "include"

# a sort far larger than the memory limit: it must spill
SORT = """
import os, sys
from dynadex.store.catalog.extensions import connect
con = connect(threads=1, memory_limit="60MB")
total = con.execute("SELECT sum(i * (r % 7)) FROM (SELECT row_number() OVER (ORDER BY s) AS r, i FROM "
                    "(SELECT i, md5(i::VARCHAR) || md5((i * 7)::VARCHAR) AS s FROM range(2000000) t(i)))").fetchone()[0]
print(total, sorted(os.listdir(os.environ["DYNADEX_DUCKDB_TEMP"])))
"""


def _env(root: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(INCLUDE), "DYNADEX_DUCKDB_TEMP": str(root)}


def test_two_processes_spilling_under_one_root_do_not_share_files(tmp_path):
    """Fault: two processes sort at once with the same DYNADEX_DUCKDB_TEMP and a memory limit far below the
    data. Both finish with the right answer, each spilled into its own folder, and none is left behind."""
    root = tmp_path / "spill"
    procs = [subprocess.Popen([sys.executable, "-c", SORT], env=_env(root), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    import duckdb

    expected = duckdb.connect().execute(  # the same query in memory, no spill
        "SELECT sum(i * (r % 7)) FROM (SELECT row_number() OVER (ORDER BY s) AS r, i FROM "
        "(SELECT i, md5(i::VARCHAR) || md5((i * 7)::VARCHAR) AS s FROM range(2000000) t(i)))").fetchone()[0]
    for p, (out, _) in zip(procs, outs):
        total, seen = out.split(" ", 1)
        assert int(total) == expected
        mine = f"{socket.gethostname()}~{p.pid}-"
        assert any(name.startswith(mine) for name in ast.literal_eval(seen)), seen  # it spilled, into its own folder
    assert list(root.iterdir()) == []  # DuckDB removed each folder when its instance closed


def test_the_folders_of_dead_processes_are_removed_and_live_ones_kept(tmp_path):
    root = tmp_path / "spill"
    host = socket.gethostname()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        for name in (f"{host}~{dead.pid}-0", f"{host}~{live.pid}-3", f"other-host~{dead.pid}-0", "not-ours"):
            (root / name).mkdir(parents=True)
            (root / name / "duckdb_temp_storage_S64K-0.tmp").write_bytes(b"x")
        probe = "from dynadex.store.catalog.extensions import connect; connect().execute('SELECT 1')"
        subprocess.run([sys.executable, "-c", probe], env=_env(root), check=True)
        assert sorted(p.name for p in root.iterdir()) == sorted(
            [f"{host}~{live.pid}-3", f"other-host~{dead.pid}-0", "not-ours"])
    finally:
        live.kill()
        live.wait()
