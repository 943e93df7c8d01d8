"""The shard tree of a stream: every shard (DescribeStream, all pages), parents before children; the
children of a shard that ended (``children_of``), found when it ends rather than at the next full refresh.

Invariant: ``ordered`` lists a parent before any of its children whenever both
are listed; a shard whose parent is not listed (pruned by retention) is a root.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ShardInfo:
    shard_id: str
    parent_id: str | None
    start_seq: int
    end_seq: int | None

    @property
    def closed(self) -> bool:
        return self.end_seq is not None


def describe_all(streams, stream_arn: str, page_size: int = 100) -> tuple[dict, list[ShardInfo]]:
    shards, start, description = [], None, None
    while True:
        kwargs = {"StreamArn": stream_arn, "Limit": page_size}
        if start:
            kwargs["ExclusiveStartShardId"] = start
        description = streams.describe_stream(**kwargs)["StreamDescription"]
        shards += [_info(s) for s in description.get("Shards", [])]
        start = description.get("LastEvaluatedShardId")
        if not start:
            return description, ordered(shards)


def _info(s: dict) -> ShardInfo:
    rng = s["SequenceNumberRange"]
    return ShardInfo(s["ShardId"], s.get("ParentShardId"), int(rng["StartingSequenceNumber"]),
                     int(rng["EndingSequenceNumber"]) if "EndingSequenceNumber" in rng else None)


def children_of(streams, stream_arn: str, shard_id: str) -> list[ShardInfo]:
    """The children of a shard that has just ended (DescribeStream with ShardFilter CHILD_SHARDS: one small
    answer, not the whole tree). Filtered here too, for endpoints that ignore the filter."""
    out, start = [], None
    while True:
        kwargs = {"StreamArn": stream_arn, "ShardFilter": {"Type": "CHILD_SHARDS", "ShardId": shard_id}}
        if start:
            kwargs["ExclusiveStartShardId"] = start
        description = streams.describe_stream(**kwargs)["StreamDescription"]
        out += [_info(s) for s in description.get("Shards", []) if s.get("ParentShardId") == shard_id]
        start = description.get("LastEvaluatedShardId")
        if not start:
            return out


def ordered(shards: list[ShardInfo]) -> list[ShardInfo]:
    by_id = {s.shard_id: s for s in shards}
    out, seen = [], set()

    def visit(s: ShardInfo, path: set) -> None:
        if s.shard_id in seen or s.shard_id in path:
            return
        path.add(s.shard_id)
        if s.parent_id in by_id:
            visit(by_id[s.parent_id], path)
        seen.add(s.shard_id)
        out.append(s)

    for s in sorted(shards, key=lambda s: s.start_seq):
        visit(s, set())
    return out
