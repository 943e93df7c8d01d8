"""Writing one chunk's final index files from staged rows, in DuckDB.

Both build paths (DuckDB's and the exact Python one) stage a chunk's rows as
SQL relations: the row index's columns, the column index with every value
as the exact staged form (numbers as canonical text), and the inverted
entries. This module turns them into the files publish registers as they are.

Invariants:

* Rows are sorted by key (row groups of ``ROW_GROUP_ROWS``: a point lookup
  reads one small group per file), columns by key, inverted entries by
  (path, value) in groups of ``ENTRY_GROUP_ROWS`` (a build of up to
  ``MERGE_ENTRIES_ABOVE_CHUNKS`` chunks registers them as they are, and a
  ``find`` reads one group of each); every row and entry carries
  ``BULK_WRITE_ID``.
* Column names and types are those the type-conflict rule (``registry``)
  gives for this chunk's own statistics. Numbers are cast from their exact
  text, so the only rounding is into a DOUBLE column. Where chunks disagree
  (the data does), the key-range merges cast this chunk's columns to the
  final types on the way (``prepare``), in parallel, never in publish.
* The key bounds (min, ``BOUNDS`` evenly spaced keys, max) and the inverted
  bounds (the same of (path, value)) let prepare split each index into ranges
  of about equal size, which parallel jobs check and merge (``range_merge``).
"""

from __future__ import annotations

from dynadex.store.bulk.chunk_manifest import ColumnStats
from dynadex.store.layout.names import KEY_COLUMN, literal, quote, staging_name
from dynadex.store.layout.registry import Registry
from dynadex.store.layout.row_groups import CHUNK_ROW_GROUP_ROWS as ROW_GROUP_ROWS
from dynadex.store.layout.row_groups import ENTRY_GROUP_ROWS, PARQUET
from dynadex.store.layout.writes import BULK_WRITE_ID

BOUNDS = 32
BOUND_CHARS = 256


def cast_sql(expr: str, from_type: str, to_type: str) -> str:
    """``expr`` (of SQL type ``from_type``, or exact number text when ``from_type`` is VARCHAR) as ``to_type``.

    Into DOUBLE a number goes through its exact text, so it rounds once, exactly as from the item."""
    if from_type == to_type:
        return expr
    if to_type in ("DOUBLE", "DOUBLE[]") and from_type not in ("VARCHAR", "VARCHAR[]"):
        via = "VARCHAR[]" if to_type.endswith("[]") else "VARCHAR"
        return f"CAST(CAST({expr} AS {via}) AS {to_type})"
    return f"CAST({expr} AS {to_type})"


def chunk_columns(stats: list[ColumnStats]) -> list[ColumnStats]:
    """The chunk's columns named and typed by the type-conflict rule over its own statistics."""
    registry = Registry.for_publish({(s.path, s.kind): (s.count, s.number) for s in stats})
    out = []
    for s in stats:
        c = registry.by_key[(s.path, s.kind)]
        out.append(ColumnStats(s.path, s.kind, s.count, s.number, c.name, c.sql_type))
    return sorted(out, key=lambda c: c.name)


def staged_type(kind: str) -> str:
    """The SQL type a staged column has (numbers as exact text)."""
    return {"N": "VARCHAR", "NS": "VARCHAR[]"}.get(kind, "")


def write_rows(con, rows_sql: str, key_types: tuple[str, ...], target: str) -> None:
    sk = ", sk" if len(key_types) > 1 else ""
    con.execute(f"COPY (SELECT key, pk{sk}, item, version, origin, {BULK_WRITE_ID}::BIGINT AS write_id "
                f"FROM ({rows_sql}) ORDER BY key) TO {literal(target)} ({PARQUET}, ROW_GROUP_SIZE {ROW_GROUP_ROWS})")


def write_columns(con, cols_sql: str, columns: list[ColumnStats], target: str) -> None:
    """``cols_sql`` has ``_key`` and one staged column per (path, kind), named ``staging_name``."""
    select = [quote(KEY_COLUMN)]
    for c in columns:
        staged = quote(staging_name(c.path, c.kind))
        select.append(f"{cast_sql(staged, staged_type(c.kind) or c.sql_type, c.sql_type)} AS {quote(c.name)}")
    con.execute(f"COPY (SELECT {', '.join(select)} FROM ({cols_sql}) ORDER BY {quote(KEY_COLUMN)}) "
                f"TO {literal(target)} ({PARQUET})")


def write_inverted(con, inv_sql: str, target: str) -> int:
    """Returns the number of entries written."""
    rows = con.execute(f"COPY (SELECT path, kind, value, key, {BULK_WRITE_ID}::BIGINT AS write_id FROM ({inv_sql}) "
                       f"ORDER BY path, value) TO {literal(target)} ({PARQUET}, ROW_GROUP_SIZE {ENTRY_GROUP_ROWS})").fetchone()
    return int(rows[0]) if rows else 0


def inverted_bounds(con, inv_file: str, entries: int) -> list[list]:
    """(path, value, key) of the first, ``BOUNDS - 1`` evenly spaced and the last entry of the chunk's inverted
    file, sorted (value None where NULL); [] when it is empty. Read by row number (the file is sorted by path
    and value), then sorted with the key: no full scan.

    Path and value are cut to their first ``BOUND_CHARS`` characters: a prefix sorts at or before its
    entry, so the bounds stay points of the same order and still cut the space (a cut need not be an entry),
    while plans and XCom stay small whatever a 400 KB value holds."""
    if entries <= 0:
        return []
    rows = sorted({round(i * (entries - 1) / BOUNDS) for i in range(BOUNDS + 1)})
    got = con.execute(f"SELECT left(path, {BOUND_CHARS}) AS p, left(value, {BOUND_CHARS}) AS v, key "
                      f"FROM read_parquet({literal(inv_file)}, file_row_number = true) "
                      f"WHERE file_row_number IN ({', '.join(str(r) for r in rows)}) ORDER BY p, v, key").fetchall()
    return [[p, v, k] for p, v, k in got]


def key_bounds(con, rows_file: str) -> list[str]:
    """min, BOUNDS - 1 evenly spaced keys, max of the chunk's (sorted) row file; [] when it is empty."""
    fractions = [i / BOUNDS for i in range(BOUNDS + 1)]
    row = con.execute(f"SELECT quantile_disc(key, {fractions}) FROM read_parquet({literal(rows_file)})").fetchone()
    return list(row[0]) if row and row[0] is not None else []
