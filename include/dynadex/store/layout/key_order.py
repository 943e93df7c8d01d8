"""A number per key that follows the key order, so that a batch's few keys prune row groups whatever they hold.

The row and column indexes are sorted by the key text, but DuckDB 1.5.5 keeps only the first 8 bytes of a
string's min/max, and the key texts of one table share far more: ``{"pk":{"S":"customer#000`` … A BIGINT's
min/max is exact, so each index also stores ``order_number(key, prefix)`` (``key_order`` in the row index,
``_key_order`` in the column index), where ``prefix`` is the table's common key prefix, fixed when it is
published (``table_prefix``): the 7 bytes of the key's UTF-8 text that follow the prefix, as a big-endian
number. A batch's statements add ``key_order IN (...)`` (store/apply/key_pruning.py).

Invariants:

* Monotone: for key texts ``a <= b`` (DuckDB's VARCHAR order: UTF-8 bytes), ``order_number(a) <=
  order_number(b)``. So in a file sorted by key the numbers are sorted, each row group's [min, max] of the
  number is tight, and ``key_order IN (numbers of the keys)`` is implied by ``key IN (keys)``: it never
  changes which rows a statement touches. A key outside the prefix (written by the stream after publish)
  gets ``BELOW`` or ``ABOVE``: still monotone, it only prunes less.
* ``order_number_sql`` computes in DuckDB exactly what ``order_number`` computes in Python (the bulk load's
  merges and every stream insert use the SQL; the batch filters use Python), tested on hostile texts.
"""

from __future__ import annotations

import json

from dynadex.store.layout.names import literal

WIDTH = 7  # bytes after the prefix: a non-negative BIGINT
BELOW = -1  # keys that sort before the prefix
ABOVE = 1 << (8 * WIDTH)  # keys that sort after every key holding the prefix


def structural_prefix(key_names: tuple[str, ...], key_types: tuple[str, ...]) -> str:
    """What every key text of the table starts with: ``{"<first name>":{"<type>":"`` (names sorted, as
    ``shape.key_text`` writes them; every key value is a JSON string there)."""
    first = sorted(key_names)[0] if len(key_names) > 1 else key_names[0]
    kind = key_types[list(key_names).index(first)]
    return "{" + json.dumps(first, ensure_ascii=False) + ":{" + json.dumps(kind) + ':"'


def common_prefix(a: str, b: str) -> str:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return a[:n]


def table_prefix(bounds: list[str], key_names: tuple[str, ...], key_types: tuple[str, ...]) -> str:
    """The prefix every key of a table being published holds: the common prefix of its least and greatest key
    (every key sorts between them), at least the structural one; the structural one for an empty table."""
    base = structural_prefix(key_names, key_types)
    if not bounds:
        return base
    shared = common_prefix(min(bounds, key=str.encode), max(bounds, key=str.encode))
    return shared if len(shared) >= len(base) and shared.startswith(base) else base


def order_number(key: str, prefix: str) -> int:
    data, head = key.encode(), prefix.encode()
    if data.startswith(head):
        return int.from_bytes(data[len(head):len(head) + WIDTH].ljust(WIDTH, b"\0"), "big")
    return BELOW if data < head else ABOVE


def order_number_sql(expr: str, prefix: str) -> str:
    """The SQL of ``order_number(<expr>, prefix)`` (``expr`` a VARCHAR expression); the prefix is a literal."""
    head = literal(prefix)
    start = 2 * len(prefix.encode()) + 1
    return (f"CASE WHEN starts_with({expr}, {head}) "
            f"THEN ('0x' || rpad(substring(hex(encode({expr})), {start}, {2 * WIDTH}), {2 * WIDTH}, '0'))::BIGINT "
            f"WHEN {expr} < {head} THEN {BELOW} ELSE {ABOVE} END")
