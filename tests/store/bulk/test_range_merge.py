"""Range merges: the ranges of an index partition it, in DuckDB's own order (real DuckDB, real Parquet)."""

from __future__ import annotations

import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dynadex.store.bulk import range_merge as rm
from dynadex.store.catalog.extensions import connect

# strings that sort in surprising ways: empty, prefixes, NUL, a control character, code points past the BMP,
# the byte order of UTF-8 against the code units of UTF-16
ODD = ["", "a", "a\x00", "a\x00b", "ab", "a\x01", "b", "\u00e9", "\uffff", "\U0001f600", "z" * 300, "A", "Z"]


def entries(seed: int, n: int) -> list[tuple[str, str | None, str]]:
    rnd = random.Random(seed)
    paths = ["", "a", "a.b", "a\\.b", "city", "n", "tags", "\U0001f600"]
    out = []
    for i in range(n):
        value = None if rnd.random() < 0.1 else rnd.choice(ODD + [str(rnd.randrange(1000))])
        out.append((rnd.choice(paths), value, rnd.choice(ODD) + f"{i:05d}"))
    return out


def run_ranges(con, f: str, ranges) -> list[list[tuple]]:
    out = []
    for lo, hi in ranges:
        where, params = rm.entry_range_sql(lo, hi)
        out.append(con.execute(f"SELECT path, value, key FROM read_parquet('{f}') {where} "
                               "ORDER BY path, value, key", params).fetchall())
    return out


def write(f: str, data) -> None:
    pq.write_table(pa.table({"path": [e[0] for e in data], "value": [e[1] for e in data],
                             "key": [e[2] for e in data]}), f)


@pytest.mark.parametrize("seed, count", [(1, 1), (2, 3), (3, 8), (4, 40)])
def test_entry_ranges_partition_entries_in_duckdbs_order(tmp_path, seed, count):
    """Bounds sampled from the data (NULL values and cut prefixes among them) cut `count` ranges; run as
    DuckDB SQL over a Parquet file, every entry falls in exactly one range, and the ranges come in ORDER BY
    path, value, key order (NULLS LAST), so the merged files are disjoint and in order."""
    data = entries(seed, 600)
    f = str(tmp_path / "inv.parquet")
    write(f, data)
    rnd = random.Random(seed)
    bounds = [list(e) for e in rnd.sample(data, 40)] + [[p[:1], None if v is None else v[:2], k] for p, v, k in data[:20]]
    ranges = rm.cut(bounds, count, order=rm.entry_order)
    assert len(ranges) <= count and ranges[0][0] is None and ranges[-1][1] is None
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    con = connect()
    parts = run_ranges(con, f, ranges)
    flat = [e for part in parts for e in part]
    assert flat == sorted(data, key=rm.entry_order)  # each entry exactly once, the ranges in order
    # and Python's order of bounds is DuckDB's
    duck = con.execute(f"SELECT path, value, key FROM read_parquet('{f}') ORDER BY path, value, key").fetchall()
    assert duck == sorted(data, key=rm.entry_order)


def test_a_value_held_by_most_items_is_cut_like_any_other_run(tmp_path):
    """Found at 10 M items: one (path, value) held 54 M of 177 M entries landed in one range (an entries job
    that ran out of memory) because ranges could not cut inside a value, and deduplicated samples lost its
    weight. With the key in the range and the samples' weight kept, the ranges stay about equal."""
    rnd = random.Random(5)
    data = [("flag", "on", f"k{i:06d}") for i in range(8000)] + [("city", rnd.choice(ODD), f"k{i:06d}")
                                                                   for i in range(2000)]
    f = str(tmp_path / "inv.parquet")
    write(f, data)
    ordered = sorted(data, key=rm.entry_order)
    chunks = [sorted(rnd.sample(data, 1000), key=rm.entry_order) for _ in range(8)]  # as 8 chunks sample
    bounds = [list(c[round(i * 999 / 32)]) for c in chunks for i in range(33)]
    ranges = rm.cut(bounds, 10, order=rm.entry_order)
    sizes = [len(p) for p in run_ranges(connect(), f, ranges)]
    assert sum(sizes) == len(ordered) and len(ranges) == 10
    assert max(sizes) < 2 * len(data) / len(ranges), sizes  # no range holds the whole value


def test_cut_keeps_the_weight_of_repeated_samples():
    """90 of 100 samples at one point: the middle cut is that point (a deduplicated list would put it at 'f')."""
    bounds = ["a"] * 90 + list("bcdefghijk")
    assert rm.cut(bounds, 2) == [(None, "a"), ("a", None)]
    assert rm.cut(["a", "a", "a"], 5) == [(None, None)]  # one distinct point: nothing to cut


def test_key_ranges_partition_keys(tmp_path):
    rnd = random.Random(9)
    keys = sorted({rnd.choice(ODD) + str(rnd.randrange(10_000)) for _ in range(2000)})
    f = str(tmp_path / "rows.parquet")
    pq.write_table(pa.table({"key": keys}), f)
    con = connect()
    ranges = rm.cut(rnd.sample(keys, 50), 7)
    got = []
    for lo, hi in ranges:
        where, params = rm.key_range_sql(lo, hi)
        got += [k for (k,) in con.execute(f"SELECT key FROM read_parquet('{f}') {where} ORDER BY key", params).fetchall()]
    assert got == keys


@pytest.mark.parametrize("total, per, chunks, per_chunks, most, want", [
    (0, 100, 0, 2, 256, 1),  # nothing: one (empty) range
    (1_000_000, 2_000_000, 16, 2, 256, 8),  # small table, many chunks: spread like the builds
    (10_000_000, 2_000_000, 4, 2, 256, 5),  # big ranges cut by size
    (10**12, 2_000_000, 1024, 2, 256, 256),  # capped (Airflow's map length)
])
def test_range_count(total, per, chunks, per_chunks, most, want):
    assert rm.range_count(total, per, chunks, per_chunks, most) == want


def test_cut_drops_repeated_cut_points():
    """Few distinct bounds give fewer ranges, never an empty range between two equal cuts."""
    assert rm.cut(["a", "b"], 5) == [(None, "a"), ("a", "b"), ("b", None)]
