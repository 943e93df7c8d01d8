"""Get by key from the row index without DuckLake's per-statement catalog reads (decision 0040).

Invariants:

* A point read answers exactly what ``reads.get`` answers at the same snapshot, or does not answer
  (``UNANSWERED``): the caller then runs ``reads.get``. Anything this module does not know (a catalog version
  other than ``CATALOG_VERSION``, an encrypted or S3 store, a file with rows of a later snapshot, a file
  without the ``key`` and ``item`` columns, a file gone, a key found twice) is not answered, never guessed.
* A ``Plan`` describes one table's row index at one snapshot: its data files, the positions deleted in each
  (delete files and DuckLake's inlined deletions) and its inlined rows, all read from catalog rows filtered
  to that snapshot (``begin_snapshot <= s < end_snapshot``). A plan is built inside a read that
  ``reads.read_whole_snapshot`` (or ``reads._detached``) checks (no commit that moves rows landed after its
  snapshot before the check: then every catalog row of that snapshot was there to be read), and is kept for
  later reads only once that check passed (``keep``). Parquet files are never rewritten in place, so a kept
  plan stays true of its snapshot for as long as its files exist.
* ``state`` reads a table's row of ``dynadex.tables`` the same way (a plan of that table, its inlined rows
  cast by DuckDB to the column types), equal to ``Lake.table_state`` at the same snapshot; it too is
  trusted only by a read checked whole.
* What is kept by file path (footers, delete files' positions, a small file's key -> positions map, the rows
  of ``dynadex.tables``' files) is read from the file alone, and files are never rewritten in place: it stays
  true for as long as the file exists; what a snapshot sees of it is the plan's.
* The catalog is read by SQLite itself on a SQLite catalog (``_catalog_rows``, ``newest``), by DuckDB's scan
  of the attached catalog otherwise: the same rows either way. On a SQLite catalog the statements that a new
  snapshot needs go to the catalog's side reader (``catalog/side_reader.py``: Python's ``sqlite3`` in a child
  process, one connection kept open; decision 0047) and, where it fails, to DuckDB's ``sqlite_query``; the
  values come back cast as DuckDB casts them.
* Only files under the store's data path are opened (the sandbox of ``dynadex serve``).
* ``DYNADEX_POINT_READS=0`` turns it off (every get reads through DuckLake, as before).
"""

from __future__ import annotations

import bisect
import os
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

import duckdb

from dynadex import settings
from dynadex.store.catalog.lake import ALIAS, Lake, ReadRetrying
from dynadex.store.catalog.side_reader import side_reader
from dynadex.store.catalog.wal_index import wal_index
from dynadex.store.catalog.state import TableState
from dynadex.store.errors import SideReadFailed, UnusualPointRead
from dynadex.store.layout.names import ROW_SCHEMA, STATE_SCHEMA, literal, quote

META_DB = f"__ducklake_metadata_{ALIAS}"  # the catalog's database, as DuckLake attaches it
META = quote(META_DB)  # (its own tables: META.ducklake_snapshot ...)
CATALOG_VERSION = "1.0"  # the DuckLake catalog layout read here (its spec's table names and columns)
STATE_TABLE = "\x00dynadex.tables"  # the plans' name for ``dynadex.tables`` (no source table is named so)
PLANS = 64  # (table, snapshot) plans kept: a snapshot's plan serves every get until the next commit
FOOTERS = 4096  # Parquet footers (key statistics per row group) kept, by file path
DELETES = 4096  # delete files' positions kept, by file path
SMALL_FILE_ROWS = 65536  # a row file of at most this many rows has its keys kept as a map (``_keys_of``): the
# sync's flushed and folded files hold keys from the whole key range, so nearly every get would read their key
# column (at 10 M items with ten such files: two thirds of a get's Parquet reads)
KEY_MAP_ROWS = 262144  # keys kept in those maps, all files together (the oldest file's dropped first)


def _keep(cache: OrderedDict, key, value, most: int) -> None:
    """``cache[key] = value`` as its newest entry, the oldest dropped past ``most`` (the caller holds the lock)."""
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > most:
        cache.popitem(last=False)


class _Unanswered:
    def __repr__(self) -> str:
        return "UNANSWERED"


UNANSWERED = _Unanswered()


@dataclass(frozen=True)
class DataFile:
    path: str
    deleted: frozenset  # positions (row numbers in the file) deleted at the plan's snapshot
    file_id: int = -1
    in_delete_file: frozenset = frozenset()  # those of ``deleted`` its delete file holds (the rest are inlined)


@dataclass(frozen=True)
class Plan:
    """One table's row index at one snapshot (the module docstring)."""

    table: str
    snapshot: int
    files: tuple[DataFile, ...]
    inlined: dict = field(hash=False)  # key -> [item, ...] of the inlined rows live at the snapshot
    table_id: int = -1
    columns: tuple = ()  # (name, DuckLake type) of the table's columns (read for dynadex.tables): fixed until
    # an ALTER, after which no plan follows this one
    inlined_tables: tuple | None = None  # its inlined-data tables as listed with the changes that made it
    # (``_changes_since``); None: listed when read


