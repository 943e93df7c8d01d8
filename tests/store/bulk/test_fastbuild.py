"""The DuckDB chunk build writes exactly what the Python path writes, and steps aside outside its domain."""

from __future__ import annotations

from tests.support.paths import REPO  # noqa: I001 - before the path it builds is used
import base64
import hashlib
import json
import random
import sys
from pathlib import Path

import pytest

from dynadex.export import read_export
from dynadex.store import resolve
from dynadex.store.bulk.build import build_chunk
from dynadex.store.bulk.chunk_manifest import read_manifest
from dynadex.store.bulk.fastbuild import build_chunk_fast
from dynadex.store.bulk.plan import plan_chunks
from tests.support.fast_builds import EXPORT_ID, KEY, assert_final_layout, compare, line, rich_item, rows

sys.path.insert(0, str(REPO / "bench"))
import gen_export  # noqa: E402  (the benchmarks' export writer: the real S3 layout)


def write_export(root: Path, files: list[list[str]]) -> str:
    """A full export in the real layout from raw data lines (so tests control the exact bytes)."""
    return str(gen_export.write_export(root, files, prefix="b", export_id=EXPORT_ID, table="T",
                                       export_time="2024-01-01T00:00:00.000Z"))


def build_both(tmp_path, export_lines, monkeypatch):
    summary = write_export(tmp_path / "export", export_lines)
    export = read_export(summary)
    [spec] = plan_chunks(export.files, 10**15)
    names, types = KEY
    py_loc, fast_loc = resolve(str(tmp_path / "py")), resolve(str(tmp_path / "fast"))
    monkeypatch.setenv("DYNADEX_BUILD", "python")
    build_chunk(export, spec, py_loc, "T", "b1", names, types, 5)
    monkeypatch.delenv("DYNADEX_BUILD")
    fast = build_chunk_fast(export, spec, fast_loc, "T", "b1", names, types, 5, f"export:{export.summary.export_id}")
    return export, spec, (py_loc, read_manifest(py_loc, "T", "b1", spec.chunk_id)), (fast_loc, fast)


def test_fast_build_equals_python_build_on_every_type(tmp_path, monkeypatch):
    rnd = random.Random(11)
    files = [[line(rich_item(i, rnd)) for i in range(f * 150, f * 150 + 150)] for f in range(3)]
    _, _, (py_loc, py), (fast_loc, fast) = build_both(tmp_path, files, monkeypatch)
    assert fast is not None, "the rich export is inside the fast path's domain"
    assert fast.built_by == "duckdb" and fast.python_lines == 0
    assert fast.items == py.items == 450
    assert fast.columns == py.columns  # kinds, counts and number figures (they decide SQL types)
    assert_final_layout(fast)
    assert_final_layout(py)
    by_key = lambda r: r["key"]  # noqa: E731
    assert rows(fast_loc, fast, "rows", by_key) == rows(py_loc, py, "rows", by_key)
    assert rows(fast_loc, fast, "cols", lambda r: r["_key"]) == rows(py_loc, py, "cols", lambda r: r["_key"])
    inv_sort = lambda r: (r["path"], r["kind"], r["value"] or "", r["key"])  # noqa: E731
    assert rows(fast_loc, fast, "inv", inv_sort) == rows(py_loc, py, "inv", inv_sort)


