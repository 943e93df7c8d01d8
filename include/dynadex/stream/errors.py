"""The errors the stream sync raises, in one place (bases as Airflow's ``fail_fast`` reads them).

``NeedsBootstrap`` is a ``DynadexError``: running again cannot help, a fresh full export is needed.
``Gap`` never leaves the sync: ``sync_table`` catches it and recovers the gap from incremental exports.
"""

from __future__ import annotations

from dynadex.errors import DynadexError


class NeedsBootstrap(DynadexError):
    """The index cannot be caught up from the stream or incremental exports: a fresh full export is needed."""


class Gap(Exception):
    """Records the sync needs are gone from the stream (trimmed, a shard vanished, the ARN changed)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class BadShardGroup(DynadexError, ValueError):
    """A shard group that names no share of the stream (``--group INDEX/COUNT``)."""


class GapInGroup(DynadexError):
    """A gap met by one shard group: recovery rewrites the whole table's position, which one group of several
    may not do; run one sync without groups (it recovers), then the groups again."""
