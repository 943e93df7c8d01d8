"""A batch's upserts shaped inside DuckDB from their images' wire JSON: the stream apply's vectorized path.

The lean GetRecords hands each record's new image on as the bytes the wire carried (``RawImage``): no Python
object per attribute is ever made. Here a batch's images become one Arrow column of ``{"Item":…}`` lines,
and the bulk build's generated SQL (``bulk/fast_sql``, decision 0007) parses them with the table's structure
and stages the three indexes: canonical key and item texts, typed column values with their number figures,
inverted entries. DuckDB does that on its own threads, without the GIL, so the sync's one Python thread is
left with the records' keys (decision 0044).

Invariant: ``SqlShaper.shape(upserts)`` stages exactly the rows, column values and inverted entries that
``batch_shape.shape_batch`` gives for the same upserts decoded (``RawImage.item``):

* an image the bulk build's guard admits is shaped by its SQL, which writes byte for byte what the Python
  code writes (tests/store/bulk/test_fastbuild.py; here tests/store/apply/test_sql_shape.py);
* an image the guard refuses (a ``\\u`` escape, a number or binary not in canonical form, an attribute the
  structure does not cover after its refinements...) is decoded and shaped by ``shape_batch`` (the Python
  share), its key text checked against its record's, as ``check_keys`` checks the key;
* anything else answers None and the caller shapes the whole batch in Python, which owns every error
  message: a key type the structure lacks, an image whose key is not its record's
  ``Keys``, DuckDB failing.

Each table's structure is kept across its batches, grown from what a batch's guard refused; it only decides
how images are parsed, never what is written (the guard does).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from functools import cached_property

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from dynadex.store.apply.batch_shape import shape_batch
from dynadex.store.bulk import fast_sql
from dynadex.store.bulk.chunk_writer import add_stats
from dynadex.store.bulk.fast_structure import sampled_structure
from dynadex.store.bulk.fastbuild import column_stats, parse_lines
from dynadex.store.catalog.extensions import connect
from dynadex.store.errors import KeyError_
from dynadex.store.layout.arrow import ArrowParts, columns_arrow, inverted_arrow, rows_arrow
from dynadex.store.layout.names import KEY_COLUMN, staging_name
from dynadex.store.layout.shape import NumberStats, key_text
from dynadex.types import canonical_item

log = logging.getLogger("dynadex.apply")

SHAPE_MEMORY = "1GB"
"""DuckDB's bound for one batch's shaping (it spills beyond it): a 100 000-record batch of 500-byte images
stages about 0.3 GB."""

_CARRY = ("dx_row", "dx_key", "version", "origin")  # kept per line through ``typed``


class RawImage:
    """A stream record's new image as the wire carried it (DynamoDB JSON, UTF-8 bytes), not decoded.

    ``item()`` decodes it once, into the canonical item (``types.canonical_item``, which takes the wire's
    base64 binaries), wherever Python needs the item: the exact path, the Python share."""

    __slots__ = ("wire", "_item")

    def __init__(self, wire: bytes):
        self.wire = wire
        self._item: dict | None = None

    def item(self) -> dict:
        if self._item is None:
            self._item = canonical_item(msgspec.json.decode(self.wire))
        return self._item


def item_of(item) -> dict:
    """A change's item as a canonical dict, whether it came decoded or as a ``RawImage``."""
    return item.item() if type(item) is RawImage else item


@dataclass
class ArrowShaped:
    """A batch's upserts staged for the three indexes as Arrow tables (what ``Shaped`` holds as lists).

    ``rows``: key, pk[, sk], item, version, origin; ``cols``: ``_key`` and one column per (path, kind) some
    image fills, named ``staging_name(path, kind)``; ``inv``: path, kind, value, key."""

    rows: pa.Table
    cols: pa.Table
    inv: pa.Table
    stats: dict  # (path, kind) -> ColumnStats of the filled columns

    def __len__(self) -> int:
        return self.rows.num_rows

    def pad(self) -> None:
        """Columns are already as long as the batch (``Shaped.pad``'s contract)."""

    @property
    def keys(self):
        return self.cols.column(KEY_COLUMN)

    def arrow(self, key_types: tuple[str, ...]) -> ArrowParts:
        """The staged tables themselves (``Shaped.arrow``'s contract)."""
        return ArrowParts(self.rows, self.keys, self.inv)

    @cached_property
    def columns(self) -> dict:
        return {pk: self.cols.column(staging_name(*pk)) for pk in self.stats}

    @cached_property
    def number_stats(self) -> dict[tuple, NumberStats]:
        return {pk: s.number for pk, s in self.stats.items() if s.number is not None}

    @property
    def nul_escaped(self) -> bool:
        """Some item text holds an escaped U+0000 (only a Python-share image can: the guard refuses ``\\u``)."""
        return self.rows.num_rows > 0 and bool(pc.any(pc.match_substring(self.rows.column("item"), "\\u0000")).as_py())