@dataclass(frozen=True)
class _Footer:
    groups: tuple  # (first row, rows, min key or None, max key or None) per row group
    highs: tuple | None = None  # each group's max key, when the groups are in key order (every group has
    # statistics and none starts below the one before's max: a key-sorted file); None otherwise

    def candidates(self, key: str) -> list[int]:
        """The row groups whose key statistics do not rule ``key`` out, in file order: found by bisection in a
        key-sorted file (a 10 M-item file has hundreds of groups), else by looking at every group."""
        if self.highs is None:
            return [g for g, (_, _, lo, hi) in enumerate(self.groups) if lo is None or lo <= key <= hi]
        out, g = [], bisect.bisect_left(self.highs, key)  # the first group whose max is not below the key
        while g < len(self.groups) and self.groups[g][2] <= key:  # minima only grow from there
            out.append(g)
            g += 1
        return out


class PointReads:
    """Plans per (table, snapshot), Parquet footers and delete files per path, shared by a process's readers
    (thread-safe); ``counts`` says how gets were answered (``fast``, ``fallback``, ``plans``, and each reason
    not to answer)."""

    def __init__(self, data_path: str):
        self.data_path = os.path.realpath(data_path)
        self._plans: OrderedDict = OrderedDict()
        self._footers: OrderedDict = OrderedDict()
        self._deletes: OrderedDict = OrderedDict()
        self._key_maps: OrderedDict = OrderedDict()  # small row file -> key -> positions (``_keys_of``)
        self._key_map_rows = 0
        self._state_files: OrderedDict = OrderedDict()  # (file of dynadex.tables, table, columns) -> its rows
        self._columns: OrderedDict = OrderedDict()  # Parquet file -> its column names
        self._unusual: OrderedDict = OrderedDict()  # (table, snapshot) whose plan could not be made
        self._changes: OrderedDict = OrderedDict()  # (snapshot, later snapshot) -> the changes between
        self._inlined_columns: dict = {}  # an inlined-data table -> its columns (its name holds its version)
        self._snapshots: dict = {}  # snapshot id -> commit time, of snapshots read whole through DuckLake
        self._warming: dict = {}  # snapshot id -> an event set once the read reading it first is done
        self._lock = threading.Lock()
        self.counts: Counter = Counter()

    # ------------------------------------------------------------------ the get

    def get(self, lake: Lake, snapshot: int, table: str, key: str, pending: list) -> object:
        """The item stored under ``key`` (a key text, ``parse_key``'s) in ``table`` at ``snapshot``, None when
        absent, or ``UNANSWERED``. A plan built here is appended to ``pending`` (kept by ``keep`` once the read's
        snapshot is checked whole)."""
        found = self._guarded(table, snapshot, lambda: self._lookup(self._plan(lake, snapshot, table, pending), key))
        if found is not UNANSWERED:
            self.count("fast")
        return found

    def prepare(self, lake: Lake, snapshot: int, table: str, pending: list) -> bool:
        """Make ``table``'s plan at ``snapshot`` as a get would (appended to ``pending``, kept by ``keep``), with
        no lookup: a read that warms a new snapshot before the gets meet it (``serve.readers``). False: not made
        (a get at that snapshot then goes through DuckLake, or tries again)."""
        return self._guarded(table, snapshot, lambda: self._plan(lake, snapshot, table, pending)) is not UNANSWERED

    def _guarded(self, table: str, snapshot: int, read):
        """``read()``, or ``UNANSWERED`` (counted as a fallback) where the point read does not answer."""
        if (table, snapshot) in self._unusual:  # known not to be read here: no second try at the catalog
            self.count("fallback")
            return UNANSWERED
        try:
            return read()
        except UnusualPointRead as exc:
            self.count("fallback", f"fallback: {exc}")
            if str(exc) != "key stored twice":
                with self._lock:
                    _keep(self._unusual, (table, snapshot), True, PLANS)
            return UNANSWERED
        except (duckdb.Error, OSError) as exc:  # a catalog locked, a file gone (merged, expired): DuckLake answers
            self.count("fallback", f"fallback: {type(exc).__name__}: {str(exc)[:120]}")
            with self._lock:
                self._plans.pop((table, snapshot), None)  # made again by the next read of that snapshot
            return UNANSWERED

    def count(self, *names: str) -> None:
        with self._lock:
            for n in names:
                self.counts[n] += 1

    def keep(self, plans: list, snapshot=None) -> None:
        """Plans built during a read whose snapshot was checked whole: later reads of that snapshot use them.
        ``snapshot`` (a ``reads.Snapshot``): that read's, remembered (``read_whole``)."""
        with self._lock:
            if snapshot is not None:
                self._snapshots[snapshot.id] = snapshot.committed_at
                while len(self._snapshots) > PLANS:
                    self._snapshots.pop(next(iter(self._snapshots)))
            for plan in plans:
                _keep(self._plans, (plan.table, plan.snapshot), plan, PLANS)

    def read_whole(self, snapshot: int) -> bool:
        """Whether a checked read has read ``snapshot`` (through DuckLake, with point reads)."""
        with self._lock:
            return snapshot in self._snapshots

    def warming(self, snapshot: int):
        """``(event, mine)``: ``mine`` when this read is the first to read ``snapshot`` (through DuckLake); the
        others wait on ``event``, set by ``warmed``."""
        with self._lock:
            event = self._warming.get(snapshot)
            if event is not None:
                return event, False
            event = self._warming[snapshot] = threading.Event()
            return event, True

    def warmed(self, snapshot: int) -> None:
        with self._lock:
            event = self._warming.pop(snapshot, None)
        if event is not None:
            event.set()

    def kept(self, table: str, snapshot: int) -> bool:
        with self._lock:
            return (table, snapshot) in self._plans

    def _plan(self, lake: Lake, snapshot: int, table: str, pending: list) -> Plan:
        with self._lock:
            plan = self._plans.get((table, snapshot))
        if plan is not None:
            return plan
        for p in pending:
            if p.table == table and p.snapshot == snapshot:
                return p
        with self._lock:
            before = max((p for (t, s), p in self._plans.items() if t == table and s < snapshot),
                         key=lambda p: p.snapshot, default=None)
        plan = before is not None and self._follow(lake, before, snapshot)
        if plan:
            self.count("followed")
        else:
            plan = self._build(lake, snapshot, table)
        pending.append(plan)
        self.count("plans")
        return plan

    def _lookup(self, plan: Plan, key: str):
        found = list(plan.inlined.get(key, ()))
        for f in plan.files:
            found += self._in_file(f, key)
        if len(found) > 1:
            raise UnusualPointRead("key stored twice")
        return found[0] if found else None

    # ------------------------------------------------------------------ the table's sync state

    def state(self, lake: Lake, snapshot: int, table: str, pending: list):
        """``table``'s row of ``dynadex.tables`` at ``snapshot`` as a ``TableState`` (None: no such table), read as
        DuckLake would (its files, less deleted positions, and its live inlined rows, each value cast by DuckDB
        to the column's type), or ``UNANSWERED``. The plan of ``dynadex.tables`` it makes joins ``pending``."""
        try:
            plan = self._state_plan(lake, snapshot, pending)
            found = _state_rows(_cursor(lake), plan, snapshot, table, self._names, self._inlined_columns,
                                self._state_file_rows)
        except UnusualPointRead as exc:
            self.count("fallback", f"fallback: {exc}")
            return UNANSWERED
        except (duckdb.Error, OSError) as exc:
            self.count("fallback", f"fallback: {type(exc).__name__}: {str(exc)[:120]}")
            return UNANSWERED
        if len(found) > 1:
            self.count("fallback", "fallback: two state rows")
            return UNANSWERED
        self.count("states")
        return TableState.from_row(*found[0]) if found else None

    def _state_plan(self, lake: Lake, snapshot: int, pending: list) -> Plan:
        key = (STATE_TABLE, snapshot)
        with self._lock:
            plan = self._plans.get(key)
            older = [p for (t, s), p in self._plans.items() if t == STATE_TABLE and s < snapshot]
            before = None if plan else max(older, key=lambda p: p.snapshot, default=None)
        if plan is not None:
            return plan
        for p in pending:
            if p.table == STATE_TABLE and p.snapshot == snapshot:
                return p
        plan = before is not None and self._follow(lake, before, snapshot, with_rows=False)
        if not plan:
            built = self._build(lake, snapshot, "tables", STATE_SCHEMA)
            columns = _cursor(lake).execute(
                f"SELECT column_name, column_type FROM {META}.ducklake_column WHERE table_id = $t AND "
                "parent_column IS NULL AND begin_snapshot <= $s AND (end_snapshot IS NULL OR end_snapshot > $s) "
                "ORDER BY column_order", {"t": built.table_id, "s": snapshot}).fetchall()
            plan = Plan(STATE_TABLE, snapshot, built.files, {}, built.table_id, tuple(columns))
        pending.append(plan)
        return plan

    def _state_file_rows(self, key: tuple, read):
        """The rows of one file of ``dynadex.tables`` for one table (``key``: path, table, columns), ``read()``
        once (files are never rewritten)."""
        with self._lock:
            got = self._state_files.get(key)
        if got is None:
            got = read()
            with self._lock:
                _keep(self._state_files, key, got, FOOTERS)
        return got

    def _names(self, path: str) -> list[str]:
        """The column names of a Parquet file (footers cached by path: files are never rewritten)."""
        with self._lock:
            got = self._columns.get(path)
        if got is None:
            import pyarrow.parquet as pq

            got = pq.read_schema(path).names
            with self._lock:
                _keep(self._columns, path, got, FOOTERS)
        return got

    # ------------------------------------------------------------------ the files

    def _in_file(self, f: DataFile, key: str) -> list[str]:
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        footer, meta = self._footer(f.path)
        out: list[str] = []
        pf = None
        if meta.num_rows <= SMALL_FILE_ROWS:
            live = [p for p in self._keys_of(f.path).get(key, ()) if p not in f.deleted]
            for p in live:
                g = bisect.bisect_right([first for first, *_ in footer.groups], p) - 1
                if pf is None:
                    pf = pq.ParquetFile(f.path, metadata=meta)
                items = pf.read_row_group(g, columns=["item"], use_threads=False).column(0)
                out.append(items[p - footer.groups[g][0]].as_py())
            return out
        for g in footer.candidates(key):
            first = footer.groups[g][0]
            if pf is None:
                pf = pq.ParquetFile(f.path, metadata=meta)
            keys = pf.read_row_group(g, columns=["key"], use_threads=False).column(0)
            at = pc.indices_nonzero(pc.equal(keys, key)).to_pylist()
            live = [i for i in at if first + i not in f.deleted]
            if live:
                items = pf.read_row_group(g, columns=["item"], use_threads=False).column(0)
                out += [items[i].as_py() for i in live]
        return out

    def _footer(self, path: str):
        with self._lock:
            got = self._footers.get(path)
        if got is not None:
            return got
        import pyarrow.parquet as pq

        meta = pq.read_metadata(path)
        names = [meta.schema.column(i).path for i in range(meta.num_columns)]
        if "key" not in names or "item" not in names:
            raise UnusualPointRead("a row file without key and item columns")
        k = names.index("key")
        groups, first = [], 0
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            st = rg.column(k).statistics
            lo = hi = None
            if st is not None and st.has_min_max and isinstance(st.min, str) and isinstance(st.max, str):
                lo, hi = st.min, st.max
            groups.append((first, rg.num_rows, lo, hi))
            first += rg.num_rows
        ordered = all(lo is not None for _, _, lo, _ in groups) and all(
            a[2] <= a[3] <= b[2] for a, b in zip(groups, groups[1:])) and all(lo <= hi for _, _, lo, hi in groups)
        got = (_Footer(tuple(groups), tuple(g[3] for g in groups) if ordered else None), meta)
        with self._lock:
            _keep(self._footers, path, got, FOOTERS)
        return got

    def _keys_of(self, path: str) -> dict:
        """key -> its positions (row numbers) in the small row file ``path``, read once (files are never
        rewritten); kept for ``KEY_MAP_ROWS`` keys in all."""
        with self._lock:
            got = self._key_maps.get(path)
        if got is not None:
            return got
        import pyarrow.parquet as pq

        got: dict = {}
        for p, k in enumerate(pq.read_table(path, columns=["key"], use_threads=False).column(0).to_pylist()):
            got.setdefault(k, []).append(p)
        with self._lock:
            if path in self._key_maps:  # another read made it meanwhile
                return self._key_maps[path]
            self._key_maps[path] = got
            self._key_map_rows += sum(len(v) for v in got.values())
            while self._key_map_rows > KEY_MAP_ROWS and len(self._key_maps) > 1:
                _, dropped = self._key_maps.popitem(last=False)
                self._key_map_rows -= sum(len(v) for v in dropped.values())
        return got

    def _deleted_in(self, path: str) -> frozenset:
        with self._lock:
            got = self._deletes.get(path)
        if got is not None:
            return got
        import pyarrow.parquet as pq

        got = frozenset(pq.read_table(path, columns=["pos"], use_threads=False).column(0).to_pylist())
        with self._lock:
            _keep(self._deletes, path, got, DELETES)
        return got

    def _inside(self, path: str) -> str:
        real = os.path.realpath(path)
        if not real.startswith(self.data_path + os.sep):
            raise UnusualPointRead("a file outside the data path")
        return real

    # ------------------------------------------------------------------ the catalog

    def _follow(self, lake: Lake, before: Plan, s: int, with_rows: bool = True) -> Plan | None:
        """``before``'s table at snapshot ``s``, made from ``before`` when every commit since changed the table
        only by inlined rows and inlined deletions (a stream batch of a few rows): its files and delete files
        are then the same, and only the inlined rows and deletions are read again. None: build it whole."""
        con = _cursor(lake)
        with self._lock:
            got = self._changes.get((before.snapshot, s))
        if got is None:
            got = _changes_since(con, before.snapshot, s)
            with self._lock:  # the state's plan and the row index's follow the same snapshots
                _keep(self._changes, (before.snapshot, s), got, 8)
        rows, listed, present = got
        if len(rows) != s - before.snapshot:
            return None  # snapshots missing from the list (expired between): build it whole
        mine, inlined = str(before.table_id), False
        for _, changes in rows:
            for change in (changes or "").split(","):
                kind, _, of = change.partition(":")
                if kind in ("inlined_insert", "inlined_delete"):
                    inlined = inlined or of == mine
                elif kind not in ("inserted_into_table", "deleted_from_table") or of == mine:
                    return None  # files of this table changed, or a change of any other kind
        tables = None if listed is None else tuple(listed.get(before.table_id, ()))
        if not inlined:
            return Plan(before.table, s, before.files, before.inlined, before.table_id, before.columns, tables)
        if present is None:
            deletes = _inlined_deletes(con, before.table_id, s)
            rows = _inlined_rows(con, before.table_id, s) if with_rows else {}
        else:
            deletes, rows = _inlined_listed(con, before.table_id, s, present, tables if with_rows else ())
        files = tuple(DataFile(f.path, frozenset(f.in_delete_file | deletes.get(f.file_id, set())), f.file_id,
                               f.in_delete_file) for f in before.files)
        return Plan(before.table, s, files, rows, before.table_id, before.columns, tables)

    def _build(self, lake: Lake, s: int, table: str, schema: str = ROW_SCHEMA) -> Plan:
        """``table``'s row index (or table ``schema.table``) at snapshot ``s``, from the catalog's rows (DuckLake's
        spec, version 1.0), read on a cursor of ``lake``'s connection: its own transaction, so a failure leaves
        the read's alone. Inlined rows are read (``key`` and ``item``) for the row index only."""
        if lake.location.is_s3:
            raise UnusualPointRead("an S3 data path")
        con = _cursor(lake)
        live = "begin_snapshot <= $s AND (end_snapshot IS NULL OR end_snapshot > $s)"
        meta = dict(con.execute(f"SELECT key, value FROM {META}.ducklake_metadata WHERE scope IS NULL "
                                "AND key IN ('version', 'data_path')").fetchall())
        if meta.get("version") != CATALOG_VERSION or not meta.get("data_path"):
            raise UnusualPointRead(f"catalog version {meta.get('version')}")
        found = con.execute(
            f"SELECT t.table_id, s.path, s.path_is_relative, t.path, t.path_is_relative "
            f"FROM (SELECT * FROM {META}.ducklake_table WHERE {live}) t "
            f"JOIN (SELECT * FROM {META}.ducklake_schema WHERE {live}) s USING (schema_id) "
            "WHERE s.schema_name = $schema AND t.table_name = $table",
            {"s": s, "schema": schema, "table": table}).fetchall()
        if len(found) != 1:
            raise UnusualPointRead("no such table")
        table_id, schema_path, schema_rel, table_path, table_rel = found[0]
        base = meta["data_path"]
        table_base = ((base + schema_path) if schema_rel else schema_path) if schema_path is not None else base
        table_base = (table_base + table_path) if table_rel else table_path

        def full(path: str, relative) -> str:
            return self._inside(table_base + path if relative else path)

        files = con.execute(
            f"SELECT d.data_file_id, d.path, d.path_is_relative, d.partial_max, d.encryption_key, d.file_format, "
            f"x.path, x.path_is_relative, x.partial_max, x.encryption_key, x.format "
            f"FROM (SELECT * FROM {META}.ducklake_data_file WHERE table_id = $t AND {live}) d "
            f"LEFT JOIN (SELECT * FROM {META}.ducklake_delete_file WHERE table_id = $t AND {live}) x "
            "USING (data_file_id) ORDER BY d.data_file_id", {"s": s, "t": table_id}).fetchall()
        ids = [r[0] for r in files]
        if len(set(ids)) != len(ids):
            raise UnusualPointRead("two delete files for one data file")
        inlined_deletes = _inlined_deletes(con, table_id, s)
        out = []
        for fid, path, rel, partial, key, fmt, dpath, drel, dpartial, dkey, dfmt in files:
            if key is not None or dkey is not None:
                raise UnusualPointRead("an encrypted file")
            if (fmt or "parquet") != "parquet" or (dpath is not None and (dfmt or "parquet") != "parquet"):
                raise UnusualPointRead("a file not in Parquet")
            if (partial is not None and partial > s) or (dpartial is not None and dpartial > s):
                raise UnusualPointRead("a file holding rows of a later snapshot")
            in_file = self._deleted_in(full(dpath, drel)) if dpath is not None else frozenset()
            out.append(DataFile(full(path, rel), frozenset(in_file | inlined_deletes.get(fid, set())), fid, in_file))
        return Plan(table, s, tuple(out), _inlined_rows(con, table_id, s) if schema == ROW_SCHEMA else {}, table_id)


