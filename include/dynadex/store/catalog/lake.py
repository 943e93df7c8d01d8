"""One DuckDB connection attached to a store's DuckLake catalog.

Invariants:

* Every change goes through ``transaction()``: one DuckLake snapshot,
  all or nothing. Readers in any process see either the snapshot before or
  the snapshot after, never half of it.
* A read-only Lake attaches the catalog READ_ONLY, so nothing it runs can
  write, whatever the SQL.
* The sync-state tables (schema ``dynadex``) live in the same catalog as the
  data, so state and data commit together.
* Writers that meet another process's commit (a stream batch and
  maintenance, say) do not fail: ``retrying`` runs the whole transaction
  again on a fresh connection, a few times, after a growing random pause.
  Every write it wraps is idempotent (same inputs, same effect), so a commit
  reported as failed that had in fact landed is harmless to repeat.
* On a SQLite catalog those writes also take turns (``writer_lock``): two
  writers never overlap, so neither's snapshot goes stale under the other.
* While a writing Lake on a SQLite catalog is open, its process holds a
  connection to the catalog (``catalog_hold``), so no commit or read of any
  process waits a whole second for the WAL to be rebuilt (decision 0023).
* A write never runs on a connection that has not seen the catalog's last
  commit by another writer: it starts on a fresh connection instead. A read
  that meets the cache DuckLake kept from before another process's
  maintenance runs once more on a fresh connection (decision 0018).
"""

from __future__ import annotations

import itertools
import logging
import random
import time
from contextlib import contextmanager
from pathlib import Path

import duckdb

from dynadex import settings
from dynadex.errors import scrubbed_causes
from dynadex.store.catalog import contention, state
from dynadex.store.catalog.disk_full import full_disk_under, reported
from dynadex.store.catalog.extensions import connect
from dynadex.store.catalog.hold import CatalogHold
from dynadex.store.catalog.location import StoreLocation, mask
from dynadex.store.catalog.writer_lock import writing
from dynadex.store.errors import StoreError, StoreFull
from dynadex.store.layout.names import INVERTED_SCHEMA, ROW_SCHEMA, STATE_SCHEMA, literal, quote
from dynadex.store.layout.row_groups import ENTRY_GROUP_ROWS, ROW_GROUP_ROWS

log = logging.getLogger("dynadex.store")


ALIAS = "lake"
INLINE_ROWS = settings.INLINE_ROWS.read()
"""Inserts of at most this many rows are inlined in the catalog (``Lake._tune``; decision 0021); on by default
(1000: a small stream batch leaves no files); ``DYNADEX_INLINE_ROWS=0`` turns it off and leaves DuckLake's own limit."""
CATALOG_HOLD = settings.CATALOG_HOLD.read()
"""A writing store keeps one connection to its SQLite catalog open (``catalog_hold``); ``DYNADEX_CATALOG_HOLD=0``
turns it off (to compare, or on a file system where it misbehaves): then a commit or read now and then waits 1 s."""
TARGET_FILE_SIZE = "64MB"  # the largest file DuckLake's own writes and maintenance's merges make
NUL_GUARD_ROWS = 1000  # a batch of at most this many rows holding U+0000 writes files (``Lake.not_inlined``)
SQLITE_BUSY_TIMEOUT_MS = 5000  # how long a SQLite catalog statement waits for another process's lock
# Commit failures that another writer causes and that go away when the transaction runs again: SQLite's
# lock (its busy handler is skipped when waiting could deadlock) and DuckLake's optimistic conflicts.
STALE_CACHE = "failed to read inlined data"  # DuckLake's cache outlived another process's flush (decision 0018)
RETRYABLE = ("database is locked", "transaction conflict", "failed to commit ducklake transaction")  # + stale_cache
ATTEMPTS = 8
READ_WAIT_SECONDS = 10.0  # how long a read of a read-only lake waits for a SQLite catalog locked by a writer
READ_PAUSES = (0.001, 0.002, 0.005, 0.01, 0.02)  # its pauses between attempts; the last one repeats
READ_ATTEMPTS = 5  # how many times ``Lake.reading`` runs a read that met another process's flush


