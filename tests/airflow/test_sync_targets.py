"""The stream DAG's contracts: what ``list_tables`` hands each mapped ``sync`` task, and what ``report`` gathers."""

from __future__ import annotations

from dynadex_airflow.sync_tasks import SyncOutcome, SyncTarget, gather


def test_a_target_round_trips_and_carries_its_label():
    t = SyncTarget("/data/store", "Orders", "aws_prod", 30.0)
    d = t.to_dict()
    assert d["label"] == "Orders · /data/store"
    assert SyncTarget.from_dict(d) == t
    assert SyncTarget.from_dict({"table": "T", "store": "", "aws_conn_id": None}) == SyncTarget(None, "T")
    assert SyncTarget(None, "T").label == "T · default store"


def test_gather_keeps_every_health_and_only_the_bootstraps_asked_for():
    a = SyncOutcome({"table": "A", "applied": 3})
    b = SyncOutcome({"table": "B", "applied": 0}, {"table_name": "B", "store": None, "aws_conn_id": "aws_default"})
    assert SyncOutcome.from_dict(b.to_dict()) == b
    got = gather([a.to_dict(), b.to_dict()])
    assert [h["table"] for h in got["health"]] == ["A", "B"]
    assert got["needs_bootstrap"] == [b.bootstrap]
    assert gather([]) == {"health": [], "needs_bootstrap": []}


def test_a_shard_group_target_round_trips_and_names_its_group():
    from dynadex.stream.shard_groups import ShardGroup

    t = SyncTarget("/data/store", "Orders", "aws_prod", 30.0, ShardGroup(1, 4))
    d = t.to_dict()
    assert d["shard_group"] == "1/4" and d["label"] == "Orders · /data/store · group 1/4"
    assert SyncTarget.from_dict(d) == t
    assert SyncTarget.from_dict(SyncTarget(None, "T").to_dict()).shard_group.whole  # and old dicts without one
    assert SyncTarget.from_dict({"table": "T"}).shard_group.whole


def test_gather_asks_one_bootstrap_per_table_when_each_of_its_shard_groups_asks():
    again = {"table_name": "Big", "store": "/s", "aws_conn_id": "aws_default"}
    groups = [[SyncOutcome({"table": "Big", "shard_group": f"{i}/3"}, dict(again)).to_dict()] for i in range(3)]
    got = gather(groups)
    assert len(got["health"]) == 3 and got["needs_bootstrap"] == [again]