def _cursor(lake: Lake):
    """A second connection to ``lake``'s database (same attachments, same locked settings), kept with the lake
    (which serves one read at a time) until it reopens; its reads wait out a catalog locked by a commit."""
    raw = lake.con._con if isinstance(lake.con, ReadRetrying) else lake.con
    got = lake.__dict__.get("_point_cursor")
    if got is None or got[0] is not raw:
        cursor = ReadRetrying(raw.cursor())
        cursor.sqlite = lake.location.catalog.startswith("sqlite:")  # ``_catalog_rows`` asks SQLite itself
        cursor.wal_index = (wal_index(lake.location.catalog[len("sqlite:"):])
                            if cursor.sqlite and settings.CATALOG_WAL_INDEX.read() else None)  # ``newest``
        cursor.side = (side_reader(lake.location.catalog[len("sqlite:"):])
                       if cursor.sqlite and settings.CATALOG_SIDE_READER.read() else None)  # ``_catalog_rows``
        got = (raw, cursor)
        lake.__dict__["_point_cursor"] = got
    return got[1]


def _catalog_rows(con, sql, select: str = "*", missing_ok: bool = False, kinds: tuple | None = None) -> list:
    """The rows of ``sql(prefix)``, a query over the catalog's tables, each named ``prefix + name`` (values in it
    are spliced literals: ints and quoted names only), as ``select`` (DuckDB SQL over its columns: casts). On a
    SQLite catalog SQLite itself answers it: through the side reader where there is one (``con.side``: Python's
    ``sqlite3`` in a child process on a kept connection, some 20 us a statement plus the pipe, where a
    ``sqlite_query`` costs 0.9-1.6 ms, most of it opening a SQLite connection and parsing the catalog's schema;
    with ``kinds`` only),
    else through ``sqlite_query`` (the filter runs where the rows are, on SQLite's indexes; about 0.3 ms less a
    statement than DuckDB's scan, which reads each table whole, and the more snapshots the catalog holds the more
    less); else DuckDB's scan of the attached catalog does. ``kinds``: what ``select`` makes of each column, in
    order, done in Python to the side reader's values (``str`` for ``CAST(c AS VARCHAR)``, ``int`` for ``BIGINT``,
    ``_cast_to``'s for the rest): a DuckDB statement to cast them would cost more than the read (every statement
    on the store's connection starts a DuckLake transaction). ``missing_ok``: no rows when a table named is not
    there (DuckLake makes its inlined-data and inlined-deletion tables at their first row, and may drop them)."""
    side = getattr(con, "side", None)
    if side is not None and kinds is not None:
        try:
            ((names, rows),) = side.read([sql("")])
            return [tuple(None if v is None else kind(v) for kind, v in zip(kinds, row)) for row in rows]
        except SideReadFailed as exc:
            if missing_ok and "no such table" in str(exc).lower():
                return []
            _count_side_failure(con, exc)  # then read as without the side reader
        except (duckdb.Error, ValueError, TypeError) as exc:  # a value DuckDB's cast or ``kinds`` does not take
            _count_side_failure(con, exc)
    try:
        if getattr(con, "sqlite", False):
            return con.execute(f"SELECT {select} FROM sqlite_query({literal(META_DB)}, {literal(sql(''))})").fetchall()
        return con.execute(f"SELECT {select} FROM ({sql(META + '.')})").fetchall()
    except duckdb.Error as exc:
        if missing_ok and (isinstance(exc, duckdb.CatalogException) or "no such table" in str(exc).lower()):
            return []
        raise


