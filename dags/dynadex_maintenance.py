"""
### dynadex_maintenance: keep a store small and fast

Daily (env `DYNADEX_MAINTENANCE_SCHEDULE`): prune inverted entries superseded by stream batches, merge small
data files, expire snapshots older than `keep_hours` and delete their files; and delete the Airflow runs of
`dynamodb_stream_sync` older than `keep_run_days` (`airflow db clean`), so months of continuous runs do not grow
the metadata database without bound. Answers at the current snapshot
never change; time travel reaches back `keep_hours`. It commits next to a running stream sync; a conflict
makes its retry run again. Paused on creation: unpause it once a store exists.

**Params**: `store` (store folder or Postgres URI; empty: `$DYNADEX_STORE` or `./.dynadex`), `keep_hours`
(snapshots younger than this stay readable; 0 keeps only the current one), `keep_run_days` (default 7; empty
keeps every run).

Wiring only: the work is in `plugins/dynadex_airflow/maintenance_tasks.py` -> `include/dynadex/store`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from dynadex import settings
from dynadex.bootstrap import PARAMS_SCHEMA
from dynadex_airflow import maintenance_tasks
from dynadex_airflow.dag_defaults import default_args, timeout


@dag(
    dag_id="dynadex_maintenance",
    description="Prune, compact and expire old snapshots of a dynadex store (daily)",
    schedule=settings.MAINTENANCE_SCHEDULE.read(),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    is_paused_upon_creation=True,
    tags=["dynadex"],
    doc_md=__doc__,
    params={
        "store": Param(None, **{**PARAMS_SCHEMA["store"], "description": "store folder or Postgres URI to maintain "
                                "(empty: $DYNADEX_STORE or ./.dynadex)"}),
        "keep_hours": Param(1, type="number", minimum=0, maximum=24 * 366, title="Keep snapshots (hours)",
                            description="snapshots younger than this stay readable (time travel); 0 keeps only "
                                        "the current snapshot"),
        "keep_run_days": Param(7, type=["null", "number"], minimum=0, maximum=3660, title="Keep sync runs (days)",
                               description="Airflow runs of dynamodb_stream_sync older than this are deleted "
                                           "(airflow db clean; its latest run always stays); empty keeps them all"),
        "aws_conn_id": Param("aws_default", **{**PARAMS_SCHEMA["aws_conn_id"], "description": "AWS connection for a "
                             "store whose data path is on S3 (unused for local data)"}),
    },
    default_args=default_args(execution_timeout=timeout("maintenance")),
)
def dynadex_maintenance():
    @task
    def maintain(params=None) -> dict:
        conf = dict(get_current_context()["dag_run"].conf or {})
        return maintenance_tasks.maintain(params, conf)

    @task
    def prune_sync_runs(params=None) -> dict:
        conf = dict(get_current_context()["dag_run"].conf or {})
        return maintenance_tasks.prune_runs(params, conf)  # a PruneResult dict

    maintain()
    prune_sync_runs()


dynadex_maintenance()
