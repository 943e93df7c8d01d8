"""Names in SQL: quoting, the three indexes of a source table, and column names.

Invariants:

* Every identifier that comes from data is quoted with ``quote`` (double
  quotes doubled); values never enter SQL text, they are bound parameters
  or registered Arrow tables.
* For source table ``T``: the column index is ``main."T"`` (so ``SELECT …
  FROM "T"`` works), the row index ``row_index."T"``, the inverted index
  ``inverted_index."T"``; sync state lives in schema ``dynadex``.
* A flattened attribute path is its map keys joined with ``.``. The first
  DynamoDB kind seen at a path owns the plain name; another kind at the same
  path gets ``path:KIND`` (``price:S``); a number the path's numeric column
  cannot hold exactly goes to ``path:double``. Names already taken get
  ``#2``, ``#3``…, compared without case (SQL identifiers ignore it, DynamoDB
  names do not: ``Upper`` and ``upper`` become ``Upper`` and ``upper#2``). The
  registry in ``dynadex.columns`` makes the mapping stable.
"""

from __future__ import annotations

import json

ROW_SCHEMA = "row_index"
INVERTED_SCHEMA = "inverted_index"
COLUMN_SCHEMA = "main"
STATE_SCHEMA = "dynadex"
KEY_COLUMN = "_key"


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A SQL string literal (for the few places DuckDB takes no parameter, e.g. ATTACH)."""
    return "'" + text.replace("'", "''") + "'"


def literal_list(texts) -> str:
    """A SQL list of string literals (file lists for read_parquet)."""
    return "[" + ", ".join(literal(t) for t in texts) + "]"


def column_table(table: str) -> str:
    return f"{quote(COLUMN_SCHEMA)}.{quote(table)}"


def row_table(table: str) -> str:
    return f"{quote(ROW_SCHEMA)}.{quote(table)}"


def inverted_table(table: str) -> str:
    return f"{quote(INVERTED_SCHEMA)}.{quote(table)}"


def path_text(path: tuple[str, ...]) -> str:
    return ".".join(path)


def staging_name(path: tuple[str, ...], kind: str) -> str:
    """Unambiguous column name used inside chunk segments (never shown to users)."""
    return json.dumps([*path, kind], ensure_ascii=False, separators=(",", ":"))


def parse_staging_name(name: str) -> tuple[tuple[str, ...], str]:
    parts = json.loads(name)
    return tuple(parts[:-1]), parts[-1]


def unique_name(wanted: str, taken: set[str]) -> str:
    """``wanted``, or ``wanted#2``, ``#3``… : the first not in ``taken`` (lower-cased names). SQL identifiers
    (DuckDB's, DuckLake's file mapping) ignore case where DynamoDB names do not, so ``Upper`` and ``upper``
    are two columns: the first path in sort order keeps the name, the other gets ``upper#2``."""
    name, n = wanted, 1
    while name.lower() in taken:
        n += 1
        name = f"{wanted}#{n}"
    return name
