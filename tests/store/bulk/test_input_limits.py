"""Items at DynamoDB's limits index exactly: 400 KB items, 400 KB strings and binaries, 64 KB attribute names,
32 levels of nesting, in both export formats, full and incremental, through both build paths.

The ION lines are written by the emulator's own writer (``local_aws.exports.ion_line``), the JSON lines as
AWS writes them. ``get`` of every item must give back its canonical JSON exactly.
"""

from __future__ import annotations

from tests.support.paths import REPO  # noqa: I001 - before the path it builds is used
import base64
import json
import sys
from pathlib import Path

import pytest

from dynadex.export import iter_records, read_export
from dynadex.export.records import parse_ion_line
from dynadex.ingest import ingest_export
from dynadex.limits import MAX_ITEM_BYTES, item_size
from dynadex.local_aws.exports import ion_line
from dynadex.store import Store
from dynadex.store.bulk.chunk_manifest import read_manifest
from dynadex.types import canonical_item, canonical_json

sys.path.insert(0, str(REPO / "bench"))
import gen_export  # noqa: E402  (the benchmarks' export writer: the real S3 layout)

EXPORT_ID = "01700000000003-00000003"
NAME_64K = "n" * 65535  # the longest attribute name: 64 KB of UTF-8
AWKWARD = "Zoë ✓ 🎉 \"quoted\" back\\slash tab\t"  # escapes in both formats, multi-byte UTF-8


