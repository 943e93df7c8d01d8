"""The converged index on DuckLake: row, column and inverted indexes plus sync state.

``Store`` is the Python API; the CLI and the Airflow tasks use nothing else.
See ``names`` for what each index is called in SQL, ``registry`` for the
type-conflict rule, ``publish`` and ``changes`` for the two ways data gets in.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from dynadex.store import reads
from dynadex.store.apply.changes import Change, Preshaped, TableBatch, apply_batches, apply_changes, preshape
from dynadex.store.apply.sql_shape import RawImage, SqlShaper
from dynadex.store.bulk.chunk_writer import ChunkWriter
from dynadex.store.bulk.prepare import PublishPlan
from dynadex.store.bulk.publish import PublishSpec, publish
from dynadex.store.catalog import state
from dynadex.store.catalog.lake import ALIAS, Lake
from dynadex.store.catalog.location import StoreLocation, resolve
from dynadex.store.catalog.state import Checkpoint, TableState
from dynadex.store.errors import (  # the facade's errors: public API
    PublishRefused,
    QueryError,
    QueryTimeout,
    SnapshotBusy,
    StoreError,
)
from dynadex.store.layout.names import INVERTED_SCHEMA, ROW_SCHEMA
from dynadex.store.layout.registry import Registry
from dynadex.store.reads import QueryResult, Snapshot, SnapshotReader
from dynadex.store.upkeep import maintenance, small_files


class Store:
    """A store opened for reading (default) or writing."""

    def __init__(self, spec: str | StoreLocation | None = None, *, data_path: str | None = None,
                 read_only: bool = True, threads: int | None = None, credentials=None, sandbox: bool = False,
                 memory_limit: str | None = None):
        """``credentials`` (an ``AwsCredentials``) reach an s3:// data path; without them, the AWS environment.
        ``sandbox``: queries can read this store only, no other file, URL or setting (``Lake._lock_down``).
        ``memory_limit``: DuckDB's for this store's connection (``4GB``; ``DYNADEX_DUCKDB_MEMORY`` wins)."""
        self.location = spec if isinstance(spec, StoreLocation) else resolve(spec, data_path, credentials=credentials)
        self.lake = Lake(self.location, read_only=read_only, threads=threads, sandbox=sandbox,
                         memory_limit=memory_limit)
        self.shapers: dict[tuple, SqlShaper] = {}  # (table, key names, key types) -> its DuckDB shaping (0044)

    def close(self) -> None:
        for shaper in self.shapers.values():
            shaper.close()
        self.shapers.clear()
        self.lake.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # reads
    def query(self, sql: str):
        return reads.query(self.lake, sql)

    def get(self, table: str, key_json: str) -> str | None:
        return self.lake.reading(lambda: reads.get(self.lake, table, key_json))

    def find(self, table: str, expression: str, limit: int | None = None) -> list[str]:
        return self.lake.reading(lambda: reads.find(self.lake, table, expression, limit))

    def dump(self, table: str):
        return reads.dump(self.lake, table)

    def status(self, table: str | None = None) -> dict:
        return reads.status(self.lake, table)

    def tables(self) -> list[str]:
        return self.lake.source_tables()

    def read_snapshot(self, work, *, timeout: float | None = None, point_reads=None):
        """``(work(reader), snapshot)``: ``work`` reads one whole snapshot through a ``reads.SnapshotReader``
        (``query``, ``get``, ``find``), run again if a flush or merge landed meanwhile; ``timeout`` in seconds
        interrupts it (``QueryTimeout``); ``point_reads`` (a ``point_reads.PointReads``, shared by a process's
        stores) answers gets from the row index's files (decision 0040). What ``dynadex serve`` answers each
        request with."""
        return reads.read_whole_snapshot(self.lake, work, timeout=timeout, point_reads=point_reads)

    # writes
    def chunk_writer(self, table: str, build_id: str, chunk_id: str, key_names, key_types, **kw) -> ChunkWriter:
        return ChunkWriter(self.location, table, build_id, chunk_id, tuple(key_names), tuple(key_types), **kw)

    # Every write below is idempotent and runs through Lake.retrying: a commit that meets another process's
    # (the stream sync, maintenance, a publish) runs again instead of failing the task.
    def publish(self, spec: PublishSpec, prepared: PublishPlan | None = None) -> dict:
        return self.lake.retrying(f"publish of {spec.table}", lambda: publish(self.lake, spec, prepared))

    def prepare(self, table: str, changes: list[Change], key: tuple | None = None) -> Preshaped | None:
        """``changes``' upserts shaped for the indexes, outside any transaction and the writer lock (None for a
        batch of one, or where shaping fails: the transaction then shapes what wins, and raises what it raises).
        Reads nothing from the store once the table's key is known (``Lake.key_spec``, cached; or ``key``, the
        table's (names, types), given), so a sync may prepare its next batch while this store commits the last
        one on another thread. With ``key`` it never touches the store's connection (a reopen drops the cache)."""
        if len(changes) < 2:
            return None
        return preshape(self.lake, table, changes, self._shaper(table, key), key)

    def _shaper(self, table: str, key: tuple | None = None) -> SqlShaper | None:
        """The table's DuckDB shaping of batches that came as wire JSON (``sql_shape``); None if the table has no
        key yet (the transaction then meets that error)."""
        try:
            names, types = key or self.lake.key_spec(table)
        except Exception:  # noqa: BLE001 - not published: the transaction raises its error
            return None
        ident = (table, tuple(names), tuple(types))
        shaper = self.shapers.get(ident)
        if shaper is None:
            shaper = self.shapers[ident] = SqlShaper(names, types)
        return shaper

    def apply(self, table: str, changes: list[Change], checkpoints=(), *, event=None, force: bool = False,
              state_updates: dict | None = None, replace_checkpoints: bool = False,
              preshaped: Preshaped | None | bool = True, threads: int | None = None) -> dict:
        """One batch and its checkpoints in one transaction. ``preshaped``: ``prepare``'s result for the same
        changes, or True to shape them here, before the writer lock is taken (the transaction shapes again only
        if a change lost the version check). ``threads``: DuckDB threads for this batch's statements (a
        backlog's large batch, decision 0045); the store's own setting is back after it."""
        shaped = self.prepare(table, changes) if preshaped is True else preshaped

        def work() -> dict:
            with self.lake.threads(threads):
                return apply_changes(self.lake, table, changes, list(checkpoints), event=event, force=force,
                                     state_updates=state_updates, replace_checkpoints=replace_checkpoints,
                                     preshaped=shaped)

        # one transaction, always a change (sync state)
        return self.lake.retrying(f"{table}: batch of {len(changes)} changes", work, commits=1)

    def apply_many(self, batches: list[TableBatch]) -> list[dict]:
        """Several tables' batches in one transaction, one commit (decision 0039): what ``apply`` does for each,
        all or none of them. Counts per batch, in order."""
        batches = [b if b.preshaped is not None or len(b.changes) < 2
                   else replace(b, preshaped=preshape(self.lake, b.table, b.changes, self._shaper(b.table)))
                   for b in batches]
        tables = ", ".join(b.table for b in batches)
        threads = max((b.threads or 0 for b in batches), default=0) or None

        def work() -> list[dict]:
            with self.lake.threads(threads):
                return apply_batches(self.lake, batches)

        return self.lake.retrying(f"{tables}: {len(batches)} batches in one commit", work, commits=1)

    def checkpoints(self, table: str) -> dict[str, Checkpoint]:
        """Shard id -> where the sync has read that shard up to."""
        return state.read_checkpoints(self.lake.con, table)

    def table_state(self, table: str) -> TableState:
        return self.lake.require_table(table)

    def followed(self, tables: list[str]) -> dict[str, tuple[TableState, dict[str, Checkpoint]]]:
        """Each of ``tables``' state and checkpoints, in two statements for all (a group of quiet tables starting:
        two per table cost 50 tables about 5 s here); a table the store does not hold raises as ``table_state``."""
        def read():
            states = state.read_tables(self.lake.con, tables) if self.lake.source_tables() else {}
            for t in tables:
                if t not in states:
                    self.lake.require_table(t)
            cps = state.read_checkpoints_of(self.lake.con, tables)
            return {t: (states[t], cps[t]) for t in tables}

        return self.lake.reading(read)

    def warm(self, tables: list[str]) -> dict[str, tuple[TableState, dict[str, Checkpoint]]]:
        """``followed(tables)``, and what this connection's first batch of each would read on its own, read for
        all at once (a group of quiet tables starting, decision 0046): their keys and column registries (one
        statement each per table: about 1 s for 50 tables here). The registries serve a batch only where
        ``Lake.retrying`` finds no other writer committed since (as after this connection's own batch)."""
        held = self.followed(tables)

        def read():
            self.lake.know_tables({t: found for t, (found, _) in held.items()})
            for t, columns in state.read_columns_of(self.lake.con, tables).items():
                self.lake.registries.setdefault(t, tuple(Registry.of(columns).columns))
            # the tables whose row and inverted indexes have write ids (changes._ensure_write_ids asks per table)
            rows = self.lake.con.execute(
                "SELECT table_name FROM duckdb_columns() WHERE database_name = ? AND schema_name IN (?, ?) "
                "AND column_name = 'write_id' GROUP BY table_name HAVING count(DISTINCT schema_name) = 2",
                [ALIAS, ROW_SCHEMA, INVERTED_SCHEMA]).fetchall()
            self.lake.write_id_tables.update(t for (t,) in rows if t in held)

        self.lake.reading(read)
        return held

    def note_caught_up(self, table: str, micros: int) -> None:
        """The sync found every shard at its tip at ``micros``: every change made before then is applied.

        Recovery then starts from there (minus the overlap) rather than from the last change, so an idle
        table hit by a gap needs no bootstrap, and the sync is not taken for stale while the table is idle."""
        def note() -> None:
            with self.lake.transaction(keep_registries=True):  # state only: no column changes
                state.note_caught_up(self.lake.con, table, micros)

        self.lake.retrying(f"{table}: caught up", note)

    def note_group_tip(self, table: str, index: int, count: int, micros: int) -> int | None:
        """Shard group ``index`` of ``count`` found its shards at their tip at ``micros``; once every group of the
        count has, the table is caught up to the oldest of their instants (``note_caught_up``), returned."""
        def note() -> int | None:
            with self.lake.transaction(keep_registries=True):
                return state.note_group_tip(self.lake.con, table, index, count, micros)

        return self.lake.retrying(f"{table}: group {index}/{count} at its tip", note)

    def flush_inlined(self) -> bool:
        """Small batches' inlined rows into files (the sync calls it every ``flush_every_batches`` batches); True:
        flushed (a store several syncs share may skip one, ``stream.shared_store``)."""
        self.lake.retrying("flush of inlined rows", lambda: maintenance.flush_inlined(self.lake))
        return True

    def fold_small_files(self, table: str, at_files: int | None = None, indexes=small_files.INDEXES, *,
                         rewrite_worn: bool = False, flush_first: bool = True, threads: int | None = None) -> dict:
        """Fold ``table``'s small stream files into one sorted file per index where one of ``indexes`` (default:
        all three) holds at least ``at_files`` of them (default ``small_files.FOLD_AT_FILES``), and with
        ``rewrite_worn`` rewrite alone each file of the row and column indexes that lost a quarter of its rows,
        up to ``small_files.WORN_MOST_BYTES`` (a larger one a slice of that size; store/upkeep/small_files.py); files
        folded, rewritten or sliced per index.

        The inlined rows are flushed first unless ``flush_first`` is False (a caller that has just flushed): the
        DuckLake we run fails the fold's commit, every retry alike, when a batch that added a column still has
        rows inlined ("Referenced column ... not found", decision 0032). ``threads``: DuckDB threads for the
        fold (a backlog's, decision 0045); the flush keeps one."""
        at = small_files.FOLD_AT_FILES if at_files is None else at_files
        if flush_first:
            self.flush_inlined()

        def work() -> dict:
            with self.lake.threads(threads):
                return small_files.fold(self.lake, table, at, indexes, rewrite_worn=rewrite_worn)

        return self.lake.retrying(f"{table}: fold of small files", work)

    def compact(self) -> dict:
        """Prune, flush, fold, rewrite worn files and merge (store/upkeep/maintenance.py). A worn file larger than one
        fold may rewrite is moved a slice per transaction until it is gone, the writer lock released between
        slices so that the sync's batches go on meanwhile."""
        pruned = self.lake.retrying("maintenance: prune", lambda: maintenance.prune_stale(self.lake))
        done, pending = self.lake.retrying("maintenance: compact", lambda: maintenance.compact(self.lake))
        for table in pending:
            while True:
                finished, sliced = self.lake.retrying(f"maintenance: {table}: worn file slice",
                                                      lambda: maintenance.worn_slice(self.lake, table))
                done["worn_files_rewritten"] += finished
                done["worn_slices"] += sliced
                if not (finished or sliced):  # nothing worn left
                    break
        return {**pruned, **done}

    def expire(self, keep: dt.timedelta = dt.timedelta(hours=1),
               orphans_older_than: dt.timedelta = maintenance.ORPHAN_AGE) -> dict:
        return self.lake.retrying("maintenance: expire",
                                  lambda: maintenance.expire(self.lake, keep, orphans_older_than))


__all__ = [
    "Change",
    "Checkpoint",
    "PublishPlan",
    "PublishRefused",
    "PublishSpec",
    "QueryError",
    "QueryResult",
    "QueryTimeout",
    "RawImage",
    "Snapshot",
    "SnapshotBusy",
    "SnapshotReader",
    "ChunkWriter",
    "Store",
    "StoreError",
    "StoreLocation",
    "TableBatch",
    "TableState",
    "resolve",
]
