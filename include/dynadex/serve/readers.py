"""The server's sandboxed connections to the store, and what each answer says of its snapshot.

Invariants:

* Every read runs on a store opened with ``sandbox=True`` (``Lake._lock_down``: no file or URL outside the
  store, no ATTACH, no setting), read-only, with its own DuckDB memory limit, and through
  ``Store.read_snapshot``: one whole snapshot, the newest at its start, with a deadline.
* A connection serves one request at a time; a request that finds none free within its deadline is refused
  (``Busy``), never queued without end.
* A ``get`` reads the row index's Parquet files itself where it can (``store/point_reads.py``: the same answer
  as through DuckLake, at the same snapshot); ``DYNADEX_POINT_READS=0`` turns that off.
* A warmer thread (``DYNADEX_SERVE_WARM_SECONDS``) reads each new snapshot of a SQLite catalog as soon as its
  WAL index shows a commit, making the point-read plans and sync states of the tables recently got, with no
  lookup: an ordinary ``read`` (checked whole like any other, kept only then), so a `get` finds them made or
  waits for the read making them. It answers nothing; it stops before the connections close; with no
  client's get for a second it warms nothing and wakes fifty times less often.
* Closing the readers ends the catalog's side reader (``catalog/side_reader.py``), the child process the point
  reads ask a SQLite catalog's rows of.
* Each answer carries its snapshot (id, commit time) and, for each table it read, how far behind its
  DynamoDB table that snapshot is (``reads.lag``), as the sync recorded it in that same snapshot.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import OrderedDict

from dynadex import settings
from dynadex.serve.errors import Busy, QueryFailed, QueryTimedOut
from dynadex.store import QueryError, QueryTimeout, SnapshotBusy, Store
from dynadex.store.catalog.side_reader import close_side_reader
from dynadex.store.catalog.wal_index import wal_index
from dynadex.store.point_reads import PointReads
from dynadex.store.reads import lag

log = logging.getLogger("dynadex.serve")

STATE_CACHE = 256  # (snapshot, table) -> the table's sync state in it: fixed once committed
HOT_TABLES = 8  # tables got most recently: those the warmer reads at a new snapshot
IDLE_AFTER_SECONDS = 1.0  # with no client's get for this long the warmer warms nothing and wakes
IDLE_LOOKS = 50  # ``IDLE_LOOKS`` times less often (waking every 1 ms costs 4.4% of a core on this box)
WARM_READ_SECONDS = 2.0  # a warming read's deadline (a connection to wait for, the read)


class Readers:
    def __init__(self, spec: str, data_path: str | None = None, *, connections: int = 4, memory_limit: str = "512MB"):
        self.connections = max(1, connections)
        threads = max(1, (os.cpu_count() or 1) // self.connections)
        self._free: queue.Queue[Store] = queue.Queue()
        self._all: list[Store] = []
        self.location = None
        try:
            for _ in range(self.connections):
                st = Store(spec, data_path=data_path, sandbox=True, threads=threads, memory_limit=memory_limit)
                self._all.append(st)
                self._free.put(st)
        except BaseException:
            self.close()
            raise
        self.location = self._all[0].location
        self.point_reads = (PointReads(self.location.data_path)
                            if settings.POINT_READS.read() and not self.location.is_s3 else None)
        self._states: OrderedDict = OrderedDict()
        self._states_lock = threading.Lock()
        self._hot: OrderedDict = OrderedDict()  # tables got lately (the warmer's)
        self._last_get = 0.0  # when the last get was read (monotonic)
        self._stop = threading.Event()
        self._warmer = None
        every = settings.SERVE_WARM_SECONDS.read()
        if self.point_reads is not None and every > 0 and self.location.catalog.startswith("sqlite:"):
            index = wal_index(self.location.catalog[len("sqlite:"):])
            self._warmer = threading.Thread(target=self._warm, args=(index, every), name="dynadex-warmer",
                                            daemon=True)
            self._warmer.start()

    def read(self, work, *, timeout: float, tables=(), timing: dict | None = None, gets: bool = False):
        """``(work(reader), snapshot, freshness)`` on a free connection: ``freshness`` maps each of ``tables``
        (and whatever ``work`` read in ``reader.tables_read``) to its lag at the snapshot read. ``timing``, if
        given, gets the milliseconds spent waiting for a connection (``wait``), in ``work`` (``work``, its last
        attempt) and in the whole read (``read``: the snapshot's transaction and checks too). ``gets``: ``work``
        only gets items by key (``reader.get``), which point reads then answer (``store/point_reads.py``)."""
        started = time.monotonic()
        deadline = started + timeout
        try:
            st = self._free.get(timeout=timeout)
        except queue.Empty as exc:
            raise Busy(f"every one of the server's {self.connections} connections stayed busy for {timeout:g} s") from exc
        got = time.monotonic()
        spent = {}
        if gets and threading.current_thread() is not self._warmer:
            self._last_get = got
        try:
            def run(reader):
                t = time.monotonic()
                result = work(reader)
                spent["work"] = time.monotonic() - t
                return result, {t: self.state(reader, t) for t in tables}

            (result, states), snapshot = st.read_snapshot(run, timeout=max(0.001, deadline - time.monotonic()),
                                                          point_reads=self.point_reads if gets else None)
        except QueryTimeout as exc:
            raise QueryTimedOut(str(exc)) from exc
        except SnapshotBusy as exc:
            raise Busy(str(exc)) from exc
        except QueryError as exc:
            raise QueryFailed(str(exc)) from exc
        finally:
            self._free.put(st)
        for t, s in states.items():  # read in the snapshot the answer comes from, checked whole
            self._remember((snapshot.id, t), s)
            if gets and s is not None:  # a table that is there: the warmer's
                with self._states_lock:
                    _keep_newest(self._hot, t, HOT_TABLES)
        if timing is not None:
            timing.update(wait=(got - started) * 1000, work=spent.get("work", 0.0) * 1000,
                          read=(time.monotonic() - got) * 1000)
        now = int(time.time() * 1e6)
        freshness = {t: (None if s is None else {**lag(s, now), "applied_through": _iso_micros(s.last_change_micros)})
                     for t, s in states.items()}
        return result, snapshot, freshness

    def state(self, reader, table: str):
        """``table``'s sync state at the snapshot ``reader`` reads (None: no such table); looked up once per
        snapshot and table (a commit makes a new snapshot) and read. What a read without DuckLake's transaction
        found (``reads.DetachedReader``) is kept only once that read is checked whole (``read``)."""
        key = (reader.snapshot.id, table)
        with self._states_lock:
            if key in self._states:
                return self._states[key]
        mine = reader.__dict__.setdefault("states_read", {})
        if table not in mine:
            mine[table] = reader.table_state(table)
            if not getattr(reader, "unchecked", False):
                self._remember(key, mine[table])
        return mine[table]

    def _remember(self, key, found) -> None:
        with self._states_lock:
            self._states[key] = found
            while len(self._states) > STATE_CACHE:
                self._states.popitem(last=False)

    def _warm(self, index, every: float) -> None:
        """The warmer (module docstring): each time the WAL index's header is a new one, one read of the tables
        got lately at the newest snapshot. A failed read is left to the gets (logged)."""
        last = None
        while not self._stop.wait(every if self._getting() else every * IDLE_LOOKS):
            if not self._getting():
                continue  # no client gets lately: the first one after reads its snapshot itself
            token = index.token()
            if token is None or token == last:
                continue
            last = token
            with self._states_lock:
                tables = list(self._hot)
            if not tables:
                continue
            try:
                self.read(lambda reader: [reader.warm(t) for t in tables], timeout=WARM_READ_SECONDS,
                          tables=tables, gets=True)
            except Exception as exc:  # noqa: BLE001 - a get meeting this snapshot reads it itself
                log.debug("warming a new snapshot failed: %s: %s", type(exc).__name__, exc)

    def _getting(self) -> bool:
        return time.monotonic() - self._last_get < IDLE_AFTER_SECONDS

    def close(self) -> None:
        self._stop.set()
        if self._warmer is not None:
            self._warmer.join()
        for st in self._all:
            st.close()
        self._all.clear()
        if self.location is not None and self.location.catalog.startswith("sqlite:"):
            close_side_reader(self.location.catalog[len("sqlite:"):])  # its child process (point_reads' reads)


def _keep_newest(cache: OrderedDict, key, most: int) -> None:
    cache[key] = True
    cache.move_to_end(key)
    while len(cache) > most:
        cache.popitem(last=False)


def _iso_micros(micros: int | None) -> str | None:
    import datetime as dt

    if micros is None:
        return None
    return dt.datetime.fromtimestamp(micros / 1e6, dt.timezone.utc).isoformat().replace("+00:00", "Z")
