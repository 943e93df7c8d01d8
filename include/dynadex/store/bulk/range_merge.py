"""Merging the chunks' sorted files by range into the files publish registers.

Every chunk's row file spans the whole key space and every chunk's inverted
file every (path, value): registered as they are, a point lookup would open
one file per chunk (a thousand on a 20 TB load). Before publish, parallel
jobs each take one range and write it as ONE sorted file, read from every
chunk's file (row groups outside the range are skipped by their statistics):

* ``keys`` ranges of the row index and of the column index (half-open
  ``[lo, hi)`` over the key text): the column index's range is written with
  the snapshot's final column names and types, each chunk's columns cast
  where its own statistics chose another type (the type-conflict rule);
* ``entries`` ranges of the inverted index (half-open over (path, value,
  key), where a NULL value sorts after every value of its path, as ``ORDER
  BY`` puts it). The key is part of the range so that a value held by
  millions of items (a status, a flag) is cut like any other run of entries:
  one range never has to hold all of it.

Invariants: the ranges of one index partition its space (first open below,
last open above, each range's ``hi`` the next one's ``lo``), so every row and
entry lands in exactly one merged file; the merged files of one index have
disjoint ranges, so DuckLake's per-file min/max statistics let ``get`` and
``find`` open one file (a few where a range boundary falls inside a path or
a value's entries) whatever the chunk count.
A job's output is a pure function of the chunk files and its range, written
into a fresh attempt folder: re-running it never changes a registered file.
SQL is generated here apart from running it (``*_sql``), so it is tested on
its own.
"""

from __future__ import annotations

import math

from dynadex.store.bulk.chunk_manifest import ChunkManifest
from dynadex.store.layout.key_order import order_number_sql
from dynadex.store.layout.names import KEY_COLUMN, KEY_ORDER_COLUMN, ROW_KEY_ORDER, literal, literal_list, quote
from dynadex.store.layout.row_groups import COLUMN_GROUP_ROWS, ENTRY_GROUP_ROWS, PARQUET, ROW_GROUP_ROWS

Entry = tuple[str, str | None, str]  # (path, value, key): a None value is NULL, after every value of the path


def entry_order(e: Entry) -> tuple:
    """Python's order of (path, value, key) bounds, equal to DuckDB's ``ORDER BY path, value, key`` (NULLS
    LAST): strings compare by code point, which is UTF-8 byte order, as DuckDB compares VARCHAR."""
    return (e[0], e[1] is None, e[1] or "", e[2])


def cut(bounds: list, count: int, order=None) -> list[tuple]:
    """``count`` contiguous half-open ranges (first and last open) cut at evenly spaced points of the sorted
    ``bounds``: about equal shares when every chunk contributes evenly spaced samples. Repeated samples keep
    their weight (a point sampled often is where much of the data is); repeated cut points are dropped."""
    ordered = sorted((tuple(b) if isinstance(b, list) else b for b in bounds), key=order)
    if count <= 1 or len(set(ordered)) < 2:
        return [(None, None)]
    cuts, seen = [], set()
    for i in range(1, count):
        b = ordered[round(i * (len(ordered) - 1) / count)]
        if b not in seen:
            seen.add(b)
            cuts.append(b)
    edges: list = [None, *cuts, None]
    return list(zip(edges[:-1], edges[1:]))


def range_count(total: int, per_range: int, chunks: int, chunks_per_range: int, most: int) -> int:
    """Enough ranges for every range to hold about ``per_range`` rows, and at least one for every
    ``chunks_per_range`` chunks (so the merges spread over as many workers as the builds did)."""
    return max(1, min(most, max(math.ceil(total / per_range), math.ceil(chunks / chunks_per_range))))


def inverted_bounds_of(manifests: list[ChunkManifest]) -> list[Entry]:
    """Every chunk's bounds; a chunk built before keys were recorded (a build in flight across an upgrade)
    gives (path, value, ""), the first point of that (path, value): still a valid cut."""
    return [(b[0], b[1], b[2] if len(b) > 2 else "") for m in manifests for b in m.inverted_bounds]


# ------------------------------------------------------------------ SQL


