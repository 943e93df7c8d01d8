"""Body of the dynamodb_stream_sync task: sync each table for a bounded window.

A run syncs for ``run_seconds`` and ends, so progress and logs stay readable
and the next (continuous) run resumes from the stored checkpoints. Tables
whose gap cannot be recovered by incremental export are returned, so the DAG
can start a fresh bootstrap for them.
"""

from __future__ import annotations

import logging

from dynadex.store import Store
from dynadex.stream import NeedsBootstrap, sync_table
from dynadex_airflow.hooks import client, export_aws_env

log = logging.getLogger("dynadex.sync")


def tables_to_sync(params: dict, conf: dict) -> list[str]:
    table = conf.get("table_name") or params.get("table_name")
    if table:
        return [table]
    with Store(conf.get("store") or params.get("store")) as st:
        return [t for t in st.tables() if st.table_state(t).get("stream_arn")]


def sync(params: dict, conf: dict) -> list[dict]:
    conn = conf.get("aws_conn_id") or params.get("aws_conn_id")
    store = conf.get("store") or params.get("store")
    seconds = float(conf.get("run_seconds") or params.get("run_seconds") or 60)
    export_aws_env(conn)
    ddb, streams, s3 = client("dynamodb", conn), client("dynamodbstreams", conn), client("s3", conn)
    tables = tables_to_sync(params, conf)
    if not tables:
        log.info("no table with a stream in the store yet; nothing to sync")
        return []
    needs_bootstrap = []
    share = max(1.0, seconds / len(tables))
    for table in tables:
        with Store(store, read_only=False) as st:
            try:
                stats = sync_table(st, table, ddb, streams, s3, seconds=share)
                log.info("%s: %s", table, stats)
            except NeedsBootstrap as exc:
                log.error("%s", exc)
                state = st.table_state(table)
                conf = {"table_name": table, "store": store, "aws_conn_id": conn}
                if state.get("export_bucket"):
                    conf.update(s3_bucket=state["export_bucket"], s3_prefix=state.get("export_prefix") or "dynadex")
                needs_bootstrap.append(conf)
    return needs_bootstrap
