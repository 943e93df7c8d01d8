"""A chunk seeded with the structure its build's earlier chunks found writes exactly what an unseeded one writes."""

from __future__ import annotations

from tests.support.paths import REPO  # noqa: I001 - before the path it builds is used
import json
import logging
import random
import sys

import pytest

from dynadex.export import read_export
from dynadex.ingest import ingest_export
from dynadex.store import Store, resolve
from dynadex.store.bulk import fast_structure, structure_seed
from dynadex.store.bulk import prepare as prep
from dynadex.store.bulk.build import build_chunk
from dynadex.store.bulk.chunk_manifest import read_manifest
from dynadex.store.bulk.plan import plan_chunks
from tests.support.fast_builds import EXPORT_ID, KEY, compare, line, rich_item

sys.path.insert(0, str(REPO / "bench"))
import gen_export  # noqa: E402  (the benchmarks' export writer: the real S3 layout)


def two_files(root) -> str:
    """File 0: rich items, some with an attribute file 1 never has. File 1: rich items, one of them (not the
    first) with an attribute no line of file 0 has."""
    rnd = random.Random(5)
    first = [rich_item(i, rnd) for i in range(120)]
    for item in first[::4]:
        item["only_first"] = {"M": {"x": {"N": "1"}, "l": {"L": [{"S": "a"}]}}}
    second = [rich_item(i, rnd) for i in range(120, 240)]
    second[37]["only_second"] = {"M": {"deep": {"SS": ["q", "p"]}}, }
    files = [[line(i) for i in first], [line(i) for i in second]]
    return str(gen_export.write_export(root, files, prefix="b", export_id=EXPORT_ID, table="T",
                                       export_time="2024-01-01T00:00:00.000Z"))


def build(export, files, location, chunk_id, *, python=False, monkeypatch=None):
    [spec] = plan_chunks(files, 10**15)
    spec.chunk_id = chunk_id
    if python:
        monkeypatch.setenv("DYNADEX_BUILD", "python")
    try:
        build_chunk(export, spec, location, "T", "b1", *KEY, 5)
    finally:
        if python:
            monkeypatch.delenv("DYNADEX_BUILD")
    return read_manifest(location, "T", "b1", chunk_id)


@pytest.fixture
def small_samples(monkeypatch):
    """Samples of one head line and one row: a test export's few lines would otherwise all be sampled."""
    monkeypatch.setattr(fast_structure, "SAMPLE_HEAD", 1)
    monkeypatch.setattr(fast_structure, "SEEDED_SAMPLE_ROWS", 1)


def parse_rounds(caplog, chunk_id: str) -> int:
    return sum(1 for r in caplog.records if r.getMessage().startswith(f"{chunk_id}: parse+check done"))


def test_a_seeded_chunk_that_misses_an_attribute_writes_what_the_python_path_writes(tmp_path, monkeypatch, caplog,
                                                                                   small_samples):
    export = read_export(two_files(tmp_path / "export"))
    seeded, alone, py = (resolve(str(tmp_path / name)) for name in ("seeded", "alone", "python"))
    first = build(export, export.files[:1], seeded, "c00000")
    assert first.built_by == "duckdb"
    seed = structure_seed.read_seed(seeded, "T", "b1")
    assert "only_first" in seed and "only_second" not in seed  # what the first chunk found, kept

    caplog.set_level(logging.INFO, logger="dynadex.build")
    got = build(export, export.files[1:], seeded, "c00001")
    # the seed and a one-line sample miss `only_second`: the guard sent its line to a second parse round
    assert parse_rounds(caplog, "c00001") == 2
    assert got.built_by == "duckdb" and got.python_lines == 0
    assert "only_second" in structure_seed.read_seed(seeded, "T", "b1")  # and the seed learnt it

    unseeded = build(export, export.files[1:], alone, "c00001")
    gold = build(export, export.files[1:], py, "c00001", python=True, monkeypatch=monkeypatch)
    compare(seeded, got, py, gold)  # the seed's `only_first`, absent from every line here, wrote nothing
    compare(alone, unseeded, py, gold)
    assert not any(path == ("only_first",) for path, _ in ((c.path, c.kind) for c in got.columns))


def test_a_seeded_chunk_samples_less(tmp_path, caplog):
    export = read_export(two_files(tmp_path / "export"))
    location = resolve(str(tmp_path / "store"))
    caplog.set_level(logging.INFO, logger="dynadex.build")
    build(export, export.files[:1], location, "c00000")
    build(export, export.files[1:], location, "c00001")
    samples = [r.getMessage() for r in caplog.records if ": sample" in r.getMessage()]
    assert samples[0].startswith("c00000: sample done") and samples[1].startswith("c00001: sample (seeded) done")


@pytest.mark.parametrize("garbage", [b"{not json", b'"VARCHAR"', b'{"pk": 7}'])
def test_an_unreadable_seed_counts_as_none_and_is_replaced(tmp_path, monkeypatch, garbage, small_samples):
    export = read_export(two_files(tmp_path / "export"))
    location, py = resolve(str(tmp_path / "store")), resolve(str(tmp_path / "python"))
    fs, path = structure_seed._path(location, "T", "b1")
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as out:
        out.write(garbage)
    got = build(export, export.files[1:], location, "c00001")
    gold = build(export, export.files[1:], py, "c00001", python=True, monkeypatch=monkeypatch)
    compare(location, got, py, gold)
    assert "only_second" in structure_seed.read_seed(location, "T", "b1")


def test_a_seed_that_disagrees_on_a_json_type_is_left_for_the_chunks_own_sample(tmp_path, monkeypatch):
    """A seed claiming a JSON array where the lines hold an object (as a broken writer might leave it) cannot
    be merged: the chunk parses with its own sample alone, and writes the same files."""
    export = read_export(two_files(tmp_path / "export"))
    location, py = resolve(str(tmp_path / "store")), resolve(str(tmp_path / "python"))
    fs, path = structure_seed._path(location, "T", "b1")
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as out:
        out.write(json.dumps({"pk": {"S": "VARCHAR"}, "m": {"M": ["VARCHAR"]}}).encode())
    got = build(export, export.files[1:], location, "c00001")
    gold = build(export, export.files[1:], py, "c00001", python=True, monkeypatch=monkeypatch)
    assert got.built_by == "duckdb"
    compare(location, got, py, gold)


def test_an_ingest_asks_the_catalog_once_whether_its_build_is_published(tmp_path, monkeypatch):
    """Its check jobs run knowing the answer (each job asks only when run alone, as a task re-run after
    publish is), and the load is the same."""
    rnd = random.Random(3)
    files = [[line(rich_item(i, rnd)) for i in range(f * 40, f * 40 + 40)] for f in range(6)]
    summary = str(gen_export.write_export(tmp_path / "export", files, prefix="b", export_id=EXPORT_ID, table="T",
                                          export_time="2024-01-01T00:00:00.000Z"))
    asked = []
    real = prep.is_published
    monkeypatch.setattr(prep, "is_published", lambda *a: asked.append(a) or real(*a))
    out = ingest_export(summary, "T", "pk:S,sk:N", store=str(tmp_path / "store"), workers=1,
                        chunk_target_mb=0.000001)
    assert out["chunks"] == 6 and out["jobs"]["key_ranges"] >= 2
    assert len(asked) == 1
    assert set(out["cpu_seconds"]) >= {"plan", "build", "prepare", "checks", "publish", "workers_start"}
    with Store(str(tmp_path / "store")) as st:
        assert st.query("SELECT count(*) FROM T")[1] == [(240,)]
