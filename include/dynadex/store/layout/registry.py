"""The column registry of one source table: (path, kind) -> column name and SQL type.

Invariant (the type-conflict rule, never failing a write):

* The first kind at a path owns the plain name (``price``). At publish, the
  kind held by most items owns it (ties: S, N, BOOL, B, SS, NS, BS, L).
* Another kind at the same path gets ``path:KIND`` (``price:S``).
* A number a numeric column cannot hold exactly (a decimal in a BIGINT
  column, 39 digits of integer part…) goes to the sibling ``<column>:double``
  (DOUBLE, approximate); the row index keeps it exact.
* A name already taken (two paths can flatten alike: ``{"a.b"}`` and
  ``{"a":{"b"}}``; names are compared without case) gets ``#2``, ``#3``…
* Columns are only ever added, never retyped, so old data files stay as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

from dynadex.store.layout.names import KEY_COLUMN, KEY_ORDER_COLUMN, path_text, unique_name
from dynadex.store.layout.shape import NumberStats, sql_type_for

KIND_ORDER = ("S", "N", "BOOL", "B", "SS", "NS", "BS", "L")
OVERFLOW = {"N": "N:double", "NS": "NS:double"}


@dataclass(frozen=True)
class Column:
    path: tuple[str, ...]
    kind: str  # a DynamoDB kind, or N:double / NS:double for overflow columns
    name: str
    sql_type: str

    @property
    def base_kind(self) -> str:
        return self.kind.split(":", 1)[0]

    def to_dict(self) -> dict:
        return {"path": list(self.path), "kind": self.kind, "name": self.name, "sql_type": self.sql_type}

    @classmethod
    def from_dict(cls, d: dict) -> "Column":
        return cls(tuple(d["path"]), d["kind"], d["name"], d["sql_type"])




class Registry:
    def __init__(self, columns: list[Column] | None = None):
        self.columns: list[Column] = []
        self.by_key: dict[tuple[tuple[str, ...], str], Column] = {}
        self.taken: set[str] = {KEY_COLUMN.lower(), KEY_ORDER_COLUMN.lower()}  # lower-cased (names.unique_name)
        self.paths: set[tuple[str, ...]] = set()
        for c in columns or []:
            self._add(c)

    def _add(self, column: Column) -> Column:
        self.columns.append(column)
        self.by_key[(column.path, column.kind)] = column
        self.taken.add(column.name.lower())
        self.paths.add(column.path)
        return column

    @classmethod
    def of(cls, rows) -> "Registry":
        """A registry of stored columns, (path, kind, name, SQL type) in the order they were added
        (``catalog/state.py`` reads and writes them)."""
        return cls([Column(*r) for r in rows])

    # ------------------------------------------------------------ decisions
    @classmethod
    def for_publish(cls, infos: dict[tuple[tuple[str, ...], str], tuple[int, NumberStats | None]]) -> "Registry":
        """A fresh registry for a bulk snapshot, from merged per-chunk column infos."""
        reg = cls()
        by_path: dict[tuple[str, ...], list[tuple[str, int, NumberStats | None]]] = {}
        for (path, kind), (count, stats) in infos.items():
            by_path.setdefault(path, []).append((kind, count, stats))
        for path in sorted(by_path):
            kinds = sorted(by_path[path], key=lambda k: (-k[1], KIND_ORDER.index(k[0])))
            for i, (kind, _count, stats) in enumerate(kinds):
                wanted = path_text(path) if i == 0 else f"{path_text(path)}:{kind}"
                reg._add(Column(path, kind, unique_name(wanted, reg.taken), sql_type_for(kind, stats)))
        return reg

    def column_for(self, path: tuple[str, ...], kind: str, stats: NumberStats | None) -> tuple[Column, bool]:
        """The column holding (path, kind); created (second value True) if new."""
        found = self.by_key.get((path, kind))
        if found is not None:
            return found, False
        wanted = f"{path_text(path)}:{kind}" if path in self.paths else path_text(path)
        return self._add(Column(path, kind, unique_name(wanted, self.taken), sql_type_for(kind, stats))), True

    def overflow_for(self, column: Column) -> tuple[Column, bool]:
        kind = OVERFLOW[column.kind]
        found = self.by_key.get((column.path, kind))
        if found is not None:
            return found, False
        sql_type = "DOUBLE[]" if column.kind == "NS" else "DOUBLE"
        return self._add(Column(column.path, kind, unique_name(f"{column.name}:double", self.taken), sql_type)), True
