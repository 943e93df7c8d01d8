"""
### dynamodb_stream_sync: keep the index equal to the table by following DynamoDB Streams

**Unpause this DAG** (toggle, or `airflow dags unpause dynamodb_stream_sync`): it is paused on creation, and
while it is paused nothing follows the tables and the index falls behind them. `dynamodb_ingest` unpauses it on
its first publish when it can reach the REST API (connection `airflow_api`), and warns loudly in
`start_stream_sync`'s log when it cannot.

Continuous (one run at a time): `list_tables` lists the tables the run follows and groups them: a busy table
(its last run read more than `DYNADEX_BUSY_RECORDS_PER_SECOND` records/s) gets a `sync` task of its own, quiet
ones share one per store (up to `DYNADEX_SYNC_GROUP_TABLES`). Each mapped `sync` task follows its tables for the
whole `run_seconds`: a table with records is read by its own sync until it has been at its tip for
`DYNADEX_QUIET_AFTER_SECONDS`, then probed; while every table of the task is quiet, the task is **deferred** to
the triggerer (no worker slot, no process) until one has records or its shards change. The next run resumes
from the stored shard checkpoints. Within a table, its shards are read concurrently (`DYNADEX_SHARD_READERS`,
default 16), parents before children; each batch of changes commits with its shard checkpoints in one
transaction. The runs sync every table with a stream in every store an ingest has published into (Airflow
Variable `dynadex_stores`; delete an entry to stop following a store), or just `table_name` / `store` when
given. A run an ingest triggers (its handover) follows them all too, the new store included. Gaps (trimmed
records, pruned shards, a new stream) are recovered through incremental exports inside the table's task; a gap
beyond the PITR window starts a fresh `dynamodb_ingest` for that table (`bootstrap_again`). A task holds a
worker slot only while one of its tables is being read (docs/decisions 0037).

**Big tables: shard groups** (docs/decisions/0034, amendment). A table named in the Airflow Variable
`dynadex_shard_groups` (a JSON object, table name -> count, e.g. `{"Orders": 4}`; or a run's `shard_groups`
param) gets that many `sync` tasks, group `i/n` each reading the shards with `crc32(shard id) % n == i`, on
any worker, each with its own slot for the whole run, all ending at one window. A child shard whose parent
another group reads waits for that group's commit of the parent's end. Change the count by editing the
Variable: the next run maps the new count (a task of the old count retried later reads nothing). A gap met by
a group is recovered by the next run, which follows that table whole once.

**Params**: `table_name` (one table, or empty: every table), `store` (one store, or empty: every followed
store), `aws_conn_id`, `shard_groups` (table -> count, over the Variable `dynadex_shard_groups`), `run_seconds`
(1-86400; default `$DYNADEX_SYNC_RUN_SECONDS` or 3600).

**Run length** (docs/decisions/0020): between two runs no task follows the tables for the seconds Airflow takes
to finish one run and start the next one's tasks (measured in docs/benchmarks.md, "Through Airflow's scheduler"), so runs are long (an hour) and the
maintenance DAG prunes old ones (`keep_run_days`). A run ends early, at a batch boundary, when another run of
this DAG is queued behind it: an ingest's handover queues one, so a new table is followed within seconds.

**Health**: each table's `sync` task logs one line (store, changes applied, lag, shards open/total, recoveries) and
returns the same figures; `report` gathers them all into XCom (key `health`). Lag means what `dynadex status` means: how far behind the table the
index was when the run last looked (0: every shard was read to its tip).

Wiring only: the work is in `plugins/dynadex_airflow/sync_groups.py`, `shard_counts.py`, `sync_operator.py` and
`triggers.py` ->
`include/dynadex/stream` (`fleet.py`, `probe.py`, `sync.py`).
"""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Param, dag, get_current_context, task

from dynadex.bootstrap import PARAMS_SCHEMA
from dynadex_airflow import labels, shard_counts, sync_groups, sync_tasks
from dynadex_airflow.sync_operator import StreamSyncOperator
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
        "shard_groups": Param(None, type=["null", "object"], title="Shard groups (this run)",
                              additionalProperties={"type": "integer", "minimum": 1, "maximum": shard_counts.MOST},
                              description="table name -> number of shard-group tasks, e.g. {\"Orders\": 4}, over "
                                          "the Variable dynadex_shard_groups for this run (empty: the Variable's; "
                                          "a table in neither: one task, or shared while quiet)"),
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
        context = get_current_context()
        return sync_groups.plan(params, dict(context["dag_run"].conf or {}), context["ti"])  # SyncGroup dicts

    @task
    def report(outcomes: list) -> list:
        result = sync_tasks.gather(outcomes)
        get_current_context()["ti"].xcom_push(key="health", value=result["health"])  # per table: lag, applied, ...
        return result["needs_bootstrap"]  # what bootstrap_again maps over

    # one task per group of tables: a busy table alone, quiet ones together, deferred while all are quiet;
    # a table configured with shard groups: one task per group
    sync = StreamSyncOperator.partial(task_id="sync", map_index_template=labels.SYNC_GROUP_TEMPLATE)
    needs = report(sync.expand(sync_group=list_tables()).output)
    TriggerDagRunOperator.partial(task_id="bootstrap_again", trigger_dag_id="dynamodb_ingest",
                                  wait_for_completion=False).expand(conf=needs)

dynamodb_stream_sync()
