"""One batch's commit in flight while the sync reads and shapes the next (decision 0042).

Invariants:

* At most one commit is in flight, and a commit starts only after the one
  before it ended: batches commit in the order they were read, each in one
  transaction with its shards' checkpoints (exactly once, as without it).
* Nothing else uses the store while a commit is in flight: the sync settles
  (waits for it) before any other store call, and before it ends.
* A commit's error reaches the sync at its next settle, before any later
  batch commits; a run never ends with a commit in flight, and never hides
  one's failure (``__exit__`` settles and raises it).

Why it pays: a sync's DuckDB statements run on one thread without Python's
GIL (DuckDB releases it), so while batch N commits, this process reads,
converts and shapes batch N+1 on the other core. Only a sync that is behind
(its last pass met a full page) runs ahead; at the tip every batch settles at
once, so freshness and the order of the tip notes are as before.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable


class CommitAhead:
    """``submit`` a commit; ``settle`` waits for the one in flight (and raises its error)."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future | None = None
        self.overlapped = 0  # commits that ran while the caller went on (the rest were settled at once)

    def submit(self, commit: Callable[[], object], *, ahead: bool) -> None:
        """Run ``commit`` after the one in flight; with ``ahead`` (and enabled) return before it ends."""
        self.settle()
        if not (ahead and self.enabled):
            commit()
            return
        if self._pool is None:  # made at the first commit that runs ahead: a quiet table never starts a thread
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="dynadex-commit")
        self._pending = self._pool.submit(commit)
        self.overlapped += 1

    def settle(self) -> None:
        """Wait for the commit in flight, if any; its error is raised here."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    @property
    def in_flight(self) -> bool:
        return self._pending is not None

    def __enter__(self) -> "CommitAhead":
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.settle()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
