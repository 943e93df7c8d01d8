"""The fast stream apply path (decision 0019) stores exactly what the item-by-item reference path stores.

Both paths run on the same randomized stream batches, in boto3's GetRecords shape (raw bytes for B, datetimes),
each into its own store built from the same snapshot: every DynamoDB type, nested maps and lists, sets, binary,
numbers at DynamoDB's limits and in non-canonical spellings, deletes, TTL removes, stale records, the same key
several times in one batch, columns that must overflow. The two stores' dumps (row index, column index with its
types and registry, live inverted entries, every inverted entry, checkpoints, sync state) must be equal.
"""

from __future__ import annotations

import datetime as dt
import json
import random

import pytest

from dynadex.errors import AttributeValueError
from dynadex.store import Checkpoint, Store
from dynadex.store.apply.batch_shape import item_text, shape_batch
from dynadex.store.apply.changes import apply_changes
from dynadex.store.layout.shape import Shaped, key_text
from dynadex.stream.images import canonical_image
from dynadex.stream.sync import record_change, record_changes
from dynadex.types import canonical_item, canonical_json
from tests.support.records import key_of, rand_records, rand_text, rand_value
from tests.support.store import dump, new_store


@pytest.mark.parametrize("composite,pool,records", [(False, 40, 300), (True, 40, 300), (False, 3000, 1500)],
                         ids=["pk-S", "pk-N+sk-B", "pk-S-over-1000-keys-a-batch"])
def test_fast_apply_stores_what_the_reference_stores(tmp_path, composite, pool, records):
    """The last case puts more than IN_LIST_KEYS distinct keys in a batch: the fast path's one-query lookup."""
    rnd = random.Random(19 + composite + pool)
    snapshot = []
    for k in range(0, pool, 2):  # half the key pool is in the snapshot, so deletes and upserts meet stored rows
        snapshot.append(canonical_item({**key_of(k, composite), "count": {"N": str(k)}, "city": {"S": "Paris"}}))
    batches = [rand_records(rnd, records, b, composite, pool) for b in range(4)]
    stores = {"reference": new_store(tmp_path / "ref", composite, snapshot),
              "fast": new_store(tmp_path / "fast", composite, snapshot)}
    results = {}
    for name, store in stores.items():
        reference = name == "reference"
        got = []
        with Store(store, read_only=False) as st:
            for b, batch in enumerate(batches):
                pairs = [record_change(r, "shard-1") for r in batch] if reference else record_changes(batch, "shard-1")
                changes = [c for c, _ in pairs]
                assert sum(t for _, t in pairs) > 0  # TTL removes are among them
                cps = [Checkpoint("shard-1", batch[-1]["dynamodb"]["SequenceNumber"])]
                got.append(apply_changes(st.lake, "T", changes, cps, reference=reference))
        results[name] = got
    assert results["fast"] == results["reference"]
    assert sum(r["stale"] for r in results["fast"]) > 0 and sum(r["deletes"] for r in results["fast"]) > 0
    assert any(r["columns_added"] for r in results["fast"][1:])  # new kinds and overflow columns after batch 0
    ref, fast = dump(stores["reference"]), dump(stores["fast"])
    assert any(c.endswith(":double") for c, *_ in ref["column_types"])  # the overflow path ran
    for part in ref:
        assert fast[part] == ref[part], part
    assert ref["row_index"] and ref["live_inverted"] and ref["column_index"]


