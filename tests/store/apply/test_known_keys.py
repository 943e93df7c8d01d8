"""A connection's kept keys (``store/apply/known_keys.py``, decision 0046): batches answered from them leave the store
a lookup leaves, the kept pairs always equal the row index, and a commit by anyone else is never answered from
them."""

from __future__ import annotations

import random

import pytest

from dynadex.store import Change, Checkpoint, Store, TableBatch
from dynadex.store.apply import known_keys
from dynadex.store.apply.changes import apply_changes
from dynadex.store.apply.known_keys import kept_by
from dynadex.store.layout.names import row_table
from dynadex.store.layout.shape import key_text
from dynadex.types import canonical_item
from tests.support.store import publish_items, random_change

TABLES = ("A", "B")


def _published(path) -> str:
    for t in TABLES:
        publish_items(path, t, [{"pk": {"S": f"{t}{i}"}, "n": {"N": str(i)}} for i in range(10)], version=1)
    return str(path)


def _put(key: str, version: int, n: int = 0) -> Change:
    return Change({"pk": {"S": key}}, canonical_item({"pk": {"S": key}, "n": {"N": str(n)}}), version, f"put-{version}")


def _rounds(seed: int) -> list[list[TableBatch]]:
    """Rounds of one small batch per table (sometimes none): new keys, updates, deletes, stale changes."""
    rnd = random.Random(seed)
    out = []
    for r in range(8):
        batches = []
        for t in TABLES:
            if rnd.random() < 0.2:
                continue
            changes = [random_change(rnd, t, r, keys=16, delete_share=0.25) for _ in range(rnd.randrange(1, 6))]
            batches.append(TableBatch(t, changes, [Checkpoint(f"{t}-s", str(r), None, False)]))
        out.append(batches)
    return out


def _k(key: str) -> str:
    return key_text({"pk": {"S": key}}, ("pk",))


def _rows(st: Store, table: str) -> dict:
    return dict(st.query(f"SELECT key, version FROM {row_table(table)}")[1])


def _store(st: Store) -> dict:
    return {t: (sorted(st.dump(t)), _rows(st, t), st.query(f"SELECT * FROM {t} ORDER BY pk")[1]) for t in TABLES}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_batches_answered_from_kept_keys_leave_the_store_a_lookup_leaves(tmp_path, monkeypatch, seed):
    kept, looked_up = _published(tmp_path / "kept"), _published(tmp_path / "looked")
    with Store(kept, read_only=False) as st:
        for batches in _rounds(seed):
            st.apply_many(batches)
            keys = kept_by(st.lake)
            assert keys._tables
            for t, (snapshot, pairs) in keys._tables.items():  # the row index's pairs, as of the snapshot named
                assert snapshot == st.lake.current_snapshot()
                assert pairs == _rows(st, t)
        kept_state = _store(st)
    monkeypatch.setattr(known_keys, "MOST_KEYS", 0)  # no table kept: every batch looks its keys up
    with Store(looked_up, read_only=False) as st:
        for batches in _rounds(seed):
            st.apply_many(batches)
        assert not kept_by(st.lake)._tables
        assert _store(st) == kept_state


def test_another_writers_commit_is_never_answered_from_kept_keys(tmp_path):
    store = _published(tmp_path)
    with Store(store, read_only=False) as st:
        st.apply("A", [_put("k", 5)])
        assert kept_by(st.lake)._tables["A"][1][_k("k")] == 5
        with Store(store, read_only=False) as other:
            other.apply("A", [_put("k", 10, n=1)])  # newer than what this connection kept
        # straight into a transaction on this connection (no reopen by Lake.retrying): only the snapshot tells
        counts = apply_changes(st.lake, "A", [_put("k", 7, n=2)])
        assert counts["stale"] == 1  # the stored version (10) was read, not the kept one (5)
        assert _rows(st, "A")[_k("k")] == 10
        assert st.query("SELECT n FROM A WHERE pk = 'k'")[1] == [(1,)]


def test_a_failed_batch_leaves_the_kept_keys_true(tmp_path):
    store = _published(tmp_path)
    with Store(store, read_only=False) as st:
        st.apply("A", [_put("k", 5)])
        bad = Change({"pk": {"S": "x"}}, canonical_item({"pk": {"S": "other"}}), 6, "bad")  # item of another key
        with pytest.raises(Exception):
            st.apply_many([TableBatch("A", [_put("k", 6, n=3), _put("new", 6)]), TableBatch("B", [bad])])
        st.apply("A", [_put("new", 7), _put("k", 4)])
        assert _rows(st, "A")[_k("k")] == 5 and _rows(st, "A")[_k("new")] == 7  # k's 4 lost to the 5 still stored
        assert kept_by(st.lake)._tables["A"][1] == _rows(st, "A")


def test_a_table_past_the_limit_is_looked_up(tmp_path, monkeypatch):
    monkeypatch.setattr(known_keys, "MOST_KEYS", 12)
    store = _published(tmp_path)
    with Store(store, read_only=False) as st:
        st.apply("A", [_put("a1", 5)])  # 11 keys: kept
        assert "A" in kept_by(st.lake)._tables
        st.apply("A", [_put("a2", 6), _put("a3", 6)])  # 13 keys: dropped
        assert "A" not in kept_by(st.lake)._tables
        st.apply("A", [_put("a1", 4), _put("a4", 7)])
        assert "A" not in kept_by(st.lake)._tables
        rows = _rows(st, "A")
        assert len(rows) == 14 and rows[_k("a1")] == 5 and rows[_k("a4")] == 7