def _cast_to(con, duckdb_type: str):
    """A function giving a SQLite value (the side reader's) as DuckDB's ``CAST(value AS duckdb_type)`` gives the
    value ``sqlite_query`` reads (the catalog's columns are VARCHAR, BIGINT, DOUBLE, BOOLEAN: DuckLake keeps an
    inlined TIMESTAMPTZ as its text); ``ValueError`` for a value it does not know, which is then read through
    DuckDB instead. A time comes back in the connection's time zone, as DuckDB's do."""
    if duckdb_type == "VARCHAR":
        return lambda v: v if isinstance(v, str) else _plain(v, (int,), str)
    if duckdb_type in ("BIGINT", "INTEGER"):
        return lambda v: _plain(v, (int,), int)
    if duckdb_type == "DOUBLE":
        return lambda v: _plain(v, (int, float), float)
    if duckdb_type == "BOOLEAN":
        return _boolean
    if duckdb_type == "TIMESTAMPTZ":
        zone = _time_zone(con)
        return lambda v: _timestamptz(v, zone)
    raise ValueError(f"no cast to {duckdb_type}")


def _boolean(v) -> bool:
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    if v in ("true", "false"):
        return v == "true"
    raise ValueError(f"{v!r} where a boolean was expected")


def _plain(v, types: tuple, kind):
    if not isinstance(v, types) or isinstance(v, bool):
        raise ValueError(f"a {type(v).__name__} where {kind.__name__} was expected")
    return kind(v)