@pytest.mark.parametrize("composite", [False, True], ids=["pk-S", "pk-N+sk-B"])
def test_narrowed_small_batches_store_what_the_reference_stores(tmp_path, monkeypatch, composite):
    """Batches of a few keys, whose lookups and deletes the fast path narrows by the key order numbers
    (store/layout/key_order.py, key_pruning.py; forced here on a small table): the same stores as the reference path's
    plain statements, stale records and deletes included; and the narrowing did run, on both indexes."""
    from dynadex.store.apply import changes as changes_module
    from dynadex.store.apply import key_pruning

    monkeypatch.setattr(key_pruning, "PRUNE_ABOVE_ROWS", 0)
    used = {"key_order": 0, '"_key_order"': 0}
    real = changes_module.order_filter

    def order_filter(keys, prefix, column, alias, most=None):
        out = real(keys, prefix, column, alias, most)
        used[column] += bool(out[0])
        return out

    monkeypatch.setattr(changes_module, "order_filter", order_filter)
    rnd = random.Random(7 + composite)
    pool = 200
    snapshot = [canonical_item({**key_of(k, composite), "count": {"N": str(k)}, "city": {"S": "Paris"}})
                for k in range(0, pool, 2)]
    batches = [rand_records(rnd, 12, b, composite, pool) for b in range(16)]
    stores = {"reference": new_store(tmp_path / "ref", composite, snapshot),
              "fast": new_store(tmp_path / "fast", composite, snapshot)}
    results = {}
    for name, store in stores.items():
        reference = name == "reference"
        with Store(store, read_only=False) as st:
            results[name] = [
                st.lake.retrying("batch", lambda: apply_changes(
                    st.lake, "T", [c for c, _ in (record_change(r, "shard-1") for r in batch)],
                    [Checkpoint("shard-1", batch[-1]["dynamodb"]["SequenceNumber"])], reference=reference))
                for batch in batches]
    assert results["fast"] == results["reference"]
    assert sum(r["stale"] for r in results["fast"]) > 0 and sum(r["deletes"] for r in results["fast"]) > 0
    assert used["key_order"] >= 16  # every batch's lookup, and the deletes of stored keys
    assert used['"_key_order"'] > 0  # whatever the key's types
    ref, fast = dump(stores["reference"]), dump(stores["fast"])
    for part in ref:
        assert fast[part] == ref[part], part


def test_batch_shaping_equals_item_by_item_shaping():
    rnd = random.Random(7)
    for composite in (False, True):
        names, types = (("pk", "sk"), ("N", "B")) if composite else (("pk",), ("S",))
        changes = [c for c, _ in record_changes(rand_records(rnd, 400, 1, composite, 1000), "s") if c.item]
        ref, entries = Shaped(), []
        for ch in changes:
            key = key_text(ch.keys, names)
            ref.add(ch.item, names, ch.version, ch.origin, types, key=key)
            entries.append((key, ch.item, ch.version, ch.origin))
        fast = shape_batch(entries, names, types)
        ref.pad()
        fast.pad()
        assert fast == ref


def test_stream_images_convert_as_the_reference_does():
    rnd = random.Random(11)
    for _ in range(3000):
        image = {rand_text(rnd, 4) or "x": rand_value(rnd) for _ in range(rnd.randrange(1, 6))}
        assert canonical_image(image) == canonical_item(image)
    # a record converts alike whole: keys, version, origin, TTL flag
    for record in rand_records(rnd, 500, 2, True, 50):
        assert record_changes([record], "s") == [record_change(record, "s")]


@pytest.mark.parametrize("bad", [
    {"a": {"SS": ["x", "x"]}}, {"a": {"SS": []}}, {"a": {"NS": ["1", "1.0"]}}, {"a": {"N": "1" * 39}},
    {"a": {"N": "abc"}}, {"a": {"N": 5}}, {"a": {"S": 5}}, {"a": {"B": "not base64!"}}, {"a": {"BOOL": 1}},
    {"a": {"NULL": False}}, {"a": {"X": "1"}}, {"a": {"S": "x", "N": "1"}}, {"a": "plain"},
    {"a": {"M": {"b": {"L": [{"S": "ok"}, {"N": "1e999"}]}}}}, {"": {"S": "x"}}, {"a": {"BS": [b"x", b"x"]}},
    {"a": {"L": [{"SS": ["q", 1]}]}}, {"ok": {"S": "x"}, "a": {"M": {"c": {"NULL": "yes"}}}},
])
def test_bad_images_raise_what_the_reference_raises(bad):
    with pytest.raises(AttributeValueError) as want:
        canonical_item(bad)
    with pytest.raises(AttributeValueError) as got:
        canonical_image(bad)
    assert (got.value.path, got.value.reason) == (want.value.path, want.value.reason)


def test_bad_key_is_reported_before_a_bad_image():
    record = {"eventName": "MODIFY", "dynamodb": {
        "ApproximateCreationDateTime": dt.datetime(2027, 1, 1, tzinfo=dt.timezone.utc), "SequenceNumber": "1",
        "Keys": {"pk": {"S": 5}}, "NewImage": {"pk": {"S": "a"}, "n": {"N": "x"}}}}
    with pytest.raises(AttributeValueError) as want:
        record_change(record, "s")
    with pytest.raises(AttributeValueError) as got:
        record_changes([record], "s")
    assert str(got.value) == str(want.value) and "pk" in str(got.value)


