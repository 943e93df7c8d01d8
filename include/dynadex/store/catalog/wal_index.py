"""Whether a SQLite catalog in WAL mode committed anything since a moment, read from its WAL index's header.

Invariants:

* ``WalIndex.token()`` is the header of the catalog's WAL index (its ``-shm`` file, SQLite's "wal-index
  header": the frame count, the salts and checksums of the last commit, a counter of changes) as SQLite's own
  readers take it: the first of its two copies, and only when both agree and the header is initialised. Every
  commit writes a new header before any reader can see the commit (SQLite's readers find their snapshot in
  it), so two equal tokens mean no transaction committed between the two reads: what a read of the catalog
  found newest after the first token is still newest at the second.
* ``None`` means not known, never "unchanged": no WAL index (a catalog not in WAL mode, or its index in heap
  memory), copies that disagree (a commit writing them), a header not yet initialised, or an index file that
  is not the one opened (replaced or removed since: the file at the path is checked after the header is read,
  so a header read from a file already unlinked is never taken). The caller then reads the catalog.
* An index file, once opened here, is never closed while the process runs: closing any descriptor of a file
  drops every POSIX lock the process holds on it, SQLite's own on the WAL index included (decision 0023). A
  replaced file's old descriptor is kept open too.
* Nothing here writes or locks: the file is opened read-only and read with ``pread``.
"""

from __future__ import annotations

import os
import threading

HEADER = 48  # bytes of one copy of the WAL index header (https://www.sqlite.org/walformat.html)
IS_INIT = 12  # its ``isInit`` byte: 1 once a connection built the index


class WalIndex:
    """One SQLite database's WAL index (``PATH-shm``), opened on first use."""

    def __init__(self, database: str):
        self.path = database + "-shm"
        self._fd: int | None = None
        self._inode: tuple[int, int] | None = None
        self._kept: list[int] = []  # descriptors of replaced index files: never closed (module docstring)
        self._lock = threading.Lock()

    def token(self) -> bytes | None:
        """The header's first copy, or None when not known (module docstring)."""
        with self._lock:
            if self._fd is None and not self._open():
                return None
            fd, inode = self._fd, self._inode
        try:
            head = os.pread(fd, 2 * HEADER, 0)
            st = os.stat(self.path)  # after the read: a header read from a file replaced since is not taken
        except OSError:
            return None
        if (st.st_dev, st.st_ino) != inode:
            with self._lock:
                if self._inode == inode:  # replaced: open the new one for the next read
                    self._kept.append(self._fd)
                    self._fd = None
            return None
        if len(head) < 2 * HEADER or head[:HEADER] != head[HEADER:] or head[IS_INIT] != 1:
            return None
        return head[:HEADER]

    def _open(self) -> bool:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return False
        st = os.fstat(fd)
        self._fd, self._inode = fd, (st.st_dev, st.st_ino)
        return True


_INDEXES: dict[str, WalIndex] = {}
_INDEXES_LOCK = threading.Lock()


def wal_index(database: str) -> WalIndex:
    """The process's one ``WalIndex`` of the SQLite database file ``database`` (so one descriptor a file)."""
    key = os.path.realpath(database)
    with _INDEXES_LOCK:
        got = _INDEXES.get(key)
        if got is None:
            got = _INDEXES[key] = WalIndex(key)
        return got
