"""Several tables' batches in one transaction (``Store.apply_many``, decision 0039): the same store as each batch
applied alone, one commit for all, and all or nothing."""

from __future__ import annotations

import random

import pytest

from dynadex.store import Change, Checkpoint, Store, TableBatch
from dynadex.types import canonical_item
from tests.support.store import publish_items, random_change

TABLES = ("A", "B", "C")


def _published(path) -> str:
    for t in TABLES:
        publish_items(path, t, [{"pk": {"S": f"{t}{i}"}, "n": {"N": str(i)}, "city": {"S": "Paris"}} for i in range(20)],
                      version=1)
    return str(path)


def _extra(rnd, r: int) -> dict:
    """New attributes and kinds for a put: a value found, a set, a round's own column, a number turned string."""
    return rnd.choice([{"city": {"S": rnd.choice(["Paris", "Lima"])}}, {"tags": {"SS": ["x", "y"]}},
                       {f"new{r}": {"BOOL": True}}, {"n": {"S": "a string now"}}])


def _rounds(seed: int) -> list[list[TableBatch]]:
    """Five rounds of one batch per table: updates, deletes, new keys, new attributes and kinds, stale changes,
    and rounds where a table has nothing to apply but its checkpoints."""
    rnd = random.Random(seed)
    out = []
    for r in range(5):
        batches = []
        for t in TABLES:
            changes = [random_change(rnd, t, r, keys=30, delete_share=0.2, extra=_extra)
                       for _ in range(rnd.randrange(0, 12))]
            cps = [Checkpoint(f"{t}-shard-{s}", str(100 * r + s), None, r == 4 and s == 0) for s in range(2)]
            batches.append(TableBatch(t, changes, cps, event=("ttl_deletes", {"count": r}) if t == "B" else None))
        out.append(batches)
    return out


def _state(store: str) -> dict:
    with Store(store) as st:
        out = {}
        for t in TABLES:
            status = st.status(t)["tables"][0]
            out[t] = {
                "items": sorted(st.dump(t)),
                "finds": [st.find(t, "city=Paris"), st.find(t, "city=Lima"), st.find(t, 'n="a string now"')],
                "columns": st.query(f"SELECT * FROM {t} ORDER BY pk")[1],
                "checkpoints": sorted((c.shard_id, c.sequence_number, c.ended) for c in st.checkpoints(t).values()),
                "applied_through": status["applied_through"],
                "events": st.query(f"SELECT kind, detail FROM dynadex.events WHERE table_name = '{t}' ORDER BY ALL")[1],
            }
        return out


@pytest.mark.parametrize("seed", [1, 2])
def test_batches_of_several_tables_in_one_commit_leave_what_each_alone_leaves(tmp_path, seed):
    alone, together = _published(tmp_path / "alone"), _published(tmp_path / "together")
    with Store(alone, read_only=False) as st:
        for batches in _rounds(seed):
            for b in batches:
                st.apply(b.table, b.changes, b.checkpoints, event=b.event)
    with Store(together, read_only=False) as st:
        for batches in _rounds(seed):
            before = st.lake.current_snapshot()
            counts = st.apply_many(batches)
            assert st.lake.current_snapshot() == before + 1  # one commit for the three tables
            assert [c["upserts"] + c["deletes"] + c["stale"] <= len(b.changes) for c, b in zip(counts, batches)]
    assert _state(together) == _state(alone)


def test_one_bad_batch_commits_no_table(tmp_path):
    store = _published(tmp_path)
    good = TableBatch("A", [Change({"pk": {"S": "A1"}}, None, 50, "delete")], [Checkpoint("A-shard", "7")])
    bad = TableBatch("B", [Change({"pk": {"S": "b"}}, canonical_item({"pk": {"N": "1"}}), 50, "wrong key type")],
                     [Checkpoint("B-shard", "7")])
    with Store(store, read_only=False) as st:
        before = st.lake.current_snapshot()
        with pytest.raises(ValueError, match="key"):
            st.apply_many([good, bad])
        assert st.lake.current_snapshot() == before
        assert st.get("A", '{"pk":{"S":"A1"}}') is not None
        assert st.checkpoints("A") == {} and st.checkpoints("B") == {}


def test_a_table_twice_in_one_transaction_is_refused(tmp_path):
    store = _published(tmp_path)
    with Store(store, read_only=False) as st, pytest.raises(ValueError, match="one batch per table"):
        st.apply_many([TableBatch("A", []), TableBatch("A", [])])
