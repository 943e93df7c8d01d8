"""A full disk under the store becomes one clear error, and nothing of the failed write is committed.

Invariant: a write that runs out of space (``ENOSPC`` / ``EDQUOT`` from the
OS, DuckDB's "No space left on device", SQLite's "database or disk is
full") while a chunk's files or a stream batch are written surfaces as one
``StoreFull`` naming what was being written and DuckDB's own detail (the
file), never as a retry loop: retrying at once cannot free space. Nothing
of it is committed: a chunk without its manifest is not built (publish
refuses it), a batch's transaction is rolled back with its checkpoints, so
readers keep the old snapshot and the sync resumes from the old checkpoints.
The error is transient (``TransientError``): once space is freed the same
run, or the task's next try, completes. A SQLite catalog on a full disk
cannot even be opened (SQLite reports only "disk I/O error"): ``Lake``
then checks the folder's free space and says so, as ``StoreFull`` too.
"""

from __future__ import annotations

import errno
from contextlib import contextmanager

from dynadex.store.errors import StoreFull

NO_SPACE = ("no space left on device", "database or disk is full", "disk quota exceeded")


def is_no_space(exc: BaseException) -> bool:
    if isinstance(exc, StoreFull):
        return False
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return any(m in str(exc).lower() for m in NO_SPACE)


def store_full(what: str, exc: BaseException, store: str | None = None) -> StoreFull:
    detail = " ".join(str(exc).split())[:500]
    disk = f"the disk of store {store}" if store else "the store's disk"
    return StoreFull(f"{what}: no space left on {disk} ({detail}); nothing of it was committed "
                     "(readers see the previous snapshot, checkpoints are where they were): free space and run again")


@contextmanager
def reported(what: str, store: str | None = None):
    """Inside: running out of space is re-raised as ``StoreFull`` (chained), naming ``store`` (its location)
    when given: DuckDB's detail names the file only when a data file found no room, and SQLite's ("database
    or disk is full", a catalog commit holding a batch's inlined rows) names nothing; anything else passes."""
    try:
        yield
    except Exception as exc:
        if is_no_space(exc):
            raise store_full(what, exc, store) from exc
        raise


ROOM_BYTES = 64 * 1024  # less free space than this under a catalog folder: its disk is full


def full_disk_under(path) -> bool:
    """True when the (existing) folder ``path`` lies on a disk with (almost) no space left."""
    import shutil

    try:
        return shutil.disk_usage(path).free < ROOM_BYTES
    except OSError:
        return False
