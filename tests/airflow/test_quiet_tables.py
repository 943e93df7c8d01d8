"""Many tables, few slots: the stream DAG, run by Airflow (dag.test, the trigger run in line), follows 20 quiet
tables of one store with ONE ``sync`` task that is deferred while they are quiet; a write to any of them shows
in the index, and the task instances running at any moment (what holds a worker slot) stay at most one."""

from __future__ import annotations

import random
import threading

import pytest

from dynadex.store import Store
from tests.support import airflow as af
from tests.support.emulator import BUCKET
from tests.support.many_tables import published_empty
from tests.support.poll import wait_until

pytestmark = pytest.mark.emulator(bucket=BUCKET, airflow=True, stream_shards=1)

TABLES = [f"Quiet{i:02d}" for i in range(20)]  # 50 in bench/bench_quiet_tables.py: publishing one costs 1-3 s here


def sync_states(dag_id: str) -> list[str]:
    """The states of the stream DAG's ``sync`` task instances, as the metadata DB holds them now."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        return [ti.state for ti in session.query(TaskInstance).filter(TaskInstance.dag_id == dag_id,
                                                                      TaskInstance.task_id == "sync")]


def test_quiet_tables_share_one_deferred_task_and_every_write_shows(aws, tmp_path, monkeypatch):
    store = str(tmp_path / "store")
    published_empty(aws, store, TABLES)
    monkeypatch.setenv("DYNADEX_QUIET_AFTER_SECONDS", "1")
    monkeypatch.setenv("DYNADEX_QUIET_POLL_SECONDS", "0.2")
    monkeypatch.setenv("DYNADEX_STOP_CHECK_SECONDS", "0.5")
    ddb = aws.client("dynamodb")
    written = random.Random(29).sample(TABLES, 3)
    seen: dict = {"running": [], "waiting": 0, "shown": []}
    failures: list = []

    def writer():
        try:
            # once the task waits in the trigger (not running: no slot held), write to one table at a time
            for n, table in enumerate(written):
                ran: list = []

                def waiting() -> bool:  # it ran (followed its tables), then stopped running: it waits on them
                    states = sync_states("dynamodb_stream_sync")
                    if "running" in states:
                        ran.append(1)
                        return False
                    return bool(ran) and bool(states) and not {"success", "failed"} & set(states)

                wait_until(waiting, "the sync task to wait on its quiet tables", timeout=90, every=0.02)
                seen["waiting"] += 1
                ddb.put_item(TableName=table, Item={"pk": {"S": f"w{n}"}, "n": {"N": str(n)}})

                def shown():
                    seen["running"].append(sync_states("dynamodb_stream_sync").count("running"))
                    with Store(store) as st:
                        return st.get(table, '{"pk":{"S":"w%d"}}' % n)

                seen["shown"].append(wait_until(shown, f"the write to {table} in the index", timeout=60, every=0.1))
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            failures.append(exc)
        finally:
            af.queue_another_run("dynamodb_stream_sync")  # the run ends early for it (asked between batches and
            # by the trigger), as for an ingest's handover: the test need not wait out the window

    dag = af.dag("dynamodb_stream_sync")
    af.forget_runs("dynamodb_stream_sync")  # earlier tests of this process ran the DAG in the same metadata DB
    assert sync_states("dynamodb_stream_sync") == []  # Airflow imported here first: not by two threads at once
    th = threading.Thread(target=writer)
    th.start()
    run = dag.test(run_conf={"store": store, "run_seconds": 300})  # ends early: queue_another_run
    th.join()
    assert run.state == "success", af.states(run)
    assert not failures, failures
    tis = [k for k in af.states(run) if k[0] == "sync"]
    assert len(tis) == 1  # twenty quiet tables, one task
    assert seen["waiting"] == len(written) and len(seen["shown"]) == len(written)
    assert max(seen["running"]) <= 1, seen["running"]  # slots held while writes were read
    health = af.xcom(run, "sync", map_index=0)
    assert len(health) == len(TABLES)
    applied = {h["health"]["table"]: h["health"]["applied"] for h in health}
    assert all(applied[t] == 1 for t in written) and sum(applied.values()) == len(written), applied
    assert all(h["health"]["stopped_early"] for h in health)  # the queued run ended it, not the window