VALID_BUT_OUTSIDE = [
    '{"Item":{"pk":{"S":"x"},"sk":{"N":"1.50"}}}',  # a number DynamoDB would have normalised
    '{"Item":{"pk":{"S":"caf\\u00e9"},"sk":{"N":"1"}}}',  # a \\u escape
    '{"Item":{"pk":{"S":"x"},"sk":{"N":"1"},"t":{"B":"AB=="}}}',  # base64 with stray bits
    '{"Item": {"pk":{"S":"x"},"sk":{"N":"1"}}}',  # whitespace
    '{"Item":{"pk":{"S":"x"},"sk":{"N":"1"},"t":{"M":{}}}}',  # an empty map
    '{"Item":{"pk":{"S":"x"},"sk":{"N":"1"},"t":{"NS":["1234567890123456","2"]}}}',  # NS member past 15 digits
]
INVALID = {
    '{"Item":{"pk":{"S":"x"},"sk":{"N":"1"}},"Extra":1}': "unexpected field(s) ['Extra'] beside Item",
    '{"Item":{"pk":{"S":"x"},"sk":{"N":"1"},"t":{"SS":["a","a"]}}}': "holds duplicate members",
    '{"Item":{"pk":{"S":"x"},"sk":{"N":"1"},"t":{"S":"a","N":"1"}}}': "exactly one type tag",
    '{"Item":{"pk":{"S":"x"},"sk":{"N":"1"},"t":{"BOOL":"true"}}}': "BOOL",
    '{"Item":{"pk":{"N":"1"},"sk":{"N":"1"}}}': "key attribute 'pk' has type N",
    # two type confusions whose lengths (and quote counts) cancel out: only the JSON-type check sees them
    '{"Item":{"pk":{"S":"x"},"sk":{"N":"1"},"n":{"N":5},"flag":{"BOOL":"true"}}}': "N must be a string",
    '{"Item":{"pk":{"S":"x"},"sk":{"N":"1"},"ss":{"SS":["a",7]},"flag":{"BOOL":"false"}}}': "SS member 7 is not a string",
    '{"Item":{"pk":{"S":"x"},"sk":{"N":1},"flag":{"BOOL":"true"}}}': "N must be a string",
    # a map that is no object parses to a struct of NULLs and regenerates as {}: as long as "12" or "[]"
    '{"Item":{"pk":{"S":"x"},"sk":{"N":"1"},"m":{"M":12}}}': "M must be an object, got 12",
    '{"Item":{"pk":{"S":"x"},"sk":{"N":"1"},"m":{"M":[]}}}': "M must be an object, got []",
    '{"Item":{"pk":{"S":"x"},"sk":{"N":"1"},"m":{"M":5} }}': "M must be an object, got 5",
    '{"Item":{"pk":{"S":"x"},"sk":{"N":"1"},"l":{"L":5}}}': "L must be a list, got 5",
    '{"Item":{"pk":{"S":"x"},"sk":{"N":"1"},"l":{"L":[{"S":"a"},7]}}}': "exactly one type tag, got 7",
    # whitespace around a colon or a comma hides nothing
    '{"Item":{"pk":{"S":"x"},"sk":{"N":"1"},"ss":{"SS" : ["a", 7 ]},"flag":{"BOOL" : "true"}}}': "SS member 7 is not a string",
}


def _one_odd_line(tmp_path, odd):
    rnd = random.Random(3)
    summary = write_export(tmp_path / "export", [[line(rich_item(i, rnd)) for i in range(40)] + [odd]])
    export = read_export(summary)
    [spec] = plan_chunks(export.files, 10**15)
    return export, spec, resolve(str(tmp_path / "store"))


@pytest.mark.parametrize("odd", VALID_BUT_OUTSIDE)
def test_valid_lines_outside_the_domain_are_shaped_by_python_inside_the_fast_build(tmp_path, monkeypatch, odd):
    export, spec, loc = _one_odd_line(tmp_path, odd)
    fast = build_chunk_fast(export, spec, loc, "T", "b1", *KEY, 5, f"export:{export.summary.export_id}")
    assert fast is not None and fast.python_lines == 1
    py_loc = resolve(str(tmp_path / "py"))
    monkeypatch.setenv("DYNADEX_BUILD", "python")
    build_chunk(export, spec, py_loc, "T", "b1", *KEY, 5)
    compare(loc, fast, py_loc, read_manifest(py_loc, "T", "b1", spec.chunk_id))


def test_too_many_lines_outside_the_domain_send_the_chunk_to_the_python_path(tmp_path, monkeypatch):
    from dynadex.store.bulk import fastbuild

    monkeypatch.setattr(fastbuild, "MIXED_MIN_LINES", 0)
    monkeypatch.setattr(fastbuild, "MIXED_FRACTION", 0.01)
    export, spec, loc = _one_odd_line(tmp_path, VALID_BUT_OUTSIDE[0])
    assert build_chunk_fast(export, spec, loc, "T", "b1", *KEY, 5, "o") is None
    assert read_manifest(loc, "T", "b1", spec.chunk_id) is None  # nothing staged as complete
    result = build_chunk(export, spec, loc, "T", "b1", *KEY, 5)  # the dispatcher falls back, exactly
    assert result.items == 41
    assert read_manifest(loc, "T", "b1", spec.chunk_id).built_by != "duckdb"