def _timestamptz(v, zone):
    import datetime as dt

    if not isinstance(v, str):
        raise ValueError(f"a {type(v).__name__} where a time was expected")
    t = dt.datetime.fromisoformat(v)  # DuckDB's text of a TIMESTAMPTZ: 2026-12-07 17:03:26.23968+00
    if t.tzinfo is None:
        raise ValueError(f"a time without its offset: {v!r}")
    return t.astimezone(zone)


def _time_zone(con):
    """The time zone of the TIMESTAMPTZ values DuckDB gives on ``con`` (looked at once per cursor)."""
    zone = con.__dict__.get("time_zone")
    if zone is None:
        zone = con.__dict__["time_zone"] = con.execute(
            "SELECT TIMESTAMPTZ '2000-01-01 00:00:00+00'").fetchone()[0].tzinfo
    return zone


def _count_side_failure(con, exc: BaseException) -> None:
    """A side read that did not answer (its rows are read through DuckDB instead): counted on the cursor."""
    con.__dict__["side_failures"] = con.__dict__.get("side_failures", 0) + 1
    con.__dict__["side_failed"] = f"{type(exc).__name__}: {str(exc)[:200]}"


# the newest snapshot asked of SQLite itself (``sqlite_query``: its primary key finds the row), where a read of
# ``{META}.ducklake_snapshot`` has DuckDB's SQLite scanner read the whole table (one row per commit since the
# last expiry) and sort it
NEWEST_SQLITE = (f"SELECT CAST(snapshot_id AS BIGINT), CAST(snapshot_time AS TIMESTAMPTZ) FROM sqlite_query("
                 f"{literal(META_DB)}, 'SELECT snapshot_id, snapshot_time FROM ducklake_snapshot "
                 "ORDER BY snapshot_id DESC LIMIT 1')")
