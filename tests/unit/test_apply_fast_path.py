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
import string

import pytest

from dynadex.errors import AttributeValueError
from dynadex.store import Checkpoint, PublishSpec, Store
from dynadex.store.apply.batch_shape import item_text, shape_batch
from dynadex.store.apply.changes import apply_changes
from dynadex.store.layout.names import column_table, inverted_table, row_table
from dynadex.store.layout.shape import Shaped, key_text
from dynadex.store.layout.writes import LIVE
from dynadex.stream.images import canonical_image
from dynadex.stream.sync import record_change, record_changes
from dynadex.types import canonical_item, canonical_json

TEXT = string.ascii_letters + string.digits + " .[]\\\"'\n\t\x00\x1f\x7fé☃日本\U0001F600\u2028"


def rand_text(rnd: random.Random, n: int = 8) -> str:
    return "".join(rnd.choice(TEXT) for _ in range(rnd.randrange(n)))


def rand_number(rnd: random.Random, ints_only: bool = False) -> str:
    if ints_only:
        return str(rnd.randrange(-10**6, 10**6))
    return rnd.choice([
        lambda: str(rnd.randrange(-10**12, 10**12)),
        lambda: f"{rnd.randrange(-10**6, 10**6)}.{rnd.randrange(1, 10**4)}",
        lambda: str(rnd.randrange(10**37, 10**38)),  # 38 digits
        lambda: "-" + str(rnd.randrange(10**37, 10**38)) + "." + "5",  # 39 digits: not a valid... kept below
        lambda: "1E-130", lambda: "9.9999999999999999999999999999999999999E+125", lambda: "0.000001",
        lambda: "1.500", lambda: "007", lambda: "+5", lambda: "-0", lambda: "1e3", lambda: ".5", lambda: "0",
    ])()


def valid_number(rnd: random.Random, ints_only: bool = False) -> str:
    while True:
        text = rand_number(rnd, ints_only)
        try:
            canonical_item({"n": {"N": text}})
            return text
        except AttributeValueError:
            continue


def rand_value(rnd: random.Random, depth: int = 0, ints_only: bool = False) -> dict:
    kinds = ["S", "N", "B", "BOOL", "NULL", "SS", "NS", "BS"] + (["M", "L"] if depth < 3 else [])
    kind = rnd.choice(kinds)
    if kind == "S":
        return {"S": rand_text(rnd)}
    if kind == "N":
        return {"N": valid_number(rnd, ints_only)}
    if kind == "B":
        return {"B": rnd.randbytes(rnd.randrange(0, 9))}
    if kind == "BOOL":
        return {"BOOL": rnd.random() < 0.5}
    if kind == "NULL":
        return {"NULL": True}
    if kind == "SS":
        return {"SS": list({rand_text(rnd) + str(i): None for i in range(rnd.randrange(1, 5))})}
    if kind == "NS":
        members = {}
        for _ in range(rnd.randrange(1, 5)):
            text = valid_number(rnd)
            members.setdefault(canonical_item({"n": {"N": text}})["n"]["N"], text)  # distinct by value
        return {"NS": list(members.values())}
    if kind == "BS":
        return {"BS": list({rnd.randbytes(rnd.randrange(1, 6)): None for _ in range(rnd.randrange(1, 4))})}
    if kind == "M":
        return {"M": {rand_text(rnd, 4): rand_value(rnd, depth + 1) for _ in range(rnd.randrange(0, 4))}}
    return {"L": [rand_value(rnd, depth + 1) for _ in range(rnd.randrange(0, 4))]}


def key_of(k: int, composite: bool) -> dict:
    if composite:  # pk N + sk B
        return {"pk": {"N": str(k % 7)}, "sk": {"B": k.to_bytes(2, "big") + b"\xff"}}
    return {"pk": {"S": f"k{k:04d}"}}


def rand_key(rnd: random.Random, composite: bool, pool: int) -> dict:
    return key_of(rnd.randrange(pool), composite)


