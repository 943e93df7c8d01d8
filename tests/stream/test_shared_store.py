"""One store shared by several tables' syncs in one process (``stream.shared_store``): batches ready at once share
a commit, a bad batch fails only its own caller, and the whole-store flush is asked for once, not per table."""

from __future__ import annotations

import threading

import pytest

from dynadex.store import Change, Checkpoint, Store
from dynadex.store.catalog import state
from dynadex.stream.shared_store import SharedStore
from dynadex.types import canonical_item
from tests.support.poll import wait_until
from tests.support.store import publish_items

TABLES = [f"T{i}" for i in range(5)]


@pytest.fixture
def shared(tmp_path):
    for t in TABLES:
        publish_items(tmp_path, t, [{"pk": {"S": "a"}, "n": {"N": "1"}}])
    with Store(str(tmp_path), read_only=False) as st:
        yield SharedStore(st, flush_every=3)


def _put(table: str, key: str, n: int, version: int = 10) -> Change:
    return Change({"pk": {"S": key}}, canonical_item({"pk": {"S": key}, "n": {"N": str(n)}}), version, table)


def _apply_together(shared: SharedStore, batches: dict) -> dict:
    """Each table's batch handed to ``apply`` by its own thread while the store is busy with another call, so
    that they all wait at once; table -> what its ``apply`` returned or raised."""
    out: dict = {}

    def run(table, changes):
        try:
            out[table] = shared.apply(table, changes, [Checkpoint(f"{table}-shard", "5")])
        except Exception as exc:  # noqa: BLE001 - the test looks at each caller's outcome
            out[table] = exc

    with shared._lock:  # what a commit running meanwhile would hold
        threads = [threading.Thread(target=run, args=item) for item in batches.items()]
        for t in threads:
            t.start()
        wait_until(lambda: len(shared._queue) == len(batches), "every batch waiting for the store")
    for t in threads:
        t.join(timeout=120)
    return out


def test_batches_ready_at_once_share_one_commit(shared):
    before = shared.lake.current_snapshot()
    out = _apply_together(shared, {t: [_put(t, "a", 2), _put(t, "b", i)] for i, t in enumerate(TABLES)})
    assert shared.commits == 1 and shared.batches == len(TABLES)
    assert shared.lake.current_snapshot() == before + 1
    for i, t in enumerate(TABLES):
        assert out[t]["upserts"] == 2  # each caller gets its own batch's counts
        assert shared.get(t, '{"pk":{"S":"b"}}') == f'{{"n":{{"N":"{i}"}},"pk":{{"S":"b"}}}}'
        assert shared.checkpoints(t)[f"{t}-shard"].sequence_number == "5"


def test_a_bad_batch_fails_only_its_own_caller(shared):
    bad = Change({"pk": {"S": "x"}}, canonical_item({"pk": {"N": "1"}}), 10, "wrong key type")
    batches = {t: [_put(t, "b", 7)] for t in TABLES}
    batches["T2"] = [_put("T2", "b", 7), bad]
    out = _apply_together(shared, batches)
    assert isinstance(out["T2"], ValueError) and "key" in str(out["T2"])
    assert shared.get("T2", '{"pk":{"S":"b"}}') is None and shared.checkpoints("T2") == {}  # nothing of it
    for t in TABLES:
        if t != "T2":
            assert out[t]["upserts"] == 1 and shared.get(t, '{"pk":{"S":"b"}}') is not None
            assert shared.checkpoints(t)[f"{t}-shard"].sequence_number == "5"