@pytest.mark.parametrize("sampled", [True, False], ids=["in the sample", "outside the sample"])
@pytest.mark.parametrize("odd", list(INVALID))
def test_invalid_lines_get_the_python_paths_error_with_file_and_line(tmp_path, monkeypatch, odd, sampled):
    if not sampled:  # the structure then comes from the other lines: only the per-line guards can see the odd one
        from dynadex.store.bulk import fast_structure

        monkeypatch.setattr(fast_structure, "SAMPLE_HEAD", 5)
        monkeypatch.setattr(fast_structure, "SAMPLE_ROWS", 0)
    export, spec, loc = _one_odd_line(tmp_path, odd)
    assert build_chunk_fast(export, spec, loc, "T", "b1", *KEY, 5, "o") is None
    with pytest.raises(Exception) as err:
        build_chunk(export, spec, loc, "T", "b1", *KEY, 5)
    assert INVALID[odd] in str(err.value)
    assert "line 41" in str(err.value) and "00000000000000000000000000.json.gz" in str(err.value)
    assert read_manifest(loc, "T", "b1", spec.chunk_id) is None


@pytest.mark.parametrize("key_type", ["S", "N", "B"])
def test_fast_build_equals_python_build_for_each_key_type(tmp_path, monkeypatch, key_type):
    rnd = random.Random(7)
    value = {"S": lambda i: f"id-{i}", "N": lambda i: str(i * 7 - 100), "B": lambda i: base64.b64encode(i.to_bytes(3, "big")).decode()}
    lines = [line({"id": {key_type: value[key_type](i)}, "v": {"S": rnd.choice(["a", "b"])}, "w": {"N": str(i)}}) for i in range(200)]
    summary = write_export(tmp_path / "export", [lines])
    export = read_export(summary)
    [spec] = plan_chunks(export.files, 10**15)
    py_loc, fast_loc = resolve(str(tmp_path / "py")), resolve(str(tmp_path / "fast"))
    monkeypatch.setenv("DYNADEX_BUILD", "python")
    build_chunk(export, spec, py_loc, "T", "b1", ("id",), (key_type,), 5)
    py = read_manifest(py_loc, "T", "b1", spec.chunk_id)
    fast = build_chunk_fast(export, spec, fast_loc, "T", "b1", ("id",), (key_type,), 5, f"export:{export.summary.export_id}")
    assert fast is not None and fast.python_lines == 0
    compare(fast_loc, fast, py_loc, py)


def test_a_gzip_cut_before_its_trailer_is_declined(tmp_path):
    """DuckDB reads a gzip stream without its trailer silently; the fast path must not take such a file."""
    rnd = random.Random(9)
    summary = write_export(tmp_path / "export", [[line(rich_item(i, rnd)) for i in range(30)]])
    data = sorted((tmp_path / "export").rglob("*.json.gz"))[0]
    data.write_bytes(data.read_bytes()[:-8])  # no CRC32 / ISIZE trailer; every line still inflates
    mf = Path(summary).parent / "manifest-files.json"
    doc = json.loads(mf.read_text())
    doc["md5Checksum"] = base64.b64encode(hashlib.md5(data.read_bytes()).digest()).decode()
    mf.write_text(json.dumps(doc) + "\n")
    export = read_export(summary)
    [spec] = plan_chunks(export.files, 10**15)
    loc = resolve(str(tmp_path / "store"))
    assert build_chunk_fast(export, spec, loc, "T", "b1", *KEY, 5, "o") is None
    with pytest.raises(Exception, match="truncated gzip"):
        build_chunk(export, spec, loc, "T", "b1", *KEY, 5)


