"""How one item is laid out in the three indexes.

Input is an item in canonical DynamoDB JSON (``dynadex.types.canonical_item``).

* Row index: the canonical key text, the typed key attributes, the
  canonical item text (lossless), a version and an origin.
* Column index: one value per (path, kind); maps are flattened into paths,
  NULL is SQL NULL, sets and lists become SQL lists. Numbers travel as their
  exact canonical text and are cast to the column's type in SQL, so the only
  rounding is into a DOUBLE column, which the row index backs exactly.
* Inverted index: (path, kind, value text) for every scalar leaf, every set
  member and every list element (maps inside lists are walked further). The
  path is ``names.path_text`` of the names: a name holding ``.`` is escaped,
  so it never reads as a nested path.

Invariant: these functions are pure; the same item always gives the same rows.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from json.encoder import encode_basestring as _json_str  # what json.dumps(ensure_ascii=False) does to a str

import pyarrow as pa

from dynadex.store.errors import KeyError_
from dynadex.store.layout.arrow import ArrowParts, inverted_arrow, rows_arrow
from dynadex.store.layout.names import child_text
from dynadex.types import canonical_json

SCALAR_SQL = {"S": "VARCHAR", "B": "BLOB", "BOOL": "BOOLEAN", "SS": "VARCHAR[]", "BS": "BLOB[]", "L": "VARCHAR[]"}
NUMERIC_KINDS = ("N", "NS")


def key_text(item: dict, key_names: tuple[str, ...]) -> str:
    """The canonical key string: exactly ``canonical_json`` of the key attributes, built without the encoder."""
    parts = []
    try:
        for name in sorted(key_names) if len(key_names) > 1 else key_names:
            av = item[name]
            if type(av) is not dict or len(av) != 1:
                return canonical_json({k: item[k] for k in key_names}, validated=True)
            for tag, value in av.items():
                pass
            if type(value) is not str:
                return canonical_json({k: item[k] for k in key_names}, validated=True)
            parts.append(f"{_json_str(name)}:{{{_json_str(tag)}:{_json_str(value)}}}")
    except KeyError as exc:
        raise KeyError_(f"item has no key attribute {exc.args[0]!r}") from exc
    return "{" + ",".join(parts) + "}"


def key_value(av: dict, name: str, expected: str | None = None):
    """A key attribute as stored in the row index: S -> str, N -> exact text, B -> bytes."""
    ((tag, value),) = av.items()
    if expected is not None and tag != expected:
        raise KeyError_(f"key attribute {name!r} has type {tag}, the table's key type is {expected}")
    if tag in ("S", "N"):
        return value
    if tag == "B":
        return base64.b64decode(value)
    raise KeyError_(f"key attribute {name!r} has type {tag}; keys are S, N or B")


def plain_value(av: dict):
    """One list element as text for a VARCHAR[] column."""
    ((tag, value),) = av.items()
    if tag in ("S", "N", "B"):
        return value
    if tag == "BOOL":
        return "true" if value else "false"
    if tag == "NULL":
        return None
    return canonical_json(av, validated=True)


def inverted_leaf(out: list, path: str, av: dict) -> None:
    """Inverted entries of one value inside a list (maps walked further, lists flattened)."""
    ((tag, value),) = av.items()
    if tag == "M":
        for k, v in value.items():
            inverted_leaf(out, child_text(path, k), v)
    elif tag == "L":
        for v in value:
            inverted_leaf(out, path, v)
    elif tag in ("SS", "NS", "BS"):
        kind = tag[0]
        out.extend((path, kind, v) for v in value)
    elif tag == "BOOL":
        out.append((path, tag, "true" if value else "false"))
    elif tag == "NULL":
        out.append((path, tag, None))
    else:
        out.append((path, tag, value))


def shape_item(item: dict) -> tuple[dict, list]:
    """One walk of an item: its column values and its inverted entries.

    Columns: (path, kind) -> value (numbers as canonical text, binaries as bytes, sets and lists as
    lists; NULL has no column). Inverted: (path text, kind, value text) for every scalar leaf, set
    member and list element.
    """
    columns: dict = {}
    inverted: list = []

    def walk(prefix: tuple[str, ...], prefix_text: str, m: dict) -> None:
        for name, av in m.items():
            path = prefix + (name,)
            text = child_text(prefix_text, name)
            ((tag, value),) = av.items()
            if tag == "M":
                walk(path, text, value)
            elif tag == "S" or tag == "N":
                columns[(path, tag)] = value
                inverted.append((text, tag, value))
            elif tag == "BOOL":
                columns[(path, tag)] = value
                inverted.append((text, tag, "true" if value else "false"))
            elif tag == "NULL":
                inverted.append((text, tag, None))
            elif tag == "B":
                columns[(path, tag)] = base64.b64decode(value)
                inverted.append((text, tag, value))
            elif tag == "SS" or tag == "NS":
                columns[(path, tag)] = value
                kind = tag[0]
                inverted.extend((text, kind, v) for v in value)
            elif tag == "BS":
                columns[(path, tag)] = [base64.b64decode(v) for v in value]
                inverted.extend((text, "B", v) for v in value)
            elif tag == "L":
                columns[(path, tag)] = [plain_value(v) for v in value]
                for v in value:
                    inverted_leaf(inverted, text, v)

    walk((), "", item)
    return columns, inverted


# ------------------------------------------------------------------ numbers


@dataclass
class NumberStats:
    """What the numbers seen at one (path, N|NS) say about a fitting SQL type."""

    integral: bool = True
    int_digits: int = 0
    scale: int = 0

    def add(self, text: str) -> None:
        body = text[1:] if text[0] == "-" else text
        if "." in body:
            ip, frac = body.split(".", 1)
            self.integral = False
            if len(frac) > self.scale:
                self.scale = len(frac)
            digits = 0 if ip == "0" else len(ip)
        else:
            digits = len(body)
        if digits > self.int_digits:
            self.int_digits = digits

    def merge(self, other: "NumberStats") -> None:
        self.integral = self.integral and other.integral
        self.int_digits = max(self.int_digits, other.int_digits)
        self.scale = max(self.scale, other.scale)

    def to_dict(self) -> dict:
        return {"integral": self.integral, "int_digits": self.int_digits, "scale": self.scale}

    @classmethod
    def from_dict(cls, d: dict) -> "NumberStats":
        return cls(bool(d["integral"]), int(d["int_digits"]), int(d["scale"]))


def number_sql_type(stats: NumberStats) -> str:
    """The SQL type a numeric column gets when it is created."""
    if stats.integral and stats.int_digits <= 18:
        return "BIGINT"
    if stats.integral and stats.int_digits <= 38:
        return "DECIMAL(38,0)"
    if stats.scale <= 9 and stats.int_digits <= 9:
        return "DECIMAL(18,9)"  # stored as 64-bit integers: fast to scan and sum
    if stats.scale <= 9 and stats.int_digits <= 29:
        return "DECIMAL(38,9)"
    if stats.scale + stats.int_digits <= 38:
        return f"DECIMAL(38,{stats.scale})"
    return "DOUBLE"


def number_fits(sql_type: str, text: str) -> bool:
    """True when ``text`` (canonical) converts to ``sql_type`` without rounding."""
    if sql_type == "DOUBLE":
        return True
    s = NumberStats()
    s.add(text)
    return stats_fit(sql_type, s)


def stats_fit(sql_type: str, s: NumberStats) -> bool:
    """True when every number whose figures ``s`` folds converts to ``sql_type`` without rounding.

    Exact for a fold of many numbers too: integral is all of theirs, the digit counts their maxima."""
    if sql_type == "DOUBLE":
        return True
    if sql_type == "BIGINT":
        return s.integral and s.int_digits <= 18
    precision, scale = (int(x) for x in sql_type[len("DECIMAL(") : -1].split(","))
    return s.scale <= scale and s.int_digits <= precision - scale


def sql_type_for(kind: str, stats: NumberStats | None) -> str:
    if kind == "N":
        return number_sql_type(stats or NumberStats())
    if kind == "NS":
        return number_sql_type(stats or NumberStats()) + "[]"
    return SCALAR_SQL[kind]


@dataclass
class Shaped:
    """The three indexes' rows for a batch of items, before any SQL type is decided."""

    keys: list = field(default_factory=list)
    pk: list = field(default_factory=list)
    sk: list = field(default_factory=list)
    items: list = field(default_factory=list)
    versions: list = field(default_factory=list)
    origins: list = field(default_factory=list)
    columns: dict = field(default_factory=dict)  # (path, kind) -> list aligned with keys (None where absent)
    number_stats: dict = field(default_factory=dict)  # (path, kind) -> NumberStats
    inv_path: list = field(default_factory=list)
    inv_kind: list = field(default_factory=list)
    inv_value: list = field(default_factory=list)
    inv_key: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def nul_escaped(self) -> bool:
        """Some item text holds an escaped U+0000 (DuckLake cannot inline every such value)."""
        return any("\\u0000" in text for text in self.items)

    def arrow(self, key_types: tuple[str, ...]) -> ArrowParts:
        """The rows, keys and inverted entries as Arrow, as the stream apply inserts them."""
        return ArrowParts(rows_arrow(self, key_types), pa.array(self.keys, pa.string()), inverted_arrow(self))

    def add(self, item: dict, key_names: tuple[str, ...], version: int, origin: str,
            key_types: tuple[str, ...] = (), key: str | None = None) -> str:
        if key is None:
            key = key_text(item, key_names)
        pk = key_value(item[key_names[0]], key_names[0], key_types[0] if key_types else None)
        sk = key_value(item[key_names[1]], key_names[1], key_types[1] if len(key_types) > 1 else None) if len(key_names) > 1 else None
        row = len(self.keys)
        self.keys.append(key)
        self.pk.append(pk)
        if len(key_names) > 1:
            self.sk.append(sk)
        self.items.append(canonical_json(item, validated=True))
        self.versions.append(version)
        self.origins.append(origin)
        columns = self.columns
        item_columns, item_inverted = shape_item(item)
        for ck, value in item_columns.items():
            col = columns.get(ck)
            if col is None:
                col = columns[ck] = [None] * row
            elif len(col) < row:
                col.extend([None] * (row - len(col)))
            col.append(value)
            kind = ck[1]
            if kind in NUMERIC_KINDS:
                stats = self.number_stats.get(ck)
                if stats is None:
                    stats = self.number_stats[ck] = NumberStats()
                if kind == "N":
                    stats.add(value)
                else:
                    for v in value:
                        stats.add(v)
        for path, kind, value in item_inverted:
            self.inv_path.append(path)
            self.inv_kind.append(kind)
            self.inv_value.append(value)
        self.inv_key.extend([key] * len(item_inverted))
        return key

    def pad(self) -> None:
        n = len(self.keys)
        for col in self.columns.values():
            if len(col) < n:
                col.extend([None] * (n - len(col)))
