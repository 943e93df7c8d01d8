"""Folding the small files stream batches leave into one sorted file per index (decision 0028).

Every stream batch of more than ``lake.INLINE_ROWS`` rows, and every flush of inlined rows, adds one
Parquet file to each index. Later batches delete rows from those files: each delete is a delete file or
an inlined deletion in the catalog. DuckLake's ``ducklake_merge_adjacent_files`` merges only files with
no deletes, so a stream file that has lost one row stays as it is for good. Every batch's lookup and
deletes then scan one more file, and every commit rewrites one more delete file. A fold rewrites the
live rows of an index's small files as one file sorted like the bulk load's, and drops the old files.

Invariants:

* A fold never changes what a query at the new snapshot returns. In one transaction it inserts the live
  rows of the chosen files, sorted, and deletes every row of those files by file name. A writer that
  deleted from one of those files meanwhile makes the commit fail, and ``Lake.retrying`` folds again
  from the new snapshot, so a row another writer removed is never written back.
* Only files DuckLake wrote (stream batches, flushes, merges, earlier folds) under ``FOLD_BELOW_BYTES``
  are folded. A bulk load's range files (``bulk/…``) stay as written: they are the sorted, disjoint
  layout lookups want (decision 0022).
* Files left with no live row are dropped by DuckLake's own rewrite at a delete threshold of 1.0, which
  touches no file that still holds a live row.
* A file of the row or column index that has lost ``WORN_SHARE`` of its rows (a bulk load's range file
  included) is rewritten alone, its live rows in the same order, by the same two statements, when the
  caller allows it: each batch otherwise scans its deleted rows and writes its whole delete file again.
  Rewritten alone, a range file stays one file over its own key range (decision 0022). DuckLake's rewrite
  at such a threshold would merge every such file of the table into one (probed, whatever the target
  file size), a serial sort of the table at scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from dynadex.store.lake import ALIAS, Lake
from dynadex.store.names import (COLUMN_SCHEMA, INVERTED_SCHEMA, KEY_COLUMN, ROW_SCHEMA, literal, quote)

FOLD_BELOW_BYTES = 8_000_000
"""Files under this size are folded (``maintenance.MERGE_BELOW_BYTES``, the same bound as merges)."""
FOLD_AT_FILES = 8
"""The stream sync folds an index once it holds this many small files (maintenance: from 2)."""
FOLD_MOST_BYTES = 256_000_000
"""At most this many bytes of files per fold statement; the rest waits for the next fold."""
WORN_SHARE = 0.25
"""A file is worn once this share of its rows is deleted (in delete files: inlined deletions count once
flushed). Rewriting it then costs at most 3 live rows copied per deleted row."""
WORN_MOST_BYTES = 64_000_000
"""At most this many bytes of worn files rewritten per index by one fold (the sync's or maintenance's): a
rewrite holds the store's writer lock, so a larger range file is left as it is (decision 0028)."""


@dataclass(frozen=True)
class IndexOrder:
    """One index of a table: its schema and the order its folded file is written in (the bulk load's)."""

    schema: str
    order_by: str


INDEXES = (IndexOrder(ROW_SCHEMA, "key"), IndexOrder(COLUMN_SCHEMA, quote(KEY_COLUMN)),
           IndexOrder(INVERTED_SCHEMA, "path, value, key"))
KEYED = INDEXES[:2]
"""The indexes a stream batch deletes from (the row and column indexes). The sync folds all three: the
inverted index's stream files lose no rows until maintenance prunes them, but each spans every path and
value, so every `find` opened each of them: 158-193 ms after 90-100 batches of 10 000 records on 50 000
items, against 63-87 ms with them folded (decision 0028)."""


def foldable(files: list[tuple[str, int]], most_bytes: int = FOLD_MOST_BYTES) -> list[str]:
    """Of ``files`` ((path, size in bytes), as ``ducklake_list_files`` lists them), the ones a fold rewrites:
    files DuckLake wrote (named ``ducklake-…``) under ``FOLD_BELOW_BYTES``, smallest first, up to
    ``most_bytes`` in all."""
    small = sorted((size, path) for path, size in files
                   if size < FOLD_BELOW_BYTES and PurePosixPath(path).name.startswith("ducklake-"))
    chosen, total = [], 0
    for size, path in small:
        if chosen and total + size > most_bytes:
            break
        chosen.append(path)
        total += size
    return chosen


def fold_sql(schema: str, table: str, order_by: str, files: int) -> tuple[str, str]:
    """The fold's two statements for ``files`` file names given as parameters: insert their live rows in
    ``order_by`` order, then delete every row read from them (the new rows are in another file)."""
    qualified = f"{ALIAS}.{quote(schema)}.{quote(table)}"
    names = ", ".join("?" for _ in range(files))
    return (f"INSERT INTO {qualified} SELECT * FROM {qualified} WHERE filename IN ({names}) ORDER BY {order_by}",
            f"DELETE FROM {qualified} WHERE filename IN ({names})")


