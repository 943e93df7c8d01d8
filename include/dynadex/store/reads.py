"""Reading the store: SQL queries, get by key, find by value, dump, status.

Invariants:

* Reads never write: the catalog is attached READ_ONLY and ``query``
  accepts only SELECT-like statements (anything else is refused before it
  runs, with a message saying so).
* ``get`` and ``dump`` return items exactly as stored: canonical DynamoDB
  JSON, so ``dump`` compares byte for byte with a canonicalised Scan.
* ``find`` is served by the inverted index (path/value filter on data
  sorted by path and value), then fetches the items from the row index.
* ``read_whole_snapshot`` answers from one whole snapshot: its work runs in
  one read transaction (one snapshot, the newest at its start), and runs
  again when a commit that moves rows (a flush of inlined rows, a merge)
  landed while it read, since DuckLake can then show a reader a snapshot
  without the moved rows (duckdb/ducklake#1413). It never answers from
  such a read.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import threading
import time
from dataclasses import dataclass
from decimal import Decimal

import duckdb

from dynadex.errors import AttributeValueError
from dynadex.store.catalog import state
from dynadex.store.catalog.lake import ALIAS, Lake, stale_cache
from dynadex.store.catalog.state import TableState
from dynadex.store.errors import NeedsTransaction, QueryError, QueryTimeout, SnapshotBusy
from dynadex.store.layout.names import inverted_table, row_table
from dynadex.store.layout.shape import key_text
from dynadex.types import canonical, canonical_item, canonical_number

READ_STATEMENTS = {"SELECT", "EXPLAIN", "PRAGMA"}
READ_PRAGMAS = {"table_info", "show", "show_tables", "show_tables_expanded", "database_list", "database_size",
                "storage_info", "version", "platform", "functions", "collations", "metadata_info"}


SANDBOX_REFUSED_PREFIXES = ("sqlite_",)
"""Table functions a sandboxed query may not call: the SQLite scanner (loaded for DuckLake's SQLite catalog) opens
files through SQLite's own calls, past DuckDB's ``allowed_directories`` and ``enable_external_access``
(`sqlite_scan('/any/file.db', 't')` read a file outside the store), and reads the raw catalog, other tables'
inlined rows included."""
SANDBOX_REFUSED_FUNCTIONS = {"query", "query_table"}
"""Table functions that run SQL given as a string, which no parse of the query can see into."""


def check_sandboxed(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """A sandboxed store's query calls no refused table function (``SANDBOX_REFUSED_*``), anywhere in it:
    subqueries, CTEs and joins included, from DuckDB's own parse (``json_serialize_sql``)."""
    for st in con.extract_statements(sql):
        kind = st.type.name if hasattr(st.type, "name") else str(st.type)
        if kind == "PRAGMA":
            continue  # READ_PRAGMAS only (check_read_only): none calls a table function
        text = re.sub(r"^\s*explain(\s+analyze)?\s+", "", st.query, flags=re.I) if kind == "EXPLAIN" else st.query
        doc = json.loads(con.execute("SELECT json_serialize_sql(?)", [text]).fetchone()[0])
        if doc.get("error"):
            raise QueryError(f"query does not parse: {doc.get('error_message')}")
        refused = sorted({f for f in _table_functions(doc.get("statements"))
                          if f in SANDBOX_REFUSED_FUNCTIONS or f.startswith(SANDBOX_REFUSED_PREFIXES)})
        if refused:
            raise QueryError(f"the sandbox refuses the table function{'s' if len(refused) > 1 else ''} "
                             f"{', '.join(refused)}: a sandboxed query reads the store's tables and nothing else")


def _table_functions(tree) -> list[str]:
    """The (lower-cased) names of every table function in a ``json_serialize_sql`` tree."""
    return [str((n.get("function") or {}).get("function_name", "?")).lower()
            for n in sql_nodes(tree) if n.get("type") == "TABLE_FUNCTION"]


def sql_nodes(tree):
    """Every object (dict) of a ``json_serialize_sql`` tree, parents before children, in the tree's order: what
    the sandbox and the server's reading of a query (``serve.sql``) look for is always a node of some type."""
    stack = [tree]
    while stack:
        n = stack.pop()
        if isinstance(n, dict):
            yield n
            stack.extend(reversed(list(n.values())))
        elif isinstance(n, list):
            stack.extend(reversed(n))


def check_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(f"query does not parse: {str(exc).splitlines()[0]}") from exc
    if not statements:
        raise QueryError("empty query")
    for st in statements:
        kind = st.type.name if hasattr(st.type, "name") else str(st.type)
        if kind not in READ_STATEMENTS:
            raise QueryError(
                f"dynadex query is read-only: {kind} statements are refused (the index changes only through"
                " ingest and sync)"
            )
        if kind == "PRAGMA":
            m = re.match(r"\s*pragma\s+(\w+)\s*(=)?", st.query, re.I)
            if m is None or m.group(2) or m.group(1).lower() not in READ_PRAGMAS:
                raise QueryError(f"dynadex query is read-only: only the PRAGMAs {', '.join(sorted(READ_PRAGMAS))} "
                                 "are allowed (others change settings)")


def jsonable(value):
    if isinstance(value, Decimal):
        return format(value, "f") if value == value.to_integral_value() and abs(value) < 2**53 else str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return value


def query(lake: Lake, sql: str) -> tuple[list[str], list[tuple]]:
    check_read_only(lake.con, sql)
    if lake.sandbox:
        check_sandboxed(lake.con, sql)

    def run():
        cur = lake.con.execute(sql)
        return cur, cur.fetchall()

    try:
        cur, rows = lake.reading(run)
    except duckdb.Error as exc:
        raise QueryError(f"query failed: {str(exc).strip()}") from exc
    return [d[0] for d in cur.description or []], rows


def _cached_key_names(lake: Lake, table: str) -> tuple[str, ...]:
    """A table's key never changes, so a reader looks it up once."""
    return lake.key_spec(table)[0]


def parse_key(lake: Lake, table: str, key_json: str) -> str:
    names = _cached_key_names(lake, table)
    try:
        key = json.loads(key_json)
    except json.JSONDecodeError as exc:
        raise QueryError(f"key is not valid JSON ({exc.msg} at character {exc.pos}); "
                         f'write it in DynamoDB JSON, e.g. {{"{names[0]}":{{"S":"a"}}}}') from exc
    if not isinstance(key, dict):
        raise QueryError("key must be a JSON object of attribute values")
    if set(key) != set(names):
        raise QueryError(f"table {table} has key {list(names)}, the key given has {sorted(key)}")
    try:
        key = canonical_item(key)
    except AttributeValueError as exc:
        raise QueryError(f"key: {exc}") from exc
    return key_text(key, names)


def get(lake: Lake, table: str, key_json: str) -> str | None:
    key = parse_key(lake, table, key_json)
    row = lake.con.execute(f"SELECT item FROM {row_table(table)} WHERE key = ?", [key]).fetchone()
    return row[0] if row else None


def _value_candidates(value: str) -> list[tuple[str, str | None]]:
    """What ``PATH=VALUE`` may mean: a DynamoDB JSON value, or text read as S, N, BOOL, NULL or base64 B."""
    text = value.strip()
    if text.startswith("{"):
        try:
            av = canonical(json.loads(text), "value")
        except (json.JSONDecodeError, AttributeValueError) as exc:
            raise QueryError(f"value {value!r} is neither plain text nor a DynamoDB JSON value: {exc}") from exc
        ((tag, v),) = av.items()
        if tag in ("S", "N", "B"):
            return [(tag, v)]
        if tag == "BOOL":
            return [("BOOL", "true" if v else "false")]
        if tag == "NULL":
            return [("NULL", None)]
        raise QueryError(f"find matches scalar values and set/list members, not {tag}")
    out = [("S", value)]
    try:
        out.append(("N", canonical_number(value)))
    except AttributeValueError:
        pass
    if value in ("true", "false"):
        out.append(("BOOL", value))
    try:
        if base64.b64encode(base64.b64decode(value, validate=True)).decode() == value and value:
            out.append(("B", value))
    except ValueError:
        pass
    if value == "null":
        out.append(("NULL", None))
    return out


FETCH_BY_LIST = 2000  # up to this many hits, fetch items with an IN list (pruned by the key-sorted files)


def split_find_expression(expression: str) -> tuple[str, str]:
    """``PATH=VALUE`` split at the first ``=`` outside a backslash escape. PATH is a path text
    (``names.path_text``: ``a.b`` is map ``a``'s field ``b``, ``a\\.b`` the attribute named ``a.b``); an ``=``
    inside a name is written ``\\=`` here. VALUE is everything after the ``=``, as it is."""
    path, i = [], 0
    while i < len(expression):
        c = expression[i]
        if c == "\\" and i + 1 < len(expression):
            nxt = expression[i + 1]
            path.append("=" if nxt == "=" else c + nxt)  # other escapes belong to the path text
            i += 2
        elif c == "=":
            if not path:
                raise QueryError("PATH is empty in PATH=VALUE")
            return "".join(path), expression[i + 1:]
        else:
            path.append(c)
            i += 1
    raise QueryError(f"expected PATH=VALUE, got {expression!r}")


def find(lake: Lake, table: str, expression: str, limit: int | None = None) -> list[str]:
    _cached_key_names(lake, table)
    path, value = split_find_expression(expression)
    # one plain equality query per candidate kind: each is pushed down to the (path, value)-sorted files
    parts, params = [], []
    for kind, v in _value_candidates(value):
        if v is None:
            parts.append(f"SELECT key, write_id FROM {inverted_table(table)} WHERE path = ? AND kind = ? AND value IS NULL")
            params += [path, kind]
        else:
            parts.append(f"SELECT key, write_id FROM {inverted_table(table)} WHERE path = ? AND value = ? AND kind = ?")
            params += [path, v, kind]
    hits: dict = {}  # key -> write ids of its matching entries (superseded ones are dropped below)
    for key, write_id in lake.con.execute(" UNION ALL ".join(parts), params).fetchall():
        hits.setdefault(key, set()).add(write_id)
    keys = sorted(hits)
    items: list[str] = []
    want = int(limit) if limit else None
    # without a limit, many hits are fetched in one join; with one, page by page until it is reached
    pages = [keys] if want is None else [keys[i:i + FETCH_BY_LIST] for i in range(0, len(keys), FETCH_BY_LIST)]
    for page in pages:
        for key, write_id, item in _rows_of(lake, table, page):
            if write_id in hits[key]:  # the entry belongs to the key's current write (writes.py)
                items.append(item)
                if want is not None and len(items) >= want:
                    return items
    return items


def _rows_of(lake: Lake, table: str, keys: list[str]) -> list:
    """(key, write_id, item) of the given keys, in key order (an IN list prunes the key-sorted files)."""
    if not keys:
        return []
    if len(keys) <= FETCH_BY_LIST:
        marks = ", ".join("?" for _ in keys)
        return lake.con.execute(f"SELECT key, write_id, item FROM {row_table(table)} WHERE key IN ({marks}) ORDER BY key",
                                keys).fetchall()
    import pyarrow as pa

    lake.con.register("dynadex_find_keys", pa.table({"key": pa.array(keys, pa.string())}))
    try:
        return lake.con.execute(f"SELECT r.key, r.write_id, r.item FROM {row_table(table)} r JOIN dynadex_find_keys k "
                                "ON r.key = k.key ORDER BY r.key").fetchall()
    finally:
        lake.con.unregister("dynadex_find_keys")


def dump(lake: Lake, table: str):
    lake.require_table(table)
    cur = lake.con.execute(f"SELECT item FROM {row_table(table)} ORDER BY key")
    while True:
        rows = cur.fetchmany(10_000)
        if not rows:
            break
        for (item,) in rows:
            yield item


def _micros_iso(micros: int | None) -> str | None:
    if micros is None:
        return None
    return dt.datetime.fromtimestamp(micros / 1e6, dt.timezone.utc).isoformat().replace("+00:00", "Z")


def lag(found: TableState, now_micros: int | None = None) -> dict:
    """How far behind the table the index is, as the sync last saw it.

    ``lag_seconds`` = (when the sync last committed or looked: ``synced_at``) - (the instant every change
    before which is applied: ``last_change_micros``, or the export time before any change): 0 when that
    pass found every shard at its tip, the reader's distance behind the stream while it catches up.
    ``checked_at`` / ``checked_seconds_ago`` say when that was: a lag of 0 checked an hour ago means the
    sync has not run for an hour. None without a stream or before any sync state exists. The time since
    the last change (``last_change_at``) is a different figure: an idle table is not a lagging index."""
    now_micros = int(time.time() * 1e6) if now_micros is None else now_micros
    through = found.last_change_micros or found.export_time_micros
    synced = found.synced_at
    if not found.stream_arn or not through or synced is None:
        return {"lag_seconds": None, "checked_at": jsonable(synced) if synced is not None else None,
                "checked_seconds_ago": None}
    synced_micros = int(synced.timestamp() * 1e6)
    return {
        "lag_seconds": round(max(0, synced_micros - through) / 1e6, 3),
        "checked_at": jsonable(synced),
        "checked_seconds_ago": round(max(0, now_micros - synced_micros) / 1e6, 3),
    }


def status(lake: Lake, table: str | None = None) -> dict:
    tables = [table] if table else lake.source_tables()
    snapshot = lake.con.execute("SELECT * FROM lake.current_snapshot()").fetchone()
    out = {"store": lake.location.display, "snapshot": snapshot[0] if snapshot else None, "tables": []}
    now_micros = int(time.time() * 1e6)
    for name in tables:
        found = lake.require_table(name)
        items = lake.con.execute(f"SELECT count(*) FROM {row_table(name)}").fetchone()[0]
        files = size = 0
        for schema in ("main", "row_index", "inverted_index"):
            n, b = lake.con.execute(
                "SELECT count(*), coalesce(sum(data_file_size_bytes), 0) FROM ducklake_list_files('lake', ?, schema => ?)",
                [name, schema],
            ).fetchone()
            files += n
            size += int(b)
        out["tables"].append(
            {
                "table": name,
                "items": items,
                "bytes": size,
                "files": files,
                "key": list(found.key_names),
                "build_id": found.build_id,
                "export_arn": found.export_arn,
                "export_time": found.export_time,
                "stream_arn": found.stream_arn,
                "published_at": jsonable(found.published_at),
                "applied_through": _micros_iso(found.last_change_micros),  # every change before this is in the index
                "last_applied_at": jsonable(found.last_applied_at),
                "last_change_at": jsonable(found.last_applied_at),  # when a stream change last landed
                **lag(found, now_micros),
                "checkpoints": [
                    {"shard_id": s, "parent_shard_id": p, "sequence_number": q, "ended": e, "updated_at": jsonable(u)}
                    for s, p, q, e, u in state.checkpoint_rows(lake.con, name)
                ],
                "recent_events": [{"at": jsonable(a), "kind": k, "detail": json.loads(d) if d else None}
                                  for a, k, d in state.recent_events(lake.con, name)],
            }
        )
    return out


# ---------------------------------------------------------------- one whole snapshot per read (dynadex serve)

# What a stream batch commits (DuckLake's ``changes`` of its snapshot): rows added or deleted, columns added.
# A reader whose read overlaps such a commit still reads its own snapshot whole. Any other change (a flush of
# inlined rows into files: ``flushed_inlined``; a merge of files: ``merge_adjacent``; a compaction) moves rows
# that exist at the reader's snapshot, and DuckLake 1.5.5 can show a reader overlapping it the snapshot
# without them: measured with a reader counting a table that only grows, 40 dips in 5 874 reads beside a
# writer flushing every 5 batches, in autocommit reads, in one read transaction and with AT (VERSION => n)
# alike (docs/decisions/0031-serve.md).
ROW_KEEPING_CHANGES = frozenset({"inlined_insert", "inlined_delete", "tables_inserted_into", "tables_deleted_from",
                                 "tables_altered"})
WHOLE_SNAPSHOT_ATTEMPTS = 6  # a flush lasts milliseconds and comes every 100 batches: six reads never all meet one


@dataclass(frozen=True)
class Snapshot:
    """The DuckLake snapshot a read answered from: its id and when it was committed."""

    id: int
    committed_at: dt.datetime | None
    attempts: int = 1  # reads it took: more than one when a flush or merge landed during a read

    def as_dict(self) -> dict:
        return {"snapshot": self.id, "committed_at": jsonable(self.committed_at), "attempts": self.attempts}


@dataclass
class QueryResult:
    """A query's answer as an Arrow table (at most ``max_rows`` rows; ``truncated`` when it had more)."""

    table: object  # pyarrow.Table
    truncated: bool

    @property
    def columns(self) -> list[str]:
        return list(self.table.column_names)

    def rows(self) -> list[dict]:
        return [{c: jsonable(v) for c, v in row.items()} for row in self.table.to_pylist()]


class SnapshotReader:
    """Reads inside one read transaction: every statement sees the same snapshot (``snapshot``)."""

    def __init__(self, lake: Lake, snapshot: Snapshot, point_reads=None):
        self.lake = lake
        self.snapshot = snapshot
        self.point_reads = point_reads  # a ``point_reads.PointReads``: gets read the Parquet files themselves
        self.plans: list = []  # point-read plans made by this read, kept once its snapshot is checked whole

    def query(self, sql: str, params=None, *, max_rows: int | None = None, batch_rows: int = 2048) -> QueryResult:
        """A read-only statement with bound ``params`` (a list for ``?``/``$1``, a dict for ``$name``), at most
        ``max_rows`` rows fetched (the rest are never computed: the result streams)."""
        import pyarrow as pa

        check_read_only(self.lake.con, sql)
        if self.lake.sandbox:
            check_sandboxed(self.lake.con, sql)
        reader = self.lake.con.execute(sql, params if params is not None else []).to_arrow_reader(batch_rows)
        batches, count, truncated = [], 0, False
        for batch in reader:
            batches.append(batch)
            count += batch.num_rows
            if max_rows is not None and count > max_rows:
                truncated = True
                break
        table = pa.Table.from_batches(batches, schema=reader.schema)
        return QueryResult(table.slice(0, max_rows) if truncated else table, truncated)

    def get(self, table: str, key_json: str) -> str | None:
        if self.point_reads is not None:
            from dynadex.store.point_reads import UNANSWERED

            found = self.point_reads.get(self.lake, self.snapshot.id, table, parse_key(self.lake, table, key_json),
                                         self.plans)
            if found is not UNANSWERED:
                return found
        return get(self.lake, table, key_json)

    def warm(self, table: str) -> None:
        """Make ``table``'s point-read plan at this snapshot, as a get would, without getting anything (kept with
        the plans of this read once it is checked whole)."""
        if self.point_reads is not None:
            self.point_reads.prepare(self.lake, self.snapshot.id, table, self.plans)

    def find(self, table: str, expression: str, limit: int | None = None) -> list[str]:
        return find(self.lake, table, expression, limit)

    def tables(self) -> list[str]:
        return self.lake.source_tables()

    def items(self, table: str) -> int:
        """How many items ``table`` holds (its row index)."""
        return self.lake.con.execute(f"SELECT count(*) FROM {row_table(table)}").fetchone()[0]

    def table_state(self, table: str) -> TableState | None:
        return self.lake.table_state(table)


class DetachedReader(SnapshotReader):
    """Reads a snapshot without a DuckLake transaction: gets by point reads (``point_reads.py``) and the
    tables' sync state read from the catalog as DuckLake would; anything else raises ``NeedsTransaction`` and
    the read runs through DuckLake instead. ``unchecked``: it read what only a check that no flush or merge
    landed after its snapshot makes whole (a plan it made, a state), so ``_detached`` checks before answering."""

    def __init__(self, lake: Lake, snapshot: Snapshot, point_reads):
        super().__init__(lake, snapshot, point_reads)
        self.unchecked = False

    def get(self, table: str, key_json: str) -> str | None:
        from dynadex.store.point_reads import UNANSWERED

        if not self.point_reads.kept(table, self.snapshot.id):
            self.unchecked = True  # the plan made here is the catalog's as read now
        found = self.point_reads.get(self.lake, self.snapshot.id, table, parse_key(self.lake, table, key_json),
                                     self.plans)
        if found is UNANSWERED:
            raise NeedsTransaction("the point read did not answer")
        return found

    def warm(self, table: str) -> None:
        if not self.point_reads.kept(table, self.snapshot.id):
            self.unchecked = True
            if not self.point_reads.prepare(self.lake, self.snapshot.id, table, self.plans):
                raise NeedsTransaction("the plan was not made")

    def table_state(self, table: str) -> TableState | None:
        from dynadex.store.point_reads import UNANSWERED

        self.unchecked = True
        found = self.point_reads.state(self.lake, self.snapshot.id, table, self.plans)
        if found is UNANSWERED or found is None:  # no such table: DuckLake says so (an error ends the read
            raise NeedsTransaction("the state was not read")  # before any check that it was whole)
        return found

    def _needs(self, *args, **kwargs):
        raise NeedsTransaction("only DuckLake answers this")

    query = find = tables = items = _needs


WARM_WAIT_SECONDS = 0.25  # how long a get waits for another get reading the same new snapshot


def _detached(lake: Lake, work, point_reads):
    """``((work(reader), snapshot), None)``: ``work`` read at the catalog's newest snapshot without a DuckLake
    transaction (``DetachedReader``), or ``(None, warming)`` when it cannot be: ``warming`` is the snapshot
    this read was the first to read (``point_reads.warmed`` it when done), or None. A read that finds another
    reading the same new snapshot waits for it (at most ``WARM_WAIT_SECONDS``) rather than do the same work
    beside it. A read that made a plan or read a state (``unchecked``) answers only if no commit that moves
    rows landed after its snapshot meanwhile (``point_reads.moving_since``), and its plans are kept then; one
    that used only kept plans and cached states needs no check: a kept plan's files were read whole once and
    are never rewritten."""
    from dynadex.store import point_reads as points

    try:
        sid, committed_at = points.newest(lake)
    except duckdb.Error:
        return None, None  # the catalog stayed locked: the read through DuckLake waits its turn
    mine = False
    if not point_reads.read_whole(sid):
        event, mine = point_reads.warming(sid)
        if not mine:
            event.wait(WARM_WAIT_SECONDS)
    snapshot = Snapshot(sid, committed_at)
    reader = DetachedReader(lake, snapshot, point_reads)
    try:
        result = work(reader)
        whole = not reader.unchecked or not points.moving_since(lake, sid)
    except (NeedsTransaction, duckdb.Error):
        whole = False
    except BaseException:  # the caller's own error (a bad key, say): the snapshot is no one's to read now
        if mine:
            point_reads.warmed(sid)
        raise
    if not whole:
        return None, (sid if mine else None)
    if reader.unchecked:
        point_reads.keep(reader.plans, snapshot)
    if mine:
        point_reads.warmed(sid)
    point_reads.count("detached")
    return (result, snapshot), None


def _moving_commits(lake: Lake, since: int) -> list[int]:
    """Snapshots after ``since`` whose changes move rows existing before them (``ROW_KEEPING_CHANGES``). Most
    reads end before the next commit: then one look at the current snapshot answers (~1 ms, where listing the
    snapshots takes several)."""
    if lake.current_snapshot() == since:
        return []
    rows = lake.con.execute(f"SELECT snapshot_id, changes FROM {ALIAS}.snapshots() WHERE snapshot_id > ?",
                            [since]).fetchall()
    return [sid for sid, changes in rows if set(changes or {}) - ROW_KEEPING_CHANGES]


SNAPSHOT_TIMES = 256  # snapshot id -> its commit time, per connection: fixed once committed


def _commit_time(lake: Lake, sid: int):
    """When snapshot ``sid`` was committed; looked up once per connection (listing snapshots costs a scan of the
    catalog's snapshot table, each request would pay it)."""
    cache = lake.__dict__.setdefault("_snapshot_times", {})
    if sid not in cache:
        cache[sid] = lake.con.execute(f"SELECT snapshot_time FROM {ALIAS}.snapshots() WHERE snapshot_id = ?",
                                      [sid]).fetchone()[0]
        while len(cache) > SNAPSHOT_TIMES:
            cache.pop(next(iter(cache)))
    return cache[sid]


def _rollback(lake: Lake) -> None:
    try:
        lake.con.execute("ROLLBACK")  # a read transaction: nothing to commit
    except duckdb.Error:
        pass  # no transaction left (DuckDB ended it with the failure being raised)


def read_whole_snapshot(lake: Lake, work, *, timeout: float | None = None, point_reads=None):
    """``(work(reader), snapshot)``: ``work`` reads through a ``SnapshotReader`` inside one read transaction,
    pinned at the snapshot newest at its start. When a commit that moves rows landed after that snapshot while
    ``work`` ran, the answer may miss those rows (module docstring): it is thrown away and ``work`` runs again
    in a new transaction, up to ``WHOLE_SNAPSHOT_ATTEMPTS`` times (``SnapshotBusy`` after). A connection whose
    DuckLake cache went stale under another process's flush is reopened first (``Lake.reading``).
    ``timeout``: seconds for every attempt together; past it DuckDB is interrupted (``QueryTimeout``).
    ``point_reads`` (a ``point_reads.PointReads``): ``work`` that only gets items by key (and reads the tables'
    sync state) runs first without a DuckLake transaction (``_detached``, checked the same way); otherwise
    gets in the transaction read the row index's files themselves, and the plans they make are kept only
    from an attempt that passed the check."""
    deadline = None if timeout is None else time.monotonic() + timeout
    guard = threading.Lock()
    state = {"done": False, "fired": False}

    def interrupt() -> None:
        with guard:
            if not state["done"]:
                state["fired"] = True
                lake.con.interrupt()

    from dynadex.store import point_reads as points

    warming = None
    if point_reads is not None:  # a few ms of Parquet reads: no DuckDB statement to interrupt, no timer
        got, warming = _detached(lake, work, point_reads)
        if got is not None:
            return got
    timer = threading.Timer(timeout, interrupt) if timeout is not None else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        for attempt in range(1, WHOLE_SNAPSHOT_ATTEMPTS + 1):
            con = lake.con
            try:
                con.execute("BEGIN TRANSACTION")
                try:
                    sid = lake.current_snapshot()  # the transaction's: every statement in it reads this one
                    snapshot = Snapshot(sid, _commit_time(lake, sid) if point_reads is None
                                        else points.commit_time(lake, sid), attempt)
                    reader = SnapshotReader(lake, snapshot, point_reads)
                    result = work(reader)
                finally:
                    _rollback(lake)
                if not (_moving_commits(lake, sid) if point_reads is None else points.moving_since(lake, sid)):
                    if point_reads is not None:
                        point_reads.keep(reader.plans, snapshot)  # later reads of it need no transaction
                    return result, snapshot
            except duckdb.Error as exc:
                if state["fired"] or isinstance(exc, duckdb.InterruptException):
                    raise QueryTimeout(f"query interrupted at its deadline of {timeout:g} s") from exc
                if not (stale_cache(exc) or "current transaction is aborted" in str(exc).lower()):
                    raise QueryError(f"query failed: {str(exc).strip()}") from exc
                lake.reopen()  # the cache another process's flush made stale: a fresh connection (Lake.reading)
            if deadline is not None and time.monotonic() > deadline:
                raise QueryTimeout(f"query interrupted at its deadline of {timeout:g} s")
        raise SnapshotBusy(f"every one of {WHOLE_SNAPSHOT_ATTEMPTS} reads overlapped a flush or merge of the store; "
                           "try again")
    finally:
        with guard:
            state["done"] = True
        if timer is not None:
            timer.cancel()
        if warming is not None:
            point_reads.warmed(warming)
