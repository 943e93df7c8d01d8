"""Shard groups in the stream DAG (decision 0034, amendment): a table configured with 2 groups gets two ``sync``
tasks, run at once each in a process of its own (as two workers run them), each reading its group's shards of a
backlog whose shards roll over, children waiting on the other group's parents; the index then equals the table.
A table without the option in the same run is followed as before, by one task that reads all its shards."""

from __future__ import annotations

import time

import pytest

from dynadex import bootstrap
from dynadex.store import Store
from dynadex.stream.shard_groups import ShardGroup
from dynadex.stream.verify import verify
from tests.support import airflow as af
from tests.support.emulator import BUCKET
from tests.support.poll import wait_until
from tests.support.sync import churn, converge, filled, no_duplicates

pytestmark = pytest.mark.emulator(bucket=BUCKET, airflow=True, export_seconds=0.3, export_files=2, stream_shards=4,
                                  rollover_records=30, iterator_seconds=60, min_incremental_seconds=1)

DAG_ID = "dynamodb_stream_sync"
# small batches: many commits of each group, interleaved; nothing folded or flushed in this short run
SETTINGS = {"DYNADEX_BATCH_RECORDS": "20", "DYNADEX_BATCH_SECONDS": "0.05", "DYNADEX_FOLD_EVERY_BATCHES": "0",
            "DYNADEX_FLUSH_EVERY_BATCHES": "0", "DYNADEX_STOP_CHECK_SECONDS": "0.5"}


def children_across_groups(store: str, table: str, count: int) -> int:
    """Shards read whose parent is another group's (of ``count``): each waited on the other task's commit."""
    with Store(store) as st:
        cps = st.checkpoints(table)
    return sum(1 for s, cp in cps.items() if cp.parent_shard_id in cps and cp.sequence_number
               and ShardGroup(0, count).owns(s) != ShardGroup(0, count).owns(cp.parent_shard_id))


