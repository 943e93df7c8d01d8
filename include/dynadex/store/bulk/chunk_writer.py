"""The exact Python path's chunk writer: items shaped in Python, staged in parts, finished in DuckDB.

Invariants:

* Memory stays bounded: items are shaped and flushed as local Parquet parts
  of ``part_items`` items (numbers as exact text, staging column names).
* ``finish`` turns the parts into the chunk's final files (``chunk_files``:
  sorted, typed by the chunk's own statistics) in a fresh attempt folder,
  then writes the manifest; the parts are deleted. The manifest is removed
  when a writer starts, so a crashed build never looks complete.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import replace

import pyarrow.parquet as pq

from dynadex.store.bulk import chunk_files
from dynadex.store.bulk.chunk_manifest import ChunkManifest, ColumnStats, remove_manifest, write_manifest
from dynadex.store.bulk.staging import new_attempt_dir
from dynadex.store.catalog.extensions import connect
from dynadex.store.catalog.location import StoreLocation
from dynadex.store.layout.arrow import columns_arrow, inverted_arrow, rows_arrow
from dynadex.store.layout.names import KEY_COLUMN, literal_list
from dynadex.store.layout.shape import Shaped


def finish_chunk(con, location: StoreLocation, chunk: ChunkManifest, *, rows_sql: str, cols_sql: str | None,
                 inv_sql: str, stats: list[ColumnStats], steps=None) -> ChunkManifest:
    """Write the chunk's final files (a fresh attempt folder) from staged relations, then its manifest: ``chunk``
    (identity, item count and build figures) completed with the files, columns and bounds. The chunk exists for
    publish from the moment this returns, not before."""
    d = new_attempt_dir(location, chunk.table, chunk.build_id, chunk.chunk_id)
    step = steps or (lambda _name: None)
    files = {"rows": [f"{d}/rows.parquet"], "cols": [f"{d}/cols.parquet"], "inv": [f"{d}/inv.parquet"]}
    chunk_files.write_rows(con, rows_sql, chunk.key_types, files["rows"][0])
    step("rows")
    columns = chunk_files.chunk_columns([s for s in stats if s.count])
    chunk_files.write_columns(con, cols_sql or f"SELECT key AS {KEY_COLUMN} FROM ({rows_sql})", columns, files["cols"][0])
    step("columns")
    entries = chunk_files.write_inverted(con, inv_sql, files["inv"][0])
    step("inverted")
    manifest = replace(chunk, files=files, columns=columns, key_bounds=chunk_files.key_bounds(con, files["rows"][0]),
                       inverted_entries=entries,
                       inverted_bounds=chunk_files.inverted_bounds(con, files["inv"][0], entries))
    write_manifest(location, manifest)
    return manifest


class ChunkWriter:
    """Shapes items of one chunk in Python, stages them in parts; ``finish`` writes the final files."""

    def __init__(self, location: StoreLocation, table: str, build_id: str, chunk_id: str,
                 key_names: tuple[str, ...], key_types: tuple[str, ...], *, part_items: int = 100_000):
        self.location = location
        self.table, self.build_id, self.chunk_id = table, build_id, chunk_id
        self.key_names, self.key_types = tuple(key_names), tuple(key_types)
        self.part_items = part_items
        remove_manifest(location, table, build_id, chunk_id)
        self.tmp = tempfile.mkdtemp(prefix="dynadex-parts-")
        self.parts: dict[str, list[str]] = {"rows": [], "cols": [], "inv": []}
        self.stats: dict[tuple, ColumnStats] = {}
        self.items = 0
        self.shaped = Shaped()

    def add(self, item: dict, version: int, origin: str) -> None:
        self.shaped.add(item, self.key_names, version, origin, self.key_types)
        if len(self.shaped) >= self.part_items:
            self._flush()

    def _flush(self) -> None:
        shaped = self.shaped
        if not len(shaped):
            return
        n = len(self.parts["rows"])
        for kind, t in (("rows", rows_arrow(shaped, self.key_types)), ("cols", columns_arrow(shaped)),
                        ("inv", inverted_arrow(shaped))):
            path = f"{self.tmp}/{kind}-{n:05d}.parquet"
            pq.write_table(t, path, compression="zstd")
            self.parts[kind].append(path)
        add_stats(self.stats, shaped)
        self.items += len(shaped)
        self.shaped = Shaped()

    def finish(self, extra: dict | None = None, *, threads: int | None = None) -> ChunkManifest:
        self._flush()
        extra = extra or {}
        con = connect(threads=threads)
        try:
            if self.location.data_path.startswith("s3://"):
                from dynadex.store.catalog.lake import s3_secret

                s3_secret(con, self.location)
            if self.parts["rows"]:
                rows_sql = f"SELECT * FROM read_parquet({literal_list(self.parts['rows'])})"
                cols_sql = f"SELECT * FROM read_parquet({literal_list(self.parts['cols'])}, union_by_name = true)"
                inv_sql = f"SELECT * FROM read_parquet({literal_list(self.parts['inv'])})"
            else:  # an empty chunk still has (empty) files, so every chunk looks alike to publish
                rows_sql = empty_rows_sql(self.key_types)
                cols_sql = None
                inv_sql = "SELECT NULL::VARCHAR AS path, NULL::VARCHAR AS kind, NULL::VARCHAR AS value, NULL::VARCHAR AS key LIMIT 0"
            chunk = ChunkManifest(self.table, self.build_id, self.chunk_id, self.items, self.key_names, self.key_types,
                                  built_by=extra.get("built_by", "python"), source_files=extra.get("files", []),
                                  json_bytes=extra.get("json_bytes", 0), gzip_bytes=extra.get("gzip_bytes", 0))
            return finish_chunk(con, self.location, chunk, rows_sql=rows_sql, cols_sql=cols_sql, inv_sql=inv_sql,
                                stats=list(self.stats.values()))
        finally:
            con.close()
            shutil.rmtree(self.tmp, ignore_errors=True)


def empty_rows_sql(key_types: tuple[str, ...]) -> str:
    def t(kind: str) -> str:
        return "BLOB" if kind == "B" else "VARCHAR"

    sk = f", NULL::{t(key_types[1])} AS sk" if len(key_types) > 1 else ""
    return (f"SELECT NULL::VARCHAR AS key, NULL::{t(key_types[0])} AS pk{sk}, NULL::VARCHAR AS item, "
            "NULL::BIGINT AS version, NULL::VARCHAR AS origin LIMIT 0")


def add_stats(stats: dict, shaped: Shaped) -> None:
    """Fold a shaped part's column counts and number figures into ``stats`` ((path, kind) -> ColumnStats)."""
    for (path, kind), values in shaped.columns.items():
        part = ColumnStats(path, kind, sum(1 for v in values if v is not None), shaped.number_stats.get((path, kind)))
        if (path, kind) in stats:
            stats[(path, kind)].merge(part)
        else:
            stats[(path, kind)] = ColumnStats(path, kind, 0)
            stats[(path, kind)].merge(part)
