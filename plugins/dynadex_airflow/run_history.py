"""Keep the Airflow metadata of the continuous stream sync bounded: prune its runs older than N days.

Invariant: only runs of the DAGs named (by default the stream sync, the DAG
that makes a run every ``run_seconds``) and only runs that ENDED before the
cut-off are removed, through Airflow's own ``airflow db clean`` (which also
keeps each DAG's latest run, so scheduling is never disturbed). Nothing of
the index depends on Airflow's history: checkpoints live in the store.

Why a subprocess: ``airflow db clean`` is the supported way to purge the
metadata (it knows every table's relations, dag_run -> task_instance ->
xcom, log, ...); the task runs it with the worker's own configuration, which
in the docker-compose and Celery setups includes the metadata database.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import subprocess
import sys
from dataclasses import asdict, dataclass

log = logging.getLogger("dynadex.maintenance")

PRUNED_DAGS = ("dynamodb_stream_sync",)
TABLES = ("dag_run", "xcom", "log")  # db clean adds the tables that hang off dag_run (task_instance, ...)
# Airflow 3.3.2's db clean adds `deadline` as a dependant of dag_run, then fails on it whenever --dag-ids is
# given (the table has no dag_id): a known failure we let pass; any other table that fails fails the task.
KNOWN_FAILURES = {"deadline"}
NOT_CLEANED = re.compile(r"tables were not cleaned due to errors: \[([^\]]*)\]")


@dataclass(frozen=True)
class PruneResult:
    """What one pruning did: the DAGs, the cut-off (UTC, ISO) and the command's exit code."""

    dag_ids: tuple[str, ...]
    before: str | None
    returncode: int | None
    skipped: str | None = None  # why nothing ran (keep_days empty)

    def to_dict(self) -> dict:
        return {**asdict(self), "dag_ids": list(self.dag_ids)}


def clean_command(dag_ids: tuple[str, ...], before: dt.datetime) -> list[str]:
    """The ``airflow db clean`` command removing ``dag_ids``' runs that started before ``before``."""
    return [sys.executable, "-m", "airflow", "db", "clean", "--clean-before-timestamp", before.isoformat(),
            "--dag-ids", ",".join(dag_ids), "--tables", ",".join(TABLES), "--skip-archive", "--yes"]


def failed_tables(output: str) -> set[str]:
    """The tables ``airflow db clean`` reported it could not clean."""
    found = NOT_CLEANED.search(output)
    return {t.strip().strip("'\"") for t in found.group(1).split(",") if t.strip()} if found else set()


def prune(keep_days: float | None, dag_ids: tuple[str, ...] = PRUNED_DAGS, now: dt.datetime | None = None,
          timeout: float = 1800) -> PruneResult:
    if keep_days is None:
        return PruneResult(dag_ids, None, None, skipped="keep_run_days is empty: Airflow's run history is kept")
    before = (now or dt.datetime.now(dt.timezone.utc)) - dt.timedelta(days=float(keep_days))
    cmd = clean_command(dag_ids, before)
    log.info("pruning runs of %s that started before %s: %s", ", ".join(dag_ids), before.isoformat(), " ".join(cmd[1:]))
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    for line in (done.stdout + done.stderr).splitlines()[-20:]:
        log.info("db clean: %s", line)
    failed = failed_tables(done.stdout + done.stderr) - KNOWN_FAILURES
    if done.returncode != 0 or failed:
        raise RuntimeError(f"airflow db clean exited {done.returncode}, tables not cleaned: {sorted(failed) or 'none'}: "
                           f"{(done.stderr or done.stdout).strip()[-500:]}")
    return PruneResult(dag_ids, before.isoformat(), done.returncode)