class SqlShaper:
    """One table's shaping connection and structure. Thread-safe (one batch at a time)."""

    def __init__(self, key_names: tuple[str, ...], key_types: tuple[str, ...], threads: int | None = None):
        self.key_names, self.key_types = tuple(key_names), tuple(key_types)
        self.structure: dict | None = None
        self.threads = threads
        self._con = None
        self._lock = threading.Lock()
        self.shaped = 0  # batches shaped here
        self.declined = 0  # batches handed back to the Python path
        self.python_lines = 0  # images of shaped batches that took the Python share

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None

    def shape(self, upserts: list[tuple[str, RawImage, int, str]]) -> ArrowShaped | None:
        """``upserts``: (key text, image, version, origin), one per key -> the staged batch, or None."""
        with self._lock:
            try:
                out = self._shape(upserts)
            except Exception as exc:  # noqa: BLE001 - the Python path meets any real error again, and names it
                log.debug("batch of %d upserts: shaped in Python (%s)", len(upserts), str(exc).splitlines()[0][:200])
                out = None
            finally:
                self._drop()
            if out is None:
                self.declined += 1
            else:
                self.shaped += 1
            return out

    def _connection(self):
        if self._con is None:
            self._con = connect(threads=self.threads, memory_limit=SHAPE_MEMORY)
            self._con.execute("SET preserve_insertion_order = false")
        return self._con

    def _drop(self) -> None:
        con = self._con
        if con is None:
            return
        for view in ("lines", "py_rows", "py_cols", "py_inv"):
            try:
                con.unregister(view)
            except Exception:  # noqa: BLE001 - not registered this time
                pass
        con.execute("DROP TABLE IF EXISTS typed")

    def _shape(self, upserts) -> ArrowShaped | None:
        con = self._connection()
        n = len(upserts)
        con.register("lines", pa.table({
            "line": pa.array([b'{"Item":' + u[1].wire + b"}" for u in upserts], pa.string()),
            "dx_row": pa.array(range(n), pa.int64()),
            "dx_key": pa.array([u[0] for u in upserts], pa.string()),
            "version": pa.array([u[2] for u in upserts], pa.int64()),
            "origin": pa.array([u[3] for u in upserts], pa.string()),
        }))
        structure = self.structure if self.structure is not None else sampled_structure(con)
        structure, bad = parse_lines(con, structure, self.key_names, self.key_types, n, _no_steps, carry=_CARRY,
                                        bounded=False)
        self.structure = structure
        if con.execute("SELECT count(*) FROM typed WHERE ok AND key <> dx_key").fetchone()[0]:
            return None  # an image whose key is not its record's: the Python path raises the error
        exprs = fast_sql.column_exprs(structure)
        stats = {(s.path, s.kind): s for s in column_stats(con, exprs) if s.count}
        filled = [name for name in sorted(exprs) if (exprs[name][0], exprs[name][1]) in stats]
        rows = fast_sql.rows_sql(structure, self.key_names, self.key_types, None, None)
        cols = fast_sql.cols_sql(exprs, filled)
        inv = fast_sql.inv_sql(structure)
        if bad:
            self._python_share(con, upserts, stats)
            self.python_lines += bad
            rows = f"({rows}) UNION ALL BY NAME (SELECT * FROM py_rows)"
            cols = f"({cols}) UNION ALL BY NAME (SELECT * FROM py_cols)"
            inv = f"({inv}) UNION ALL BY NAME (SELECT * FROM py_inv)"
        return ArrowShaped(_table(con, rows), _table(con, cols), _table(con, inv), stats)

    def _python_share(self, con, upserts, stats: dict) -> None:
        """Shape the images the guard refused with ``shape_batch``, registered as ``py_rows``, ``py_cols`` and
        ``py_inv``; their figures folded into ``stats``. A key or value error declines the batch (raised)."""
        entries = []
        for (i,) in con.execute("SELECT dx_row FROM typed WHERE NOT ok ORDER BY dx_row").fetchall():
            key, image, version, origin = upserts[i]
            item = image.item()
            if key_text(item, self.key_names) != key:  # what check_keys refuses: an image of another key
                raise KeyError_(f"change for key {key} carries an item with another key")
            entries.append((key, item, version, origin))
        shaped = shape_batch(entries, self.key_names, self.key_types)
        con.register("py_rows", rows_arrow(shaped, self.key_types))
        con.register("py_cols", columns_arrow(shaped) if len(shaped) else pa.table({KEY_COLUMN: pa.array([], pa.string())}))
        con.register("py_inv", inverted_arrow(shaped))
        add_stats(stats, shaped)


def _no_steps(_name: str) -> None:
    """``parse_lines`` reports each round; a stream batch keeps no step log."""


def _table(con, sql: str) -> pa.Table:
    return con.execute(sql).to_arrow_table()


__all__ = ["ArrowShaped", "RawImage", "SqlShaper", "item_of"]
