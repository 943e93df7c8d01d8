"""Items and comparisons for the chunk-build tests: the DuckDB path against the exact Python path."""

from __future__ import annotations

import base64
import json
import random

import pyarrow.parquet as pq

EXPORT_ID = "01700000000001-0fa57b1d"
KEY = (("pk", "sk"), ("S", "N"))


def rich_item(i: int, rnd: random.Random) -> dict:
    """Every type, nested maps and lists, sparse and oddly named attributes, awkward strings and numbers."""
    b = lambda n: base64.b64encode(rnd.randbytes(n)).decode()  # noqa: E731
    item = {
        "pk": {"S": rnd.choice([f"user#{i}", f"Zoë ✓ {i}", f"quote\" back\\slash {i}", f"tab\there\nnew {i}", f"/slash/{i}"])},
        "sk": {"N": str(rnd.choice([i, -i, 10**37 + i]))},
        "n": {"N": rnd.choice(["0", "-1", "3.25", "-0.001", "12345678901234567890.5", "99999999999999999999999999999999999999", "0.000000000000000000000000000000000001"])},
        "s": {"S": rnd.choice(["", "plain", "日本語", "emoji 🎉", "é", "a'b"])},
        "flag": {"BOOL": rnd.random() < 0.5},
        "nothing": {"NULL": True},
        "bin": {"B": b(rnd.randint(0, 9))},
        "ss": {"SS": rnd.sample(["b", "a", "Ä", "z", "é", "10", "9"], rnd.randint(1, 4))},
        "ns": {"NS": rnd.sample(["10", "9", "-3.5", "0", "100.25", "2"], rnd.randint(1, 4))},
        "bs": {"BS": list({b(3) for _ in range(rnd.randint(1, 3))})},
        "m": {"M": {"z": {"S": "last"}, "a": {"N": str(i)}, "inner": {"M": {"deep": {"BOOL": True}, "l": {"L": [{"S": "x"}]}}}}},
        "l": {"L": [{"S": "s"}, {"N": "1.5"}, {"BOOL": False}, {"NULL": True}, {"B": b(2)},
                    {"M": {"k": {"S": "v"}, "a": {"NS": ["2", "1"]}}}, {"L": [{"N": "7"}, {"L": []}]}, {"SS": ["y", "x"]}]},
        "empty_list": {"L": []},
        "a.dotted name": {"S": "dots"},
        "naïve \"quoted\"": {"N": "42"},
    }
    if i % 3 == 0:
        item["sparse"] = {"S": "only some"}
    if i % 5 == 0:
        item["mixed"] = {"N": "5"}
    elif i % 5 == 1:
        item["mixed"] = {"S": "five"}
    if i == 7:
        item["rare"] = {"M": {"once": {"BS": [b(4)]}}}  # outside any sample of one line: a refinement round
    names = list(item)
    rnd.shuffle(names)  # AWS writes attributes in no particular order
    return {k: item[k] for k in names}


def line(item: dict) -> str:
    return json.dumps({"Item": item}, ensure_ascii=False, separators=(",", ":"))


def rows(location, manifest, kind, sort):
    tables = [pq.read_table(p.removeprefix("file://")) for p in manifest.files[kind]]
    out = []
    for t in tables:
        out.extend(t.to_pylist())
    # the column set: what the parts hold (union by name), None where a part lacks a column
    names = sorted({n for t in tables for n in t.column_names})
    out = [{n: r.get(n) for n in names} for r in out]
    return sorted(out, key=sort)


def assert_final_layout(manifest) -> None:
    """Each file is in its final order (what publish registers as is): rows and columns by key, entries by
    (path, value), rows in small row groups; every row carries the bulk write id."""
    [rows_file], [cols_file], [inv_file] = manifest.files["rows"], manifest.files["cols"], manifest.files["inv"]
    keys = pq.read_table(rows_file).column("key").to_pylist()
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert set(pq.read_table(rows_file).column("write_id").to_pylist()) <= {0}
    assert pq.ParquetFile(rows_file).metadata.row_group(0).num_rows <= 4096
    assert pq.read_table(cols_file).column("_key").to_pylist() == keys
    inv = pq.read_table(inv_file).select(["path", "value"]).to_pylist()
    pairs = [(r["path"], r["value"] is None, r["value"] or "") for r in inv]
    assert pairs == sorted(pairs, key=lambda p: (p[0].encode(), p[1], p[2].encode()))


def compare(fast_loc, fast, py_loc, py) -> None:
    assert fast.items == py.items and fast.columns == py.columns and fast.key_bounds == py.key_bounds
    assert_final_layout(fast)
    assert_final_layout(py)
    for kind, sort in (("rows", lambda r: r["key"]), ("cols", lambda r: r["_key"]),
                       ("inv", lambda r: (r["path"], r["kind"], r["value"] or "", r["key"]))):
        assert rows(fast_loc, fast, kind, sort) == rows(py_loc, py, kind, sort)