def key_range_sql(lo: str | None, hi: str | None, column: str = "key") -> tuple[str, list]:
    """WHERE clause (or '') and its parameters for ``lo <= column < hi`` (``column`` quoted as needed)."""
    where, params = [], []
    if lo is not None:
        where.append(f"{column} >= ?")
        params.append(lo)
    if hi is not None:
        where.append(f"{column} < ?")
        params.append(hi)
    return (f"WHERE {' AND '.join(where)}" if where else ""), params


def entry_range_sql(lo: Entry | None, hi: Entry | None) -> tuple[str, list]:
    """WHERE clause (or '') and parameters for ``lo <= (path, value, key) < hi``, NULL values last in their
    path. The plain ``path >=`` / ``path <=`` conjuncts are implied by the exact ones; they are there because
    DuckDB prunes row groups with them."""
    where, params = [], []
    if lo is not None:
        p, v, k = lo
        where.append("path >= ?")
        params.append(p)
        if v is None:
            where.append("(path > ? OR (value IS NULL AND key >= ?))")
            params += [p, k]
        else:
            where.append("(path > ? OR value > ? OR value IS NULL OR (value = ? AND key >= ?))")
            params += [p, v, v, k]
    if hi is not None:
        p, v, k = hi
        where.append("path <= ?")
        params.append(p)
        if v is None:
            where.append("(path < ? OR value IS NOT NULL OR key < ?)")
            params += [p, k]
        else:
            where.append("(path < ? OR value < ? OR (value = ? AND key < ?))")
            params += [p, v, v, k]
    return (f"WHERE {' AND '.join(where)}" if where else ""), params




def merge_rows_sql(files: list[str], lo: str | None, hi: str | None, target: str, prefix: str) -> tuple[str, list]:
    """The range ``[lo, hi)`` of the row index as one file sorted by key, with each key's order number under the
    table's ``prefix`` (store/layout/key_order.py)."""
    where, params = key_range_sql(lo, hi)
    return (f"COPY (SELECT *, {order_number_sql('key', prefix)} AS {ROW_KEY_ORDER} FROM read_parquet({literal_list(files)}) "
            f"{where} ORDER BY key) TO {literal(target)} ({PARQUET}, ROW_GROUP_SIZE {ROW_GROUP_ROWS})"), params


def merge_columns_sql(sources: list[tuple[list[str], list[str] | None]], columns: list[str], lo: str | None,
                      hi: str | None, target: str, prefix: str) -> tuple[str, list]:
    """The range ``[lo, hi)`` of the column index as one file sorted by key, with each key's order number under
    the table's ``prefix`` and the final ``columns`` (quoted names, in order). ``sources``: (chunk column files, their SELECT list casting to the final names
    and types, or None where the files already have them); sources are united by column name, a column a
    file lacks being NULL."""
    branches, params = [], []
    for files, select in sources:
        where, p = key_range_sql(lo, hi, quote(KEY_COLUMN))
        if select is None:
            branches.append(f"SELECT * FROM read_parquet({literal_list(files)}, union_by_name = true) {where}")
        else:
            branches.append(f"SELECT {', '.join(select)} FROM read_parquet({literal_list(files)}) {where}")
        params += p
    union = " UNION ALL BY NAME ".join(f"({b})" for b in branches)
    order = f"{order_number_sql(quote(KEY_COLUMN), prefix)} AS {quote(KEY_ORDER_COLUMN)}"
    return (f"COPY (SELECT {', '.join([quote(KEY_COLUMN), order, *columns])} FROM ({union}) "
            f"ORDER BY {quote(KEY_COLUMN)}) "
            f"TO {literal(target)} ({PARQUET}, ROW_GROUP_SIZE {COLUMN_GROUP_ROWS})"), params


def merge_entries_sql(files: list[str], lo: Entry | None, hi: Entry | None, target: str) -> tuple[str, list]:
    where, params = entry_range_sql(lo, hi)
    return (f"COPY (SELECT path, kind, value, key, write_id FROM read_parquet({literal_list(files)}) {where} "
            f"ORDER BY path, value) TO {literal(target)} ({PARQUET}, ROW_GROUP_SIZE {ENTRY_GROUP_ROWS})"), params


def run_copy(con, sql: str, params: list) -> int:
    """Run a COPY; the number of rows it wrote."""
    row = con.execute(sql, params).fetchone()
    return int(row[0]) if row else 0
