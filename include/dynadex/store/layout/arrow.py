"""Shaped items as Arrow tables: the row, column and inverted parts both write paths stage.

Invariant: numbers stay exact text and every column is named by
``names.staging_name``, so the bulk chunk writer and the stream apply
hand DuckDB the same shapes and a part never rounds a value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from dynadex.store.layout.names import KEY_COLUMN, staging_name

if TYPE_CHECKING:
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


@dataclass(frozen=True)
class ArrowParts:
    """What the stream apply inserts a batch's upserts from, whichever way they were shaped (``Shaped.arrow``, in
    Python; ``sql_shape.ArrowShaped.arrow``, in DuckDB): the row index's rows (key, pk[, sk], item, version,
    origin), the column index's keys in row order, and the inverted entries (path, kind, value, key)."""

    rows: pa.Table
    keys: pa.Array | pa.ChunkedArray
    inv: pa.Table


def arrow_values(values, kind: str) -> pa.Array | pa.ChunkedArray:
    """One column's values as Arrow: a Python list (``Shaped``, or routed value by value) converted to its
    kind's type, an Arrow column (staged by DuckDB) as it is."""
    return pa.array(values, KIND_ARROW[kind]) if isinstance(values, list) else values


def python_values(values) -> list:
    """One column's values as a Python list, whichever of the two forms ``arrow_values`` takes."""
    return values if isinstance(values, list) else values.to_pylist()


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
