"""dynamodb_stream_sync: keep the index equal to the table by following DynamoDB Streams.

Continuous (one run at a time): each run syncs every table the store holds with a
stream (or just ``table_name``) for ``run_seconds``, committing each batch with its
shard checkpoints in one transaction, then ends; the next run resumes from the
checkpoints. Gaps are recovered through incremental exports inside the run; a gap
beyond the PITR window starts a fresh ``dynamodb_ingest`` for that table.

Wiring only: the work is in plugins/dynadex_airflow/sync_tasks.py -> include/dynadex/stream.
"""

from __future__ import annotations

import os

import pendulum
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Param, dag, get_current_context, task

from dynadex_airflow import sync_tasks

RUN_SECONDS = float(os.environ.get("DYNADEX_SYNC_RUN_SECONDS", "60"))
RETRIES = int(os.environ.get("DYNADEX_TASK_RETRIES", "2"))
RETRY_DELAY = pendulum.duration(seconds=float(os.environ.get("DYNADEX_RETRY_DELAY_SECONDS", "60")))


@dag(
    dag_id="dynamodb_stream_sync",
    schedule="@continuous",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    is_paused_upon_creation=True,
    tags=["dynadex"],
    doc_md=__doc__,
    params={
        "table_name": Param(None, type=["null", "string"], description="one table, or every table in the store"),
        "store": Param(None, type=["null", "string"], description="store folder or Postgres URI"),
        "aws_conn_id": Param("aws_default", type="string"),
        "run_seconds": Param(RUN_SECONDS, type="number", minimum=1, maximum=3600,
                             description="how long one run syncs before it ends"),
    },
)
def dynamodb_stream_sync():
    @task(retries=RETRIES, retry_delay=RETRY_DELAY)
    def sync(params=None) -> list:
        conf = dict(get_current_context()["dag_run"].conf or {})
        return sync_tasks.sync(params, conf)

    needs = sync()
    TriggerDagRunOperator.partial(task_id="bootstrap_again", trigger_dag_id="dynamodb_ingest",
                                  wait_for_completion=False).expand(conf=needs)


dynamodb_stream_sync()
