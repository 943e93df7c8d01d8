"""Names in SQL: quoting, the three indexes of a source table, and column names.

Invariants:

* Every identifier that comes from data is quoted with ``quote`` (double
  quotes doubled); values never enter SQL text, they are bound parameters
  or registered Arrow tables.
* For source table ``T``: the column index is ``main."T"`` (so ``SELECT …
  FROM "T"`` works), the row index ``row_index."T"``, the inverted index
  ``inverted_index."T"``; sync state lives in schema ``dynadex``.
* A flattened attribute path is its names joined with ``.``, each name
  written as ``name_text`` does: ``\\``, ``.`` and ``[`` get a backslash,
  control characters (NUL included) become ``\\u00XX``, everything else
  stays as it is. So a top-level ``a.b`` is ``a\\.b`` and a map ``a`` holding
  ``b`` is ``a.b``: the two never meet, in the column index (column names)
  and in the inverted index (``path``) alike, and no name reaches SQL with a
  character DuckDB cannot hold in an identifier. The first
  DynamoDB kind seen at a path owns the plain name; another kind at the same
  path gets ``path:KIND`` (``price:S``); a number the path's numeric column
  cannot hold exactly goes to ``path:double``. Names already taken get
  ``#2``, ``#3``…, compared without case (SQL identifiers ignore it, DynamoDB
  names do not: ``Upper`` and ``upper`` become ``Upper`` and ``upper#2``). The
  registry, the SQL table ``dynadex.columns`` of the sync state
  (``store/catalog/state.py``), makes the mapping stable.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache

ROW_SCHEMA = "row_index"
INVERTED_SCHEMA = "inverted_index"
COLUMN_SCHEMA = "main"
STATE_SCHEMA = "dynadex"
KEY_COLUMN = "_key"
KEY_ORDER_COLUMN = "_key_order"  # the column index's key order number (store/layout/key_order.py)
ROW_KEY_ORDER = "key_order"  # the row index's


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


_SPECIAL = re.compile(r"[\\.\[\x00-\x1f\x7f]")
_ESCAPED = re.compile(r"\\(?:u([0-9a-fA-F]{4})|(.))", re.DOTALL)


def _escape(m: re.Match) -> str:
    c = m.group()
    return "\\" + c if c in "\\.[" else f"\\u{ord(c):04x}"


@lru_cache(maxsize=1 << 16)
def name_text(name: str) -> str:
    """One attribute or map-field name as it appears in a path (see the module docstring)."""
    return _SPECIAL.sub(_escape, name) if _SPECIAL.search(name) else name


def path_text(path: tuple[str, ...]) -> str:
    """The flattened path: names joined with ``.``, each one escaped by ``name_text``."""
    return ".".join(map(name_text, path))


def child_text(prefix_text: str, name: str) -> str:
    """``path_text(prefix + (name,))`` given ``path_text(prefix)``."""
    return f"{prefix_text}.{name_text(name)}" if prefix_text else name_text(name)


def parse_path_text(text: str) -> tuple[str, ...]:
    """The names of a path text (the inverse of ``path_text``); ValueError on a dangling backslash."""
    names, current, i = [], [], 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            m = _ESCAPED.match(text, i)
            if m is None:
                raise ValueError(f"path {text!r} ends in a lone backslash")
            current.append(chr(int(m.group(1), 16)) if m.group(1) else m.group(2))
            i = m.end()
        elif c == ".":
            names.append("".join(current))
            current, i = [], i + 1
        else:
            current.append(c)
            i += 1
    names.append("".join(current))
    return tuple(names)


def staging_name(path: tuple[str, ...], kind: str) -> str:
    """The column name of (path, kind) inside a chunk build (never shown to users): the hex of its JSON,
    so it is unique even where SQL ignores case (``Upper`` and ``upper`` must not meet in a UNION BY NAME)
    and holds no character an identifier cannot."""
    return "s" + json.dumps([*path, kind], ensure_ascii=False, separators=(",", ":")).encode().hex()


def unique_name(wanted: str, taken: set[str]) -> str:
    """``wanted``, or ``wanted#2``, ``#3``… : the first not in ``taken`` (lower-cased names). SQL identifiers
    (DuckDB's, DuckLake's file mapping) ignore case where DynamoDB names do not, so ``Upper`` and ``upper``
    are two columns: the first path in sort order keeps the name, the other gets ``upper#2``."""
    name, n = wanted, 1
    while name.lower() in taken:
        n += 1
        name = f"{wanted}#{n}"
    return name
