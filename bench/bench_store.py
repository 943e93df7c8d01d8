"""The converged index: get latency, find vs full scans, aggregate vs a plain DuckDB table.

Runs on a store holding the generated export (``bench_build.py`` builds one; or give --store).
  get:        p50/p99 of `Store.get` on random keys (store opened once, like a service would)
  find:       a selective value (one item) through the inverted index, vs the same filter as a
              full scan of the row index (what you would do without an index) and of the column index
  aggregate:  GROUP BY over the column index vs the same query on a plain in-memory DuckDB table
              holding the same rows
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import duckdb

from dynadex.store import Store


def timed(fn, repeat=5):
    best = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best.append(time.perf_counter() - t)
    return out, statistics.median(best)


def key_of(i: int) -> str:
    return '{"pk":{"S":"customer#%09d"},"sk":{"N":"%d"}}' % (i, i % 1000)


def point_reads(st: Store, table: str, n: int, lookups: int = 300) -> dict:
    """`get` p50/p99 over random keys and the median `find` of one selective value, store opened once."""
    rnd = random.Random(3)
    lat = []
    for _ in range(lookups):
        key = key_of(rnd.randrange(n))
        t = time.perf_counter()
        assert st.get(table, key) is not None
        lat.append((time.perf_counter() - t) * 1000)
    lat.sort()
    target = f"user{n // 2}@example.com"
    found, t_find = timed(lambda: st.find(table, f"email={target}"))
    assert len(found) == 1
    return {"get_p50_ms": lat[len(lat) // 2], "get_p99_ms": lat[int(len(lat) * 0.99)], "find_ms": t_find * 1000,
            "target": target}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", required=True)
    ap.add_argument("--table", default="Bench")
    ap.add_argument("--maintain", action="store_true", help="run `dynadex maintain`'s merge first, then measure")
    a = ap.parse_args()
    if a.maintain:
        t = time.perf_counter()
        with Store(a.store, read_only=False) as w:
            w.compact()
        print(f"maintain (merge of adjacent files): {time.perf_counter() - t:.1f} s")
    st = Store(a.store)
    n = st.query(f'SELECT count(*) FROM row_index."{a.table}"')[1][0][0]
    files = {schema: st.lake.con.execute("SELECT count(*) FROM ducklake_list_files('lake', ?, schema => ?)",
                                         [a.table, schema]).fetchone()[0]
             for schema in ("row_index", "main", "inverted_index")}
    print(f"store {a.store}: {n:,} items; data files: {files['row_index']} rows, {files['main']} columns, "
          f"{files['inverted_index']} inverted")
    r = point_reads(st, a.table, n)
    print(f"get: p50 {r['get_p50_ms']:.1f} ms  p99 {r['get_p99_ms']:.1f} ms  (300 random keys)")
    target, t_find = r["target"], r["find_ms"] / 1000
    con = st.lake.con
    rows_scan, t_rows = timed(lambda: con.execute(
        f"SELECT item FROM row_index.\"{a.table}\" WHERE json_extract_string(item, '$.email.S') = ?", [target]).fetchall(), 3)
    cols_scan, t_cols = timed(lambda: con.execute(f'SELECT * FROM "{a.table}" WHERE email = ?', [target]).fetchall())
    assert len(rows_scan) == 1 and len(cols_scan) == 1
    print(f"find email=…: {t_find * 1000:.1f} ms; full scan of the row index {t_rows * 1000:.0f} ms "
          f"({t_rows / t_find:.1f}x slower); column-index filter scan {t_cols * 1000:.1f} ms ({t_cols / t_find:.1f}x)")
    q = 'SELECT city, count(*) AS n, sum(total) AS revenue, avg(qty) AS qty FROM {} GROUP BY city ORDER BY city'
    lake_res, t_lake = timed(lambda: con.execute(q.format(f'"{a.table}"')).fetchall())
    plain = duckdb.connect()
    plain.execute("ATTACH ':memory:' AS mem")
    arrow = con.execute(f'SELECT city, total, qty FROM "{a.table}"').to_arrow_table()
    plain.register("src", arrow)
    plain.execute("CREATE TABLE plain AS SELECT * FROM src")
    plain_res, t_plain = timed(lambda: plain.execute(q.format("plain")).fetchall())
    assert lake_res == plain_res
    print(f"aggregate GROUP BY city: column index {t_lake * 1000:.1f} ms, plain DuckDB table {t_plain * 1000:.1f} ms "
          f"({t_lake / t_plain:.2f}x)")


if __name__ == "__main__":
    main()
