"""Applying a batch of changes (upserts and deletes) with its checkpoints, in one transaction.

Invariants:

* ONE DuckLake transaction holds the batch's effect on the three indexes,
  the new shard checkpoints and the table's last-change time: a crash at any
  instant leaves either all of it or none of it.
* A replaced key's inverted entries are not deleted: the new ones carry a
  new write id and readers keep only entries whose write id is the row's
  (store/layout/writes.py); ``maintain`` prunes the rest.
* Within a batch, the last change of a key wins (changes come in sequence
  order). Across batches, a change whose version is older than the stored
  one is ignored: a stale version never overwrites a newer one (equal
  versions apply, so same-second stream records keep their order).
* New attributes and kinds add columns (registry rule), never rewrite files.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field

import pyarrow as pa

from dynadex.gcpause import quiet, settle
from dynadex.store.apply.batch_shape import check_keys, shape_batch
from dynadex.store.apply.sql_shape import ArrowShaped, RawImage, SqlShaper, item_of
from dynadex.store.apply.key_pruning import column_filter, order_filter, order_keys, row_filter, worth_it
from dynadex.store.apply.known_keys import GONE, kept_by
from dynadex.store.catalog import state
from dynadex.store.catalog.lake import ALIAS, NUL_GUARD_ROWS, Lake
from dynadex.store.catalog.state import Checkpoint
from dynadex.store.errors import KeyError_
from dynadex.store.layout.arrow import arrow_values, python_values
from dynadex.store.layout.key_order import order_number_sql
from dynadex.store.layout.names import (
    COLUMN_SCHEMA,
    INVERTED_SCHEMA,
    KEY_COLUMN,
    KEY_ORDER_COLUMN,
    ROW_KEY_ORDER,
    ROW_SCHEMA,
    column_table,
    inverted_table,
    quote,
    row_table,
)
from dynadex.store.layout.registry import Registry
from dynadex.store.layout.shape import NUMERIC_KINDS, Shaped, key_text, number_fits, stats_fit
from dynadex.store.layout.writes import next_write_id


@dataclass(frozen=True)
class Change:
    keys: dict  # canonical key attributes
    item: dict | RawImage | None  # canonical new image, or its wire JSON (``sql_shape.RawImage``); None deletes
    version: int  # change time in microseconds
    origin: str


@dataclass(frozen=True)
class Preshaped:
    """A batch's upserts (the last change of each key) shaped before its transaction, so outside the writer
    lock (shard groups, decision 0034): the transaction uses it when none of them lost the version check."""

    keys: tuple[str, ...]
    shaped: Shaped | ArrowShaped
    last: dict | None = field(default=None, compare=False, repr=False)
    """Key text -> the last change of that key in ``source``, every upsert's key already checked: the transaction
    takes it instead of computing it again (a batch's key texts cost about 1.5 µs a record)."""
    source: list | None = field(default=None, compare=False, repr=False)
    """The change list this was made from (``last`` is used only for that very list)."""


def preshape(lake: Lake, table: str, changes: list[Change], shaper: SqlShaper | None = None,
             key: tuple | None = None) -> Preshaped | None:
    """Shape ``changes``' upserts now; None where that fails (a bad image, an unknown table): the transaction
    then shapes what wins as before, and raises what it raised before (or skips a losing change's error).

    With a ``shaper``, a batch whose upserts all carry their wire JSON (``RawImage``) and number at least
    ``SQL_SHAPE_MIN`` is shaped inside DuckDB (``sql_shape``, decision 0044); it checks their keys itself.
    ``key``: the table's (names, types), so the store's connection is not read (another thread may be using it)."""
    try:
        key_names, key_types = key or lake.key_spec(table)
        last: dict[str, Change] = {}
        for ch in changes:
            last[key_text(ch.keys, key_names)] = ch
        upserts = []
        raw = 0
        for key, ch in last.items():
            if ch.item is not None:
                upserts.append((key, ch.item, ch.version, ch.origin))
                raw += type(ch.item) is RawImage
        keys = tuple(u[0] for u in upserts)
        if shaper is not None and raw == len(upserts) >= SQL_SHAPE_MIN:
            staged = shaper.shape(upserts)
            if staged is not None:
                return Preshaped(keys, staged, last, changes)
        upserts = _decoded(upserts, last, key_names)
        with quiet():
            return Preshaped(keys, shape_batch(upserts, key_names, key_types), last, changes)
    except Exception:  # noqa: BLE001 - the transaction's own path meets the same error, where it belongs
        return None


SQL_SHAPE_MIN = 2000
"""Fewer upserts than this are shaped in Python: DuckDB's statements cost about 30 ms a batch whatever its
size (30 ms at 100 upserts, 42 at 1 000, 72 at 3 000, 129 at 10 000; Python 2, 20, 75, 199 ms), and a batch at
the tip holds a few records (decision 0044)."""


def _decoded(upserts: list, last: dict, key_names) -> list:
    """``upserts`` with every item a canonical dict (a ``RawImage`` decoded), each checked to carry its key."""
    out = []
    for key, item, version, origin in upserts:
        item = item_of(item)
        check_keys(item, last[key].keys, key_names, key)
        out.append((key, item, version, origin))
    return out


@dataclass(frozen=True)
class TableBatch:
    """One table's batch: its changes, the checkpoints they reach, and what else its transaction records.

    ``force`` applies without the version check (recovery images are authoritative as of their window's
    end); ``state_updates`` sets columns of the table's sync state in the same transaction;
    ``replace_checkpoints`` drops every other checkpoint of the table (a new stream after recovery);
    ``preshaped`` (``preshape`` of the same changes) is used when every upsert won the version check;
    ``threads``: DuckDB threads for its statements (a backlog's large batch; a shared commit runs on the most
    any of its batches asks, decision 0045)."""

    table: str
    changes: list[Change]
    checkpoints: list[Checkpoint] = ()
    event: tuple[str, dict] | None = None
    force: bool = False
    state_updates: dict | None = None
    replace_checkpoints: bool = False
    preshaped: Preshaped | None = None
    threads: int | None = None


def apply_changes(lake: Lake, table: str, changes: list[Change], checkpoints: list[Checkpoint] = (),
                  *, event: tuple[str, dict] | None = None, force: bool = False,
                  state_updates: dict | None = None, replace_checkpoints: bool = False,
                  reference: bool = False, preshaped: Preshaped | None = None) -> dict:
    """Apply ``changes`` and store ``checkpoints`` atomically (``TableBatch`` says what each option does);
    return counts. ``reference`` shapes item by item with ``Shaped.add`` (the code the batch shaper must
    equal; decision 0019)."""
    batch = TableBatch(table, changes, list(checkpoints), event, force, state_updates, replace_checkpoints, preshaped)
    return apply_batches(lake, [batch], reference=reference)[0]


def apply_batches(lake: Lake, batches: list[TableBatch], *, reference: bool = False) -> list[dict]:
    """Apply several tables' batches in ONE transaction (one commit for all: decision 0039), each as
    ``apply_changes`` would alone; counts per batch. A table appears at most once: its batch's version
    checks read what the index held before the transaction."""
    tables = [b.table for b in batches]
    if len(set(tables)) != len(tables):
        raise ValueError(f"one batch per table in a transaction, got {tables}")
    settle()
    # the cached registries only where Lake.retrying checked that no other writer committed since this
    # connection's last write
    registries = {t: (Registry(list(lake.registries[t])) if lake.fresh and t in lake.registries else None)
                  for t in tables}
    # alone, a batch records its checkpoints and sync state with its own statements; several batches record
    # theirs together (state.note_batches), except one that also replaces checkpoints or sets state
    alone = [len(batches) < 2 or bool(b.replace_checkpoints or b.state_updates) for b in batches]
    together = [b for b, own in zip(batches, alone) if not own]
    written: dict[str, dict | None] = {}  # table -> what its row index got (known_keys.KnownKeys.committed)
    with lake.transaction(keep_registries=True):
        # the snapshot this transaction reads: the tables' kept keys answer its lookups only if they are as of it
        start = None if reference else lake.con.execute(f"SELECT id FROM {ALIAS}.current_snapshot()").fetchone()[0]
        applied = [_apply_in_transaction(lake, b, registries, reference, own, start, written)
                   for b, own in zip(batches, alone)]
        if together:
            state.note_batches(lake.con, [(b.table, list(b.checkpoints),
                                           max((c.version for c in b.changes), default=None)) for b in together])
    kept_by(lake).committed(start, written)  # committed: the kept keys move to the snapshot it made
    # committed: each registry as it now is serves this connection's next batch (loading it costs one
    # DuckLake statement, ~7-20 ms of a small batch); a fresh connection after another writer's commit
    # (Lake.retrying) or any other kind of transaction drops them
    for table, registry in registries.items():
        if registry is not None:
            lake.registries[table] = tuple(registry.columns)
    return applied


def _apply_in_transaction(lake: Lake, b: TableBatch, registries: dict, reference: bool, record_state: bool,
                          start: int | None = None, written: dict | None = None) -> dict:
    table, changes, checkpoints, force, preshaped = b.table, b.changes, b.checkpoints, b.force, b.preshaped
    registry = registries[table]
    key_names, key_types = lake.key_spec(table)
    prefix = lake.key_prefix(table)  # None: published before the indexes held key order numbers
    reuse = preshaped is not None and preshaped.source is changes and preshaped.last is not None
    if reuse:
        last = preshaped.last  # the same changes' last change per key, their keys checked (preshape)
    else:
        last = {}
        for ch in changes:
            last[key_text(ch.keys, key_names)] = ch  # later wins
    con = lake.con
    applied = {"upserts": 0, "deletes": 0, "stale": 0, "columns_added": 0}
    newest = max((c.version for c in changes), default=None)
    _ensure_write_ids(lake, table)
    known = None
    if last and (reference or len(last) <= IN_LIST_KEYS):
        # the reference path keeps the plain statements (tests, bench); small tables gain nothing
        rows = 0 if reference or len(last) < 2 else lake.rows_estimate(table)
        narrow = not reference and len(last) > 1 and worth_it(rows)
        most = order_keys(rows)  # key order numbers prune exactly: more keys than the key columns
        # a small table's keys as of this transaction's snapshot, kept by this connection (known_keys): no lookup
        known = None if reference else kept_by(lake).at(con, table, start, lake.rows_estimate(table))
        if known is not None:
            stored = {k: known[k] for k in last if k in known}
        else:
            stored = dict(_keyed(con, f"SELECT r.key, r.version FROM {row_table(table)} r", "r.key", list(last),
                                 _row_narrowing(key_names, prefix, list(last), [c.keys for c in last.values()],
                                                "r", most) if narrow else None))
        winners = {}
        for key, ch in last.items():
            old = stored.get(key)
            if old is not None and ch.version < old and not force:
                applied["stale"] += 1
                continue
            winners[key] = ch
        if winners:
            # only keys the index holds have rows to remove; their inverted entries stay, superseded by
            # the new write id (store/layout/writes.py), until maintenance prunes them
            present = [k for k in winners if k in stored]
            if present:
                keys = [winners[k].keys for k in present]
                _keyed(con, f"DELETE FROM {row_table(table)} AS t", "t.key", present,
                       _row_narrowing(key_names, prefix, present, keys, "t", most) if narrow else None)
                _keyed(con, f"DELETE FROM {column_table(table)} AS t", f"t.{quote(KEY_COLUMN)}", present,
                       _column_narrowing(key_names, prefix, present, keys, registry, most) if narrow else None)
    elif last:
        winners = _replace_many(con, table, last, force)
        applied["stale"] = len(last) - len(winners)
    if last and written is not None:  # what the row index now holds for these keys, or forgotten (None)
        written[table] = ({k: GONE if ch.item is None else ch.version for k, ch in winners.items()}
                          if known is not None else None)
    if last and winners:
        if reference:  # the item-by-item path the fast one must equal (tests, bench)
            shaped = Shaped()
            for key, ch in winners.items():
                if ch.item is None:
                    applied["deletes"] += 1
                else:
                    item = item_of(ch.item)
                    if any(item.get(k) != ch.keys.get(k) for k in key_names):
                        raise KeyError_(f"change for key {key} carries an item with another key")
                    shaped.add(item, key_names, ch.version, ch.origin, key_types, key=key)
                    applied["upserts"] += 1
        else:
            upserts = []
            for key, ch in winners.items():
                if ch.item is None:
                    applied["deletes"] += 1
                else:
                    if not reuse and type(ch.item) is not RawImage:
                        check_keys(ch.item, ch.keys, key_names, key)
                    upserts.append((key, ch.item, ch.version, ch.origin))
            applied["upserts"] = len(upserts)
            if preshaped is not None and preshaped.keys == tuple(u[0] for u in upserts):
                shaped = preshaped.shaped  # shaped before the transaction: nothing lost the version check
            else:
                upserts = _decoded(upserts, winners, key_names)
                with quiet():
                    shaped = shape_batch(upserts, key_names, key_types)
        if len(shaped):
            if registry is None:
                registry = state.load_registry(con, table)
            applied["columns_added"] = _insert(lake, table, key_types, shaped, next_write_id(), registry,
                                               reference=reference)
    if record_state:  # else apply_batches records it with the other tables' (state.note_batches)
        if b.replace_checkpoints:
            state.replace_checkpoints(con, table, checkpoints)
        elif checkpoints:
            state.store_checkpoints(con, table, checkpoints)
        state.note_batch(con, table, newest, b.state_updates)
    if b.event is not None:
        state.record_event(con, table, b.event[0], b.event[1])
    registries[table] = registry
    return applied


IN_LIST_KEYS = 1000


def _replace_many(con, table: str, last: dict[str, Change], force: bool) -> dict[str, Change]:
    """Many keys: the changes that win over what the index holds, whose stored rows (if any) are deleted.

    What ``_keyed`` does for the reference path in three statements that each register the keys and a
    fetch of every stored (key, version) into Python, in one registration: one query returns how many of
    the keys are stored and which of them are stale (stored newer: usually none), then the two deletes
    run only when a winner is stored. Same rules: a stored NULL version never makes a change stale."""
    keys = list(last)
    con.register("dynadex_batch", pa.table({"key": pa.array(keys, pa.string()),
                                            "version": pa.array([last[k].version for k in keys], pa.int64())}))
    try:
        stored, stale = con.execute(
            f"SELECT count(*), coalesce(list(r.key) FILTER (WHERE NOT ? AND r.version > b.version), []) "
            f"FROM {row_table(table)} r JOIN dynadex_batch b ON r.key = b.key", [force]).fetchone()
        winners = last
        if stale:
            gone = set(stale)
            winners = {k: ch for k, ch in last.items() if k not in gone}
            con.unregister("dynadex_batch")
            con.register("dynadex_batch", pa.table({"key": pa.array(list(winners), pa.string())}))
        if stored > len(stale):  # a winner's key is stored: its row and column-index row go
            con.execute(f"DELETE FROM {row_table(table)} AS t USING dynadex_batch b WHERE t.key = b.key")
            con.execute(f"DELETE FROM {column_table(table)} AS t USING dynadex_batch b "
                        f"WHERE t.{quote(KEY_COLUMN)} = b.key")
    finally:
        con.unregister("dynadex_batch")
    return winners


def _keyed(con, statement: str, column: str, keys: list, narrow: tuple[str, list] | None = None) -> list:
    """Run ``statement`` restricted to ``column`` in ``keys``; return its rows.

    Few keys go as an IN list; ``narrow`` (store/apply/key_pruning.py) adds filters on the key attributes' own
    columns, implied by the keys, which let DuckDB skip the row groups holding none of them (one key alone
    is ``key = ?``, which prunes by itself; a list of key texts prunes nothing: they share their first 8
    bytes, all DuckDB keeps of a string's min/max). Many keys go as a join with a registered Arrow table."""
    if len(keys) <= IN_LIST_KEYS:
        extra, params = narrow or ("", [])
        return con.execute(f"{statement} WHERE {column} IN ({', '.join('?' for _ in keys)}){extra}",
                           [*keys, *params]).fetchall()
    con.register("dynadex_keys", pa.table({"key": pa.array(keys, pa.string())}))
    try:
        verb = "USING" if statement.startswith("DELETE") else "JOIN"
        on = "WHERE" if verb == "USING" else "ON"
        return con.execute(f"{statement} {verb} dynadex_keys k {on} {column} = k.key").fetchall()
    finally:
        con.unregister("dynadex_keys")


def _row_narrowing(key_names, prefix: str | None, texts: list[str], keys: list[dict], alias: str,
                   most: int) -> tuple[str, list]:
    """The row index's pruning filter: by key order number (up to ``most`` keys), or on a table published
    before them by the key attributes' columns (store/apply/key_pruning.py)."""
    if prefix is not None:
        return order_filter(texts, prefix, ROW_KEY_ORDER, alias, most)
    return row_filter(key_names, keys, alias)


def _column_narrowing(key_names, prefix: str | None, texts: list[str], keys: list[dict],
                      registry: Registry | None, most: int) -> tuple[str, list] | None:
    if prefix is not None:
        return order_filter(texts, prefix, quote(KEY_ORDER_COLUMN), "t", most)
    return column_filter(key_names, keys, _key_columns(registry), "t") if registry is not None else None


def _key_columns(registry: Registry) -> dict[tuple[str, str], str]:
    """(top-level attribute, kind) -> its quoted column in the column index."""
    return {(c.path[0], c.kind): quote(c.name) for c in registry.columns if len(c.path) == 1}


def _ensure_write_ids(lake: Lake, table: str) -> None:
    """Stores published before write ids existed get the columns (NULL for what is there)."""
    done = lake.write_id_tables
    if table in done:
        return
    for qualified, schema in ((row_table(table), ROW_SCHEMA), (inverted_table(table), INVERTED_SCHEMA)):
        has = lake.con.execute(
            "SELECT count(*) FROM duckdb_columns() WHERE database_name = ? AND schema_name = ? AND table_name = ? "
            "AND column_name = 'write_id'", [ALIAS, schema, table]).fetchone()[0]
        if not has:
            lake.con.execute(f"ALTER TABLE {qualified} ADD COLUMN write_id BIGINT")
    done.add(table)


def _insert(lake: Lake, table: str, key_types: tuple[str, ...], shaped: Shaped, write_id: int, registry: Registry,
            reference: bool = False) -> int:
    """Insert the batch's rows; ``registry`` (loaded in this transaction or cached since this connection's
    last batch) gets the columns the batch adds, saved in this transaction."""
    con = lake.con
    shaped.pad()
    n = len(shaped)
    # route each (path, kind) to its column, overflowing numbers that do not fit
    out: dict[str, tuple[object, list]] = {}  # column name -> (Column, values)
    new_columns = []
    for (path, kind), values in sorted(shaped.columns.items()):
        stats = shaped.number_stats.get((path, kind))
        column, is_new = registry.column_for(path, kind, stats)
        if is_new:
            new_columns.append(column)
        if kind in NUMERIC_KINDS and not column.sql_type.startswith("DOUBLE") and not (
                not reference and stats is not None and stats_fit(column.sql_type.removesuffix("[]"), stats)):
            # some number may not fit the column: route value by value (when the batch's figures fit the
            # column's type, every value does, and all stay in the column)
            base = column.sql_type.removesuffix("[]")
            values = python_values(values)  # staged by DuckDB (sql_shape): routed value by value as well
            main_vals, over_vals = [None] * n, [None] * n
            overflowed = False
            for i, v in enumerate(values):
                if v is None:
                    continue
                fits = number_fits(base, v) if kind == "N" else all(number_fits(base, x) for x in v)
                if fits:
                    main_vals[i] = v
                else:
                    over_vals[i] = v
                    overflowed = True
            out[column.name] = (column, main_vals)
            if overflowed:
                over, over_new = registry.overflow_for(column)
                if over_new:
                    new_columns.append(over)
                out[over.name] = (over, over_vals)
        else:
            out[column.name] = (column, values)
    for column in new_columns:
        con.execute(f"ALTER TABLE {column_table(table)} ADD COLUMN {quote(column.name)} {column.sql_type}")
    state.save_columns(con, table, new_columns)

    # an item text holding an escaped U+0000 (some string, name or key holds one) goes to files: DuckLake
    # cannot inline every such value (Lake.not_inlined); any larger batch writes files anyway
    with (lake.not_inlined([(s, table) for s in (ROW_SCHEMA, COLUMN_SCHEMA, INVERTED_SCHEMA)])
          if n <= NUL_GUARD_ROWS and shaped.nul_escaped else nullcontext()):
        _write_indexes(con, table, key_types, shaped, out, write_id, lake.key_prefix(table))
    return len(new_columns)


def _write_indexes(con, table: str, key_types: tuple[str, ...], shaped: Shaped, out: dict, write_id: int,
                   prefix: str | None) -> None:
    """Insert the shaped items into the three indexes; with the table's key ``prefix`` (None: a table published
    before decision 0027) each row and column-index row gets its key order number (store/layout/key_order.py)."""
    parts = shaped.arrow(key_types)
    con.register("dynadex_rows", parts.rows)
    key_cols = "key, pk" + (", sk" if len(key_types) > 1 else "")
    order_col, order = ((f", {ROW_KEY_ORDER}", f", {order_number_sql('key', prefix)}") if prefix is not None
                        else ("", ""))
    con.execute(f"INSERT INTO {row_table(table)} ({key_cols}, item, version, origin, write_id{order_col}) "
                f"SELECT {key_cols}, item, version, origin, ?{order} FROM dynadex_rows", [write_id])
    con.unregister("dynadex_rows")

    arrays = {KEY_COLUMN: parts.keys}
    aliases = []
    for i, (name, (column, values)) in enumerate(out.items()):
        alias = f"c{i}"
        arrays[alias] = arrow_values(values, column.base_kind)
        aliases.append((name, alias, column.sql_type))
    con.register("dynadex_cols", pa.table(arrays))
    names = [quote(KEY_COLUMN)] + [quote(name) for name, _, _ in aliases]
    select = [quote(KEY_COLUMN)] + [f"CAST({alias} AS {t})" for _, alias, t in aliases]
    if prefix is not None:
        names.append(quote(KEY_ORDER_COLUMN))
        select.append(order_number_sql(quote(KEY_COLUMN), prefix))
    con.execute(f"INSERT INTO {column_table(table)} ({', '.join(names)}) SELECT {', '.join(select)} FROM dynadex_cols")
    con.unregister("dynadex_cols")

    con.register("dynadex_inv", parts.inv)
    con.execute(f"INSERT INTO {inverted_table(table)} (path, kind, value, key, write_id) "
                f"SELECT path, kind, value, key, ? FROM dynadex_inv", [write_id])
    con.unregister("dynadex_inv")

