"""What every dynadex DAG shares: owner, retries, timeouts, the failure notifier, the chunk pool.

Each value is a setting declared in ``dynadex.settings`` (group "airflow": its variable, default and what it
does; README "Settings"), read here when a DAG file is parsed (functions, not constants: every parse sees
the environment of its time):

* retries (``DYNADEX_TASK_RETRIES``, ``DYNADEX_RETRY_DELAY_SECONDS``, growing exponentially) are for
  transient errors only; deterministic ones fail at once (failures.py);
* ``timeout(kind)``: the execution_timeout of a kind of task (``TIMEOUTS``);
* ``chunk_pool()``: the Airflow pool chunk builds run in, so chunk builds of all ingests together use at
  most its slots (``make airflow`` and docker-compose create it; elsewhere run
  ``airflow pools set dynadex_chunks 16 "dynadex chunk builds"``, or set
  ``DYNADEX_CHUNK_POOL=default_pool``). A task in a pool that does not exist is never scheduled;
* ``sync_run_seconds()``: how long one ``dynamodb_stream_sync`` run follows its tables before the next run
  takes over (docs/decisions 0020: each run boundary leaves the tables unfollowed for the seconds Airflow
  takes to start the next run's tasks; a run that another run waits behind, e.g. a new table's handover,
  ends early);
* the optional failure notifier: notify.py.
"""

from __future__ import annotations

from datetime import timedelta

from dynadex import settings
from dynadex_airflow import notify


TIMEOUTS = {  # execution_timeout per kind of task
    "task": settings.TASK_TIMEOUT_SECONDS,
    "chunk": settings.CHUNK_TIMEOUT_SECONDS,
    "publish": settings.PUBLISH_TIMEOUT_SECONDS,
    "sync": settings.SYNC_TIMEOUT_SECONDS,
    "maintenance": settings.MAINTENANCE_TIMEOUT_SECONDS,
}
CHUNK_POOL_SLOTS = 16
CHUNK_POOL_DESCRIPTION = "dynadex chunk builds (all dynamodb_ingest runs together)"


def seconds(setting: settings.Setting) -> timedelta:
    return timedelta(seconds=setting.read())


def timeout(kind: str) -> timedelta:
    return seconds(TIMEOUTS[kind])


def sync_run_seconds() -> float:
    return settings.SYNC_RUN_SECONDS.read()


def chunk_pool() -> str:
    return settings.CHUNK_POOL.read()


def default_args(**extra) -> dict:
    args = {
        "owner": settings.OWNER.read(),
        "retries": settings.TASK_RETRIES.read(),
        "retry_delay": seconds(settings.RETRY_DELAY_SECONDS),
        "retry_exponential_backoff": True,
        "execution_timeout": timeout("task"),
    }
    if notify.callbacks():
        args["on_failure_callback"] = notify.callbacks()
    return {**args, **extra}