def sync_instances(run) -> list:
    """(map index, rendered label, start, end) of the run's ``sync`` task instances, from the metadata DB."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(TaskInstance).filter(TaskInstance.dag_id == run.dag_id, TaskInstance.run_id == run.run_id,
                                                  TaskInstance.task_id == "sync").all()
        return sorted((ti.map_index, ti.rendered_map_index, ti.start_date, ti.end_date) for ti in rows)


def test_a_table_with_two_shard_groups_is_applied_by_two_tasks_at_once_and_a_plain_table_is_unchanged(
        aws, tmp_path, monkeypatch):
    for k, v in SETTINGS.items():
        monkeypatch.setenv(k, v)
    store = str(tmp_path / "store")
    ddb = filled(aws, "Split")
    filled(aws, "Plain", items=20)
    for table in ("Split", "Plain"):
        bootstrap.run(ddb, table, bucket=BUCKET, store=store, poll_seconds=0.1)
    churn(ddb, "Split", 0, 600)  # ~150 records a shard: each of the 4 lineages rolls over 4-5 times
    churn(ddb, "Plain", 0, 30)
    churned = int(time.time() * 1e6)
    with Store(store) as st:
        shards_before = len(st.checkpoints("Split"))

    dag = af.dag(DAG_ID)
    af.forget_runs(DAG_ID)
    # list_tables plans the run; its sync tasks are then run at once, each in its own process, as two workers would
    conf = {"store": store, "shard_groups": {"Split": 2}, "run_seconds": 300}
    run = dag.test(run_conf=conf, mark_success_pattern="sync|report|bootstrap_again")
    planned = af.xcom(run, "list_tables")
    assert sorted(g["label"] for g in planned) == ["Plain · " + store, "Split · " + store + " · group 0/2",
                                                   "Split · " + store + " · group 1/2"]
    af.clear(run, lambda ti: ti.task_id != "list_tables")
    tasks = af.MappedAtOnce(dag, run, "sync")

    def applied() -> bool:  # while the tasks run: the index equals both tables
        if tasks.ended():
            return True  # a task ended early: failed (its state below)
        with Store(store) as st:  # and both groups noted their tip (the table's applied-through passes the backlog)
            return ((st.table_state("Split").last_change_micros or 0) >= churned
                    and all(verify(st, table, ddb).ok for table in ("Split", "Plain")))

    try:
        wait_until(applied, "both tables applied by the running sync tasks", timeout=120, every=2)
    finally:
        af.queue_another_run(DAG_ID)  # the tasks end at a batch boundary, as for an ingest's handover
        ended = tasks.finish()
    run = af.resume(dag, run)
    assert ended == {0: "success", 1: "success", 2: "success"}, ended
    assert run.state == "success", af.states(run)

    health = [h for i in range(3) for h in [o["health"] for o in af.xcom(run, "sync", map_index=i)]]
    split = sorted((h for h in health if h["table"] == "Split"), key=lambda h: h["shard_group"])
    assert [h["shard_group"] for h in split] == ["0/2", "1/2"]
    assert all(h["records_read"] > 0 and h["batches"] > 1 and h["stopped_early"] for h in split), split
    tis = {label: (start, end) for _, label, start, end in sync_instances(run)}
    (s0, e0), (s1, e1) = tis["Split · " + store + " · group 0/2"], tis["Split · " + store + " · group 1/2"]
    assert s0 < e1 and s1 < e0  # at once
    assert children_across_groups(store, "Split", 2) >= 2  # rollovers across groups: children waited on parents
    with Store(store) as st:
        assert len(st.checkpoints("Split")) > shards_before
        through = st.table_state("Split").last_change_micros
    plain = [h for h in health if h["table"] == "Plain"]
    assert len(plain) == 1 and "shard_group" not in plain[0] and plain[0]["records_read"] >= 30

    for table in ("Split", "Plain"):
        with Store(store) as st:
            report = verify(st, table, ddb)
        assert report.ok, (table, report.missing[:2], report.extra[:2], report.different[:2])
        no_duplicates(store, table)
    assert through >= churned  # both groups noted their tip: the table is applied through the backlog's end


def test_a_group_task_rerun_alone_reads_only_its_shards_and_one_of_an_old_count_reads_nothing(aws, tmp_path,
                                                                                             monkeypatch):
    """The count from the Variable (what the continuous runs read). A group task cleared and run again alone reads
    its own shards only; after the count changed, a task of the old count reads nothing (two counts at once
    would read a shard twice); a sync without groups then picks up where the groups left."""
    from dynadex_airflow.shard_counts import VARIABLE

    for k, v in SETTINGS.items():
        monkeypatch.setenv(k, v)
    store = str(tmp_path / "store")
    ddb = filled(aws, "Again")
    bootstrap.run(ddb, "Again", bucket=BUCKET, store=store, poll_seconds=0.1)
    churn(ddb, "Again", 0, 200)
    dag = af.dag(DAG_ID)
    af.forget_runs(DAG_ID)
    af.set_variable(VARIABLE, {"Again": 2})
    try:
        run = dag.test(run_conf={"store": store, "table_name": "Again", "run_seconds": 300},
                       mark_success_pattern="sync|report|bootstrap_again")  # planned, not run
        assert sorted(g["label"] for g in af.xcom(run, "list_tables")) == [f"Again · {store} · group 0/2",
                                                                           f"Again · {store} · group 1/2"]
        af.queue_another_run(DAG_ID)  # each task below ends at its first stop check (0.5 s)

        def rerun_alone(map_index: int) -> dict:
            af.clear(run, lambda ti: (ti.task_id, ti.map_index) == ("sync", map_index)
                     or ti.task_id in ("report", "bootstrap_again"))
            done = af.resume(dag, run)
            assert done.state == "success", af.states(done)
            [outcome] = af.xcom(done, "sync", map_index=map_index)
            return outcome["health"]

        def read_shards() -> dict:
            with Store(store) as st:
                return {s: cp.sequence_number for s, cp in st.checkpoints("Again").items() if cp.sequence_number}

        af.set_variable(VARIABLE, {"Again": 3})  # the count changed after the run was planned
        stale = rerun_alone(0)
        assert stale["shard_group"] == "0/2" and stale["stale_count"] and stale["records_read"] == 0, stale
        assert read_shards() == {}

        af.set_variable(VARIABLE, {"Again": 2})
        alone = rerun_alone(1)
        assert alone["shard_group"] == "1/2" and alone["records_read"] > 0, alone
        read = read_shards()
        assert read and all(ShardGroup(1, 2).owns(s) for s in read), read  # its own shards, none of group 0's
    finally:
        af.set_variable(VARIABLE, None)
        af.forget_runs(DAG_ID)

    _, report = converge(store, "Again", rounds=2)  # one sync without groups: from where the group left
    assert report.ok, (report.missing[:2], report.extra[:2], report.different[:2])
    no_duplicates(store, "Again")


def test_a_gap_met_by_the_groups_is_recovered_by_one_whole_run_then_the_groups_come_back(aws, tmp_path, monkeypatch):
    """The stream is turned off and on (a new stream ARN: a gap). Each group task meets it, which one group of
    several may not recover (``GapInGroup``): they report it, the next run follows the table whole (it recovers
    through an incremental export), and the run after that maps the groups again."""
    for k, v in SETTINGS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("DYNADEX_MIN_INCREMENTAL_SECONDS", "1")  # as the emulator's: the table's PITR is seconds old
    store = str(tmp_path / "store")
    ddb = filled(aws, "Gapped", items=20)
    bootstrap.run(ddb, "Gapped", bucket=BUCKET, store=store, poll_seconds=0.1)
    ddb.update_table(TableName="Gapped", StreamSpecification={"StreamEnabled": False})
    ddb.put_item(TableName="Gapped", Item={"pk": {"S": "while-off"}})
    ddb.update_table(TableName="Gapped", StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})
    ddb.put_item(TableName="Gapped", Item={"pk": {"S": "after"}})
    dag = af.dag(DAG_ID)
    af.forget_runs(DAG_ID)
    conf = {"store": store, "table_name": "Gapped", "shard_groups": {"Gapped": 2}, "run_seconds": 1}

    def health(run) -> list:
        return [o["health"] for i in range(len(af.xcom(run, "list_tables"))) for o in af.xcom(run, "sync", map_index=i)]

    try:
        met = dag.test(run_conf=conf)
        assert met.state == "success", af.states(met)
        assert sorted(h["shard_group"] for h in health(met) if h["needs_recovery"]) == ["0/2", "1/2"], health(met)

        recovered = dag.test(run_conf=conf)
        assert recovered.state == "success", af.states(recovered)
        [whole] = health(recovered)
        assert "shard_group" not in whole and whole["recoveries"] >= 1, whole
        with Store(store) as st:
            report = verify(st, "Gapped", ddb)
        assert report.ok, (report.missing[:2], report.extra[:2], report.different[:2])

        again = dag.test(run_conf=conf)
        assert again.state == "success", af.states(again)
        assert sorted(h.get("shard_group") for h in health(again)) == ["0/2", "1/2"], health(again)
        assert not any(h.get("needs_recovery") for h in health(again))
    finally:
        af.forget_runs(DAG_ID)
