"""Comparing the index with the live table, item by item, exactly.

Invariant: a Scan item and an index item are equal when their canonical
DynamoDB JSON texts are equal; every difference is reported (missing from
the index, extra in the index, different), none is ignored. The scan can be
held under a read-capacity budget (``max_rcu`` per second).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from dynadex.aws import from_client
from dynadex.store import Store
from dynadex.store.shape import key_text
from dynadex.types import canonical_item, canonical_json


@dataclass
class Report:
    table_items: int = 0
    index_items: int = 0
    missing: list = field(default_factory=list)  # in the table, not in the index
    extra: list = field(default_factory=list)  # in the index, not in the table
    different: list = field(default_factory=list)  # (table item, index item)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.different)


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


def verify(store: Store, table: str, ddb, *, max_rcu: float | None = None) -> Report:
    names = tuple(json.loads(store.table_state(table)["key_names"]))
    index = {}
    for text in store.dump(table):
        item = json.loads(text)
        index[key_text(item, names)] = text
    report = Report(index_items=len(index))
    for item in scan(ddb, table, max_rcu):
        report.table_items += 1
        key = key_text(item, names)
        text = canonical_json(item, validated=True)
        stored = index.pop(key, None)
        if stored is None:
            report.missing.append(text)
        elif stored != text:
            report.different.append((text, stored))
    report.extra = sorted(index.values())
    return report
