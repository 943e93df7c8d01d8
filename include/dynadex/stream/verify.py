"""Comparing the index with the live table, item by item, exactly.

Invariant: a Scan item and an index item are equal when their canonical
DynamoDB JSON texts are equal; every difference is counted (missing from
the index, extra in the index, different), none is ignored, and the first
``keep`` of each kind are returned in key order. The scan can be held under a
read-capacity budget (``max_rcu`` per second).

Memory is bounded whatever the table size: scanned items go in batches into
a DuckDB temp table (which spills to disk beyond DuckDB's memory limit) and
the comparison is three joins with the row index, not a dict of the dump.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pyarrow as pa

from dynadex.aws import from_client
from dynadex.store import Store
from dynadex.store.layout.names import row_table
from dynadex.store.layout.shape import key_text
from dynadex.types import canonical_item, canonical_json


@dataclass
class Report:
    table_items: int = 0
    index_items: int = 0
    missing: list = field(default_factory=list)  # in the table, not in the index (the first `keep`)
    extra: list = field(default_factory=list)  # in the index, not in the table
    different: list = field(default_factory=list)  # (table item, index item)
    missing_count: int = 0
    extra_count: int = 0
    different_count: int = 0

    @property
    def ok(self) -> bool:
        return not (self.missing_count or self.extra_count or self.different_count)


def scan(ddb, table: str, max_rcu: float | None = None, page_size: int = 1000):
    kwargs = {"TableName": table, "ConsistentRead": True, "ReturnConsumedCapacity": "TOTAL", "Limit": page_size}
    window_start, used = time.monotonic(), 0.0
    while True:
        page = ddb.scan(**kwargs)
        for item in page.get("Items", []):
            yield canonical_item(from_client(item))
        if max_rcu:
            used += float((page.get("ConsumedCapacity") or {}).get("CapacityUnits") or 0)
            elapsed = time.monotonic() - window_start
            if used > max_rcu * elapsed:
                time.sleep(used / max_rcu - elapsed)
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


SCANNED = "dynadex_verify_scan"


def verify(store: Store, table: str, ddb, *, max_rcu: float | None = None, keep: int = 1000,
           batch: int = 10_000) -> Report:
    names = store.table_state(table).key_names
    con = store.lake.con
    rows = row_table(table)
    report = Report()
    con.execute(f"CREATE OR REPLACE TEMP TABLE {SCANNED} (key VARCHAR, item VARCHAR)")
    try:
        keys: list = []
        texts: list = []

        def flush() -> None:
            con.register("dynadex_verify_batch", pa.table({"key": pa.array(keys, pa.string()), "item": pa.array(texts, pa.string())}))
            con.execute(f"INSERT INTO {SCANNED} SELECT key, item FROM dynadex_verify_batch")
            con.unregister("dynadex_verify_batch")
            keys.clear()
            texts.clear()

        for item in scan(ddb, table, max_rcu):
            report.table_items += 1
            keys.append(key_text(item, names))
            texts.append(canonical_json(item, validated=True))
            if len(keys) >= batch:
                flush()
        flush()
        report.index_items = con.execute(f"SELECT count(*) FROM {rows}").fetchone()[0]
        missing = f"FROM {SCANNED} s ANTI JOIN {rows} r ON s.key = r.key"
        extra = f"FROM {rows} r ANTI JOIN {SCANNED} s ON s.key = r.key"
        different = f"FROM {SCANNED} s JOIN {rows} r ON s.key = r.key WHERE s.item <> r.item"
        report.missing_count = con.execute(f"SELECT count(*) {missing}").fetchone()[0]
        report.extra_count = con.execute(f"SELECT count(*) {extra}").fetchone()[0]
        report.different_count = con.execute(f"SELECT count(*) {different}").fetchone()[0]
        report.missing = [r[0] for r in con.execute(f"SELECT s.item {missing} ORDER BY s.key LIMIT {int(keep)}").fetchall()]
        report.extra = [r[0] for r in con.execute(f"SELECT r.item {extra} ORDER BY r.key LIMIT {int(keep)}").fetchall()]
        report.different = [tuple(r) for r in con.execute(f"SELECT s.item, r.item {different} ORDER BY s.key LIMIT {int(keep)}").fetchall()]
    finally:
        con.execute(f"DROP TABLE IF EXISTS {SCANNED}")
    return report