def fill(item: dict, name: str, unit: str) -> dict:
    """``item`` with string attribute ``name`` grown from ``unit`` repeats to exactly MAX_ITEM_BYTES."""
    base = item_size({**item, name: {"S": ""}})
    room = MAX_ITEM_BYTES - base
    text = unit * (room // len(unit.encode()))
    text += "x" * (room - len(text.encode()))
    out = {**item, name: {"S": text}}
    assert item_size(out) == MAX_ITEM_BYTES
    return out


def nested(levels: int) -> dict:
    """Maps and lists, alternating, ``levels`` deep."""
    av: dict = {"S": "bottom"}
    for level in range(levels):
        av = {"M": {"a": av}} if level % 2 else {"L": [av]}
    return av


def limit_items() -> list[dict]:
    raw = bytes(range(256)) * 1250
    return [
        fill({"pk": {"S": "ascii-400k"}}, "s", "abcdefgh"),  # a 400 KB item, almost all one plain string
        fill({"pk": {"S": "awkward-400k"}, "n": {"N": "-12.5"}}, "s", AWKWARD),  # escapes, emoji
        {"pk": {"S": "str-300k"}, "s": {"S": "q" * 300_000}},  # a long string inside the DuckDB path's 400 KB lines
        {"pk": {"S": "name-64k"}, NAME_64K: {"S": "v"}, "m": {"M": {NAME_64K: {"N": "1"}}}},  # 64 KB names
        {"pk": {"S": "binary"}, "b": {"B": base64.b64encode(raw).decode()}, "bs": {"BS": [base64.b64encode(raw[:70000]).decode()]}},
        {"pk": {"S": "set-and-list"}, "ss": {"SS": ["y" * 100_000, "x" * 100_000]},
         "l": {"L": [{"N": str(i)} for i in range(20_000)]}},
        {"pk": {"S": "deep-32"}, "d": nested(32)},  # exactly DynamoDB's nesting limit
        {"pk": {"S": "plain"}, "n": {"N": "1"}},
    ]


def json_line(doc: dict) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def write(root: Path, lines: list[str], fmt: str, incremental: bool = False) -> Path:
    summary = gen_export.write_export(root, [lines[:3], lines[3:]], prefix="b", export_id=EXPORT_ID, table="T",
                                      export_time="2024-01-01T00:00:00.000Z")
    doc = json.loads(summary.read_text())
    doc["outputFormat"] = fmt
    if incremental:
        doc.update(exportType="INCREMENTAL_EXPORT", exportFromTime="2024-01-01T00:00:00.000Z",
                   exportToTime="2024-01-01T00:15:00.000Z")
        del doc["exportTime"]
    summary.write_text(json.dumps(doc))
    return summary


def test_items_are_within_the_limits_as_dynamodb_counts_them():
    for item in limit_items():
        assert item_size(item) <= MAX_ITEM_BYTES


@pytest.mark.parametrize("fmt,build", [("DYNAMODB_JSON", "auto"), ("DYNAMODB_JSON", "python"), ("ION", "auto")])
def test_full_export_at_the_limits_indexes_exactly(tmp_path, monkeypatch, fmt, build):
    items = limit_items()
    render = (lambda d: ion_line(d)) if fmt == "ION" else json_line
    lines = [render({"Item": item}) for item in items]
    summary = write(tmp_path / "export", lines, fmt)
    monkeypatch.setenv("DYNADEX_BUILD", build)
    store = str(tmp_path / "store")
    done = ingest_export(str(summary), "T", "pk", store=store, workers=1)
    assert done["items"] == len(items)
    with Store(store) as st:
        for item in items:
            key = canonical_json({"pk": item["pk"]})
            assert st.get("T", key) == canonical_json(item), item["pk"]
        assert sorted(st.dump("T")) == sorted(canonical_json(item) for item in items)
    if fmt == "DYNAMODB_JSON" and build == "auto":  # the big strings and names stay in DuckDB
        with Store(store) as st:
            location = st.location
        built = [read_manifest(location, "T", EXPORT_ID, c) for c in ("c00000", "c00001")]
        built = [m for m in built if m is not None]
        assert built and all(m.built_by == "duckdb" for m in built)
        # the Python share takes only lines longer than 400 KB (DuckDB cannot bound their item's size) and the
        # one nested past FAST_MAX_DEPTH; the 300 KB string, the 64 KB names and the plain item stay in DuckDB
        longer = sum(1 for line in lines if len(line.encode()) > MAX_ITEM_BYTES)
        assert sum(m.python_lines for m in built) == longer + 1 <= len(items) - 3


@pytest.mark.parametrize("fmt", ["DYNAMODB_JSON", "ION"])
def test_incremental_export_at_the_limits_reads_exactly(tmp_path, fmt):
    items = limit_items()
    render = (lambda d: ion_line(d)) if fmt == "ION" else json_line
    lines = []
    for i, item in enumerate(items):
        doc = {"Metadata": {"WriteTimestampMicros": {"N": str(1704067200000000 + i)}}, "Keys": {"pk": item["pk"]},
               "NewImage": item}
        if i % 2:
            doc["OldImage"] = item
        lines.append(render(doc))
    export = read_export(str(write(tmp_path / "export", lines, fmt, incremental=True)))
    records = [r for f in export.files for r in iter_records(export, f)]
    assert [canonical_json(r.item) for r in records] == [canonical_json(item) for item in items]
    assert [r.old_image for r in records if r.old_image] == [canonical_item(x) for i, x in enumerate(items) if i % 2]
    assert [r.write_micros for r in records] == [1704067200000000 + i for i in range(len(items))]


def test_ion_reader_handles_values_past_its_default_buffer():
    """amazon-ion's C reader refuses text values over 16 KB unless told otherwise (IERR_BUFFER_TOO_SMALL)."""
    for size in (16_383, 16_384, 65_535, 409_000):
        name = "y" * min(size, 65_535)
        for line in (f'$ion_1_0 {{Item:{{pk:"k",s:"{"x" * size}"}}}}',
                     f"$ion_1_0 {{Item:{{pk:\"k\",'{name}':\"v\"}}}}",
                     f'$ion_1_0 {{Item:{{pk:"k",b:{{{{{base64.b64encode(b"z" * size).decode()}}}}}}}}}'):
            for text in (line, line.encode()):
                record = parse_ion_line(text, "f", 1)
                assert len(canonical_json(record.item)) > min(size, 65_535)
