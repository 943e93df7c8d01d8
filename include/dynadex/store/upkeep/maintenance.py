"""Store upkeep: prune superseded inverted entries, flush inlined rows, fold small files that lost rows,
rewrite worn files (large ones a slice per transaction), merge small files, expire old snapshots, delete
their files, delete orphaned files.

Invariant: maintenance never changes what a query at the current snapshot
returns; it only rewrites storage. Snapshots younger than ``keep`` stay
readable (time travel and readers still on them). Files no snapshot
references (a chunk's replaced or failed attempts, a build never published)
are deleted once older than ``orphans_older_than`` (default a day: longer
than any build runs before its publish).
"""

from __future__ import annotations

import datetime as dt

from dynadex.store.catalog.lake import ALIAS, Lake
from dynadex.store.layout.names import inverted_table, row_table
from dynadex.store.layout.writes import LIVE
from dynadex.store.upkeep import small_files


def prune_stale(lake: Lake) -> dict:
    """Delete inverted entries whose key's row is gone or carries another write id (writes.py)."""
    removed = 0
    for table in lake.source_tables():
        with lake.transaction():
            removed += lake.con.execute(
                f"DELETE FROM {inverted_table(table)} AS i WHERE NOT EXISTS "
                f"(SELECT 1 FROM {row_table(table)} AS r WHERE r.key = i.key AND {LIVE})").fetchone()[0]
    return {"stale_inverted_entries_removed": removed}


def flush_inlined(lake: Lake) -> None:
    """Write the rows small batches inlined in the catalog into Parquet files (one per table), so scans do
    not read a growing inlined table (lake.INLINE_ROWS). What every query returns stays the same.

    The flush runs on ONE DuckDB thread, the connection's own setting restored after it (decision 0033): on
    several, the DuckLake we run corrupted its heap now and then while flushing the inlined rows of tables
    whose schema had grown (the writer died of SIGSEGV or "double free or corruption", about 1 run in 7 of
    40 batches under load); on one, never in the same runs. A flush writes a few small files: one thread
    costs it little."""
    with lake.threads(1):
        lake.con.execute(f"CALL ducklake_flush_inlined_data('{ALIAS}')")


MERGE_BELOW_BYTES = small_files.FOLD_BELOW_BYTES
"""Maintenance merges only files smaller than this (stream batches, flushes), into files of up to the store's
target size (``lake.TARGET_FILE_SIZE``). A bulk load's range files are sorted and disjoint, the layout point
lookups want (decision 0022), and above this size from about 10 M items on: merged together by DuckLake's defaults
they made ``get`` 3.5-3.8x and ``find`` about 2x slower at 10 M items; left as written, lookups after maintenance
are as fast as right after the load."""


def compact(lake: Lake) -> tuple[dict, list[str]]:
    """Flush inlined rows, fold every table's small files (DuckLake's merge skips a file with deletes, so
    stream files that lost rows are folded, store/upkeep/small_files.py) and rewrite its worn files (a quarter of
    their rows deleted, up to ``small_files.WORN_MOST_BYTES`` per index, as the sync does), then merge the
    small files left. Returns the counts and the tables whose largest worn file was only sliced: the caller
    goes on with ``worn_slice`` for each, a transaction at a time."""
    flush_inlined(lake)
    folded = worn = slices = 0
    pending = []
    for table in lake.source_tables():
        small, tired, sliced = small_files.totals(small_files.fold(lake, table, rewrite_worn=True))
        folded, worn, slices = folded + small, worn + tired, slices + sliced
        if sliced:
            pending.append(table)
    lake.con.execute(f"CALL ducklake_merge_adjacent_files('{ALIAS}', max_file_size => {MERGE_BELOW_BYTES})")
    return {"compacted": True, "small_files_folded": folded, "worn_files_rewritten": worn,
            "worn_slices": slices}, pending


def worn_slice(lake: Lake, table: str) -> tuple[int, int]:
    """The next step of rewriting ``table``'s worn files: (worn files finished, slices moved with more to
    come); (0, 0) once none is left. Small files are left to ``compact``."""
    _, tired, sliced = small_files.totals(small_files.fold(lake, table, at_files=1 << 30, rewrite_worn=True))
    return tired, sliced


ORPHAN_AGE = dt.timedelta(hours=24)


def expire(lake: Lake, keep: dt.timedelta = dt.timedelta(hours=1), orphans_older_than: dt.timedelta = ORPHAN_AGE) -> dict:
    now = dt.datetime.now(dt.timezone.utc)
    expired = lake.con.execute(
        f"CALL ducklake_expire_snapshots('{ALIAS}', older_than => ?::TIMESTAMPTZ)", [now - keep]
    ).fetchall()
    cleaned = lake.con.execute(f"CALL ducklake_cleanup_old_files('{ALIAS}', cleanup_all => true)").fetchall()
    orphans = lake.con.execute(f"CALL ducklake_delete_orphaned_files('{ALIAS}', older_than => ?::TIMESTAMPTZ)",
                               [now - orphans_older_than]).fetchall()
    return {"expired_snapshots": len(expired), "deleted_files": len(cleaned), "deleted_orphans": len(orphans)}