def locked(exc: BaseException) -> bool:
    """SQLite said another connection holds the catalog (the instant of a writer's commit or checkpoint)."""
    from dynadex.errors import DynadexError

    return isinstance(exc, (duckdb.Error, DynadexError)) and "database is locked" in str(exc).lower()


def stale_cache(exc: BaseException) -> bool:
    """DuckLake read inlined rows through a catalog cache that another process's flush made stale: either
    "Failed to read inlined data from DuckLake: ..." or, from a plain read, "Catalog Error: Table with name
    ducklake_inlined_data_11_2 does not exist!" (seen by a reader polling beside a sync's periodic flush)."""
    text = str(exc).lower()
    return STALE_CACHE in text or ("ducklake_inlined_data_" in text and "does not exist" in text)


def retryable(exc: BaseException) -> bool:
    """A failure another process's commit causes, gone when the work runs again on a fresh connection.

    Besides lock and conflict errors: while ``ducklake_flush_inlined_data`` (maintenance) commits, another
    connection can briefly read a catalog table without its inlined rows (duckdb/ducklake#1413, #1305;
    reproduced with the DuckLake we pin), so a write can find its own table unknown, or a column it
    registered missing and add it twice. Both stop at once on a fresh connection."""
    text = str(exc).lower()
    if isinstance(exc, StoreError):
        return "unknown table" in text
    if isinstance(exc, duckdb.CatalogException):
        return "already exists" in text or stale_cache(exc)
    return isinstance(exc, duckdb.Error) and (any(m in text for m in RETRYABLE) or stale_cache(exc))


def s3_secret(con: duckdb.DuckDBPyConnection, location: StoreLocation) -> None:
    """Give DuckDB's httpfs the location's S3 credentials (a temporary secret; never logged)."""
    location.aws().duckdb_secret(con)


SANDBOX_EXTENSIONS = ("json", "parquet", "icu")  # built in or bundled: loaded before a sandbox locks the door


def wait_unlocked(work):
    """``work()``, a read, run again while the SQLite catalog is locked for an instant by a writer's commit,
    after 1-20 ms pauses, for up to ``READ_WAIT_SECONDS``. A read has no side effect: running it again is safe."""
    deadline = time.monotonic() + READ_WAIT_SECONDS
    for attempt in itertools.count():
        try:
            return work()
        except Exception as exc:  # noqa: BLE001 - only a locked catalog is retried
            if not locked(exc) or time.monotonic() > deadline:
                raise
            time.sleep(READ_PAUSES[min(attempt, len(READ_PAUSES) - 1)])


