"""Where the server keeps its API keys and Query Lambdas: one SQLite file of its own (decision 0031).

Invariants:

* The file is never under the store's data path, the one folder a sandboxed query may read
  (``Lake._lock_down``): no query can read a key's hash or another key's tables.
* It is not the DuckLake catalog: Python's ``sqlite3`` never opens ``catalog.sqlite`` (decision 0009).
* Every change is one SQLite transaction; the command line (``dynadex keys``) and a running server share
  the file, and a key revoked by one is refused by the other at its next request.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from dynadex import settings
from dynadex.serve.errors import StateError
from dynadex.store.catalog.location import StoreLocation

FILE_NAME = "serve.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    name TEXT PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,      -- sha256 of the key, hex
    hint TEXT NOT NULL,             -- the key's first characters, to tell keys apart in a list
    tables TEXT,                    -- JSON list of table names; NULL: every table
    admin INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE TABLE IF NOT EXISTS lambda_versions (
    workspace TEXT NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    query TEXT NOT NULL,
    default_parameters TEXT NOT NULL,  -- JSON list of {name, type, value}
    description TEXT,
    collections TEXT NOT NULL,         -- JSON list of the tables the query reads
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,          -- the name of the key that made it
    PRIMARY KEY (workspace, name, version)
);
CREATE TABLE IF NOT EXISTS lambda_tags (
    workspace TEXT NOT NULL,
    name TEXT NOT NULL,
    tag TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (workspace, name, tag)
);
"""


def state_path(location: StoreLocation, override: str | None = None) -> Path:
    """The state file of ``location``'s server: ``override`` or ``DYNADEX_SERVE_STATE``, else ``serve.sqlite``
    in the store folder. Refused when it would lie under the data path (a query could read it)."""
    chosen = override or settings.SERVE_STATE.read()
    if chosen:
        path = Path(chosen).expanduser().resolve()
    elif location.local_root is not None:
        path = location.local_root / FILE_NAME
    else:
        raise StateError("a store with a PostgreSQL catalog has no folder of its own: give the server's state file "
                         "with --state or DYNADEX_SERVE_STATE")
    if not location.is_s3 and path.is_relative_to(Path(location.data_path)):
        raise StateError(f"the server's state file {path} lies under the store's data path {location.data_path}, "
                         "which every query may read: put it elsewhere")
    return path


class StateFile:
    """One connection to the state file, shared by the server's threads (SQLite calls take turns here)."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
            self._con.execute("PRAGMA journal_mode=WAL")
            self._con.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise StateError(f"cannot open the server's state file {path}: {exc}") from exc
        path.chmod(0o600)  # key hashes and lambdas: this user's only
        self._lock = threading.Lock()

    def read(self, sql: str, params=()) -> list[tuple]:
        with self._lock:
            return self._con.execute(sql, params).fetchall()

    def write(self, statements) -> None:
        """``statements``: (sql, params) pairs committed together, or none of them."""
        with self._lock:
            self._con.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in statements:
                    self._con.execute(sql, params)
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
            self._con.execute("COMMIT")

    def close(self) -> None:
        self._con.close()
