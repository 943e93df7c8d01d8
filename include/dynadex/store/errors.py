"""The errors the store raises, in one place below every room (each room may import it; it imports no room).

Each keeps its base: a ``DynadexError`` is bad input or configuration, failed at once by Airflow's
``fail_fast``; a ``TransientError`` (``StoreFull``) keeps the task's retries (plugins/dynadex_airflow/failures.py).
"""

from __future__ import annotations

from dynadex.errors import DynadexError, TransientError


class StoreError(DynadexError, ValueError):
    """A store that cannot be opened or used as asked."""


class StoreFull(TransientError):
    """The store's disk (data path or catalog) has no space left for a write (``catalog/disk_full.py``)."""


class QueryError(DynadexError, ValueError):
    """A query refused or failed; nothing was changed."""


class QueryTimeout(QueryError):
    """A read interrupted at its deadline (``reads.read_whole_snapshot``); nothing was changed."""


class SnapshotBusy(QueryError):
    """Every attempt of a read overlapped a commit that moves rows (a flush, a merge): no whole snapshot was read."""


class PublishRefused(DynadexError, ValueError):
    """Publish found the chunks incomplete or inconsistent; nothing was changed."""


class KeyError_(DynadexError, ValueError):
    """An item without its key attributes, or with a key of the wrong type."""


class UnusualPointRead(Exception):
    """A get the point read does not answer (``point_reads.py``): it goes through DuckLake instead. Never shown."""


class NeedsTransaction(Exception):
    """A read without DuckLake's transaction met what only DuckLake answers (``reads.DetachedReader``): it runs
    again through DuckLake. Never shown."""


class OutsideFastPath(Exception):
    """The chunk needs the exact Python path (never shown to users: ``bulk/fastbuild.py`` falls back on it)."""


class SideReadFailed(Exception):
    """The catalog's side reader did not answer (``catalog/side_reader.py``: SQLite's error, or its process gone):
    the point reads read the catalog through DuckDB instead. Never shown."""
