"""Shard groups: several processes follow one table's stream, each a fixed share of its shards.

Invariants (decision 0034, docs/architecture.md invariant 2):

* A shard belongs to exactly one group of a count, for as long as it lives: group ``crc32(shard id) %
  count``. Nothing that changes while a shard is open (its lineage, the listing, the other groups) moves
  it, so no two processes ever read one shard under one count, and a group's batch commits only its own
  shards' checkpoints.
* A child is read only once its parent was read to its end, as in one process; when the parent is another
  group's, its end is the one that group committed (``ended`` in the store's checkpoint), polled while a
  child waits. So a key's changes still apply in stream order across groups.
* The table is at its tip only when every group of the count said so: each group stores the instant its
  own pass found its shards at their tip (``Store.note_group_tip``), and the table's applied-through is the
  oldest of them.
* A change of count needs every group of the old count stopped first (a run of the stream DAG maps one
  task per group and ends them together): shards then move between groups, and two counts at once would
  read a shard twice.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from dynadex.stream.errors import BadShardGroup


@dataclass(frozen=True)
class ShardGroup:
    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise BadShardGroup(f"shard group {self.index}/{self.count}: the count must be at least 1 and the "
                              f"index from 0 to count - 1 (e.g. 0/2 and 1/2 for two groups)")

    @classmethod
    def parse(cls, text: str) -> "ShardGroup":
        """``"i/n"``: group ``i`` of ``n``."""
        try:
            index, count = (int(part) for part in text.split("/"))
        except ValueError as exc:
            raise BadShardGroup(f"shard group {text!r}: expected INDEX/COUNT, e.g. 0/2") from exc
        return cls(index, count)

    @property
    def whole(self) -> bool:
        """One group: the whole stream, as a sync without groups reads it."""
        return self.count == 1

    def owns(self, shard_id: str) -> bool:
        return self.whole or zlib.crc32(shard_id.encode()) % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


WHOLE = ShardGroup()
