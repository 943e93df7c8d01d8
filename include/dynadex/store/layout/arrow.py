"""Shaped items as Arrow tables: the row, column and inverted parts both write paths stage.

Invariant: numbers stay exact text and every column is named by
``names.staging_name``, so the bulk chunk writer and the stream apply
hand DuckDB the same shapes and a part never rounds a value.
"""

from __future__ import annotations

import pyarrow as pa

from dynadex.store.layout.names import KEY_COLUMN, staging_name
from dynadex.store.layout.shape import Shaped

KIND_ARROW = {
    "S": pa.string(),
    "N": pa.string(),
    "B": pa.binary(),
    "BOOL": pa.bool_(),
    "SS": pa.list_(pa.string()),
    "NS": pa.list_(pa.string()),
    "BS": pa.list_(pa.binary()),
    "L": pa.list_(pa.string()),
}


def rows_arrow(shaped: Shaped, key_types: tuple[str, ...]) -> pa.Table:
    arrays = {"key": pa.array(shaped.keys, pa.string())}
    for name, values, t in (("pk", shaped.pk, key_types[0] if key_types else "S"),
                            ("sk", shaped.sk, key_types[1] if len(key_types) > 1 else None)):
        if t is None:
            continue
        arrays[name] = pa.array(values, pa.binary() if t == "B" else pa.string())
    arrays["item"] = pa.array(shaped.items, pa.string())
    arrays["version"] = pa.array(shaped.versions, pa.int64())
    arrays["origin"] = pa.array(shaped.origins, pa.string())
    return pa.table(arrays)


def columns_arrow(shaped: Shaped) -> pa.Table:
    shaped.pad()
    arrays = {KEY_COLUMN: pa.array(shaped.keys, pa.string())}
    for (path, kind), values in sorted(shaped.columns.items()):
        arrays[staging_name(path, kind)] = pa.array(values, KIND_ARROW[kind])
    return pa.table(arrays)


def inverted_arrow(shaped: Shaped) -> pa.Table:
    return pa.table(
        {
            "path": pa.array(shaped.inv_path, pa.string()),
            "kind": pa.array(shaped.inv_kind, pa.string()),
            "value": pa.array(shaped.inv_value, pa.string()),
            "key": pa.array(shaped.inv_key, pa.string()),
        }
    )