def worn(shares: list[tuple[str, int, float]], skip: set[str], share: float = WORN_SHARE,
         most_bytes: int | None = WORN_MOST_BYTES) -> list[str]:
    """Of ``shares`` ((path, size in bytes, share of rows deleted)), the files to rewrite alone: deleted at
    least ``share``, not in ``skip`` (folded anyway), most deleted first, up to ``most_bytes`` in all (None:
    no bound; a file larger than the bound is never taken)."""
    chosen, total = [], 0
    for _share, size, path in sorted(((-d, size, path) for path, size, d in shares if d >= share and path not in skip)):
        if most_bytes is not None and total + size > most_bytes:
            continue
        chosen.append(path)
        total += size
    return chosen


def deleted_shares(lake: Lake, schema: str, table: str, files: list[tuple[str, int]]) -> list[tuple[str, int, float]]:
    """(path, size, share of its rows deleted) of each of ``files`` (``listed``) that has a delete file, from
    DuckLake's own catalog tables (its specification's ``ducklake_data_file`` and ``ducklake_delete_file``)."""
    meta = f"__ducklake_metadata_{ALIAS}"
    rows = lake.con.execute(
        f"SELECT d.path, d.path_is_relative, d.record_count, x.delete_count "
        f"FROM {meta}.ducklake_data_file d "
        f"JOIN {meta}.ducklake_delete_file x ON x.data_file_id = d.data_file_id AND x.end_snapshot IS NULL "
        f"JOIN {meta}.ducklake_table t ON t.table_id = d.table_id AND t.end_snapshot IS NULL "
        f"JOIN {meta}.ducklake_schema s ON s.schema_id = t.schema_id AND s.end_snapshot IS NULL "
        f"WHERE d.end_snapshot IS NULL AND s.schema_name = ? AND t.table_name = ?", [schema, table]).fetchall()
    sizes = dict(files)
    by_tail = {PurePosixPath(path).name: path for path in sizes}
    out = []
    for path, relative, records, deleted in rows:
        full = by_tail.get(PurePosixPath(path).name) if relative else path
        if full in sizes and records:
            out.append((full, sizes[full], deleted / records))
    return out


def listed(lake: Lake, schema: str, table: str) -> list[tuple[str, int]]:
    """(path, size) of each live data file of one index."""
    return [(path, size) for path, size, *_ in lake.con.execute(
        f"FROM ducklake_list_files({literal(ALIAS)}, ?, schema => ?)", [table, schema]).fetchall()]


def fold(lake: Lake, table: str, at_files: int = 2, indexes: tuple[IndexOrder, ...] = INDEXES, *,
         rewrite_worn: bool = False, worn_most_bytes: int | None = WORN_MOST_BYTES) -> dict:
    """Fold each of ``indexes`` of ``table`` holding at least ``at_files`` foldable files, and with
    ``rewrite_worn`` rewrite each worn file of its row and column indexes alone (``worn``); return files
    folded per schema and worn files rewritten per ``"<schema> worn"`` (absent: none). One transaction for
    the inserts and deletes, then DuckLake's rewrite at threshold 1.0 drops the files left with no live row."""
    chosen, alone = {}, {}
    for index in indexes:
        files = listed(lake, index.schema, table)
        small = foldable(files)
        if len(small) >= at_files:
            chosen[index] = small
        if rewrite_worn and index in KEYED:
            tired = worn(deleted_shares(lake, index.schema, table, files), set(chosen.get(index, ())),
                         most_bytes=worn_most_bytes)
            if tired:
                alone[index] = tired
    if not chosen and not alone:
        return {}
    con = lake.con
    touched = list(dict.fromkeys([*chosen, *alone]))
    with lake.transaction(), lake.not_inlined([(index.schema, table) for index in touched]):
        for index, files in chosen.items():
            insert, delete = fold_sql(index.schema, table, index.order_by, len(files))
            con.execute(insert, files)
            con.execute(delete, files)
        for index, files in alone.items():
            for path in files:  # one statement each: one new file over the old one's rows
                insert, delete = fold_sql(index.schema, table, index.order_by, 1)
                con.execute(insert, [path])
                con.execute(delete, [path])
    for index in touched:
        con.execute(f"CALL ducklake_rewrite_data_files({literal(ALIAS)}, ?, schema => ?, delete_threshold => 1.0)",
                    [table, index.schema])
    return {**{index.schema: len(files) for index, files in chosen.items()},
            **{index.schema + WORN: len(files) for index, files in alone.items()}}


WORN = " worn"
"""``fold``'s key suffix for the worn files of an index rewritten (the plain schema: small files folded)."""


def totals(result: dict) -> tuple[int, int]:
    """(small files folded, worn files rewritten) of a ``fold`` result."""
    worn_files = sum(n for name, n in result.items() if name.endswith(WORN))
    return sum(result.values()) - worn_files, worn_files
