"""Each small table's row-index keys and versions, kept by the connection that writes them (decision 0046).

A stream batch looks its keys up in the row index before it writes (the version check, and which rows its
upserts replace). On a quiet table that lookup is one statement of a few keys, but DuckLake reads the table's
metadata again at every new snapshot: about 14 SQLite connections opened, each parsing the catalog's schema,
20 ms of a 50-table group commit's 60 ms a table. A connection that keeps the keys of the tables it writes
answers those lookups from memory.

Invariants:

* An entry holds EXACTLY the ``(key, version)`` pairs of the table's row index as of DuckLake snapshot
  ``snapshot``: read whole by a scan inside a transaction at that snapshot (``load``), or carried forward by a
  commit of this connection that started from the entry's snapshot (``committed``: the batch's winners applied
  to it; a table the commit did not write keeps its pairs).
* An entry answers only a transaction whose own snapshot (``current_snapshot()`` read inside it) is the entry's:
  any other commit (another writer's, this connection's flush, fold, publish or maintenance) makes a new
  snapshot, and the entry is then read again, never trusted.
* A commit is taken to be snapshot ``start + 1``. If another writer's commit got in between (it holds no writer
  lock), ours is later, and no transaction can start at ``start + 1`` after ours: the entry is never used.
* Only tables of at most ``MOST_KEYS`` keys are kept (memory); a larger one is looked up as before, and not scanned
  again by this connection.
"""

from __future__ import annotations

from dynadex.store.layout.names import row_table

GONE = object()
"""In ``committed``'s changes: the key's row was deleted."""

MOST_KEYS = 50_000
"""The most keys a table may hold to have its keys kept (about 150 bytes a key in memory)."""


class KnownKeys:
    def __init__(self):
        self._tables: dict[str, tuple[int, dict]] = {}  # table -> (snapshot, {key text: version})
        self._too_big: set[str] = set()

    def at(self, con, table: str, snapshot: int | None, rows: int = 0) -> dict | None:
        """``table``'s stored keys -> versions as of ``snapshot`` (this transaction's), scanned now if not kept;
        None where not kept (too many keys, no snapshot): the caller looks its keys up as before. ``rows``: the
        table's estimated rows (``Lake.rows_estimate``); above ``MOST_KEYS`` the table is not scanned at all (a
        large table's first batch would read 50 000 rows for nothing, and its lookup prunes row groups)."""
        if rows > MOST_KEYS:
            self._too_big.add(table)
        if snapshot is None or table in self._too_big:
            return None
        entry = self._tables.get(table)
        if entry is not None and entry[0] == snapshot:
            return entry[1]
        rows = con.execute(f"SELECT key, version FROM {row_table(table)} LIMIT {MOST_KEYS + 1}").fetchall()
        if len(rows) > MOST_KEYS:
            self._too_big.add(table)
            self._tables.pop(table, None)
            return None
        known = dict(rows)
        self._tables[table] = (snapshot, known)
        return known

    def committed(self, start: int | None, written: dict[str, dict | None]) -> None:
        """A transaction that started at ``start`` committed. ``written``: table -> {key: version, or ``GONE`` for a
        key whose row it deleted} for every table whose row index it wrote (None: written some other way, so
        forgotten). Every entry valid at ``start`` moves to ``start + 1``."""
        if start is None:
            self.forget()
            return
        for table, changes in written.items():
            entry = self._tables.get(table)
            if changes is None or entry is None or entry[0] != start:
                self._tables.pop(table, None)
                continue
            known = entry[1]
            for key, version in changes.items():
                if version is GONE:
                    known.pop(key, None)
                else:
                    known[key] = version
            if len(known) > MOST_KEYS:
                self._too_big.add(table)
                self._tables.pop(table, None)
        for table, (snapshot, known) in list(self._tables.items()):
            if snapshot == start:
                self._tables[table] = (start + 1, known)

    def forget(self, tables=None) -> None:
        """Drop the entries of ``tables`` (all: None); the next transaction reads them again."""
        if tables is None:
            self._tables.clear()
            self._too_big.clear()
        else:
            for t in tables:
                self._tables.pop(t, None)


def kept_by(lake) -> KnownKeys:
    """The keys ``lake``'s connection keeps (made at its first batch; ``Lake.reopen`` drops them)."""
    return lake.__dict__.setdefault("_known_keys", KnownKeys())