def test_the_genuine_aws_export_takes_the_fast_path_and_matches(genuine_export, tmp_path, monkeypatch):
    """The ground truth: the export AWS wrote (unsorted attributes and sets) is inside the domain."""
    export = read_export(str(genuine_export.summary_path))
    [spec] = plan_chunks(export.files, 10**15)
    py_loc, fast_loc = resolve(str(tmp_path / "py")), resolve(str(tmp_path / "fast"))
    monkeypatch.setenv("DYNADEX_BUILD", "python")
    build_chunk(export, spec, py_loc, "T", "b1", ("id",), ("S",), 5)
    py = read_manifest(py_loc, "T", "b1", spec.chunk_id)
    fast = build_chunk_fast(export, spec, fast_loc, "T", "b1", ("id",), ("S",), 5, f"export:{export.summary.export_id}")
    assert fast is not None and fast.items == 3 and fast.python_lines == 0
    compare(fast_loc, fast, py_loc, py)


def tag_named_item(i: int) -> dict:
    """Attributes and map fields named like type tags ("S", "N", "BOOL", "L", "SS", "M", "NULL")."""
    return {"pk": {"S": f"u{i}"}, "sk": {"N": str(i)}, "S": {"S": f"status {i}"}, "N": {"N": str(i * 3)},
            "BOOL": {"BOOL": i % 2 == 0}, "L": {"L": [{"S": "x"}, {"M": {"S": {"N": "1"}}}]}, "a": {"S": "plain"},
            "m": {"M": {"SS": {"SS": ["b", "a"]}, "M": {"M": {"NULL": {"NULL": True}}}}}}


def test_attributes_named_like_type_tags_stay_on_the_fast_path(tmp_path, monkeypatch):
    files = [[line(tag_named_item(i)) for i in range(120)]]
    _, _, (py_loc, py), (fast_loc, fast) = build_both(tmp_path, files, monkeypatch)
    assert fast is not None and fast.python_lines == 0  # "S":{ is a name here, not a bad S
    compare(fast_loc, fast, py_loc, py)


@pytest.mark.parametrize("sampled", [True, False], ids=["in the sample", "outside the sample"])
@pytest.mark.parametrize("odd, message", [
    ('{"Item":{"pk":{"S":"x"},"sk":{"N":"1"},"a":{"S":{"N":"1"}}}}', "S must be a string"),
    ('{"Item":{"pk":{"S":"x"},"sk":{"N":"1"},"a":{"S" : {"N":"1"}}}}', "S must be a string"),
    # the object regenerates 6 characters longer ("{\"N\":\"1\"}"), six \/ escapes 6 shorter: same length
    (r'{"Item":{"pk":{"S":"x"},"sk":{"N":"1"},"a":{"S":{"N":"1"}},"S":{"S":"\/\/\/\/\/\/"}}}', "S must be a string"),
    ('{"Item":{"pk":{"S":"x"},"sk":{"N":"1"},"a":{"L":{"S":"x"}}}}', "L must be a list"),
    ('{"Item":{"pk":{"S":"x"},"sk":{"N":"1"},"a":{"BOOL":{}}}}', "BOOL must be true or false"),
    ('{"Item":{"pk":{"S":"x"},"sk":{"N":"1"},"m":{"M":{"SS":{"SS":{"S":"x"}}}}}}', "SS must be a list"),
])
def test_a_tag_holding_an_object_is_refused_where_names_look_like_tags(tmp_path, monkeypatch, odd, message, sampled):
    """Where "S":{ may be an attribute named S, the regex lets it pass; the count of "S":{ in the line
    against the regenerated text catches the S tag that holds an object."""
    from dynadex.store.bulk import fast_structure

    if not sampled:
        monkeypatch.setattr(fast_structure, "SAMPLE_HEAD", 5)
        monkeypatch.setattr(fast_structure, "SAMPLE_ROWS", 0)
    summary = write_export(tmp_path / "export", [[line(tag_named_item(i)) for i in range(40)] + [odd]])
    export = read_export(summary)
    [spec] = plan_chunks(export.files, 10**15)
    loc = resolve(str(tmp_path / "store"))
    assert build_chunk_fast(export, spec, loc, "T", "b1", *KEY, 5, "o") is None
    with pytest.raises(Exception) as err:
        build_chunk(export, spec, loc, "T", "b1", *KEY, 5)
    assert message in str(err.value) and "line 41" in str(err.value)
