"""How the stream DAG packs tables into sync tasks (plugins/dynadex_airflow/sync_groups.py): busy tables alone,
quiet ones by store, busy read from the last run's health however Airflow hands it back."""

from __future__ import annotations

from dynadex_airflow import shard_counts, sync_groups
from dynadex_airflow.sync_groups import SyncGroup, SyncTarget, busy_tables, pack, plan, recovering


def _health(table: str, records: int, seconds: float = 10.0, store: str | None = "s1") -> dict:
    return {"table": table, "store_given": store, "records_read": records, "followed_seconds": seconds}


def test_busy_tables_read_one_runs_health_or_several_runs_nested():
    one_run = [_health("Hot", 5_000), _health("Cold", 10)]
    assert busy_tables(one_run, above=100) == {("s1", "Hot")}
    # Airflow 3's xcom_pull(include_prior_dates=True) answered a list of runs' lists (a task once failed on it)
    assert busy_tables([one_run, [_health("Warm", 2_000)]], above=100) == {("s1", "Hot"), ("s1", "Warm")}
    assert busy_tables([[None, "x", _health("Zero", 500, seconds=0)]], above=100) == set()
    assert busy_tables(None, above=100) == set()


def test_busy_tables_get_a_task_each_and_quiet_ones_share_by_store():
    work = [SyncTarget(table=t, store=s) for t, s in (("Hot", "s1"), ("A", "s1"), ("B", "s1"), ("C", "s2"))]
    groups = pack(work, {("s1", "Hot")}, size=64)
    assert [([t.table for t in g.targets], g.busy) for g in groups] == [(["Hot"], True), (["A", "B"], False),
                                                                          (["C"], False)]
    assert [len(g.targets) for g in pack(work, set(), size=2)] == [2, 1, 1]


def test_a_table_with_shard_groups_gets_a_task_per_group_sharing_one_window_and_never_the_quiet_task():
    from dynadex.stream.shard_groups import ShardGroup

    work = [SyncTarget(table=t, store="s1", run_seconds=60) for t in ("Big", "A", "Hot")]
    groups = pack(work, {("s1", "Hot"), ("s1", "Big")}, size=64, counts={"Big": 3, "A": 1}, now=1000.0)
    split = [g for g in groups if g.shard_group is not None]
    assert [g.shard_group for g in split] == [ShardGroup(0, 3), ShardGroup(1, 3), ShardGroup(2, 3)]
    assert all(g.busy and g.ends_at == 1060.0 and [t.table for t in g.targets] == ["Big"] for g in split)
    assert [([t.table for t in g.targets], g.shard_group) for g in groups if g not in split] == [(["Hot"], None),
                                                                                              (["A"], None)]
    assert SyncGroup.from_dict(split[1].to_dict()) == split[1]
    assert split[1].to_dict()["label"] == "Big · s1 · group 1/3"
    # quiet with a count: still split; a table a group's gap marked for recovery: whole (and quiet) this run
    assert len(pack(work, set(), counts={"Big": 2})) == 3
    whole = pack(work, set(), counts={"Big": 2}, unsplit={("s1", "Big")})
    assert [[t.table for t in g.targets] for g in whole] == [["Big", "A", "Hot"]] and whole[0].shard_group is None


def test_a_group_that_met_a_gap_marks_its_table_for_a_whole_run():
    health = [[{"table": "Big", "store_given": "s1", "shard_group": "0/2", "needs_recovery": "gap"},
               {"table": "Big", "store_given": "s1", "shard_group": "1/2"}, {"table": "A", "store_given": None}]]
    assert recovering(health) == {("s1", "Big")}
    assert recovering(None) == set()


def test_shard_counts_take_the_runs_param_over_the_variable_and_refuse_bad_counts():
    import pytest

    from dynadex.stream.errors import BadShardGroup
    from dynadex_airflow.shard_counts import counts, parse

    assert counts({"shard_groups": None}, {}, variable={"Big": 4}) == {"Big": 4}
    assert counts({"shard_groups": {"Big": 2}}, {"shard_groups": {"Other": 3}}, variable={"Big": 4}) == {
        "Big": 2, "Other": 3}
    assert parse({"Big": 2.0}, "x") == {"Big": 2}
    for bad in ({"Big": 0}, {"Big": 65}, {"Big": 1.5}, {"Big": "two"}, {"Big": True}, {"Big": None}, ["Big"]):
        with pytest.raises(BadShardGroup, match="shard groups"):
            parse(bad, "param shard_groups")


def test_a_run_plans_from_the_last_runs_health_only(monkeypatch):
    """A table busy a week ago and quiet in the last run joins the quiet task (it was kept busy, a slot of its
    own, until its old runs were pruned). ``map_indexes=-1`` with ``include_prior_dates`` answers the latest
    run's health only: the stream DAG's gap test shows it in real Airflow (tests/airflow/test_shard_group_tasks.py)."""
    monkeypatch.setattr(sync_groups, "targets", lambda params, conf: [
        SyncTarget(table=t, store="s1").to_dict() for t in ("Once", "Now", "Cold")])
    monkeypatch.setattr(shard_counts, "configured", lambda: {})
    monkeypatch.setenv("DYNADEX_BUSY_RECORDS_PER_SECOND", "100")
    week_ago = [_health("Once", 50_000), _health("Now", 5), _health("Cold", 1)]
    last_run = [_health("Once", 3), _health("Now", 50_000), _health("Cold", 1)]

    class Ti:
        def xcom_pull(self, task_ids, key, include_prior_dates=False, map_indexes=None):
            assert (task_ids, key, include_prior_dates) == ("report", "health", True)
            return last_run if map_indexes == -1 else [week_ago, last_run]

    groups = [SyncGroup.from_dict(g) for g in plan({}, {}, Ti())]
    assert [([t.table for t in g.targets], g.busy) for g in groups] == [(["Now"], True), (["Once", "Cold"], False)]