NEWEST_SIDE = "SELECT snapshot_id, snapshot_time FROM ducklake_snapshot ORDER BY snapshot_id DESC LIMIT 1"
NEWEST_SCAN = (f"SELECT snapshot_id, CAST(snapshot_time AS TIMESTAMPTZ) FROM {META}.ducklake_snapshot "
               "ORDER BY snapshot_id DESC LIMIT 1")


_NEWEST: dict = {}  # WAL index -> (its token, the newest snapshot read after that token was taken)
_NEWEST_LOCK = threading.Lock()


def newest(lake: Lake) -> tuple[int, object]:
    """(id, commit time) of the catalog's newest snapshot, read from the catalog's own table (a third of the
    cost of DuckLake's ``current_snapshot()``, which reads more of the catalog): on a SQLite catalog by SQLite
    itself (``NEWEST_SQLITE``, half the scan's cost), else through DuckDB's scan of the catalog's table. On a
    SQLite catalog in WAL mode the read is skipped while the WAL index's header is the one taken right before
    the last read (``catalog.wal_index``: no commit since, so that read's snapshot is still the newest; a
    pread and a stat, where the read costs 0.8-0.9 ms of CPU)."""
    cursor = _cursor(lake)
    if not cursor.sqlite:
        return tuple(cursor.execute(NEWEST_SCAN).fetchone())
    index = cursor.wal_index
    token = index.token() if index is not None else None
    if token is not None:
        with _NEWEST_LOCK:
            seen = _NEWEST.get(index)
        if seen is not None and seen[0] == token:
            return seen[1]
    if cursor.side is not None:  # read after the token: at least as new as it (its time cast as DuckDB would)
        got = tuple(_catalog_rows(cursor, lambda t: NEWEST_SIDE,
                                  "CAST(snapshot_id AS BIGINT), CAST(snapshot_time AS TIMESTAMPTZ)",
                                  kinds=(int, _cast_to(cursor, "TIMESTAMPTZ")))[0])
    else:
        got = tuple(cursor.execute(NEWEST_SQLITE).fetchone())  # read after the token: at least as new as it
    if token is not None:
        with _NEWEST_LOCK:
            _NEWEST[index] = (token, got)
    return got