def test_item_text_is_canonical_json_for_every_string():
    rnd = random.Random(3)
    for _ in range(2000):
        item = {rand_text(rnd, 5): {"M": {rand_text(rnd, 3): {"S": rand_text(rnd, 12)}}} for _ in range(4)}
        item["l"] = {"L": [{"BOOL": True}, {"NULL": True}, {"SS": [rand_text(rnd)]}]}
        assert item_text(item) == canonical_json(item, validated=True)
    lone = {"s": {"S": "a\ud800b"}}  # a lone surrogate: msgspec refuses it, the reference encoder writes it
    assert item_text(lone) == canonical_json(lone, validated=True)
    assert json.loads(item_text({"k": {"S": "\x00\x1f\"\\"}})) == {"k": {"S": "\x00\x1f\"\\"}}


def test_quiet_turns_the_collector_off_inside_and_freezes_what_it_made(monkeypatch):
    """gcpause.quiet(): no collection inside, the batch's objects frozen at its end, the collector's state
    restored even on an error, and cyclic garbage made inside still reclaimed at the next due settle()."""
    import gc
    import weakref

    from dynadex import gcpause

    class Node:
        pass

    monkeypatch.setattr(gcpause, "COLLECT_EVERY_SECONDS", 3600.0)
    assert gc.isenabled()
    with gcpause.quiet():
        assert not gc.isenabled()
        a, b = Node(), Node()
        a.other, b.other = b, a  # a cycle: only the cyclic collector frees it
        ref = weakref.ref(a)
    assert gc.isenabled()
    del a, b
    gc.collect()
    assert ref() is not None  # frozen at the end of quiet(): a collection does not walk them
    with pytest.raises(RuntimeError):
        with gcpause.quiet():
            raise RuntimeError("boom")
    assert gc.isenabled()
    gc.disable()
    try:
        with gcpause.quiet():
            pass
        assert not gc.isenabled()  # left as it was
    finally:
        gc.enable()
    monkeypatch.setattr(gcpause, "COLLECT_EVERY_SECONDS", 0.0)
    gcpause.settle()  # due: unfreeze and collect
    assert ref() is None
    gc.unfreeze()


def test_falling_back_to_the_reference_keeps_nothing_alive():
    """The fast walk raises one shared exception instance to hand a value to the reference. Raised again, an
    instance adds its new traceback on top of the one it carries: it held every traceback of the process, each
    with its frame and the values that frame walked (a 10 000-record batch with base64 binaries from the wire
    left ~18 000 frames alive; the sync's minute-wise full collection then took 8 s). Frames alive must not
    grow with the images converted."""
    import gc
    import types

    from dynadex.stream import images

    def frames() -> int:
        gc.collect()
        return sum(isinstance(o, types.FrameType) for o in gc.get_objects())

    wire = [{"pk": {"S": f"k{i}"}, "b": {"B": "AAEC"}, "m": {"M": {"x": {"B": "AAEC"}}}} for i in range(3000)]
    for image in wire[:100]:
        images.canonical_image(image)
    before = frames()
    converted = [images.canonical_image(image) for image in wire]
    assert converted[5] == canonical_item(wire[5])  # the reference's answer for the base64 forms
    assert frames() - before < 50
    depth, tb = 0, images._OTHER.__traceback__
    while tb is not None:
        depth, tb = depth + 1, tb.tb_next
    assert depth < 10  # the last raise's own frames only


@pytest.mark.parametrize("text", ["", "AA==", "AAE=", "AAEC", "aGVsbG8=", "aGVsbG8", "aGVsbG8==", "aGVs bG8=",
                                  "aGVs\nbG8=", "AB==", "A===", "====", "é", "aGVsbG8=\n", "-_8=", "/+8=", "QQ"])
def test_wire_binaries_convert_as_the_reference_does(text):
    """B as base64 text (the wire's form): canonical text stays as it is, anything else is the reference's."""
    image = {"b": {"B": text}, "m": {"M": {"b": {"B": text}}}, "l": {"L": [{"B": text}]}}
    try:
        want = canonical_item(image)
    except AttributeValueError as exc:
        with pytest.raises(AttributeValueError) as got:
            canonical_image(image)
        assert (got.value.path, got.value.reason) == (exc.path, exc.reason)
    else:
        assert canonical_image(image) == want
