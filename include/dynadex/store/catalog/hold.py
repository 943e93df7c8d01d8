"""A writer process keeps one SQLite connection to its catalog open, so no commit or read waits a second.

Invariant: while a writing ``Lake`` on a SQLite catalog is open, this process holds at least one connection
to the catalog file, opened by the same SQLite library DuckLake uses, at every instant: the hold opens its
next connection before it lets the previous one go.

Why: DuckDB's SQLite extension opens a new SQLite connection for every DuckDB transaction and closes it at
the end. With a stream sync committing small batches and a reader polling from another process, the count
of connections to the catalog often fell to zero: the last one out checkpointed and removed the WAL, and the
next one in rebuilt the WAL index under an exclusive lock. A connection of the other process starting a read
at that moment retries, and after five quick retries SQLite sleeps; DuckDB's SQLite is built without
``usleep``, so every such sleep lasts a whole second (``unixSleep`` rounds up). Measured on the freshness
bench (2 shards, 20 writes/s, 40 s): 2-4 batches whose commit took 1.1-1.2 s instead of 0.1 s, and 2 reader
polls of 1.02 s, with the writer's busy timeout at 0 as at 5 s: the second was the p99 of the lag.

How: a second DuckDB connection of the Lake's own database (so the same loaded SQLite library, whose
locks the process shares: a second SQLite library, Python's sqlite3, must never open the catalog) attaches
the catalog file as plain SQLite and keeps a transaction open on it, hence its SQLite connection. Its read
pins a snapshot, which would stop the WAL from ever starting over, so it is renewed after each of the
writer's commits (``renew``): two PASSIVE checkpoints and one small read, a few milliseconds. Measured
(400 batches of 20 changes, a reader polling from another process every 50 ms): without the hold 4 batches
and 1 read took over a second, with it none, 155 against 170 ms per batch, the WAL at 1.5 MB.
"""

from __future__ import annotations

import logging

import duckdb

from dynadex.store.layout.names import literal

log = logging.getLogger("dynadex.store")

HOLD_ALIAS = "dynadex_catalog_hold"
CHECKPOINT = f"SELECT * FROM sqlite_query('{HOLD_ALIAS}', 'PRAGMA wal_checkpoint(PASSIVE)')"


class CatalogHold:
    def __init__(self, con: duckdb.DuckDBPyConnection, sqlite_path: str):
        self._root = con
        self._path = sqlite_path
        self._held: duckdb.DuckDBPyConnection | None = None
        self._attached = False

    def renew(self) -> None:
        """Open the next held read of the catalog, then end the previous one. Never raises: without the hold
        the store works as before, only with the occasional one-second wait.

        The next connection is opened first (it checkpoints, which maps the WAL index: from then on it counts
        as connected), then the previous read ends, then it checkpoints again, now past every frame the old
        read pinned, and only then starts its own read: one that starts with the WAL fully copied reads the
        database file alone, so the next commit can start the WAL over (it stays ~1.5 MB; with reads pinned
        on the WAL it grew by 17 MB per 100 small batches)."""
        fresh = None
        try:
            if not self._attached:
                self._root.execute(f"ATTACH IF NOT EXISTS {literal(self._path)} AS {HOLD_ALIAS} (TYPE sqlite)")
                self._attached = True
            fresh = self._root.cursor()
            fresh.execute("BEGIN TRANSACTION")
            fresh.execute(CHECKPOINT).fetchall()
        except duckdb.Error as exc:
            log.debug("catalog hold not renewed: %s", exc)
            self._release(fresh)
            return
        self._release(self._held)
        self._held = fresh
        try:
            fresh.execute(CHECKPOINT).fetchall()
            fresh.execute(f"SELECT count(*) FROM {HOLD_ALIAS}.ducklake_metadata").fetchall()
        except duckdb.Error as exc:  # still connected (the first checkpoint mapped the WAL index)
            log.debug("catalog hold: %s", exc)

    @staticmethod
    def _release(con: duckdb.DuckDBPyConnection | None) -> None:
        if con is None:
            return
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:
            pass
        con.close()

    def close(self) -> None:
        self._release(self._held)
        self._held = None
