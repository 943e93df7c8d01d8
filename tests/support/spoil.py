"""A fault for pruning tests: spoil on disk the Parquet row groups a statement must not read."""

from __future__ import annotations

import duckdb


def spoil_groups_without(path: str, column: str, wanted: set, convert=lambda v: v) -> int:
    """Overwrite with zeros every column chunk of the row groups of ``path`` whose ``column`` min/max (each
    passed through ``convert``) holds none of ``wanted`` (page headers and data; the footer stays), so that any
    statement reading such a group fails. Returns how many groups were spoiled."""
    con = duckdb.connect()
    meta = con.execute("SELECT row_group_id, path_in_schema, coalesce(dictionary_page_offset, data_page_offset), "
                       "total_compressed_size, stats_min, stats_max FROM parquet_metadata(?)", [str(path)]).fetchall()
    con.close()
    bounds = {g: (convert(lo), convert(hi)) for g, name, _, _, lo, hi in meta if name == column}
    spoiled = {g for g, (lo, hi) in bounds.items() if not any(lo <= w <= hi for w in wanted)}
    with open(path, "r+b") as f:
        for g, _, offset, size, _, _ in meta:
            if g in spoiled:
                f.seek(offset)
                f.write(b"\0" * size)
    return len(spoiled)
