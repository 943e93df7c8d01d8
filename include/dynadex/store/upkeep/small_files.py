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
* A worn file larger than the bytes one fold may rewrite (a range file of a table of hundreds of GB) is
  rewritten a slice at a time: each fold moves its first live rows in key order, about that many bytes,
  into a new file, in one transaction of its own. The file's live rows are always a key suffix of it, so
  no progress is stored anywhere: an interrupted rewrite goes on from what is left, and the file is
  dropped once its last slice is moved. Its slices are disjoint sorted files over its key range.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from dynadex.store.catalog.lake import ALIAS, Lake
from dynadex.store.layout.names import COLUMN_SCHEMA, INVERTED_SCHEMA, KEY_COLUMN, ROW_SCHEMA, literal, quote

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
rewrite holds the store's writer lock, so a larger file is rewritten a slice of about this size per fold
(decision 0028)."""


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


@dataclass(frozen=True)
class Wear:
    """A data file of an index with deleted rows, as DuckLake's catalog counts them."""

    path: str
    size: int  # bytes
    records: int  # rows written, the deleted ones included
    deleted: float  # share of ``records`` deleted


@dataclass(frozen=True)
class Rewrite:
    """A worn file to rewrite: all its live rows (``rows`` None), or its first ``rows`` live rows in key order."""

    path: str
    rows: int | None = None


