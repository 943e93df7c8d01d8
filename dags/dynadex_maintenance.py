"""dynadex_maintenance: keep a store small and fast.

Daily: prune inverted entries superseded by stream batches, merge small data
files, expire snapshots older than ``keep_hours`` and delete their files.
Answers at the current snapshot never change; time travel reaches back
``keep_hours``.

Wiring only: the work is in plugins/dynadex_airflow/maintenance_tasks.py -> include/dynadex/store.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from dynadex_airflow import maintenance_tasks

RETRIES = int(os.environ.get("DYNADEX_TASK_RETRIES", "2"))
RETRY_DELAY = pendulum.duration(seconds=float(os.environ.get("DYNADEX_RETRY_DELAY_SECONDS", "60")))


@dag(
    dag_id="dynadex_maintenance",
    schedule=os.environ.get("DYNADEX_MAINTENANCE_SCHEDULE", "@daily"),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    is_paused_upon_creation=True,
    tags=["dynadex"],
    doc_md=__doc__,
    params={
        "store": Param(None, type=["null", "string"], description="store folder or Postgres URI"),
        "keep_hours": Param(1, type="number", minimum=0, description="snapshots younger than this stay readable"),
    },
)
def dynadex_maintenance():
    @task(retries=RETRIES, retry_delay=RETRY_DELAY)
    def maintain(params=None) -> dict:
        conf = dict(get_current_context()["dag_run"].conf or {})
        return maintenance_tasks.maintain(params, conf)

    maintain()


dynadex_maintenance()
