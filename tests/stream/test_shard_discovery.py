"""Child shards are found when their parent ends, not at the next refresh (a fake stream, a real store)."""

from __future__ import annotations

import pytest

from dynadex.stream.shards import children_of
from dynadex.stream.sync import SyncSettings, TableSync
from tests.support.fake_streams import ARN, ChainStream, Table, followed_store


@pytest.fixture
def store(tmp_path):
    with followed_store(str(tmp_path)) as st:
        yield st


@pytest.mark.parametrize("filters", [True, False], ids=["ShardFilter honoured", "ShardFilter ignored"])
@pytest.mark.parametrize("roots, generations", [(1, 6), (4, 5), (16, 3)])
def test_a_backlog_across_rollovers_is_one_batch(store, filters, roots, generations):
    streams = ChainStream(roots, generations, per_shard=5, filters=filters)
    sync = TableSync(store, "T", Table(), streams, None, SyncSettings(batch_seconds=60, batch_records=100_000,
                                                                     overlap_seconds=0))
    stats = sync.run(until=0, until_caught_up=True)
    assert stats["records"] == roots * generations * 5
    assert stats["batches"] == 1  # before: one batch (and one full DescribeStream) per generation
    if roots == 1:  # one shard ends per pass: one small look-up for it
        assert streams.child_describes == generations - 1
        assert streams.full_describes <= 2  # the start, and the caught-up check
    else:  # several end in the same pass: one listing answers for all of them, fewer DescribeStream calls
        assert streams.child_describes == 0
        assert streams.full_describes <= 2 + (generations - 1)
        assert stats["full_describes"] == generations - 1
    cps = store.checkpoints("T")
    assert sum(c.ended for c in cps.values()) == roots * (generations - 1)
    assert store.query("SELECT count(*) FROM row_index.T")[1] == [(roots * generations * 5 + 1,)]


def test_children_of_filters_even_where_the_endpoint_does_not():
    streams = ChainStream(2, 3, per_shard=1, filters=False)
    streams.visible |= set(streams.records)
    assert [s.shard_id for s in children_of(streams, ARN, "shardId-001-00000")] == ["shardId-001-00001"]
    assert children_of(streams, ARN, "shardId-001-00002") == []
