"""How the stream DAG packs tables into sync tasks (plugins/dynadex_airflow/sync_groups.py): busy tables alone,
quiet ones by store, busy read from the last run's health however Airflow hands it back."""

from __future__ import annotations

from dynadex_airflow.sync_groups import SyncTarget, busy_tables, pack


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
