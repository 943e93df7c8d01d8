"""Write ids: which write of a key each row and inverted entry belongs to.

A change batch replaces a key's row (and its column-index row) in place, but
only appends its inverted entries: deleting the old ones would scan the key
column of the whole inverted index (sorted by path and value, so nothing
prunes) on every batch, 0.33 s at 1 M items and growing with the table.

Invariants:

* Every row and every inverted entry carries the write id of the write that
  made it: ``BULK_WRITE_ID`` for a published snapshot, a fresh id per change
  batch (unique per key: one batch writes a key at most once).
* An inverted entry is live exactly when its key's row exists and carries the
  same write id (NULL equals NULL: stores from before write ids, whose stale
  entries were deleted eagerly). ``find`` returns only live entries' items;
  ``prune_stale`` deletes the others without changing any answer.
* The stream version cannot serve as the id: two changes to one key within
  one second share it.
"""

from __future__ import annotations

import threading
import time

BULK_WRITE_ID = 0
_lock = threading.Lock()
_last = 0


def next_write_id() -> int:
    """A new id, strictly increasing within the process (nanoseconds since the epoch)."""
    global _last
    with _lock:
        _last = max(_last + 1, time.time_ns())
        return _last


LIVE = "r.write_id IS NOT DISTINCT FROM i.write_id"  # i: inverted entry, r: its key's row