def rand_image(rnd: random.Random, keys: dict, first_batch: bool) -> dict:
    image = dict(keys)
    # a path that holds small integers in the first batch and anything later: its BIGINT column overflows
    image["count"] = {"N": valid_number(rnd, ints_only=first_batch)}
    image["city"] = {"S": rnd.choice(["Paris", "Rome", "Oslo", "Zürich"])}
    for _ in range(rnd.randrange(0, 6)):
        image[rnd.choice(["a", "b", "c.d", "e[0]", "Upper", "upper", "_key", "日本", rand_text(rnd, 3) or "z"])] = (
            rand_value(rnd, ints_only=first_batch))
    return image


def rand_records(rnd: random.Random, n: int, batch: int, composite: bool, pool: int) -> list[dict]:
    out = []
    for i in range(n):
        keys = rand_key(rnd, composite, pool)
        roll = rnd.random()
        # mostly forward in time; now and then a record from long before (stale against what is stored)
        second = 1_800_000_000 + batch * 100 + i // 10 - (1000 if roll > 0.95 else 0)
        dyn = {"ApproximateCreationDateTime": dt.datetime.fromtimestamp(second, dt.timezone.utc),
               "Keys": keys, "SequenceNumber": f"{batch:04d}{i:08d}", "SizeBytes": 100, "StreamViewType": "NEW_IMAGE"}
        record = {"eventID": f"{batch}-{i}", "eventVersion": "1.1", "eventSource": "aws:dynamodb", "dynamodb": dyn}
        if roll < 0.15:
            record["eventName"] = "REMOVE"
            if roll < 0.05:  # a TTL delete
                record["userIdentity"] = {"PrincipalId": "dynamodb.amazonaws.com", "Type": "Service"}
        else:
            record["eventName"] = rnd.choice(["INSERT", "MODIFY"])
            dyn["NewImage"] = rand_image(rnd, keys, batch == 0)
        out.append(record)
    return out


def new_store(path, composite: bool, snapshot: list[dict]) -> str:
    names, types = (("pk", "sk"), ("N", "B")) if composite else (("pk",), ("S",))
    with Store(str(path), read_only=False) as st:
        w = st.chunk_writer("T", "b1", "c0", names, types)
        for item in snapshot:
            w.add(canonical_item(item), 1, "bulk")
        w.finish()
        st.publish(PublishSpec("T", "b1", ["c0"], names, types, total_items=len(snapshot)))
    return str(path)


def dump(store: str) -> dict:
    """Everything a stream batch writes, as sorted rows (write ids compared only as liveness: they are times)."""
    with Store(store) as st:
        con = st.lake.con
        cols = [r[0] for r in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE database_name = 'lake' "
            "AND schema_name = 'main' AND table_name = 'T' ORDER BY column_index").fetchall()]
        q = ", ".join('"' + c.replace('"', '""') + '"' for c in cols)

        def rows(sql):
            return con.execute(sql).fetchall()

        return {
            "row_index": rows(f"SELECT key, pk, {'sk, ' if 'sk' in cols else ''}item, version, origin "
                              f"FROM {row_table('T')} ORDER BY key"),
            "column_types": rows("SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = 'lake' "
                                 "AND schema_name = 'main' AND table_name = 'T' ORDER BY column_index"),
            "registry": rows("SELECT path, kind, column_name, sql_type FROM dynadex.columns ORDER BY rowid"),
            "column_index": rows(f"SELECT {q} FROM {column_table('T')} ORDER BY _key"),
            "live_inverted": rows(f"SELECT i.path, i.kind, i.value, i.key FROM {inverted_table('T')} i "
                                  f"JOIN {row_table('T')} r ON r.key = i.key AND {LIVE} ORDER BY ALL"),
            "all_inverted": rows(f"SELECT path, kind, value, key FROM {inverted_table('T')} ORDER BY ALL"),
            "checkpoints": rows("SELECT shard_id, sequence_number, ended FROM dynadex.checkpoints ORDER BY ALL"),
            "state": rows("SELECT last_change_micros FROM dynadex.tables"),
            "finds": [st.find("T", "city=Paris"), st.find("T", "count=0")],
        }


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