def test_the_store_is_flushed_once_for_all_tables(shared, monkeypatch):
    flushes, folds = [], []
    real_flush, real_fold = Store.flush_inlined, Store.fold_small_files
    monkeypatch.setattr(Store, "flush_inlined", lambda self: (flushes.append(1), real_flush(self))[1])
    monkeypatch.setattr(Store, "fold_small_files", lambda self, t, *a, **k: (folds.append(t), real_fold(self, t, *a, **k))[1])
    shared.apply("T0", [_put("T0", "b", 1)])
    assert shared.flush_inlined() is False and flushes == []  # one commit since the start: not yet
    assert shared.fold_small_files("T0", flush_first=False) == {} and folds == []  # no flush due: no fold
    for t in ("T1", "T2"):
        shared.apply(t, [_put(t, "b", 1)])
    assert shared.flush_inlined() is True
    assert shared.flush_inlined() is False  # asked again by another table: nothing new to flush
    assert flushes == [1]
    shared.fold_small_files("T2", flush_first=False)  # right after the flush: folds, no second flush
    assert folds == ["T2"] and flushes == [1]
    shared.apply("T3", [_put("T3", "b", 1)])
    assert shared.fold_small_files("T3") == {} and folds == ["T2"]  # a batch since the flush, none due
    for t in ("T0", "T1"):
        shared.apply(t, [_put(t, "c", 1)])
    shared.fold_small_files("T3")  # three commits since: flushes for everyone, then folds
    assert flushes == [1, 1] and folds == ["T2", "T3"]


def test_without_group_commit_each_batch_commits_alone(tmp_path):
    for t in TABLES[:2]:
        publish_items(tmp_path, t, [{"pk": {"S": "a"}}])
    with Store(str(tmp_path), read_only=False) as st:
        shared = SharedStore(st, group_commit=False)
        before = st.lake.current_snapshot()
        for t in TABLES[:2]:
            assert shared.apply(t, [_put(t, "b", 1)])["upserts"] == 1
        assert st.lake.current_snapshot() == before + 2 and shared.commits == 2


def test_a_batch_is_shaped_while_another_tables_commit_runs(shared):
    """A sync shapes its batch without waiting for the commit in flight, so the batch waits for the next commit
    ready, with the others (waiting in ``prepare`` as well made the batches trickle in, two a commit)."""
    changes = [_put("T1", "a", 3), _put("T1", "b", 4)]
    assert shared.prepare("T1", changes) is not None  # the table's key is read once, under the lock
    holding, release, released = threading.Event(), threading.Event(), threading.Event()

    def commit_in_flight():
        with shared._lock:
            holding.set()
            release.wait(timeout=10)
        released.set()

    holder = threading.Thread(target=commit_in_flight)
    holder.start()
    holding.wait(timeout=60)
    try:
        shaped = shared.prepare("T1", changes)
        assert not released.is_set()  # shaped while the lock was held
    finally:
        release.set()
        holder.join(timeout=60)
    assert shaped is not None and set(shaped.keys) == set(shaped.last)
    out = shared.apply("T1", changes, [Checkpoint("T1-shard", "7")], preshaped=shaped)
    assert out["upserts"] == 2
    assert shared.get("T1", '{"pk":{"S":"b"}}') == '{"n":{"N":"4"},"pk":{"S":"b"}}'


def test_a_groups_first_reads_come_from_one_read_until_a_commit(shared):
    own = {t: (shared._store.table_state(t), shared._store.checkpoints(t)) for t in TABLES}
    registry = tuple(state.load_registry(shared.lake.con, "T0").columns)
    shared.warm(TABLES)
    assert shared.lake.key_spec("T0") == (("pk",), ("S",))
    assert shared.lake.registries["T0"] == registry and set(TABLES) <= shared.lake.write_id_tables
    assert shared.table_state("T0") == own["T0"][0] and shared.checkpoints("T0") == own["T0"][1]
    shared.apply("T1", [_put("T1", "c", 5)], [Checkpoint("T1-shard", "9")])  # a commit: T1's warm read is stale
    assert shared.checkpoints("T1")["T1-shard"].sequence_number == "9"
    assert shared.table_state("T2").last_change_micros == shared._store.table_state("T2").last_change_micros
    assert shared._warm is None  # dropped at the first read after the commit
    shared.apply("T3", [Change({"pk": {"S": "d"}}, canonical_item({"pk": {"S": "d"}, "city": {"S": "Lima"}}), 11, "T3")])
    assert shared.query("SELECT pk, city FROM T3 WHERE city IS NOT NULL")[1] == [("d", "Lima")]  # a column added
