"""Child shards are found when their parent ends, not at the next refresh (a fake stream, a real store)."""

from __future__ import annotations

import datetime as dt

import pytest

from dynadex.store import PublishSpec, Store
from dynadex.stream.shards import children_of
from dynadex.stream.sync import SyncSettings, TableSync
from dynadex.types import canonical_item

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/T/stream/2024-01-01T00:00:00.000"


class ChainStream:
    """A stream whose shards form chains of generations; a child appears only once its parent has been read
    to its end, as with a rollover after the last DescribeStream. Honours ShardFilter when ``filters``."""

    def __init__(self, roots: int, generations: int, per_shard: int, *, filters: bool):
        self.filters = filters
        self.records: dict[str, list[dict]] = {}
        self.parent: dict[str, str | None] = {}
        self.visible: set[str] = set()
        self.full_describes = 0
        self.child_describes = 0
        self.last_gen = {}
        seq = 0
        for r in range(roots):
            prev = None
            for g in range(generations):
                sid = f"shardId-{r:03d}-{g:05d}"
                self.parent[sid] = prev
                self.records[sid] = []
                for i in range(per_shard):
                    seq += 1
                    key = f"r{r}g{g}i{i}"
                    self.records[sid].append({"eventName": "INSERT", "dynamodb": {
                        "ApproximateCreationDateTime": dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc),
                        "Keys": {"pk": {"S": key}}, "NewImage": {"pk": {"S": key}, "n": {"N": str(seq)}},
                        "SequenceNumber": f"{seq:021d}"}})
                if prev is None:
                    self.visible.add(sid)
                prev = sid
            self.last_gen[r] = prev

    def _shape(self, sid: str) -> dict:
        recs = self.records[sid]
        rng = {"StartingSequenceNumber": recs[0]["dynamodb"]["SequenceNumber"]}
        if sid not in self.last_gen.values():
            rng["EndingSequenceNumber"] = recs[-1]["dynamodb"]["SequenceNumber"]
        out = {"ShardId": sid, "SequenceNumberRange": rng}
        if self.parent[sid]:
            out["ParentShardId"] = self.parent[sid]
        return out

    def describe_stream(self, StreamArn, Limit=100, ExclusiveStartShardId=None, ShardFilter=None):
        shards = sorted(self.visible)
        if ShardFilter:
            self.child_describes += 1
            if self.filters:
                shards = [s for s in shards if self.parent[s] == ShardFilter["ShardId"]]
        else:
            self.full_describes += 1
        return {"StreamDescription": {"StreamArn": StreamArn, "Shards": [self._shape(s) for s in shards]}}

    def get_shard_iterator(self, StreamArn, ShardId, ShardIteratorType, SequenceNumber=None):
        pos = 0
        if ShardIteratorType == "AFTER_SEQUENCE_NUMBER":
            pos = [r["dynamodb"]["SequenceNumber"] for r in self.records[ShardId]].index(SequenceNumber) + 1
        return {"ShardIterator": f"{ShardId}|{pos}"}

    def get_records(self, ShardIterator, Limit=1000):
        sid, pos = ShardIterator.split("|")
        pos = int(pos)
        recs = self.records[sid][pos:pos + Limit]
        end = pos + len(recs)
        page = {"Records": recs}
        if end < len(self.records[sid]) or sid in self.last_gen.values():
            page["NextShardIterator"] = f"{sid}|{end}"
        else:  # read to its end: the rollover's child now exists
            for child, parent in self.parent.items():
                if parent == sid:
                    self.visible.add(child)
        return page


class Table:
    def describe_table(self, TableName):
        return {"Table": {"TableName": TableName, "LatestStreamArn": ARN,
                          "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}}}


@pytest.fixture
def store(tmp_path):
    with Store(str(tmp_path), read_only=False) as st:
        w = st.chunk_writer("T", "b1", "c0", ("pk",), ("S",))
        w.add(canonical_item({"pk": {"S": "seed"}}), 1, "test")
        w.finish()
        st.publish(PublishSpec("T", "b1", ["c0"], ("pk",), ("S",), total_items=1, stream_arn=ARN, stream_start_micros=0))
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
