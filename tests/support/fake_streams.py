"""An in-memory DynamoDB Streams endpoint and DynamoDB table for unit tests of the sync (no emulator)."""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/T/stream/2024-01-01T00:00:00.000"


class ChainStream:
    """A stream whose shards form chains of generations; a child appears only once its parent has been read
    to its end, as with a rollover after the last DescribeStream. Honours ShardFilter when ``filters``."""

    def __init__(self, roots: int, generations: int, per_shard: int, *, filters: bool, keys: int | None = None,
                 records=None, listed: bool = False, shard_id=None):
        """``keys``: the records cycle over this many keys (later records overwrite earlier ones, so the order
        batches commit in shows in the items); None: every record a key of its own. ``records(root, generation)``,
        if given, makes each shard's records instead (sequence numbers rising along a lineage). ``listed``: every
        shard is listed from the start (a backlog: the rollovers happened before the sync started).
        ``shard_id(root, generation)`` names the shards."""
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
                sid = shard_id(r, g) if shard_id else f"shardId-{r:03d}-{g:05d}"
                self.parent[sid] = prev
                self.records[sid] = records(r, g) if records else []
                for i in range(0 if records else per_shard):
                    seq += 1
                    key = f"r{r}g{g}i{i}" if keys is None else f"k{seq % keys}"
                    self.records[sid].append({"eventName": "INSERT", "dynamodb": {
                        "ApproximateCreationDateTime": dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc),
                        "Keys": {"pk": {"S": key}}, "NewImage": {"pk": {"S": key}, "n": {"N": str(seq)}},
                        "SequenceNumber": f"{seq:021d}"}})
                if prev is None or listed:
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
    """A DynamoDB client whose tables all have the stream ``ARN``, on, with new and old images."""

    def describe_table(self, TableName):
        return {"Table": {"TableName": TableName, "LatestStreamArn": ARN,
                          "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}}}


@contextmanager
def followed_store(path: str, threads: int | None = None):
    """An open writer ``Store`` at ``path`` (on ``threads`` DuckDB threads) with table ``T`` (key pk S, one seed
    item) published to follow the stream ``ARN`` from its start: what the unit tests of the sync run it on."""
    from dynadex.store import PublishSpec, Store
    from dynadex.types import canonical_item

    with Store(path, read_only=False, threads=threads) as st:
        w = st.chunk_writer("T", "b1", "c0", ("pk",), ("S",))
        w.add(canonical_item({"pk": {"S": "seed"}}), 1, "test")
        w.finish()
        st.publish(PublishSpec("T", "b1", ["c0"], ("pk",), ("S",), total_items=1, stream_arn=ARN,
                               stream_start_micros=0))
        yield st
