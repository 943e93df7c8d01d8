"""Extra filters that let a stream batch's few-key statements skip row groups.

A stream batch looks up its keys in the row index and deletes their rows
from the row and column indexes, each time with ``key IN (...)``. The
indexes are sorted by key in row groups of 4 096, but DuckDB 1.5.5 keeps
only the first 8 bytes of a string's min/max, and every key text starts
with the same ``{"<name>":{"`` bytes: for two keys or more, the IN filter
prunes nothing and each statement scans the whole key column (one key
becomes ``key = ?``, which the Parquet reader checks against the full
min/max). The key attributes' own columns (``pk``/``sk`` in the row index,
the attribute's column in the column index) usually differ early, so an
IN filter on them skips every row group that holds none of the batch's
keys: the statement's cost follows the batch, not the table.

On a table published since decision 0027 both indexes also hold a number
that follows the key order (store/layout/key_order.py); ``order_filter`` narrows by
it, whatever the key values share, and the key-column filters below serve
tables published before.

Invariants:

* Every filter returned is implied by ``key IN (keys)``: added to a
  statement already restricted to those keys, it never changes which rows
  the statement reads, deletes or returns; it only lets DuckDB skip groups.
* A filter is used only where it can pay: on a table of at least
  ``PRUNE_ABOVE_ROWS`` rows (below, most groups hold one of the keys and
  the list is evaluated on their every row for little: a 20-change batch
  took 0.16 against 0.15 s at 250 000 items, 0.17 against 0.20 s at 1 M,
  0.26 against 0.43 s at 4 M), for between 2 and
  ``PRUNE_KEYS`` keys (beyond that, most groups hold a key anyway), on a
  key part whose values do not all share their first ``PREFIX_BYTES`` bytes.
"""

from __future__ import annotations

from dynadex import settings
from dynadex.store.layout.key_order import order_number
from dynadex.store.layout.shape import key_value

PRUNE_KEYS = settings.NARROW_KEYS.read()  # most keys a batch statement narrows by (bench_stream --batch-scale)
PRUNE_ABOVE_ROWS = 500_000  # the smallest table whose batches narrow (about 120 row groups of 4 096)
PREFIX_BYTES = 8  # what DuckDB keeps of a string column's min/max


def worth_it(rows: int) -> bool:
    """Whether a table of about ``rows`` rows is large enough for the filters to pay."""
    return rows >= PRUNE_ABOVE_ROWS


def _prunes(values: list) -> bool:
    prefixes = {(v.encode() if isinstance(v, str) else v)[:PREFIX_BYTES] for v in values}
    return len(prefixes) > 1


def _part_values(key_names: tuple[str, ...], keys: list[dict]) -> list[tuple[int, list]]:
    """(part index, distinct stored values) of each key part worth a filter; none outside 2..PRUNE_KEYS keys."""
    if not 2 <= len(keys) <= PRUNE_KEYS:
        return []
    out = []
    for i, name in enumerate(key_names):
        values = list(dict.fromkeys(key_value(k[name], name) for k in keys))  # as the row index stores them
        if _prunes(values):
            out.append((i, values))
    return out


def row_filter(key_names: tuple[str, ...], keys: list[dict], alias: str) -> tuple[str, list]:
    """`` AND <alias>.pk IN (?...)`` (and ``sk``) for the row index, with its parameters; ``("", [])``
    where no filter would prune."""
    sql, params = "", []
    for i, values in _part_values(key_names, keys):
        sql += f" AND {alias}.{('pk', 'sk')[i]} IN ({', '.join('?' for _ in values)})"
        params += values
    return sql, params


def column_filter(key_names: tuple[str, ...], keys: list[dict], columns: dict[tuple[str, str], str],
                  alias: str) -> tuple[str, list]:
    """The same for the column index, on the key attributes' own columns (``columns``: (attribute, kind) ->
    quoted column name, from the registry). Only S parts: an N key's column holds numbers of a type the
    registry chose (and may overflow to another column), a B key's holds bytes under the same name rules."""
    sql, params = "", []
    for i, values in _part_values(key_names, keys):
        tag = next(iter(keys[0][key_names[i]]))
        column = columns.get((key_names[i], tag))
        if tag != "S" or column is None:
            continue
        sql += f" AND {alias}.{column} IN ({', '.join('?' for _ in values)})"
        params += values
    return sql, params


ORDER_KEYS = 256  # most keys a batch narrows by its key order numbers, on the largest tables
ROWS_PER_ORDER_KEY = 16_384  # ... and on smaller ones, one key per this many rows (a quarter of the groups)


def order_keys(rows: int) -> int:
    """How many keys a batch on a table of about ``rows`` rows narrows by key order numbers: ``PRUNE_KEYS`` at
    least, more where the keys still miss most row groups (at most one key per ``ROWS_PER_ORDER_KEY`` rows,
    a quarter of the 4 096-row groups), up to ``ORDER_KEYS``; 0 where ``DYNADEX_NARROW_KEYS`` is 0. Measured
    (bench_stream --batch-scale, customer# keys): 100 keys at 4 M rows took 0.35 s narrowed against 0.59 s;
    500 keys 0.94 against 0.93 s at 4 M and 0.48 against 0.39 s at 1 M; 1 000 keys twice as long narrowed
    (DuckDB evaluates a long list on every row of the groups left)."""
    if not PRUNE_KEYS:
        return 0
    return max(PRUNE_KEYS, min(ORDER_KEYS, rows // ROWS_PER_ORDER_KEY))


def order_filter(keys: list[str], prefix: str, column: str, alias: str, most: int | None = None) -> tuple[str, list]:
    """`` AND <alias>.<column> IN (?...)`` over the key order numbers of ``keys`` (key texts) under the table's
    ``prefix`` (``column``: ``key_order`` in the row index, ``"_key_order"`` in the column index);
    ``("", [])`` outside 2..``most`` keys (default ``PRUNE_KEYS``; ``order_keys`` gives it by table size)."""
    if not 2 <= len(keys) <= (PRUNE_KEYS if most is None else most):
        return "", []
    numbers = sorted({order_number(k, prefix) for k in keys})
    return f" AND {alias}.{column} IN ({', '.join('?' for _ in numbers)})", numbers