def commit_time(lake: Lake, snapshot: int):
    """When ``snapshot`` was committed (the value DuckLake's ``snapshots()`` shows), from the catalog's table."""
    return _cursor(lake).execute(f"SELECT CAST(snapshot_time AS TIMESTAMPTZ) FROM {META}.ducklake_snapshot "
                                 "WHERE snapshot_id = ?", [snapshot]).fetchone()[0]


# DuckLake's names in ``ducklake_snapshot_changes`` of the changes ``reads.ROW_KEEPING_CHANGES`` names as
# ``snapshots()`` shows them (its ``tables_inserted_into`` is ``inserted_into_table`` here, and so on)
ROW_KEEPING_KINDS = frozenset({"inlined_insert", "inlined_delete", "inserted_into_table", "deleted_from_table",
                               "altered_table"})


def moving_since(lake: Lake, snapshot: int) -> bool:
    """Whether a snapshot after ``snapshot`` moved rows (``reads._moving_commits``, read from the catalog's own
    tables: one scan when none came after, two when some did; a change of a kind not known moves rows)."""
    if newest(lake)[0] == snapshot:
        return False
    rows = _catalog_rows(_cursor(lake), lambda t: f"SELECT changes_made FROM {t}ducklake_snapshot_changes "
                         f"WHERE snapshot_id > {int(snapshot)}", "CAST(changes_made AS VARCHAR)", kinds=(str,))
    return any(change.partition(":")[0] not in ROW_KEEPING_KINDS
               for (changes,) in rows for change in (changes or "").split(",") if change)


def _inlined_deletes(con, table_id: int, s: int) -> dict:
    """data file id -> positions deleted at ``s`` by DuckLake's inlined deletions (its table
    ``ducklake_inlined_delete_<table id>``, made at the table's first one; its ``row_id`` is the position in the
    file, as DuckLake's delete filter reads it)."""
    out: dict = {}
    name = quote(f"ducklake_inlined_delete_{int(table_id)}")
    for fid, row in _catalog_rows(con, lambda t: f"SELECT file_id, row_id FROM {t}{name} WHERE begin_snapshot <= {int(s)}",
                                  "CAST(file_id AS BIGINT), CAST(row_id AS BIGINT)", missing_ok=True, kinds=(int, int)):
        out.setdefault(fid, set()).add(row)
    return out


def _inlined_rows(con, table_id: int, s: int, tables=None) -> dict:
    """key -> items of the table's inlined rows live at ``s``, from every inlined-data table of the table (one
    per schema version that held inlined rows; ``tables``, when listed already)."""
    out: dict = {}
    for name in _inlined_tables(con, table_id) if tables is None else tables:
        for key, item in _catalog_rows(con, lambda t: f"SELECT key, item FROM {t}{quote(name)} WHERE begin_snapshot "
                                       f"<= {int(s)} AND (end_snapshot IS NULL OR end_snapshot > {int(s)})",
                                       "CAST(key AS VARCHAR), CAST(item AS VARCHAR)", missing_ok=True, kinds=(str, str)):
            out.setdefault(key, []).append(item)
    return out


def _changes_since(con, b: int, s: int) -> tuple[list, dict | None, set | None]:
    """``(changes, listed, present)``: (snapshot id, changes) of each snapshot after ``b`` up to ``s``; on a SQLite
    catalog, read in the same statement (one SQLite read where three were), every table's inlined-data tables
    (table id -> names, ``ducklake_inlined_data_tables``) and the inlined-deletion tables there; else None and
    None (each read when needed). Listed after ``s`` was committed: a table holding rows of ``s`` was there
    when it committed, and one dropped since went with a commit that moved rows, which fails the read's
    check (``moving_since``), as when each is read on its own."""
    if not getattr(con, "sqlite", False):
        rows = _catalog_rows(con, lambda t: f"SELECT snapshot_id, changes_made FROM {t}ducklake_snapshot_changes "
                             f"WHERE snapshot_id > {int(b)} AND snapshot_id <= {int(s)}",
                             "CAST(snapshot_id AS BIGINT), CAST(changes_made AS VARCHAR)")
        return rows, None, None
    rows, listed, present = [], {}, set()
    for kind, n, text in _catalog_rows(
            con, lambda t: f"SELECT 'c' AS kind, snapshot_id AS n, changes_made AS v FROM ducklake_snapshot_changes "
                           f"WHERE snapshot_id > {int(b)} AND snapshot_id <= {int(s)} "
                           "UNION ALL SELECT 't', table_id, table_name FROM ducklake_inlined_data_tables "
                           "UNION ALL SELECT 'd', NULL, name FROM sqlite_master WHERE type = 'table' AND "
                           "substr(name, 1, 24) = 'ducklake_inlined_delete_'",
            "CAST(kind AS VARCHAR), CAST(n AS BIGINT), CAST(v AS VARCHAR)", kinds=(str, int, str)):
        if kind == "c":
            rows.append((n, text))
        elif kind == "t":
            listed.setdefault(n, []).append(text)
        else:
            present.add(text)
    return rows, listed, present


