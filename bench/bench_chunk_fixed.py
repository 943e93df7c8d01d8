"""Two per-chunk fixed costs of the DuckDB build, measured on one chunk: the structure sample's size and a
fresh DuckDB connection.

Builds the first data file of an export (one chunk, one DuckDB thread) with the structure sampled from
1 000 head lines plus each of --sample-rows reservoir rows (fastbuild's default: 20 000), twice each,
alternating, and prints each build's CPU seconds (DuckDB's threads run in this process); then the CPU of
opening a DuckDB connection as the build does.

    PYTHONPATH=$PWD/include .venv/bin/python bench/bench_chunk_fixed.py SUMMARY --sample-rows 20000 3000
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("summary")
    ap.add_argument("--sample-rows", type=int, nargs="+", default=[20000, 3000])
    ap.add_argument("--key", default="pk:S,sk:N")
    a = ap.parse_args()
    from dynadex.export import read_export
    from dynadex.store import resolve
    from dynadex.store.bulk import fast_structure
    from dynadex.store.bulk.fastbuild import build_chunk_fast
    from dynadex.store.bulk.plan import plan_chunks
    from dynadex.store.catalog.extensions import connect

    names, types = zip(*(k.split(":") for k in a.key.split(",")))
    export = read_export(a.summary)
    [spec] = plan_chunks(export.files[:1], 10**15)
    work = tempfile.mkdtemp(prefix="dynadex-chunk-fixed-")
    try:
        for rows in a.sample_rows * 2:
            fast_structure.SAMPLE_ROWS = rows
            shutil.rmtree(f"{work}/store", ignore_errors=True)
            c, t = cpu(), time.time()
            m = build_chunk_fast(export, spec, resolve(f"{work}/store"), "Bench", "b1", names, types, 5, "o",
                                 threads=1)
            print(f"sample {rows:>6} rows: {m.items} items, CPU {cpu() - c:.2f} s, wall {time.time() - t:.2f} s, "
                  f"lines left to Python {m.python_lines}")
        c = cpu()
        for _ in range(10):
            con = connect(threads=1, memory_limit="1100MB")
            con.execute("SELECT json_valid('1')").fetchall()
            con.close()
        print(f"a DuckDB connection (json loaded): {(cpu() - c) / 10 * 1000:.0f} ms CPU")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
