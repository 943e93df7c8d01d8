"""What opening a store costs, with and without DuckDB's check of the extensions' signatures (decision 0029).

Every DuckDB instance that attaches a DuckLake catalog loads the DuckLake and SQLite extensions; by default
DuckDB hashes each file (35 MB each) at every load to check its signature. dynadex skips the check while its
extension folder is private. Two measures, each side by side in one run, alternating:
  open:  ``Store(path)`` + one ``get`` + close, in this process (new DuckDB instance each time), N times
  cli:   ``dynadex get`` as a new process, N times (what a script or an Airflow task pays per call)

  .venv/bin/python bench/bench_open.py [--store S] [--opens 20] [--cli 6]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_stream import apply_store

from dynadex.store import Store
from dynadex.store.catalog import extensions

MODES = {"check skipped (default)": "0", "DuckDB's check (DYNADEX_EXTENSION_SIGNATURES=1)": "1"}


def use(mode: str) -> None:
    os.environ["DYNADEX_EXTENSION_SIGNATURES"] = mode
    extensions._layout.cache_clear()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", help="a store whose table S has key k0000001 (default: a new 1 000-item store)")
    ap.add_argument("--opens", type=int, default=20)
    ap.add_argument("--cli", type=int, default=6)
    ap.add_argument("--out")
    a = ap.parse_args()
    store = a.store or apply_store(1000)
    key = '{"pk":{"S":"k0000001"}}'
    opens = {m: [] for m in MODES}
    for i in range(a.opens):
        for name, mode in (list(MODES.items()) if i % 2 == 0 else list(MODES.items())[::-1]):
            use(mode)
            t = time.perf_counter()
            with Store(store) as st:
                assert st.get("S", key) is not None
            opens[name].append(time.perf_counter() - t)
    cli = {m: [] for m in MODES}
    for i in range(a.cli):
        for name, mode in (list(MODES.items()) if i % 2 == 0 else list(MODES.items())[::-1]):
            t = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "dynadex.cli", "get", "S", key, "--store", store],
                                  capture_output=True, text=True, env={**os.environ, "DYNADEX_EXTENSION_SIGNATURES": mode})
            cli[name].append(time.perf_counter() - t)
            assert done.returncode == 0, done.stderr[-2000:]
    rows = {}
    for name in MODES:
        rows[name] = {"open_get_close_ms": round(statistics.median(opens[name]) * 1000, 1),
                      "cli_get_ms": round(statistics.median(cli[name]) * 1000, 1)}
        print(f"{name:50s} Store open + get + close: median {rows[name]['open_get_close_ms']:6.1f} ms "
              f"({a.opens} opens);  `dynadex get` process: median {rows[name]['cli_get_ms']:6.1f} ms ({a.cli} runs)")
    on, off = (rows[n] for n in MODES)
    print(f"open: {off['open_get_close_ms'] / on['open_get_close_ms']:.2f}x faster without the check; "
          f"cli: {off['cli_get_ms'] / on['cli_get_ms']:.2f}x")
    if a.out:
        Path(a.out).write_text(json.dumps(rows, indent=2))
    if not a.store:
        shutil.rmtree(store, ignore_errors=True)


if __name__ == "__main__":
    main()