def _inlined_listed(con, table_id: int, s: int, present: set, tables) -> tuple[dict, dict]:
    """``(deletes, rows)`` as ``_inlined_deletes`` and ``_inlined_rows`` give them, read in one statement from the
    tables ``_changes_since`` listed (the inlined-deletion table if ``present``, the inlined-data ``tables``): a
    listed table gone since fails the statement (the read goes through DuckLake), never answers no rows."""
    deletion = f"ducklake_inlined_delete_{int(table_id)}"
    parts = [f"SELECT 'd' AS kind, CAST(file_id AS TEXT) AS a, CAST(row_id AS TEXT) AS b FROM {quote(deletion)} "
             f"WHERE begin_snapshot <= {int(s)}"] if deletion in present else []
    parts += [f"SELECT 'r' AS kind, key AS a, item AS b FROM {quote(name)} WHERE begin_snapshot <= {int(s)} AND (end_snapshot IS NULL "
              f"OR end_snapshot > {int(s)})" for name in tables]
    deletes: dict = {}
    rows: dict = {}
    if not parts:
        return deletes, rows
    for kind, a, b in _catalog_rows(con, lambda t: " UNION ALL ".join(parts),
                                    "CAST(kind AS VARCHAR), CAST(a AS VARCHAR), CAST(b AS VARCHAR)", kinds=(str, str, str)):
        if kind == "d":
            deletes.setdefault(int(a), set()).add(int(b))
        else:
            rows.setdefault(a, []).append(b)
    return deletes, rows


def _inlined_tables(con, table_id: int) -> list[str]:
    """The names of the table's inlined-data tables (one per schema version that held inlined rows)."""
    return [r[0] for r in _catalog_rows(con, lambda t: "SELECT table_name FROM "
                                        f"{t}ducklake_inlined_data_tables WHERE table_id = {int(table_id)}",
                                        "CAST(table_name AS VARCHAR)", kinds=(str,))]


# DuckLake's column types (``ducklake_column.column_type``) of ``dynadex.tables`` -> DuckDB's
DUCKDB_TYPES = {"varchar": "VARCHAR", "int64": "BIGINT", "int32": "INTEGER", "timestamptz": "TIMESTAMPTZ",
                "boolean": "BOOLEAN", "float64": "DOUBLE"}


def _state_rows(con, plan: Plan, s: int, table: str, names_of, inlined_columns: dict,
                file_rows=None) -> list[tuple[list[str], tuple]]:
    """(column names, row) of ``plan``'s table (``dynadex.tables``) whose ``table_name`` is ``table``, at ``s``.
    ``inlined_columns`` caches each inlined-data table's columns; ``file_rows(key, read)``, if given, each file's
    rows of ``table`` (files are never rewritten: a snapshot whose batches changed only inlined rows reads no
    file again)."""
    columns = plan.columns
    if not columns or any(t not in DUCKDB_TYPES for _, t in columns):
        raise UnusualPointRead(f"state columns {columns}")
    names = [n for n, _ in columns]

    def select(have) -> str:
        return ", ".join(f"CAST({quote(n)} AS {DUCKDB_TYPES[t]})" if n in have else f"CAST(NULL AS {DUCKDB_TYPES[t]})"
                         for n, t in columns)

    out = []
    for f in plan.files:
        def read(path=f.path):
            return con.execute(f"SELECT file_row_number, {select(set(names_of(path)))} FROM "
                               f"read_parquet({literal(path)}, file_row_number = true) WHERE table_name = ?",
                               [table]).fetchall()

        rows = read() if file_rows is None else file_rows((f.path, table, columns), read)
        out += [(names, row[1:]) for row in rows if row[0] not in f.deleted]
    for name in _inlined_tables(con, plan.table_id) if plan.inlined_tables is None else plan.inlined_tables:
        def live(t: str, name=name) -> str:
            return (f"SELECT * FROM {t}{quote(name)} WHERE table_name = {literal(table)} AND begin_snapshot <= "
                    f"{int(s)} AND (end_snapshot IS NULL OR end_snapshot > {int(s)})")

        if getattr(con, "side", None) is not None:  # its columns come with its rows, cast here as select's
            try:
                ((got, rows),) = con.side.read([live("")])
                at = {n: i for i, n in enumerate(got)}
                casts = [(at.get(n), _cast_to(con, DUCKDB_TYPES[t])) for n, t in columns]
                rows = [tuple(None if i is None or row[i] is None else cast(row[i]) for i, cast in casts)
                        for row in rows]
            except SideReadFailed as exc:
                if "no such table" in str(exc).lower():
                    continue
                _count_side_failure(con, exc)
            except (duckdb.Error, ValueError, TypeError) as exc:
                _count_side_failure(con, exc)
            else:
                out += [(names, row) for row in rows]
                continue
        have = inlined_columns.get(name)
        if have is None:
            try:
                have = {d[0] for d in con.execute(f"SELECT * FROM {META}.{quote(name)} LIMIT 0").description}
            except duckdb.CatalogException:
                continue
            inlined_columns[name] = have
        out += [(names, row) for row in _catalog_rows(con, live, select(have), missing_ok=True)]
    return out
