"""What every dynadex DAG shares: owner, retries, timeouts, the failure notifier, the chunk pool. All from the environment.

* ``DYNADEX_TASK_RETRIES`` (2) and ``DYNADEX_RETRY_DELAY_SECONDS`` (60, growing
  exponentially): for transient errors only; deterministic ones fail at once
  (failures.py).
* ``DYNADEX_TASK_TIMEOUT_SECONDS`` (1800): execution_timeout of the short
  control-plane tasks; ``DYNADEX_CHUNK_TIMEOUT_SECONDS`` (7200) of one chunk
  build; ``DYNADEX_PUBLISH_TIMEOUT_SECONDS`` (3600) of publish;
  ``DYNADEX_SYNC_TIMEOUT_SECONDS`` (28800: a run may wait for incremental
  exports while it recovers a gap) of a stream sync run;
  ``DYNADEX_MAINTENANCE_TIMEOUT_SECONDS`` (7200).
* ``DYNADEX_CHUNK_POOL`` (``dynadex_chunks``): the Airflow pool chunk builds
  run in, so chunk builds of all ingests together use at most its slots
  (``make airflow`` and docker-compose create it; elsewhere run
  ``airflow pools set dynadex_chunks 16 "dynadex chunk builds"``, or set
  ``DYNADEX_CHUNK_POOL=default_pool``). A task in a pool that does not exist
  is never scheduled.
* ``DYNADEX_SYNC_RUN_SECONDS`` (3600): how long one ``dynamodb_stream_sync``
  run follows its tables before the next run takes over (docs/decisions
  0020: each run boundary leaves the tables unfollowed for the seconds
  Airflow takes to start the next run's tasks; a run that another run waits
  behind, e.g. a new table's handover, ends early).
* ``DYNADEX_OWNER`` (``dynadex``): the DAGs' owner.
* the optional failure notifier: notify.py.
"""

from __future__ import annotations

import os
from datetime import timedelta

from dynadex_airflow import notify


TIMEOUTS = {  # execution_timeout per kind of task: (env variable, default seconds)
    "task": ("DYNADEX_TASK_TIMEOUT_SECONDS", 1800),
    "chunk": ("DYNADEX_CHUNK_TIMEOUT_SECONDS", 7200),
    "publish": ("DYNADEX_PUBLISH_TIMEOUT_SECONDS", 3600),
    "sync": ("DYNADEX_SYNC_TIMEOUT_SECONDS", 8 * 3600),
    "maintenance": ("DYNADEX_MAINTENANCE_TIMEOUT_SECONDS", 7200),
}
CHUNK_POOL_SLOTS = 16
CHUNK_POOL_DESCRIPTION = "dynadex chunk builds (all dynamodb_ingest runs together)"

# Read when a DAG file is parsed (functions, not constants: every parse sees the environment of its time).


def seconds(name: str, default: float) -> timedelta:
    return timedelta(seconds=float(os.environ.get(name, default)))


def timeout(kind: str) -> timedelta:
    return seconds(*TIMEOUTS[kind])


SYNC_RUN_SECONDS = 3600.0


def sync_run_seconds() -> float:
    return float(os.environ.get("DYNADEX_SYNC_RUN_SECONDS", SYNC_RUN_SECONDS))


def chunk_pool() -> str:
    return os.environ.get("DYNADEX_CHUNK_POOL", "dynadex_chunks")


def default_args(**extra) -> dict:
    args = {
        "owner": os.environ.get("DYNADEX_OWNER", "dynadex"),
        "retries": int(os.environ.get("DYNADEX_TASK_RETRIES", "2")),
        "retry_delay": seconds("DYNADEX_RETRY_DELAY_SECONDS", 60),
        "retry_exponential_backoff": True,
        "execution_timeout": timeout("task"),
    }
    if notify.callbacks():
        args["on_failure_callback"] = notify.callbacks()
    return {**args, **extra}
