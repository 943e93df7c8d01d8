"""Batches shaped inside DuckDB from their images' wire JSON (decision 0044) store exactly what the Python
path stores.

The same stream batches, as the JSON a GetRecords answer carries, are applied to two stores built from the
same snapshot: one with every image decoded and shaped in Python (the records decoded to dicts, as before),
one with the images left undecoded (``decode_page(raw_images=True)``) and shaped by ``SqlShaper``. The
dumps (row index, column index with its types and registry, live and all inverted entries, checkpoints, sync
state) must be equal, and the DuckDB path must really have run (its counters).
"""

from __future__ import annotations

import datetime as dt
import random

import pytest

from dynadex.store import Checkpoint, Store
from dynadex.store.apply import changes as changes_module
from dynadex.store.errors import KeyError_
from dynadex.stream.get_records import decode_page
from dynadex.stream.sync import record_changes
from dynadex.types import canonical_item
from tests.support.records import key_of, rand_records, wire_page
from tests.support.store import dump, new_store


@pytest.fixture
def small_batches(monkeypatch):
    """Every batch of two upserts or more takes the DuckDB path (the default starts at 1 000)."""
    monkeypatch.setattr(changes_module, "SQL_SHAPE_MIN", 2)


def plain_records(rnd: random.Random, n: int, batch: int, composite: bool, pool: int, extra: str = "") -> list[dict]:
    """Records of the shapes a table mostly carries: canonical values of every type, nested maps and lists,
    a few deletes; ``extra`` names an attribute only these records have (the structure must grow)."""
    out = []
    for i in range(n):
        keys = key_of(rnd.randrange(pool), composite)
        dyn = {"ApproximateCreationDateTime": dt.datetime.fromtimestamp(1_800_000_000 + batch * 100 + i // 10,
                                                                        dt.timezone.utc),
               "Keys": keys, "SequenceNumber": f"{batch:04d}{i:08d}", "SizeBytes": 100}
        record = {"eventID": f"{batch}-{i}", "dynamodb": dyn}
        if rnd.random() < 0.1:
            record["eventName"] = "REMOVE"
        else:
            record["eventName"] = "MODIFY"
            image = {**keys, "n": {"N": str(rnd.randrange(-10**6, 10**6))}, "price": {"N": f"{rnd.randrange(999)}.25"},
                     "city": {"S": rnd.choice(["Paris", "Rome", "Zürich", "日本", 'quote " back \\ slash'])},
                     "ok": {"BOOL": rnd.random() < 0.5}, "none": {"NULL": True}, "blob": {"B": rnd.randbytes(5)},
                     "tags": {"SS": sorted({f"t{rnd.randrange(9)}", "a"})}, "nums": {"NS": ["1", str(i + 2)]},
                     "bins": {"BS": [b"\x00\x01", rnd.randbytes(3) + b"\xfe"]},
                     "m": {"M": {"x": {"N": str(i)}, "y": {"L": [{"S": "a"}, {"N": "2"}, {"M": {"z": {"BOOL": True}}}]}}},
                     "list": {"L": [{"S": f"e{i % 3}"}, {"NULL": True}, {"SS": ["p", "q"]}]}}
            if extra:
                image[extra] = {"M": {"deep": {"N": f"{i}.5"}, "s": {"S": "new"}}}
            dyn["NewImage"] = image
        out.append(record)
    return out


def _apply_both(tmp_path, composite: bool, batches: list[list[dict]], snapshot: list[dict]):
    """Each batch through the Python path into one store and through the DuckDB path into another; their
    results, dumps, and the DuckDB store's shaper."""
    stores = {"python": new_store(tmp_path / "py", composite, snapshot),
              "duckdb": new_store(tmp_path / "duck", composite, snapshot)}
    results, shaper = {}, None
    for name, store in stores.items():
        got = []
        with Store(store, read_only=False) as st:
            for batch in batches:
                page = decode_page(wire_page(batch), raw_images=name == "duckdb")
                pairs = record_changes(page["Records"], "shard-1")
                cps = [Checkpoint("shard-1", batch[-1]["dynamodb"]["SequenceNumber"])]
                got.append(st.apply("T", [c for c, _ in pairs], cps))
            if name == "duckdb":
                (shaper,) = st.shapers.values()
                shaper = {"shaped": shaper.shaped, "declined": shaper.declined, "python_lines": shaper.python_lines}
        results[name] = got
    return results, dump(stores["python"]), dump(stores["duckdb"]), shaper


