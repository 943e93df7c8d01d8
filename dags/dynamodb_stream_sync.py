"""
### dynamodb_stream_sync: keep the index equal to the table by following DynamoDB Streams

**Unpause this DAG** (toggle, or `airflow dags unpause dynamodb_stream_sync`): it is paused on creation, and
while it is paused nothing follows the tables and the index falls behind them. `dynamodb_ingest` unpauses it on
its first publish when it can reach the REST API (connection `airflow_api`), and warns loudly in
`start_stream_sync`'s log when it cannot.

Continuous (one run at a time): `list_tables` lists the tables the run follows, then one mapped `sync` task per
(store, table), named after its table, follows that table alone for the whole `run_seconds`, all at once (so a
table's lag does not depend on how many tables are followed), then ends; the next run resumes from the stored
shard checkpoints. Within a table, its shards are read concurrently (`DYNADEX_SHARD_READERS`, default 16), parents
before children; each batch of changes commits with its shard checkpoints in one transaction. The runs sync
every table with a stream in every
store an ingest has published into (Airflow Variable `dynadex_stores`; delete an entry to stop following a store),
or just `table_name` / `store` when given. A run an ingest triggers (its handover) follows them all too, the new
store included. Gaps (trimmed records, pruned shards, a new stream) are recovered
through incremental exports inside the table's task; a gap beyond the PITR window starts a fresh `dynamodb_ingest`
for that table (`bootstrap_again`). Each table's task holds a worker slot for the run: size the executor's
parallelism (or give the task a pool) for the number of tables followed.

**Params**: `table_name` (one table, or empty: every table), `store` (one store, or empty: every followed
store), `aws_conn_id`, `run_seconds` (1-86400; default `$DYNADEX_SYNC_RUN_SECONDS` or 3600).

**Run length** (docs/decisions/0020): between two runs no task follows the tables for the seconds Airflow takes
to finish one run and start the next one's tasks (measured in docs/benchmarks.md, "Through Airflow's scheduler"), so runs are long (an hour) and the
maintenance DAG prunes old ones (`keep_run_days`). A run ends early, at a batch boundary, when another run of
this DAG is queued behind it: an ingest's handover queues one, so a new table is followed within seconds.

**Health**: each table's `sync` task logs one line (store, changes applied, lag, shards open/total, recoveries) and
returns the same figures; `report` gathers them all into XCom (key `health`). Lag means what `dynadex status` means: how far behind the table the
index was when the run last looked (0: every shard was read to its tip).

Wiring only: the work is in `plugins/dynadex_airflow/sync_tasks.py` -> `include/dynadex/stream`.
"""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Param, dag, get_current_context, task

from dynadex.bootstrap import PARAMS_SCHEMA
from dynadex_airflow import labels, sync_tasks
from dynadex_airflow.dag_defaults import default_args, sync_run_seconds, timeout



@dag(
    dag_id="dynamodb_stream_sync",
    description="Follow the DynamoDB Streams of every indexed table into its store (continuous; unpause it)",
    schedule="@continuous",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    is_paused_upon_creation=True,
    tags=["dynadex"],
    doc_md=__doc__,
    params={
        "table_name": Param(None, **{**PARAMS_SCHEMA["table_name"], "type": ["null", "string"],
                                     "description": "sync only this table (empty: every table with a stream "
                                                    "in the store)"}),
        "store": Param(None, **{**PARAMS_SCHEMA["store"], "title": "Store",
                                "description": "sync only this store folder or Postgres URI (empty: every store "
                                               "an ingest has published into, and the default store)"}),
        "aws_conn_id": Param("aws_default", **PARAMS_SCHEMA["aws_conn_id"]),
        "run_seconds": Param(sync_run_seconds(), type="number", minimum=1, maximum=86400,
                             title="Run length (seconds)",
                             description="how long one run syncs before it ends and the next run resumes "
                                         "(1-86400); each table's task follows its table this long, or less when "
                                         "another run waits (a new table's handover)"),
    },
    default_args=default_args(execution_timeout=timeout("sync")),
)
def dynamodb_stream_sync():
    @task
    def list_tables(params=None) -> list:
        return sync_tasks.targets(params, dict(get_current_context()["dag_run"].conf or {}))  # SyncTarget dicts

    @task(map_index_template=labels.SYNC_TEMPLATE)
    def sync(target: dict) -> dict:
        return sync_tasks.sync(target)  # a SyncOutcome dict: the table's health, a bootstrap conf or none

    @task
    def report(outcomes: list) -> list:
        result = sync_tasks.gather(outcomes)
        get_current_context()["ti"].xcom_push(key="health", value=result["health"])  # per table: lag, applied, ...
        return result["needs_bootstrap"]  # what bootstrap_again maps over

    needs = report(sync.expand(target=list_tables()))
    TriggerDagRunOperator.partial(task_id="bootstrap_again", trigger_dag_id="dynamodb_ingest",
                                  wait_for_completion=False).expand(conf=needs)

dynamodb_stream_sync()