def worn(wears: list[Wear], skip: set[str], share: float = WORN_SHARE,
         most_bytes: int | None = WORN_MOST_BYTES) -> list[Rewrite]:
    """Of ``wears``, the files to rewrite alone: deleted at least ``share``, not in ``skip`` (folded anyway),
    most deleted first, up to ``most_bytes`` in all (None: no bound). When the most deleted file is alone
    larger than the bound, only a slice of it: as many of its first live rows as fill the bound at its bytes
    per row (a file being sliced is the most deleted, so it goes on being chosen until it is gone)."""
    chosen, total = [], 0
    candidates = [w for w in wears if w.deleted >= share and w.path not in skip]
    for w in sorted(candidates, key=lambda w: (-w.deleted, w.size, w.path)):
        if most_bytes is None or total + w.size <= most_bytes:
            chosen.append(Rewrite(w.path))
            total += w.size
        elif not chosen:
            return [Rewrite(w.path, max(1, w.records * most_bytes // w.size))]
    return chosen


def deleted_shares(lake: Lake, schema: str, table: str, files: list[tuple[str, int]]) -> list[Wear]:
    """The ``Wear`` of each of ``files`` (``listed``) that has a delete file, from DuckLake's own catalog
    tables (its specification's ``ducklake_data_file`` and ``ducklake_delete_file``)."""
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
            out.append(Wear(full, sizes[full], records, deleted / records))
    return out


def slice_end_sql(schema: str, table: str, order_by: str) -> str:
    """The key that ends a slice: the first live key of the file (a parameter) past the slice's row count (a
    parameter); none when the rest of the file fits in the slice. ``order_by`` is the index's key column."""
    qualified = f"{ALIAS}.{quote(schema)}.{quote(table)}"
    return f"SELECT {order_by} FROM {qualified} WHERE filename = ? ORDER BY {order_by} LIMIT 1 OFFSET ?"


def slice_sql(schema: str, table: str, order_by: str) -> tuple[str, str]:
    """A slice's two statements, parameters (file name, end key): move the file's live rows with keys before
    the end key into a new file, in key order, and delete them from it."""
    qualified = f"{ALIAS}.{quote(schema)}.{quote(table)}"
    where = f"filename = ? AND {order_by} < ?"
    return (f"INSERT INTO {qualified} SELECT * FROM {qualified} WHERE {where} ORDER BY {order_by}",
            f"DELETE FROM {qualified} WHERE {where}")


def listed(lake: Lake, schema: str, table: str) -> list[tuple[str, int]]:
    """(path, size) of each live data file of one index."""
    return [(path, size) for path, size, *_ in lake.con.execute(
        f"FROM ducklake_list_files({literal(ALIAS)}, ?, schema => ?)", [table, schema]).fetchall()]


def fold(lake: Lake, table: str, at_files: int = 2, indexes: tuple[IndexOrder, ...] = INDEXES, *,
         rewrite_worn: bool = False) -> dict:
    """Fold each of ``indexes`` of ``table`` holding at least ``at_files`` foldable files, and with
    ``rewrite_worn`` rewrite each worn file of its row and column indexes alone (``worn``); return files
    folded per schema, worn files rewritten whole (or their last slice) per ``"<schema> worn"`` and slices
    moved from a file that keeps live rows per ``"<schema> worn slice"`` (absent: none). One transaction for
    the inserts and deletes, then DuckLake's rewrite at threshold 1.0 drops the files left with no live row."""
    chosen, alone = {}, {}
    for index in indexes:
        files = listed(lake, index.schema, table)
        small = foldable(files)
        if len(small) >= at_files:
            chosen[index] = small
        if rewrite_worn and index in KEYED:
            tired = worn(deleted_shares(lake, index.schema, table, files), set(chosen.get(index, ())),
                         most_bytes=WORN_MOST_BYTES)
            if tired:
                alone[index] = tired
    if not chosen and not alone:
        return {}
    con = lake.con
    touched = list(dict.fromkeys([*chosen, *alone]))
    sliced: dict[IndexOrder, int] = {}
    with lake.transaction(), lake.not_inlined([(index.schema, table) for index in touched]):
        for index, files in chosen.items():
            insert, delete = fold_sql(index.schema, table, index.order_by, len(files))
            con.execute(insert, files)
            con.execute(delete, files)
        for index, rewrites in alone.items():
            for rewrite in rewrites:
                if _rewrite_alone(con, index, table, rewrite):
                    sliced[index] = sliced.get(index, 0) + 1
    for index in touched:
        con.execute(f"CALL ducklake_rewrite_data_files({literal(ALIAS)}, ?, schema => ?, delete_threshold => 1.0)",
                    [table, index.schema])
    return {**{index.schema: len(files) for index, files in chosen.items()},
            **{index.schema + WORN: len(files) - sliced.get(index, 0) for index, files in alone.items()
               if len(files) > sliced.get(index, 0)},
            **{index.schema + SLICED: n for index, n in sliced.items()}}


def _rewrite_alone(con, index: IndexOrder, table: str, rewrite: Rewrite) -> bool:
    """Move ``rewrite``'s rows into one new file: all its live rows, or its first ``rewrite.rows`` in key order
    (True: a slice, the file keeps live rows). Runs inside the fold's transaction."""
    end = None
    if rewrite.rows is not None:
        end = con.execute(slice_end_sql(index.schema, table, index.order_by), [rewrite.path, rewrite.rows]).fetchone()
    if end is None:  # whole, or the last slice
        insert, delete = fold_sql(index.schema, table, index.order_by, 1)
        con.execute(insert, [rewrite.path])
        con.execute(delete, [rewrite.path])
        return False
    insert, delete = slice_sql(index.schema, table, index.order_by)
    con.execute(insert, [rewrite.path, end[0]])
    con.execute(delete, [rewrite.path, end[0]])
    return True


WORN = " worn"
"""``fold``'s key suffix for the worn files of an index rewritten whole (the plain schema: small files folded)."""
SLICED = " worn slice"
"""``fold``'s key suffix for a slice of a worn file moved, the file keeping live rows for the next fold."""


def totals(result: dict) -> tuple[int, int, int]:
    """(small files folded, worn files rewritten whole or finished, slices moved with more to come) of a
    ``fold`` result."""
    worn_files = sum(n for name, n in result.items() if name.endswith(WORN))
    slices = sum(n for name, n in result.items() if name.endswith(SLICED))
    return sum(result.values()) - worn_files - slices, worn_files, slices
