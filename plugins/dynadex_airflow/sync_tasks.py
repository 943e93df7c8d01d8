"""Body of the dynamodb_stream_sync task: sync each table of each followed store for a bounded window.

A run syncs for ``run_seconds`` and ends, so progress and logs stay readable
and the next (continuous) run resumes from the stored checkpoints. A run with
a store (a triggered one) follows that store; a run without (the continuous
ones) follows every store an ingest has published into (``stores``).

Each table's health is logged as one line and returned (XCom ``health``):
store, table, applied changes, lag (as ``dynadex status`` means it: how far
behind the table the index was when the run last looked; 0 at the tip),
shards open/ended, recoveries. Tables whose gap cannot be recovered by
incremental export are returned too (XCom ``needs_bootstrap``), so the DAG
can start a fresh bootstrap for them.
"""

from __future__ import annotations

import logging

from dynadex.store import Store, StoreError
from dynadex.store.reads import lag
from dynadex.stream import NeedsBootstrap, sync_table
from dynadex_airflow import stores as followed
from dynadex_airflow.failures import fail_fast
from dynadex_airflow.hooks import client, store_location

log = logging.getLogger("dynadex.sync")


def _given(conf: dict, params: dict, name: str):
    for source in (conf, params):
        if source.get(name) not in (None, "", "None"):
            return source[name]
    return None


def tables_to_sync(store: str | None, table: str | None, aws_conn_id: str | None = None) -> list[str]:
    if table:
        return [table]
    try:
        with Store(store_location(store, aws_conn_id)) as st:
            return [t for t in st.tables() if st.table_state(t).get("stream_arn")]
    except StoreError as exc:  # a followed store that has no catalog (yet, or any more)
        log.info("store %s: %s; nothing to sync there", store or "(default)", exc)
        return []


def health(st: Store, store: str | None, table: str, stats: dict) -> dict:
    state = st.table_state(table)
    cps = st.checkpoints(table)
    return {
        "store": st.location.display if store else f"{st.location.display} (default)",
        "table": table,
        "applied": stats.get("applied", 0),
        "records_read": stats.get("records", 0),
        "skipped_old": stats.get("skipped_old", 0),
        "ttl_deletes": stats.get("ttl_deletes", 0),
        "batches": stats.get("batches", 0),
        "caught_up": bool(stats.get("caught_up")),
        **lag(state),
        "shards": len(cps),
        "shards_open": sum(1 for c in cps.values() if not c["ended"]),
        "recoveries": stats.get("recoveries", 0),
        "recovered": stats.get("recovered", []),
    }


def _line(h: dict) -> str:
    lag_text = "-" if h["lag_seconds"] is None else f"{h['lag_seconds']:.3f} s"
    return (f"store {h['store']} table {h['table']}: applied {h['applied']} changes ({h['records_read']} records read, "
            f"{h['batches']} batches), lag {lag_text}{' (at the tip)' if h['caught_up'] else ''}, "
            f"shards {h['shards_open']} open / {h['shards']}, recoveries {h['recoveries']}")


@fail_fast
def sync(params: dict, conf: dict) -> dict:
    conn = _given(conf, params, "aws_conn_id") or "aws_default"
    seconds = float(_given(conf, params, "run_seconds") or 60)
    table = _given(conf, params, "table_name")
    ddb, streams, s3 = client("dynamodb", conn), client("dynamodbstreams", conn), client("s3", conn)
    store = _given(conf, params, "store")
    # a run for one store or one table syncs just that (a table without a store: the default store)
    wanted = [store] if store or table else followed.to_sync(None)
    work = [(s, t) for s in wanted for t in tables_to_sync(s, table, conn)]
    if not work:
        log.info("no table with a stream in the followed stores yet; nothing to sync")
        return {"health": [], "needs_bootstrap": []}
    report, needs_bootstrap = [], []
    share = max(1.0, seconds / len(work))
    for store, name in work:
        with Store(store_location(store, conn), read_only=False) as st:
            try:
                stats = sync_table(st, name, ddb, streams, s3, seconds=share)
            except NeedsBootstrap as exc:
                log.error("store %s table %s: %s", store or "(default)", name, exc)
                state = st.table_state(name)
                again = {"table_name": name, "store": store, "aws_conn_id": conn}
                if state.get("export_bucket"):
                    again.update(s3_bucket=state["export_bucket"], s3_prefix=state.get("export_prefix") or "dynadex")
                needs_bootstrap.append(again)
                stats = {"needs_bootstrap": str(exc)}
            h = health(st, store, name, stats)
        if "needs_bootstrap" in stats:
            h["needs_bootstrap"] = stats["needs_bootstrap"]
        log.info("%s", _line(h))
        report.append(h)
    return {"health": report, "needs_bootstrap": needs_bootstrap}
