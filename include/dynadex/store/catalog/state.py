"""The sync state, schema ``dynadex``: each table's published build, stream position, shard checkpoints,
chunk ledger, column registry and events.

Invariants:

* This module is the only one that names the schema's tables: their DDL and
  every read and write of them are here, with named columns.
* Every write takes the caller's connection and runs inside the caller's
  transaction, so a publish's state commits with its files and a stream
  batch's checkpoints with its rows (``apply/changes.py``): there is no
  moment when the index and its checkpoints disagree.
* A table's row travels as a ``TableState``, a shard's position as a
  ``Checkpoint``: typed, never as a dict.
* Checkpoints only move forward through ``store_checkpoints`` (the sync
  passes sequence numbers it read after the stored ones); only a publish or
  a recovery replaces a table's whole set (``replace_checkpoints``).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, fields

import pyarrow as pa

from dynadex.store.layout.names import INVERTED_SCHEMA, ROW_SCHEMA, STATE_SCHEMA
from dynadex.store.layout.registry import Registry

TABLES = f"{STATE_SCHEMA}.tables"
CHECKPOINTS = f"{STATE_SCHEMA}.checkpoints"
CHUNKS = f"{STATE_SCHEMA}.chunks"
COLUMNS = f"{STATE_SCHEMA}.columns"
EVENTS = f"{STATE_SCHEMA}.events"
GROUP_TIPS = f"{STATE_SCHEMA}.group_tips"

DDL = [
    f"CREATE SCHEMA IF NOT EXISTS {ROW_SCHEMA}",
    f"CREATE SCHEMA IF NOT EXISTS {INVERTED_SCHEMA}",
    f"CREATE SCHEMA IF NOT EXISTS {STATE_SCHEMA}",
    f"""CREATE TABLE IF NOT EXISTS {TABLES} (
        table_name VARCHAR, key_names VARCHAR, key_types VARCHAR, build_id VARCHAR,
        export_arn VARCHAR, export_time VARCHAR, export_time_micros BIGINT,
        stream_arn VARCHAR, stream_start_micros BIGINT, published_at TIMESTAMPTZ,
        last_change_micros BIGINT, last_applied_at TIMESTAMPTZ, export_bucket VARCHAR, export_prefix VARCHAR,
        synced_at TIMESTAMPTZ, key_prefix VARCHAR)""",
    # a catalog made before decision 0027: its tables have no key order numbers (key_prefix NULL)
    f"ALTER TABLE {TABLES} ADD COLUMN IF NOT EXISTS key_prefix VARCHAR",
    f"""CREATE TABLE IF NOT EXISTS {CHECKPOINTS} (
        table_name VARCHAR, shard_id VARCHAR, parent_shard_id VARCHAR,
        sequence_number VARCHAR, ended BOOLEAN, updated_at TIMESTAMPTZ)""",
    f"""CREATE TABLE IF NOT EXISTS {CHUNKS} (
        table_name VARCHAR, build_id VARCHAR, chunk_id VARCHAR, items BIGINT,
        files VARCHAR, published_at TIMESTAMPTZ)""",
    f"""CREATE TABLE IF NOT EXISTS {COLUMNS} (
        table_name VARCHAR, path VARCHAR, kind VARCHAR, column_name VARCHAR, sql_type VARCHAR)""",
    f"""CREATE TABLE IF NOT EXISTS {EVENTS} (
        table_name VARCHAR, happened_at TIMESTAMPTZ, kind VARCHAR, detail VARCHAR)""",
    # shard groups (stream/shard_groups.py): when each group of a count last found its shards at their tip
    f"""CREATE TABLE IF NOT EXISTS {GROUP_TIPS} (
        table_name VARCHAR, group_count INTEGER, group_index INTEGER, tip_micros BIGINT)""",
]

STATEMENT_ROWS = 500
"""Rows one INSERT carries at most: each statement costs a round trip to the catalog, and a terabyte's load
registers hundreds of chunks and thousands of columns."""

CHECKPOINT_LITERALS = 50
"""Up to this many checkpoints go as parameters; more as a registered Arrow table (registering one and reading
it in a subquery cost ~5-10 ms more per batch than the same statements with values)."""

# what a stream batch may set in a table's row besides its own last-change time (apply/changes.py)
BATCH_UPDATABLE = frozenset({"stream_arn", "stream_start_micros", "last_change_micros", "export_bucket",
                             "export_prefix"})


@dataclass(frozen=True)
class Checkpoint:
    """Where a shard was read up to: every record up to ``sequence_number`` is applied; ``ended`` once the
    shard is closed and read to its end (its children may then start)."""

    shard_id: str
    sequence_number: str | None
    parent_shard_id: str | None = None
    ended: bool = False


@dataclass(frozen=True)
class TableState:
    """One table's row of ``dynadex.tables``."""

    table_name: str
    key_names: tuple[str, ...]
    key_types: tuple[str, ...]
    build_id: str | None = None
    export_arn: str | None = None
    export_time: str | None = None
    export_time_micros: int | None = None
    stream_arn: str | None = None
    stream_start_micros: int | None = None
    published_at: dt.datetime | None = None
    last_change_micros: int | None = None  # every change before this instant is applied
    last_applied_at: dt.datetime | None = None  # when a stream change last landed
    export_bucket: str | None = None
    export_prefix: str | None = None
    synced_at: dt.datetime | None = None  # when the sync last committed or found every shard at its tip
    key_prefix: str | None = None  # None: published before decision 0027, no key order numbers

    @classmethod
    def from_row(cls, names: list[str], row: tuple) -> "TableState":
        d = dict(zip(names, row))
        d["key_names"] = tuple(json.loads(d["key_names"]))
        d["key_types"] = tuple(json.loads(d["key_types"]))
        return cls(**{f.name: d.get(f.name) for f in fields(cls)})

    def to_dict(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------ reads


def table_names(con) -> list[str]:
    return [r[0] for r in con.execute(f"SELECT table_name FROM {TABLES} ORDER BY 1").fetchall()]


def read_table(con, table: str) -> TableState | None:
    cur = con.execute(f"SELECT * FROM {TABLES} WHERE table_name = ?", [table])
    row = cur.fetchone()
    return None if row is None else TableState.from_row([d[0] for d in cur.description], row)


def read_tables(con, tables: list[str]) -> dict[str, TableState]:
    """``read_table`` of several tables in one statement (those the store holds)."""
    cur = con.execute(f"SELECT * FROM {TABLES} WHERE list_contains(?, table_name)", [list(tables)])
    names = [d[0] for d in cur.description]
    states = [TableState.from_row(names, r) for r in cur.fetchall()]
    return {s.table_name: s for s in states}


def read_checkpoints_of(con, tables: list[str]) -> dict[str, dict[str, Checkpoint]]:
    """``read_checkpoints`` of several tables in one statement: table -> its checkpoints (every table named)."""
    out: dict[str, dict[str, Checkpoint]] = {t: {} for t in tables}
    for t, s, p, q, e in con.execute(f"SELECT table_name, shard_id, parent_shard_id, sequence_number, ended "
                                     f"FROM {CHECKPOINTS} WHERE list_contains(?, table_name)", [list(tables)]).fetchall():
        out[t][s] = Checkpoint(s, q, p, bool(e))
    return out


def read_checkpoints(con, table: str) -> dict[str, Checkpoint]:
    rows = con.execute(f"SELECT shard_id, parent_shard_id, sequence_number, ended FROM {CHECKPOINTS} "
                       "WHERE table_name = ?", [table]).fetchall()
    return {s: Checkpoint(s, q, p, bool(e)) for s, p, q, e in rows}


def checkpoint_rows(con, table: str) -> list[tuple]:
    """(shard id, parent, sequence number, ended, updated at) by shard id: what ``status`` shows."""
    return con.execute(f"SELECT shard_id, parent_shard_id, sequence_number, ended, updated_at FROM {CHECKPOINTS} "
                       "WHERE table_name = ? ORDER BY shard_id", [table]).fetchall()


def recent_events(con, table: str, limit: int = 10) -> list[tuple]:
    """(happened at, kind, detail JSON) of the table's newest events, newest first."""
    return con.execute(f"SELECT happened_at, kind, detail FROM {EVENTS} WHERE table_name = ? "
                       "ORDER BY happened_at DESC LIMIT ?", [table, limit]).fetchall()


def read_columns(con, table: str) -> list[tuple[tuple[str, ...], str, str, str]]:
    """The table's registered columns, (path, kind, column name, SQL type), in the order they were added."""
    rows = con.execute(f"SELECT path, kind, column_name, sql_type FROM {COLUMNS} WHERE table_name = ? ORDER BY rowid",
                       [table]).fetchall()
    return [(tuple(json.loads(p)), k, n, t) for p, k, n, t in rows]


def read_columns_of(con, tables: list[str]) -> dict[str, list[tuple[tuple[str, ...], str, str, str]]]:
    """``read_columns`` of each of ``tables``, in one statement."""
    out: dict[str, list] = {t: [] for t in tables}
    if tables:
        rows = con.execute(f"SELECT table_name, path, kind, column_name, sql_type FROM {COLUMNS} WHERE table_name IN "
                           f"({', '.join('?' for _ in tables)}) ORDER BY rowid", list(tables)).fetchall()
        for table, p, k, n, t in rows:
            out[table].append((tuple(json.loads(p)), k, n, t))
    return out


def load_registry(con, table: str) -> Registry:
    """The table's column registry as stored (one catalog statement)."""
    return Registry.of(read_columns(con, table))


# ------------------------------------------------------------------ writes (inside the caller's transaction)


def create(con) -> None:
    for statement in DDL:
        con.execute(statement)


def replace_table(con, state: TableState) -> None:
    """A publish: the table's row, columns and checkpoints start anew (``published_at`` and ``synced_at`` now,
    no stream change applied yet)."""
    for t in (COLUMNS, TABLES, CHECKPOINTS, GROUP_TIPS):
        con.execute(f"DELETE FROM {t} WHERE table_name = ?", [state.table_name])
    row = state.to_dict()
    row["key_names"], row["key_types"] = json.dumps(list(state.key_names)), json.dumps(list(state.key_types))
    given = {k: v for k, v in row.items() if k not in ("published_at", "synced_at", "last_applied_at")}
    names = list(given) + ["published_at", "synced_at"]
    con.execute(f"INSERT INTO {TABLES} ({', '.join(names)}) VALUES ({', '.join('?' for _ in given)}, now(), now())",
                list(given.values()))


def save_columns(con, table: str, columns) -> None:
    """Register ``columns`` (each with ``path``, ``kind``, ``name``, ``sql_type``), in order: ``read_columns``
    gives them back by rowid. One statement per ``STATEMENT_ROWS``."""
    for start in range(0, len(columns), STATEMENT_ROWS):
        part = columns[start:start + STATEMENT_ROWS]
        con.execute(f"INSERT INTO {COLUMNS} (table_name, path, kind, column_name, sql_type) VALUES "
                    + ", ".join("(?, ?, ?, ?, ?)" for _ in part),
                    [v for c in part for v in (table, json.dumps(list(c.path), ensure_ascii=False), c.kind, c.name,
                                               c.sql_type)])


def record_chunks(con, table: str, build_id: str, chunks) -> None:
    """The chunk ledger of a publish: each chunk (``chunk_id``, ``items``, ``files``) and the files it built."""
    for start in range(0, len(chunks), STATEMENT_ROWS):
        part = chunks[start:start + STATEMENT_ROWS]
        con.execute(f"INSERT INTO {CHUNKS} (table_name, build_id, chunk_id, items, files, published_at) VALUES "
                    + ", ".join("(?, ?, ?, ?, ?, now())" for _ in part),
                    [v for m in part for v in (table, build_id, m.chunk_id, m.items, json.dumps(m.files))])


def record_event(con, table: str, kind: str, detail: dict) -> None:
    con.execute(f"INSERT INTO {EVENTS} (table_name, happened_at, kind, detail) VALUES (?, now(), ?, ?)",
                [table, kind, json.dumps(detail)])


def replace_checkpoints(con, table: str, checkpoints: list[Checkpoint]) -> None:
    """The table's whole set of checkpoints becomes ``checkpoints`` (a publish, a recovery)."""
    con.execute(f"DELETE FROM {CHECKPOINTS} WHERE table_name = ?", [table])
    if checkpoints:
        store_checkpoints(con, table, checkpoints)


def store_checkpoints(con, table: str, checkpoints: list[Checkpoint]) -> None:
    """Replace these shards' checkpoints (delete, then insert: one UPDATE costs DuckLake the same two steps)."""
    if len(checkpoints) <= CHECKPOINT_LITERALS:
        con.execute(f"DELETE FROM {CHECKPOINTS} WHERE table_name = ? AND shard_id IN "
                    f"({', '.join('?' for _ in checkpoints)})", [table, *(c.shard_id for c in checkpoints)])
        con.execute(f"INSERT INTO {CHECKPOINTS} (table_name, shard_id, parent_shard_id, sequence_number, ended, "
                    "updated_at) VALUES " + ", ".join("(?, ?, ?, ?, ?, now())" for _ in checkpoints),
                    [v for c in checkpoints
                     for v in (table, c.shard_id, c.parent_shard_id, c.sequence_number, c.ended)])
        return
    con.register("dynadex_cps", pa.table({
        "shard_id": pa.array([c.shard_id for c in checkpoints], pa.string()),
        "parent_shard_id": pa.array([c.parent_shard_id for c in checkpoints], pa.string()),
        "sequence_number": pa.array([c.sequence_number for c in checkpoints], pa.string()),
        "ended": pa.array([c.ended for c in checkpoints], pa.bool_()),
    }))
    try:
        con.execute(f"DELETE FROM {CHECKPOINTS} WHERE table_name = ? "
                    "AND shard_id IN (SELECT shard_id FROM dynadex_cps)", [table])
        con.execute(f"INSERT INTO {CHECKPOINTS} (table_name, shard_id, parent_shard_id, sequence_number, ended, "
                    "updated_at) SELECT ?, shard_id, parent_shard_id, sequence_number, ended, now() FROM dynadex_cps",
                    [table])
    finally:
        con.unregister("dynadex_cps")


def note_batch(con, table: str, newest_micros: int | None, updates: dict | None = None) -> None:
    """A stream batch committed: ``synced_at`` now; with changes, applied through ``newest_micros`` (never back)
    and ``last_applied_at`` now; ``updates`` may set the columns of ``BATCH_UPDATABLE`` (a recovery's new
    stream, an explicit ``last_change_micros`` that then replaces the batch's)."""
    sets, values = ["synced_at = now()"], []
    updates = dict(updates or {})
    wrong = set(updates) - BATCH_UPDATABLE
    if wrong:
        raise ValueError(f"cannot update sync state column(s) {sorted(wrong)}; allowed: {sorted(BATCH_UPDATABLE)}")
    if newest_micros is not None:
        sets.append("last_applied_at = now()")
        if "last_change_micros" not in updates:
            sets.append("last_change_micros = greatest(coalesce(last_change_micros, 0), ?)")
            values.append(newest_micros)
    for column, value in updates.items():
        sets.append(f"{column} = ?")
        values.append(value)
    con.execute(f"UPDATE {TABLES} SET {', '.join(sets)} WHERE table_name = ?", [*values, table])


def note_batches(con, batches: list[tuple[str, list[Checkpoint], int | None]]) -> None:
    """Several tables' stream batches committed in one transaction (decision 0039), each as ``store_checkpoints``
    then ``note_batch`` (no ``updates``) would record it alone, in three statements for all of them rather than
    three per table: at 50 tables a commit, 12 ms of each table's 40 went to these statements."""
    cps = [(table, c) for table, checkpoints, _ in batches for c in checkpoints]
    if cps:
        con.register("dynadex_cps", pa.table({
            "table_name": pa.array([t for t, _ in cps], pa.string()),
            "shard_id": pa.array([c.shard_id for _, c in cps], pa.string()),
            "parent_shard_id": pa.array([c.parent_shard_id for _, c in cps], pa.string()),
            "sequence_number": pa.array([c.sequence_number for _, c in cps], pa.string()),
            "ended": pa.array([c.ended for _, c in cps], pa.bool_()),
        }))
        try:
            con.execute(f"DELETE FROM {CHECKPOINTS} WHERE (table_name, shard_id) IN "
                        "(SELECT (table_name, shard_id) FROM dynadex_cps)")
            con.execute(f"INSERT INTO {CHECKPOINTS} (table_name, shard_id, parent_shard_id, sequence_number, "
                        "ended, updated_at) SELECT table_name, shard_id, parent_shard_id, sequence_number, ended, "
                        "now() FROM dynadex_cps")
        finally:
            con.unregister("dynadex_cps")
    con.register("dynadex_batches", pa.table({
        "table_name": pa.array([t for t, _, _ in batches], pa.string()),
        "newest": pa.array([n for _, _, n in batches], pa.int64()),
    }))
    try:
        con.execute(f"UPDATE {TABLES} SET synced_at = now(), "
                    "last_applied_at = CASE WHEN b.newest IS NULL THEN last_applied_at ELSE now() END, "
                    "last_change_micros = CASE WHEN b.newest IS NULL THEN last_change_micros "
                    "ELSE greatest(coalesce(last_change_micros, 0), b.newest) END "
                    f"FROM dynadex_batches b WHERE {TABLES}.table_name = b.table_name")
    finally:
        con.unregister("dynadex_batches")


def note_group_tip(con, table: str, index: int, count: int, micros: int) -> int | None:
    """Shard group ``index`` of ``count`` found its shards at their tip at ``micros``. When every group of that
    count has said so, the table is caught up to the oldest of their instants: noted (``note_caught_up``) and
    returned; else None. Rows of other counts (groups of a count no longer run) are removed."""
    con.execute(f"DELETE FROM {GROUP_TIPS} WHERE table_name = ? AND (group_count <> ? OR group_index = ?)",
                [table, count, index])
    con.execute(f"INSERT INTO {GROUP_TIPS} VALUES (?, ?, ?, ?)", [table, count, index, micros])
    groups, oldest = con.execute(f"SELECT count(*), min(tip_micros) FROM {GROUP_TIPS} WHERE table_name = ?",
                                 [table]).fetchone()
    if groups < count:
        return None
    note_caught_up(con, table, oldest)
    return oldest


def note_caught_up(con, table: str, micros: int) -> None:
    """Every shard was at its tip at ``micros``: every change before then is applied. ``synced_at`` is that
    instant, so the lag (synced_at - applied through) reads 0."""
    con.execute(f"UPDATE {TABLES} SET synced_at = to_timestamp(?::DOUBLE / 1000000), "
                "last_change_micros = greatest(coalesce(last_change_micros, 0), ?) WHERE table_name = ?",
                [micros, micros, table])
