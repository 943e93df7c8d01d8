"""Where the range merges' CPU goes, and the floor of any merge that rewrites its range (issue 31).

Runs the publish jobs' own SQL (``range_merge``) on the chunk files of a store that an ingest built, one
DuckDB thread, process CPU seconds per statement, and beside it what each part costs alone:

  - an ``entries`` job as it runs, then only its read and range filter, then the same COPY without the
    ``ORDER BY`` (read + filter + write: what a merge that never sorts, a perfect k-way merge of the
    chunks' sorted runs included, would still pay);
  - DuckDB's sort of the range held in a temp table three ways: as read (the chunks' sorted runs one after
    the other), shuffled, and already sorted; so whether DuckDB already merges the chunks' runs;
  - a ``keys`` job's three statements: the duplicate check, the row merge, the column merge.

Jobs alternate over ``--reps`` rounds. Make the store with the entries merged, e.g.

    DYNADEX_MERGE_ENTRIES_ABOVE_CHUNKS=0 .venv/bin/python -m dynadex.cli ingest-export <summary> --table Bench \\
        --key pk:S,sk:N --chunk-target-mb 3.3 --store /tmp/store --json
    .venv/bin/python bench/bench_merge.py --store /tmp/store --build-cpu <that run's cpu_seconds.build>
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
from pathlib import Path

os.environ["DYNADEX_MERGE_ENTRIES_ABOVE_CHUNKS"] = "0"  # plan the entry ranges whatever the chunk count

from dynadex.store.bulk import prepare as prep  # noqa: E402
from dynadex.store.bulk import range_merge  # noqa: E402
from dynadex.store.bulk.chunk_manifest import read_manifest  # noqa: E402
from dynadex.store.catalog.extensions import connect  # noqa: E402
from dynadex.store.catalog.location import resolve  # noqa: E402
from dynadex.store.layout.names import literal_list  # noqa: E402
from dynadex.store.layout.row_groups import ENTRY_GROUP_ROWS, PARQUET  # noqa: E402


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", required=True)
    ap.add_argument("--table", default="Bench")
    ap.add_argument("--jobs", type=int, default=4, help="entry and key jobs measured (the first N of each)")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--build-cpu", type=float, default=None, help="the ingest's build CPU seconds: shares of it")
    a = ap.parse_args()
    location = resolve(a.store, None)
    staging = Path(a.store) / "staging" / a.table
    (build_dir,) = [p for p in staging.iterdir() if p.is_dir()]
    chunk_ids = sorted(p.name for p in build_dir.iterdir() if p.is_dir() and not p.name.startswith("_"))
    m0 = read_manifest(location, a.table, build_dir.name, chunk_ids[0])
    plan = prep.prepare(location, a.table, build_dir.name, chunk_ids, m0.key_names)
    manifests = [read_manifest(location, a.table, plan.build_id, c) for c in chunk_ids]
    inv = [f for m in manifests for f in m.files["inv"]]
    entry_jobs = [j for j in plan.jobs if j.kind == "entries"]
    key_jobs = [j for j in plan.jobs if j.kind == "keys"]
    con = connect(threads=1)
    con.execute("SET preserve_insertion_order = false")  # as run_job sets it
    out = tempfile.mkdtemp(prefix="dynadex-bench-merge-")
    spent: dict[str, float] = {}

    def t(name: str, sql: str, params=()) -> None:
        c = cpu()
        con.execute(sql, list(params)).fetchone()
        spent[name] = spent.get(name, 0.0) + cpu() - c

    for _ in range(a.reps):
        for job in entry_jobs[:a.jobs]:
            lo, hi = (None if b is None else tuple(b) for b in (job.lo, job.hi))
            where, params = range_merge.entry_range_sql(lo, hi)
            src = f"SELECT path, kind, value, key, write_id FROM read_parquet({literal_list(inv)}) {where}"
            t("entries job (today)", *range_merge.merge_entries_sql(inv, lo, hi, f"{out}/e.parquet"))
            t("  read + range filter only", f"SELECT count(*) FROM ({src})", params)
            t("  the same COPY without ORDER BY", f"COPY ({src}) TO '{out}/n.parquet' "
                                                  f"({PARQUET}, ROW_GROUP_SIZE {ENTRY_GROUP_ROWS})", params)
            con.execute(f"CREATE OR REPLACE TEMP TABLE runs AS {src}", params)
            con.execute("CREATE OR REPLACE TEMP TABLE shuffled AS SELECT * FROM runs ORDER BY hash(key, value, path)")
            con.execute("CREATE OR REPLACE TEMP TABLE sorted AS SELECT * FROM runs ORDER BY path, value")
            t("  sort, table to table: chunks' runs as read", "CREATE OR REPLACE TEMP TABLE s AS "
                                                              "SELECT * FROM runs ORDER BY path, value")
            t("  sort, table to table: shuffled", "CREATE OR REPLACE TEMP TABLE s AS "
                                                  "SELECT * FROM shuffled ORDER BY path, value")
            t("  sort, table to table: already sorted", "CREATE OR REPLACE TEMP TABLE s AS "
                                                        "SELECT * FROM sorted ORDER BY path, value")
            t("  copy, table to table, no sort", "CREATE OR REPLACE TEMP TABLE s AS SELECT * FROM runs")
            t("  write the sorted range (zstd)", f"COPY sorted TO '{out}/w.parquet' "
                                                 f"({PARQUET}, ROW_GROUP_SIZE {ENTRY_GROUP_ROWS})")
        for job in key_jobs[:a.jobs]:
            c = cpu()
            prep._check_keys(con, plan, job, manifests)
            spent["keys job: duplicate check"] = spent.get("keys job: duplicate check", 0.0) + cpu() - c
            c = cpu()
            prep._merge(con, out, plan, job, manifests)
            spent["keys job: row merge"] = spent.get("keys job: row merge", 0.0) + cpu() - c
            c = cpu()
            prep._merge_columns(con, out, plan, job, manifests)
            spent["keys job: column merge"] = spent.get("keys job: column merge", 0.0) + cpu() - c
    n_e, n_k = min(a.jobs, len(entry_jobs)) * a.reps, min(a.jobs, len(key_jobs)) * a.reps
    print(f"{a.store}: {len(chunk_ids)} chunks, {len(key_jobs)} key ranges, {len(entry_jobs)} entry ranges; "
          f"{a.jobs} of each measured, {a.reps} rounds; CPU seconds per job")
    for name, s in spent.items():
        per = s / (n_k if name.startswith("keys") else n_e)
        print(f"  {name:48s} {per:6.3f} s")
    today = spent["entries job (today)"] / n_e
    floor = spent["  the same COPY without ORDER BY"] / n_e
    keys = sum(v for k, v in spent.items() if k.startswith("keys")) / n_k
    total, total_floor = today * len(entry_jobs) + keys * len(key_jobs), floor * len(entry_jobs) + keys * len(key_jobs)
    print(f"  all jobs' statements: {total:.1f} CPU s; with entries merged but never sorted: {total_floor:.1f} CPU s "
          f"({100 * floor / today:.0f}% of an entries job)")
    if a.build_cpu:
        print(f"  as a share of the build's {a.build_cpu:.1f} CPU s: {100 * total / a.build_cpu:.0f}% today, "
              f"{100 * total_floor / a.build_cpu:.0f}% at the no-sort floor (process and job start not included)")


if __name__ == "__main__":
    main()
