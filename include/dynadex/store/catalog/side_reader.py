"""A SQLite catalog read by Python's ``sqlite3`` in a process of its own, on one connection kept open (decision 0047).

Invariants:

* The catalog is opened by Python's ``sqlite3`` only in a child process (this file run as a script, importing
  nothing but the standard library), never in the process that asks: there DuckDB's SQLite already opens it,
  and two SQLite libraries in one process drop and release each other's POSIX locks (decision 0023: a closed
  descriptor drops every lock of the process on the file, a reader's lock released by the other library's
  unlock of the same byte lets a checkpoint or a WAL restart go past a snapshot still being read).
* The child's connection is read-only (``mode=ro``), opened once and kept: no connection is opened and no
  schema parsed per statement, as DuckDB's SQLite extension does for each ``sqlite_query``.
* Each request (a list of statements) runs in one read transaction: its statements see one snapshot of the
  catalog, the newest when its first one read.
* A failure says so and never answers in part: ``SideReadFailed`` (its message SQLite's, such as "no such
  table"); a child gone (killed, crashed) is started again at the next request. The caller then reads the
  catalog as before (``point_reads._catalog_rows``).
* The child ends when its parent does (end of its standard input) and ignores SIGINT (the server's Ctrl-C).
"""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
import threading

HEAD = struct.Struct(">I")  # each message: its length, then a pickle
BUSY_SECONDS = 0.25  # the child's SQLite busy timeout (a reader in WAL mode waits only for a recovery)


class SideReader:
    """One catalog file's child reader (thread-safe: one request at a time)."""

    def __init__(self, database: str):
        self.database = database
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self.started = 0  # children started (more than one: one died and was replaced)

    def read(self, statements: list[str]) -> list[tuple[list[str], list[tuple]]]:
        """``(column names, rows)`` of each statement, all read in one read transaction of the catalog."""
        from dynadex.store.errors import SideReadFailed

        data = pickle.dumps(list(statements), protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock:
            try:
                proc = self._proc if self._proc is not None and self._proc.poll() is None else self._start()
                proc.stdin.write(HEAD.pack(len(data)) + data)
                proc.stdin.flush()
                (n,) = HEAD.unpack(_exactly(proc.stdout, HEAD.size))
                kind, got = pickle.loads(_exactly(proc.stdout, n))
            except (OSError, EOFError, ValueError, pickle.UnpicklingError) as exc:
                self._stop()  # a child gone or out of step: the next request starts another
                raise SideReadFailed(f"the catalog's side reader failed ({type(exc).__name__}: {exc}); the catalog "
                                     "is read through DuckDB meanwhile") from exc
        if kind != "ok":
            raise SideReadFailed(got)
        return got

    def _start(self) -> subprocess.Popen:
        self._stop()
        self._proc = subprocess.Popen([sys.executable, "-I", os.path.abspath(__file__), self.database],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
        self.started += 1
        return self._proc

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for pipe in (proc.stdin, proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def pid(self) -> int | None:
        """The running child's process id (tests), None when none runs."""
        with self._lock:
            return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def close(self) -> None:
        with self._lock:
            self._stop()


def _exactly(pipe, n: int) -> bytes:
    data = pipe.read(n)
    if data is None or len(data) != n:
        raise EOFError("the side reader's pipe ended")
    return data


_READERS: dict[str, SideReader] = {}
_READERS_LOCK = threading.Lock()


def side_reader(database: str) -> SideReader:
    """The process's one ``SideReader`` of the SQLite database file ``database``."""
    key = os.path.realpath(database)
    with _READERS_LOCK:
        got = _READERS.get(key)
        if got is None:
            got = _READERS[key] = SideReader(key)
        return got


def close_side_reader(database: str) -> None:
    """End ``database``'s child, if one runs (a later request starts another)."""
    with _READERS_LOCK:
        got = _READERS.get(os.path.realpath(database))
    if got is not None:
        got.close()


# ---------------------------------------------------------------- the child


def _child(database: str) -> None:
    import signal
    import sqlite3
    from urllib.parse import quote as url_quote

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent's Ctrl-C is the parent's: this ends with its pipe
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    con = None
    while True:
        head = inp.read(HEAD.size)
        if len(head) != HEAD.size:
            return  # the parent is gone
        statements = pickle.loads(inp.read(HEAD.unpack(head)[0]))
        try:
            if con is None:
                con = sqlite3.connect(f"file:{url_quote(database)}?mode=ro", uri=True, isolation_level=None,
                                      timeout=BUSY_SECONDS, check_same_thread=False)
            con.execute("BEGIN")  # deferred: the snapshot is taken by the first read and kept to the end
            try:
                got = []
                for sql in statements:
                    cur = con.execute(sql)
                    got.append(([d[0] for d in cur.description or ()], cur.fetchall()))
            finally:
                con.execute("ROLLBACK")  # a read: nothing to commit
            reply = ("ok", got)
        except sqlite3.Error as exc:
            reply = ("error", f"{type(exc).__name__}: {exc}")
        data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(HEAD.pack(len(data)) + data)
        out.flush()


if __name__ == "__main__":
    _child(sys.argv[1])
