"""Batches grow while the sync is behind and shrink back at the tip (decision 0035; a fake stream, a real store)."""

from __future__ import annotations

import pytest

from dynadex.stream.sync import GROW_BYTES, GROW_BYTES_SQL, BatchSize, SyncSettings, TableSync
from tests.support.fake_streams import ChainStream, Table, followed_store
from tests.support.store import Hooked


@pytest.fixture
def store(tmp_path):
    with followed_store(str(tmp_path)) as st:
        yield st


def test_bounds_double_while_behind_and_reset_at_the_tip():
    size = BatchSize.of(SyncSettings(batch_records=100, batch_seconds=0.5, backlog_batch_factor=5))
    assert (size.most_records, size.most_seconds) == (100, 0.5)
    size.after(100, full_page=False)  # filled up: behind
    assert (size.most_records, size.most_seconds) == (200, 1.0)
    size.after(3, full_page=True)  # a shard answered a full page: behind
    size.after(400, full_page=False)
    assert size.most_records == 500  # capped at 5x
    size.after(500, full_page=False)
    assert size.most_records == 500
    size.after(499, full_page=False)  # neither full nor a full page: at the tip again
    assert (size.most_records, size.most_seconds) == (100, 0.5)


def test_large_items_do_not_grow_a_batch():
    size = BatchSize.of(SyncSettings(batch_records=100, backlog_batch_factor=5))
    size.after(100, full_page=True, size_bytes=GROW_BYTES)
    assert size.most_records == 100
    size.after(100, full_page=True, size_bytes=GROW_BYTES - 1)
    size.after(200, full_page=True, size_bytes=GROW_BYTES)  # stays where it is, neither grows nor resets
    assert size.most_records == 200


def test_images_shaped_in_duckdb_grow_batches_of_larger_records():
    """Decision 0044: a record shaped inside DuckDB costs a few times its bytes, not 7 KB of Python."""
    size = BatchSize.of(SyncSettings(batch_records=100, backlog_batch_factor=5), wire_images=True)
    size.after(100, full_page=True, size_bytes=GROW_BYTES)  # would stop a sync that shapes in Python
    assert size.most_records == 200
    size.after(200, full_page=True, size_bytes=GROW_BYTES_SQL)
    assert size.most_records == 200


def test_factor_one_keeps_batches_fixed():
    size = BatchSize.of(SyncSettings(batch_records=100, backlog_batch_factor=1))
    size.after(100, full_page=True)
    assert size.most_records == 100
    assert BatchSize.of(SyncSettings(batch_records=100, backlog_batch_factor=0)).factor == 1


@pytest.mark.parametrize("factor, batches", [(1, [1000] * 8), (4, [1000, 2000, 4000, 1000])])
def test_a_backlog_commits_in_growing_batches_each_with_its_checkpoint(store, factor, batches):
    streams = ChainStream(1, 1, per_shard=8000, filters=True)
    committed = []
    apply = store.apply

    def counting(table, changes, checkpoints, **kw):
        committed.append((len(changes), [c.sequence_number for c in checkpoints]))
        return apply(table, changes, checkpoints, **kw)

    store.apply = counting
    sync = TableSync(store, "T", Table(), streams, None, SyncSettings(
        batch_seconds=60, batch_records=1000, backlog_batch_factor=factor, overlap_seconds=0))
    stats = sync.run(until=0, until_caught_up=True)
    assert [n for n, _ in committed] == batches
    assert stats["largest_batch"] == max(batches) and stats["records"] == 8000
    # each batch committed the checkpoint of its last record, so a crash between two repeats nothing
    ends = [sum(batches[:i + 1]) for i in range(len(batches))]
    assert [cps for _, cps in committed] == [[f"{n:021d}"] for n in ends]
    assert store.query("SELECT count(*) FROM row_index.T")[1] == [(8001,)]
    assert sync.batch_size.most_records == 1000  # the last batch ended at the tip: back to the setting


@pytest.mark.parametrize("batch_threads", [2, 1])
def test_a_backlogs_large_batches_commit_on_the_batch_threads(tmp_path, batch_threads):
    """Batches of 2 000 changes or more (a backlog's) run their statements on ``batch_threads`` DuckDB threads,
    the others on the store's own one; the store has its one thread again after each (decision 0045)."""
    with followed_store(str(tmp_path), threads=1) as store:
        con, statements, committed = store.lake.con, [], []

        def threads() -> int:
            return int(con.execute("SELECT current_setting('threads')").fetchone()[0])

        store.lake.con = Hooked(con, before=lambda sql: sql.lstrip().upper().startswith(("INSERT", "DELETE"))
                                and statements.append(threads()))
        apply = store.apply

        def watching(table, changes, checkpoints, **kw):
            statements.clear()
            out = apply(table, changes, checkpoints, **kw)
            committed.append((len(changes), set(statements), threads()))
            return out

        store.apply = watching
        sync = TableSync(store, "T", Table(), ChainStream(1, 1, per_shard=8000, filters=True), None, SyncSettings(
            batch_seconds=60, batch_records=1000, backlog_batch_factor=4, overlap_seconds=0,
            batch_threads=batch_threads))
        sync.run(until=0, until_caught_up=True)
        store.lake.con = con
        assert committed == [(1000, {1}, 1), (2000, {batch_threads}, 1), (4000, {batch_threads}, 1), (1000, {1}, 1)]
        assert store.query("SELECT count(*) FROM row_index.T")[1] == [(8001,)]
