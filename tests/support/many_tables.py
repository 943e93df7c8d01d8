"""Many small tables followed from one store, made fast: created in the emulator, published empty (no export)."""

from __future__ import annotations

import time

from dynadex.store import PublishSpec, Store
from tests.support.emulator import make_table


def published_empty(aws, store: str, names: list[str]) -> None:
    """Create each table (hash key pk S, a stream, PITR) and publish it empty into ``store`` with its stream
    pinned now, as an ingest of an empty table would: the sync follows it from here."""
    ddb = aws.client("dynamodb")
    arns = {name: make_table(aws, name)["LatestStreamArn"] for name in names}
    t0 = int(time.time() * 1e6)
    with Store(store, read_only=False) as st:
        for name in names:
            w = st.chunk_writer(name, "b1", "c0", ("pk",), ("S",))
            w.finish()
            st.publish(PublishSpec(name, "b1", ["c0"], ("pk",), ("S",), total_items=0, stream_arn=arns[name],
                                   stream_start_micros=t0))
    assert all(ddb.describe_table(TableName=n)["Table"]["TableStatus"] for n in names)