class ReadRetrying:
    """A read-only lake's connection: every statement goes through ``wait_unlocked``; the rest is DuckDB's.

    Why not SQLite's busy timeout: DuckDB's SQLite is built without usleep, so its busy handler sleeps whole
    seconds. A reader polling a store under a stream sync met a locked catalog (in WAL mode, at the start of
    a read, while a commit or checkpoint ends) in about one query in seven, and each such query took 1.04 s:
    that second was the p99 of the write-to-visible lag (bench_stream.py freshness). A read-only lake attaches
    with META_BUSY_TIMEOUT 0 and waits here instead, in milliseconds."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self._con = con

    def execute(self, *args, **kwargs):
        return wait_unlocked(lambda: self._con.execute(*args, **kwargs))

    def __getattr__(self, name):
        return getattr(self._con, name)


class Lake:
    def __init__(self, location: StoreLocation, *, read_only: bool = False, threads: int | None = None,
                 sandbox: bool = False, memory_limit: str | None = None):
        if sandbox and not read_only:
            raise StoreError("a sandboxed store is read-only")
        self.location = location
        self.read_only = read_only
        self.sandbox = sandbox
        self.write_id_tables: set[str] = set()  # tables known to have write_id columns (store/apply/changes.py)
        # each table's column registry as this connection's last stream batch committed it (store/apply/changes.py):
        # valid until this connection opens another transaction or reopens (another writer committed)
        self.registries: dict[str, tuple] = {}
        root = location.local_root
        if root is not None:
            if read_only and not (root / "catalog.sqlite").exists():
                raise StoreError(f"no store at {location.display} (nothing has been indexed there yet)")
            if not read_only:
                root.mkdir(parents=True, exist_ok=True)
                if not location.is_s3:
                    Path(location.data_path).mkdir(parents=True, exist_ok=True)
        self._threads = threads
        self._memory_limit = memory_limit  # DuckDB's for this connection (``DYNADEX_DUCKDB_MEMORY`` wins)
        self._seen_snapshot: int | None = None  # the catalog's snapshot after this connection's last write
        self._writing = False
        self._hold: CatalogHold | None = None
        self._open()
        if not read_only:
            self.retrying("store setup", self._setup)

    def _open(self) -> None:
        location = self.location
        self.con = connect(threads=self._threads, memory_limit=self._memory_limit)
        if location.is_s3:
            s3_secret(self.con, location)
        options = [f"DATA_PATH {literal(location.data_path)}"]
        if location.catalog.startswith("sqlite:"):
            # a writer waits for a concurrent writer's lock instead of failing at once (``retrying`` covers the
            # rest); a reader does not let SQLite wait (its busy handler sleeps whole seconds): ``ReadRetrying``
            options.append(f"META_BUSY_TIMEOUT {0 if self.read_only else SQLITE_BUSY_TIMEOUT_MS}")
            if not self.read_only:
                # WAL (kept in the file): a reader's lock never makes the writer's commit wait, where the busy
                # handler of DuckDB's SQLite sleeps in whole seconds (decision 0008). Set by DuckDB's own SQLite:
                # a second SQLite library in this process (Python's sqlite3) must never open the catalog, since
                # POSIX locks of one process do not exclude each other and closing its file drops DuckDB's locks.
                options.append("META_JOURNAL_MODE 'WAL'")
        if self.read_only:
            options.append("READ_ONLY")
        if self.read_only and location.catalog.startswith("sqlite:"):
            self.con = ReadRetrying(self.con)
        # DuckDB's error quotes the catalog spec, a Postgres password included: the cause is kept masked
        with scrubbed_causes(lambda exc: mask(str(exc))):
            try:
                self.con.execute(f"ATTACH {literal('ducklake:' + location.catalog)} AS {ALIAS} ({', '.join(options)})")
            except duckdb.Error as exc:
                self.con.close()
                detail = mask(str(exc).splitlines()[0])
                root = location.local_root
                if root is not None and full_disk_under(root):  # SQLite says "disk I/O error", not why
                    raise StoreFull(f"cannot open store {location.display}: {detail}: the disk holding {root} has "
                                    "no space left: free space and run again") from exc
                raise StoreError(f"cannot open store {location.display}: {detail}") from exc
        self.con.execute(f"USE {ALIAS}")
        if CATALOG_HOLD and not self.read_only and location.catalog.startswith("sqlite:"):
            # this process keeps a connection to the catalog open: no commit or read waits a second (catalog_hold)
            self._hold = CatalogHold(self.con, location.catalog[len("sqlite:"):])
            self._hold.renew()
        # a fresh connection knows the catalog as it is now: later commits by others make it stale (retrying)
        self._seen_snapshot = None if self.read_only else self._snapshot_or_none()
        if self.sandbox:
            self._lock_down()

    def _snapshot_or_none(self) -> int | None:
        try:
            return self.current_snapshot()
        except duckdb.Error:  # a catalog being created has no snapshot yet
            return None

    def _lock_down(self) -> None:
        """Queries from then on read the store and nothing else: no file or URL outside its data path (DuckDB's
        ``allowed_directories`` with external access off), no ATTACH, no extension install, no setting changed
        (``lock_configuration``). The extensions queries may need are loaded before."""
        for ext in SANDBOX_EXTENSIONS:
            try:
                self.con.execute(f"LOAD {ext}")
            except duckdb.Error:
                pass  # not shipped with this DuckDB: queries needing it fail with DuckDB's own message
        self.con.execute(f"SET allowed_directories = [{literal(self.location.data_path)}]")
        self.con.execute("SET enable_external_access = false")
        self.con.execute("SET lock_configuration = true")

    def _setup(self) -> None:
        with self.transaction():
            state.create(self.con)
        self._tune()

    def reopen(self) -> None:
        """A fresh connection: nothing cached from before a failed commit survives."""
        self.close()
        self.write_id_tables.clear()
        self.registries.clear()
        self.__dict__.pop("_known_keys", None)  # store/apply/known_keys.py (decision 0046)
        self.__dict__.pop("_key_specs", None)
        self.__dict__.pop("_key_prefixes", None)
        self.__dict__.pop("_rows_estimates", None)
        self._open()

    def reading(self, work):
        """Run a read; if it met a catalog cache gone stale under another process's maintenance (an inlined-data
        table dropped that this connection still knew: "Failed to read inlined data from DuckLake"), or found
        its connection's transaction aborted by such a failure while a result was fetched (seen once in ten runs
        of a reader polling beside flushes: "Current transaction is aborted"), run it again on a fresh
        connection, up to ``READ_ATTEMPTS`` times in all: a fresh connection can meet the writer's next flush
        too (seen in CI, two flushes 10 batches apart under load). Reads change nothing, so running one again is
        harmless."""
        for attempt in range(1, READ_ATTEMPTS + 1):
            try:
                return work()
            except duckdb.Error as exc:
                if (not (stale_cache(exc) or "current transaction is aborted" in str(exc).lower()) or self._writing
                        or attempt == READ_ATTEMPTS):
                    raise
                contention.reopened()
                self.reopen()
                time.sleep(READ_PAUSES[min(attempt - 1, len(READ_PAUSES) - 1)])

    @property
    def fresh(self) -> bool:
        """Inside ``retrying``: this connection has seen every other writer's commit (``_fresh_for_write``),
        so what it cached from its own last write still holds."""
        return self._writing

    def current_snapshot(self) -> int:
        return self.con.execute(f"SELECT id FROM {ALIAS}.current_snapshot()").fetchone()[0]

    def _fresh_for_write(self) -> int | None:
        """Before a write (the store's lock held): if another writer committed since this connection's last
        write, start from a fresh connection. DuckLake's per-connection catalog cache can outlive another
        process's commit: after maintenance flushed inlined rows and expired their snapshots, a batch on a
        connection that had read the catalog since its last commit failed with "Failed to read inlined data
        from DuckLake: Table with name ducklake_inlined_data_11_3 does not exist" (decision 0018).
        Returns the catalog's snapshot now (None while the catalog is being created)."""
        if self._seen_snapshot is not None and self.current_snapshot() != self._seen_snapshot:
            contention.reopened()
            self.reopen()
        return self._seen_snapshot

    def retrying(self, what: str, work, *, commits: int | None = None):
        """Run ``work()`` (which opens its own transactions) until it gets past other writers' commits.

        ``commits``: the work commits exactly this many DuckLake snapshots (a stream batch: one), so the
        snapshot it leaves is the one before plus that, with no query (~9 ms a batch). Were it wrong, the
        next write would only start on a fresh connection; and where no lock orders the writers (a PostgreSQL
        catalog), a commit of another writer's in between then makes the next write start fresh, as it should.
        A full disk is not retried: it ends the work at once as ``StoreFull`` (``disk_full``)."""
        if self._writing:  # a write inside a write (same connection, lock already held): just run it
            return work()
        for attempt in range(1, ATTEMPTS + 1):
            try:
                # one writer at a time (SQLite catalog); a full disk is named with the store's location
                with reported(what, self.location.display), writing(self.location.catalog, what):
                    self._writing = True
                    try:
                        before = self._fresh_for_write()
                        result = work()
                        self._seen_snapshot = (before + commits if commits is not None and before is not None
                                               else self.current_snapshot())
                        if self._hold is not None:  # let checkpoints past this commit
                            self._hold.renew()
                        return result
                    finally:
                        self._writing = False
            except (duckdb.Error, StoreError) as exc:
                if attempt == ATTEMPTS or not retryable(exc):
                    raise
                contention.retried(exc)
                pause = min(2.0, 0.05 * 2 ** attempt) * random.uniform(0.5, 1.5)
                log.warning("%s: another writer got in the way (%s); attempt %d of %d in %.2fs", what,
                            " ".join(str(exc).split())[:200], attempt + 1, ATTEMPTS, pause)
                time.sleep(pause)
                self.reopen()

    def _tune(self) -> None:
        """File layout options DuckLake applies to the files it writes itself (stream batches, flushes and
        maintenance's merges; chunk builds write their own, decision 0022). Each is set once per catalog, so a
        store created before an option existed gets it at its next writer's open.

        * Row index row groups of 4 096 rows: a point lookup reads ~4k rows, not ~120k.
        * Inverted index row groups of 16 384 rows, as the range merges write them: a ``find`` reads one
          small group per (path, value), where maintenance's merges wrote 122 880-row groups.
        * Files of about 64 MB (``TARGET_FILE_SIZE``): ``dynadex maintain`` merges files under 8 MB
          (``maintenance.MERGE_BELOW_BYTES``) into files of that size and leaves larger ones (a bulk load's
          range files) as they are. With DuckLake's defaults it merged a 10 M-item store's range files into 2 row
          files of up to 9.4 M rows, whose footers every lookup reads: ``get`` went from 11 to 42 ms p50 and
          ``find`` from 40 to 99 ms (decision 0022).
        * Inserts of up to ``INLINE_ROWS`` rows (a stream batch of a quiet table) are inlined in the catalog
          rather than written as one Parquet file per index per batch; the sync flushes them into files every
          ``flush_every_batches`` batches (``Store.flush_inlined``). Without it every small batch left three
          files that each later statement opened: a 20-change batch took 0.25 s at first and 0.87 s after 600
          batches, 1 ms more per batch, for as long as a run lasts (decision 0021)."""
        have = {(row[0], row[1]) for row in self.con.execute(
            f"SELECT option_name, scope_entry FROM {ALIAS}.options()").fetchall()}
        for name, value, schema in (("parquet_row_group_size", ROW_GROUP_ROWS, ROW_SCHEMA),
                                    ("parquet_row_group_size", ENTRY_GROUP_ROWS, INVERTED_SCHEMA),
                                    ("target_file_size", TARGET_FILE_SIZE, None)):
            if (name, schema) not in have:
                scope = f", schema => {literal(schema)}" if schema else ""
                self.con.execute(f"CALL {ALIAS}.set_option({literal(name)}, {literal(str(value))}{scope})")
        if INLINE_ROWS and ("data_inlining_row_limit", None) not in have:
            self.con.execute(f"CALL {ALIAS}.set_option('data_inlining_row_limit', {INLINE_ROWS})")

    @contextmanager
    def threads(self, n: int | None):
        """What runs inside uses ``n`` DuckDB threads (None or 0: the connection's own); the connection's own
        setting is back after it, also when it fails. A stream sync's store runs on one thread, its large
        batches' commits on two and its flushes on one (decisions 0033, 0045)."""
        before = int(self.con.execute("SELECT current_setting('threads')").fetchone()[0]) if n else n
        if n == before:
            yield
            return
        con = self.con
        con.execute(f"SET threads = {int(n)}")
        try:
            yield
        finally:
            if con is self.con:  # a connection reopened meanwhile was opened with the store's own setting
                con.execute(f"SET threads = {before}")

    @contextmanager
    def not_inlined(self, tables: list[tuple[str, str]]):
        """Inside a transaction: inserts into these (schema, table) pairs write files, not inlined rows.

        DuckLake 1.5.5 cannot inline every value: a VARCHAR[] holding U+0000 fails at COMMIT ("Failed to
        flush changes into DuckLake: unterminated quoted string"), and a PostgreSQL catalog's text cannot
        hold U+0000 at all. The limit is set to 0 and back in the same transaction, so it commits with it."""
        def limit(rows: int) -> None:
            for schema, table in tables:
                self.con.execute(f"CALL {ALIAS}.set_option('data_inlining_row_limit', {rows}, schema => ?, "
                                 "table_name => ?)", [schema, table])
        limit(0)
        yield
        limit(INLINE_ROWS)  # 0 when off: these tables then always write files (DuckLake's limit is not restorable)

    def close(self) -> None:
        if self._hold is not None:
            self._hold.close()
            self._hold = None
        self.con.close()

    def __enter__(self) -> "Lake":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def transaction(self, *, keep_registries: bool = False):
        """One DuckLake transaction on this connection. The cached column registries are dropped (whatever
        it does, a publish rewrites a registry, a batch then loads it again) unless ``keep_registries``: a
        stream batch, which changes only its own tables' registries and stores them after its commit."""
        if not keep_registries:
            self.registries.clear()
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield self.con
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    def execute(self, sql: str, params=None):
        return self.con.execute(sql, params or [])

    def table_exists(self, schema: str, name: str) -> bool:
        row = self.con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND schema_name = ? AND table_name = ?",
            [ALIAS, schema, name],
        ).fetchone()
        return bool(row[0])

    def _has_state(self) -> bool:
        """Schema ``dynadex`` exists. Nothing drops it once made, so it is looked up (``duckdb_tables()``, a few ms
        on a SQLite catalog) only until it is found."""
        if not self.__dict__.get("_state_found"):
            self._state_found = self.table_exists(STATE_SCHEMA, "tables")
        return self._state_found

    def source_tables(self) -> list[str]:
        return state.table_names(self.con) if self._has_state() else []

    def table_state(self, table: str) -> state.TableState | None:
        return state.read_table(self.con, table) if self._has_state() else None

    def require_table(self, table: str) -> state.TableState:
        found = self.table_state(table)
        if found is None:
            known = ", ".join(self.source_tables()) or "none"
            raise StoreError(f"unknown table {table!r} in store {self.location.display} (known: {known})")
        return found

    def key_spec(self, table: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(key names, key types) of a table; cached, since a table's key never changes."""
        cache = self.__dict__.setdefault("_key_specs", {})
        if table not in cache:
            found = self.require_table(table)
            cache[table] = (found.key_names, found.key_types)
        return cache[table]

    def key_prefix(self, table: str) -> str | None:
        """The common key prefix the table's key order numbers are taken after (store/layout/key_order.py), fixed at
        publish; None for a table published before decision 0027, whose indexes hold no such numbers. Cached
        with the key spec: a publish (the only writer of it) replaces the table."""
        cache = self.__dict__.setdefault("_key_prefixes", {})
        if table not in cache:
            cache[table] = self.require_table(table).key_prefix
        return cache[table]

    def know_tables(self, states: dict) -> None:
        """Cache the key spec and key prefix of tables whose ``TableState`` was just read (many at once,
        ``Store.followed``): what ``key_spec`` and ``key_prefix`` would read, one statement for all."""
        specs = self.__dict__.setdefault("_key_specs", {})
        prefixes = self.__dict__.setdefault("_key_prefixes", {})
        for table, found in states.items():
            specs.setdefault(table, (found.key_names, found.key_types))
            prefixes.setdefault(table, found.key_prefix)

    def published(self, table: str) -> None:
        """This connection published ``table`` anew: forget what it cached of the table before (its key prefix)."""
        self.__dict__.get("_key_prefixes", {}).pop(table, None)

    def rows_estimate(self, table: str) -> int:
        """About how many rows a table's row index holds (DuckLake's table statistics), taken once per
        connection: it decides how a batch's statements are shaped (store/apply/key_pruning.py), where an order of
        magnitude is what matters."""
        cache = self.__dict__.setdefault("_rows_estimates", {})
        if table not in cache:
            # every table's at once, from DuckLake's own statistics table (its specification's
            # ``ducklake_table_stats``): ``duckdb_tables()``' estimate, filtered on one table, still made DuckLake
            # build every table's statistics, 120-200 ms a table in a store of 50 tables
            meta = f"__ducklake_metadata_{ALIAS}"
            cache.update(self.con.execute(
                f"SELECT t.table_name, s.record_count FROM {meta}.ducklake_table t "
                f"JOIN {meta}.ducklake_schema c ON c.schema_id = t.schema_id AND c.end_snapshot IS NULL "
                f"JOIN {meta}.ducklake_table_stats s ON s.table_id = t.table_id "
                f"WHERE t.end_snapshot IS NULL AND c.schema_name = ?", [ROW_SCHEMA]).fetchall())
            cache.setdefault(table, 0)
        return int(cache[table] or 0)

    def qualified(self, schema: str, table: str) -> str:
        return f"{quote(schema)}.{quote(table)}"