def _snapshot(pool: int, composite: bool) -> list[dict]:
    return [canonical_item({**key_of(k, composite), "n": {"N": str(k)}, "city": {"S": "Paris"}})
            for k in range(0, pool, 2)]  # half the pool stored, so upserts and deletes meet rows


@pytest.mark.parametrize("composite", [False, True], ids=["pk-S", "pk-N+sk-B"])
def test_duckdb_shaping_stores_what_python_stores(tmp_path, small_batches, composite):
    rnd = random.Random(44 + composite)
    batches = [plain_records(rnd, 400, 0, composite, 300), plain_records(rnd, 400, 1, composite, 300, extra="later"),
               plain_records(rnd, 400, 2, composite, 300)]
    results, ref, got, shaper = _apply_both(tmp_path, composite, batches, _snapshot(300, composite))
    assert results["duckdb"] == results["python"]
    assert shaper["shaped"] == 3 and shaper["declined"] == 0  # all three in DuckDB, the structure grown for "later"
    for part in ref:
        assert got[part] == ref[part], part
    assert any("later" in c for c, *_ in ref["column_types"]) and ref["live_inverted"]


def test_odd_images_take_the_python_share_and_store_the_same(tmp_path, small_batches):
    """Every type, numbers in non-canonical spellings and at DynamoDB's limits, names that differ only in case,
    holding dots or brackets, stale records, TTL removes, columns that overflow: what the guard refuses is
    shaped in Python beside the rest."""
    rnd = random.Random(7)
    batches = [plain_records(rnd, 300, 0, False, 40)] + [rand_records(rnd, 300, b, False, 40) for b in range(1, 4)]
    results, ref, got, shaper = _apply_both(tmp_path, False, batches, _snapshot(40, False))
    assert results["duckdb"] == results["python"]
    assert shaper["shaped"] >= 2 and shaper["python_lines"] > 0
    for part in ref:
        assert got[part] == ref[part], part
    assert any(c.endswith(":double") for c, *_ in ref["column_types"])  # the overflow routing ran


def test_escaped_text_is_refused_by_the_guard_and_stored_the_same(tmp_path, small_batches):
    """A sender that escapes every non-ASCII character (``\\u00fc``): those images go to the Python share."""
    rnd = random.Random(9)
    batches = [plain_records(rnd, 200, b, False, 100) for b in range(2)]
    stores = {}
    for name in ("python", "duckdb"):
        stores[name] = new_store(tmp_path / name, False, _snapshot(100, False))
        with Store(stores[name], read_only=False) as st:
            for batch in batches:
                page = decode_page(wire_page(batch, ascii_only=True), raw_images=name == "duckdb")
                changes = [c for c, _ in record_changes(page["Records"], "s")]
                st.apply("T", changes, [Checkpoint("s", batch[-1]["dynamodb"]["SequenceNumber"])])
            if name == "duckdb":
                (shaper,) = st.shapers.values()
                assert shaper.python_lines > 0 and shaper.declined == 0
    assert dump(stores["duckdb"]) == dump(stores["python"])


def test_an_image_of_another_key_fails_the_batch_as_the_python_path_does(tmp_path, small_batches):
    rnd = random.Random(3)
    batch = plain_records(rnd, 50, 0, False, 1000)
    wrong = next(r for r in batch if r["eventName"] == "MODIFY")
    wrong["dynamodb"]["NewImage"] = {**wrong["dynamodb"]["NewImage"], "pk": {"S": "someone-else"}}
    for name in ("python", "duckdb"):
        store = new_store(tmp_path / name, False, _snapshot(10, False))
        with Store(store, read_only=False) as st:
            page = decode_page(wire_page(batch), raw_images=name == "duckdb")
            changes = [c for c, _ in record_changes(page["Records"], "s")]
            with pytest.raises(KeyError_, match="carries an item with another key"):
                st.apply("T", changes, [Checkpoint("s", "1")])
            assert st.checkpoints("T") == {}  # nothing of the batch committed
