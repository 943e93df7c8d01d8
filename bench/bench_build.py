"""Chunk build throughput vs a naive loader and vs DuckDB's read_json, on the same generated export.

Prints items/s and MB/s (of uncompressed DynamoDB JSON) for, in one run:
  (a) naive: gzip + json + boto3 TypeDeserializer, one process;
  (b) DuckDB read_json of the same files into a raw table (parse only);
  (c) dynadex chunk build of its three final index files, one process (DuckDB path, 2 threads; peak RSS);
  (c') the same chunk through the exact Python path (DYNADEX_BUILD=python), the path before DuckDB;
  (e) a floor for any DuckDB build: read + parse + write the three segments' data (raw line as item, one
      entry per leaf in the inverted segment), with no canonical text and no checks at all;
  (d) dynadex plan + build + checks + publish with 2 worker processes (the whole ingest; see bench_ingest.py
      for its phases at 16 and 64 chunks).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from gen_export import generate  # noqa: E402


def naive(export) -> tuple[int, float]:
    from boto3.dynamodb.types import TypeDeserializer

    from dynadex.aws import to_client  # TypeDeserializer wants B as bytes: base64-decode first

    des = TypeDeserializer()
    n = 0
    t = time.perf_counter()
    for f in export.files:
        with gzip.open(export.source.path(f.key), "rt") as fh:
            for line in fh:
                item = to_client(json.loads(line)["Item"])
                {k: des.deserialize(v) for k, v in item.items()}
                n += 1
    return n, time.perf_counter() - t


def duckdb_parse(export) -> tuple[int, float]:
    import duckdb

    files = [str(export.source.path(f.key)) for f in export.files]
    con = duckdb.connect()
    t = time.perf_counter()
    con.execute("CREATE TABLE raw AS SELECT * FROM read_json(?, format = 'newline_delimited', compression = 'gzip', "
                "columns = {'Item': 'JSON'})", [files])
    n = con.execute("SELECT count(*) FROM raw").fetchone()[0]
    return n, time.perf_counter() - t


def duckdb_floor(export, work: Path) -> tuple[int, float]:
    """What DuckDB spends just moving the data into the three segments, with the build's own expressions for
    columns and inverted entries but no canonical text, no key text and no checks: no DuckDB build can be
    faster than this on the same box."""
    from dynadex.store.bulk import fast_sql as fs
    from dynadex.store.bulk import fast_structure as st
    from dynadex.store.bulk import fastbuild as fb
    from dynadex.store.catalog.extensions import connect

    files = [str(export.source.path(f.key)) for f in export.files]
    out = work / "floor"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    con = connect(threads=os.cpu_count(), memory_limit=fb.BUILD_MEMORY)
    con.execute("SET preserve_insertion_order = false")
    t = time.perf_counter()
    fb.read_lines(con, files)
    structure = st.sampled_structure(con)
    con.execute(f"CREATE TEMP TABLE p AS SELECT from_json(line, {st.lit(json.dumps({'Item': st.duck_type(structure)}))}) "
                "AS j, line FROM lines")
    con.execute("DROP TABLE lines")
    con.execute(f"COPY (SELECT j.Item.pk.S AS key, line AS item FROM p) TO '{out}/rows.parquet' (FORMAT parquet, COMPRESSION zstd)")
    gen, cols, lists = fs._Gen(), [], []
    for name, av in sorted(structure.items()):
        fs._columns(gen, f"j.Item.{st.ident(name)}", av, (name,), cols)
        fs._inverted(gen, f"j.Item.{st.ident(name)}", av, name, lists)
    con.execute("COPY (SELECT j.Item.pk.S AS key, " + ", ".join(f"{expr} AS c{i}" for i, (_, _, expr, _) in enumerate(cols))
                + f" FROM p) TO '{out}/cols.parquet' (FORMAT parquet, COMPRESSION zstd)")
    con.execute(f"COPY (SELECT p AS path, k AS kind, v AS value, key FROM (SELECT unnest(e, recursive := true), key FROM "
                f"(SELECT j.Item.pk.S AS key, {fs._concat(lists)} AS e FROM p))) TO '{out}/inv.parquet' (FORMAT parquet, COMPRESSION zstd)")
    n = con.execute("SELECT count(*) FROM p").fetchone()[0]
    seconds = time.perf_counter() - t
    con.close()
    shutil.rmtree(out, ignore_errors=True)
    return n, seconds


BUILD_ONE = """
import json, resource, sys, time
from dynadex.export import read_export
from dynadex.store.bulk.plan import plan_chunks
from dynadex.store.bulk.build import build_chunk
from dynadex.store import resolve
export = read_export(sys.argv[1])
[spec] = plan_chunks(export.files, 10**15)
t = time.perf_counter()
r = build_chunk(export, spec, resolve(sys.argv[2]), "Bench", "b", ("pk", "sk"), ("S", "N"), 1)
print(json.dumps({"items": r.items, "seconds": time.perf_counter() - t,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=16)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--skip-python", action="store_true", help="skip (c'), the slow Python path")
    a = ap.parse_args()
    work = Path(a.workdir or tempfile.mkdtemp(prefix="dynadex-bench-"))
    summary_path = work / "bench" / "AWSDynamoDB" / "01700000000000-0badcafe" / "manifest-summary.json"
    if not summary_path.exists() or json.loads(summary_path.read_text())["itemCount"] != a.items:
        shutil.rmtree(work / "bench", ignore_errors=True)
        t = time.time()
        generate(work, a.items, a.files)
        print(f"generated {a.items} items in {a.files} files in {time.time() - t:.0f}s")
    from dynadex.export import read_export

    export = read_export(str(summary_path))
    raw = sum(len(gzip.decompress(export.source.path(f.key).read_bytes())) for f in export.files)
    gz = sum(f.size for f in export.files)
    print(f"export: {a.items} items, {gz / 1e6:.0f} MB gzip, {raw / 1e6:.0f} MB DynamoDB JSON, {a.files} files")

    def line(name, n, s, extra=""):
        print(f"{name:<46} {n / s:>10,.0f} items/s {raw / s / 1e6:>7.1f} MB/s {s:>7.1f} s {extra}")
        return n / s

    n, s = naive(export)
    base = line("(a) naive: gzip+json+TypeDeserializer, 1 proc", n, s)
    n, s = duckdb_parse(export)
    duck = line("(b) DuckDB read_json, parse only", n, s)
    store = work / "store1"
    shutil.rmtree(store, ignore_errors=True)
    out = subprocess.run([sys.executable, "-c", BUILD_ONE, str(summary_path), str(store)], capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    ours = line("(c) dynadex build_chunk, 3 indexes, 1 proc", r["items"], r["seconds"], f"peak RSS {r['peak_mb']:.0f} MB")
    py_rate = None
    if not a.skip_python:
        shutil.rmtree(store, ignore_errors=True)
        out = subprocess.run([sys.executable, "-c", BUILD_ONE, str(summary_path), str(store)], capture_output=True, text=True,
                             check=True, env={**os.environ, "DYNADEX_BUILD": "python"})
        r = json.loads(out.stdout.strip().splitlines()[-1])
        py_rate = line("(c') the same, exact Python path", r["items"], r["seconds"], f"peak RSS {r['peak_mb']:.0f} MB")
    n, s = duckdb_floor(export, work)
    floor = line("(e) floor: DuckDB parse + write, no checks", n, s)
    store2 = work / "store2"
    shutil.rmtree(store2, ignore_errors=True)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dynadex.cli", "ingest-export", str(summary_path), "--table", "Bench",
                    "--key", "pk:S,sk:N", "--workers", "2", "--chunk-target-mb", str(gz / 1e6 / 8), "--store", str(store2)],
                   check=True, capture_output=True)
    whole = line("(d) dynadex ingest-export, 2 workers, + publish", a.items, time.perf_counter() - t)
    print(f"ratios: (c)/(a) = {ours / base:.2f}x   (c)/(b) = {ours / duck:.2f}x   (d)/(a) = {whole / base:.2f}x"
          + (f"   (c)/(c') = {ours / py_rate:.2f}x" if py_rate else ""))
    print(f"floor:  (e)/(a) = {floor / base:.2f}x   (e)/(b) = {floor / duck:.2f}x   (c)/(e) = {ours / floor:.2f}x")


if __name__ == "__main__":
    main()
