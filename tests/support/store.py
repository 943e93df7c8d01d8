"""Stores built and read without AWS: a published snapshot, a dump of everything a batch writes, the CLI on a store."""

from __future__ import annotations

import subprocess
import sys

from dynadex.store import Change, PublishSpec, Store
from dynadex.store.layout.names import column_table, inverted_table, row_table
from dynadex.store.layout.writes import LIVE
from dynadex.types import canonical_item


def random_change(rnd, table: str, r: int, *, keys: int, delete_share: float, extra=None) -> Change:
    """A change to one of ``keys`` random keys of ``table`` in round ``r`` of a randomized test: a delete
    (``delete_share`` of them) or a put of ``n`` and ``extra(rnd, r)``'s attributes. Its version is one of the
    round's two, or 0, older than anything stored (a stale change)."""
    k = f"{table}{rnd.randrange(keys)}"
    version = rnd.choice([0, 10 * r + 5, 10 * r + 6])
    if rnd.random() < delete_share:
        return Change({"pk": {"S": k}}, None, version, f"{table}-del-{r}")
    item = {"pk": {"S": k}, "n": {"N": str(rnd.randrange(100))}, **(extra(rnd, r) if extra else {})}
    return Change({"pk": {"S": k}}, canonical_item(item), version, f"{table}-put-{r}")


def publish_items(store_dir, table, items, *, key=("pk",), types=("S",), build="b1", chunks=1, version=1):
    """Publish ``items`` (DynamoDB JSON) as table ``table`` of the store in ``store_dir``, in ``chunks`` chunks."""
    with Store(str(store_dir), read_only=False) as st:
        ids = []
        for c in range(chunks):
            w = st.chunk_writer(table, build, f"c{c}", key, types)
            for item in items[c::chunks]:
                w.add(canonical_item(item), version, "test")
            w.finish()
            ids.append(f"c{c}")
        return st.publish(PublishSpec(table, build, ids, key, types, total_items=len(items)))


def cli(store_dir, *args):
    """``dynadex ARGS --store STORE_DIR`` in a child process (its CompletedProcess, text)."""
    return subprocess.run([sys.executable, "-m", "dynadex.cli", *args, "--store", str(store_dir)],
                          capture_output=True, text=True)


def new_store(path, composite: bool, snapshot: list[dict]) -> str:
    """A store at ``path`` with table T published from ``snapshot`` (key pk S, or pk N + sk B when ``composite``)."""
    names, types = (("pk", "sk"), ("N", "B")) if composite else (("pk",), ("S",))
    with Store(str(path), read_only=False) as st:
        w = st.chunk_writer("T", "b1", "c0", names, types)
        for item in snapshot:
            w.add(canonical_item(item), 1, "bulk")
        w.finish()
        st.publish(PublishSpec("T", "b1", ["c0"], names, types, total_items=len(snapshot)))
    return str(path)


def dump(store: str) -> dict:
    """Everything a stream batch writes, as sorted rows (write ids compared only as liveness: they are times)."""
    with Store(store) as st:
        con = st.lake.con
        cols = [r[0] for r in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE database_name = 'lake' "
            "AND schema_name = 'main' AND table_name = 'T' ORDER BY column_index").fetchall()]
        q = ", ".join('"' + c.replace('"', '""') + '"' for c in cols)

        def rows(sql):
            return con.execute(sql).fetchall()

        return {
            "row_index": rows(f"SELECT key, pk, {'sk, ' if 'sk' in cols else ''}item, version, origin "
                              f"FROM {row_table('T')} ORDER BY key"),
            "column_types": rows("SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = 'lake' "
                                 "AND schema_name = 'main' AND table_name = 'T' ORDER BY column_index"),
            "registry": rows("SELECT path, kind, column_name, sql_type FROM dynadex.columns ORDER BY rowid"),
            "column_index": rows(f"SELECT {q} FROM {column_table('T')} ORDER BY _key"),
            "live_inverted": rows(f"SELECT i.path, i.kind, i.value, i.key FROM {inverted_table('T')} i "
                                  f"JOIN {row_table('T')} r ON r.key = i.key AND {LIVE} ORDER BY ALL"),
            "all_inverted": rows(f"SELECT path, kind, value, key FROM {inverted_table('T')} ORDER BY ALL"),
            "checkpoints": rows("SELECT shard_id, sequence_number, ended FROM dynadex.checkpoints ORDER BY ALL"),
            "state": rows("SELECT last_change_micros FROM dynadex.tables"),
            "finds": [st.find("T", "city=Paris"), st.find("T", "count=0")],
        }


class Hooked:
    """A connection that calls ``before(sql)`` and ``after(sql)`` around each statement it runs."""

    def __init__(self, con, before=lambda sql: None, after=lambda sql: None):
        self.con, self.before, self.after = con, before, after

    def execute(self, sql, *params):
        self.before(sql)
        result = self.con.execute(sql, *params)
        self.after(sql)
        return result

    def __getattr__(self, name):
        return getattr(self.con, name)
