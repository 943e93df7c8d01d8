"""One write transaction at a time per SQLite catalog, across processes and threads.

Invariant: while a ``Lake`` on a SQLite catalog runs a write (everything
``Lake.retrying`` wraps: batches, caught-up notes, publishes, maintenance),
it holds an exclusive ``flock`` on ``<catalog>.writer-lock``; so no two
writes of one store overlap. A thread that holds it and writes again goes
on (no self-deadlock). The lock is taken per attempt (never across a
retry's pause) and the kernel drops it when its process dies.

Why: in WAL mode SQLite refuses the write of a transaction whose read
snapshot another commit has made stale (SQLITE_BUSY_SNAPSHOT: "database is
locked" at once, the busy timeout does not apply). Two tables of one store
synced side by side (one mapped task each) overlapped on every batch; the
busier one committed, the other retried its whole batch again and again
(measured: 1 batch in 15 s, 7 of its 8 attempts spent; decision 0014).
Waiting for the lock costs the same serialisation without the wasted work.

A Postgres catalog takes no lock here: its writers meet DuckLake's conflict
checks and ``retrying``, as before.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from dynadex.store.catalog import contention

log = logging.getLogger("dynadex.store")

_held = threading.local()  # the lock files this thread holds
WAIT_NOTE_SECONDS = 5.0  # a wait longer than this is logged: another writer held the store that long


def lock_path(catalog: str) -> Path | None:
    """The lock file of a ``sqlite:`` catalog spec (None for other catalogs)."""
    if not catalog.startswith("sqlite:"):
        return None
    return Path(catalog[len("sqlite:"):] + ".writer-lock")


@contextmanager
def writing(catalog: str, what: str):
    path = lock_path(catalog)
    if path is None:
        yield
        return
    import fcntl

    key = str(path)
    if key in _held.__dict__:  # this thread holds it already (a write inside a write): flock would wait on itself
        yield
        return
    # a fresh open file per holder: flock locks belong to the open file, so threads of one process exclude
    # each other too (POSIX fcntl locks would not)
    with open(path, "a+b") as f:
        try:  # free at once? (counted apart from a real wait: store/catalog/contention.py)
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            contention.lock_taken(None)
        except BlockingIOError:
            t = time.monotonic()
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            waited = time.monotonic() - t
            contention.lock_taken(waited)
            if waited > WAIT_NOTE_SECONDS:
                log.info("%s: waited %.1fs for another writer of this store", what, waited)
        _held.__dict__[key] = True
        held_from = time.monotonic()
        try:
            yield
        finally:
            del _held.__dict__[key]
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
            contention.lock_released(time.monotonic() - held_from)
