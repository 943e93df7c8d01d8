"""Concurrent GetRecords over a table's readable shards: one pass, every shard once, answers in order.

Invariants:

* A pass reads each shard it is given at most once, so a shard never has
  more than one GetRecords (or GetShardIterator) in flight: AWS allows 2
  readers per shard; we use 1, leaving the other for an operator's tool.
* At most ``size`` reads are in flight at once (a bounded thread pool;
  boto3 clients are thread-safe). ``size`` 1 reads in the calling thread,
  one shard after another, as the sync did before the pool.
* ``read_pass`` returns only when every read of the pass has finished, in
  the order the shards were given, so the caller (the one thread that
  converts, applies and commits) sees the same sequence whatever the pool
  size. A read that failed re-raises its error there, after the others
  ended: no read is left running behind a gap's recovery.
* Which shards are readable (parents before children) is the caller's
  decision (``TableSync.readable``): a child is never handed to a pass
  before its parent was read to its end in an earlier pass.
* ``ahead`` starts the next page of a shard that answered a full page
  while the caller converts this one (decision 0042): it only fetches the
  page of an iterator the caller already holds and changes no cursor; the
  caller's next read of that shard takes the page (or, if it failed, reads
  again as usual) instead of sending a second GetRecords, so a shard still
  has at most one in flight. Pages never taken are dropped with the pool.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Callable, Sequence, TypeVar

C = TypeVar("C")
R = TypeVar("R")


class ShardReaders:
    def __init__(self, size: int):
        self.size = max(1, int(size))
        self._pool: ThreadPoolExecutor | None = None
        self._ahead_pool: ThreadPoolExecutor | None = None  # its own: a pass's reads wait on these pages

    def read_pass(self, read: Callable[[C], R], cursors: Sequence[C]) -> list[R]:
        """``read(c)`` for every cursor, concurrently (at most ``size`` at once); results in cursor order."""
        if self.size == 1 or len(cursors) <= 1:
            return [read(c) for c in cursors]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix="dynadex-shard-reader")
        futures = [self._pool.submit(read, c) for c in cursors]
        wait(futures)
        return [f.result() for f in futures]

    def ahead(self, fetch: Callable[[], R]) -> Future | None:
        """``fetch()`` started now on the read-ahead pool (None with ``size`` 1: reads stay in the caller's thread)."""
        if self.size == 1:
            return None
        if self._ahead_pool is None:
            self._ahead_pool = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix="dynadex-read-ahead")
        return self._ahead_pool.submit(fetch)

    def close(self) -> None:
        for pool in (self._pool, self._ahead_pool):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        self._pool = self._ahead_pool = None

    def __enter__(self) -> "ShardReaders":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
