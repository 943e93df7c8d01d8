"""Shard groups (stream/shard_groups.py): several processes follow one table's stream, each its share of the
shards, exactly once, children after parents whichever group read them. Against the emulator over HTTP, each
group a `dynadex sync --group` process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import zlib

import pytest

from dynadex import bootstrap
from dynadex.store import Store
from dynadex.stream.errors import BadShardGroup
from dynadex.stream.shard_groups import ShardGroup
from tests.support.emulator import BUCKET, make_table
from tests.support.poll import wait_until
from tests.support.sync import churn, converge, filled, no_duplicates

pytestmark = pytest.mark.emulator(bucket=BUCKET, env=True, export_seconds=0.5, export_files=2, stream_shards=4,
                                  rollover_records=30, iterator_seconds=30)

# small batches, nothing folded or flushed: every applied change stays an insertion DuckLake can list
SETTINGS = {"DYNADEX_BATCH_RECORDS": "20", "DYNADEX_BATCH_SECONDS": "0.05", "DYNADEX_FOLD_EVERY_BATCHES": "0",
            "DYNADEX_FLUSH_EVERY_BATCHES": "0"}


def test_every_shard_is_in_exactly_one_group_of_a_count_and_bad_groups_are_refused():
    ids = [f"shardId-{i:020d}-{zlib.crc32(str(i).encode()):08x}" for i in range(200)]
    for count in (1, 2, 3, 8):
        owners = [[g for g in range(count) if ShardGroup(g, count).owns(s)] for s in ids]
        assert all(len(o) == 1 for o in owners)
        assert len({o[0] for o in owners}) == count  # every group gets shards
    assert ShardGroup.parse("1/3") == ShardGroup(1, 3)
    for bad in ("3/3", "-1/2", "1/0", "x", "1/2/3"):
        with pytest.raises(BadShardGroup, match="shard group"):
            ShardGroup.parse(bad)


def _group(store: str, table: str, group: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dynadex.cli", "sync", table, "--group", group, *args,
                             "--store", store], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **SETTINGS}, text=True)  # the emulator's endpoint: os.environ


def _applied_once(store: str, table: str) -> int:
    """Every stream record applied inserted its row at most once, across every snapshot since the publish (a
    record applied twice would show its origin twice); the number of stream rows inserted."""
    with Store(store) as st:
        con = st.lake.con
        last = con.execute("SELECT max(snapshot_id) FROM lake.snapshots()").fetchone()[0]
        origins = [r[0] for r in con.execute(
            "SELECT origin FROM ducklake_table_insertions('lake', 'row_index', ?, 0, ?) "
            "WHERE origin LIKE 'stream:%'", [table, last]).fetchall()]
    assert len(origins) == len(set(origins)), "a stream record was applied twice"
    return len(origins)


def _children_across_groups(store: str, table: str, count: int) -> int:
    with Store(store) as st:
        cps = st.checkpoints(table)
    assert cps and all(cp.sequence_number for cp in cps.values())
    return sum(1 for s, cp in cps.items() if cp.parent_shard_id in cps
               and ShardGroup(0, count).owns(s) != ShardGroup(0, count).owns(cp.parent_shard_id))


def test_two_groups_apply_a_backlog_with_rollovers_across_groups_at_once(aws, tmp_path):
    ddb = filled(aws, "Grouped")
    store = str(tmp_path / "store")
    bootstrap.run(ddb, "Grouped", bucket=BUCKET, store=store, poll_seconds=0.1)
    churn(ddb, "Grouped", 0, 600)  # ~150 records a shard: each of the 4 lineages rolls over 4-5 times
    groups = [_group(store, "Grouped", g, "--once") for g in ("0/2", "1/2")]
    for p in groups:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    assert _children_across_groups(store, "Grouped", 2) >= 2  # children waited on the other group's parents
    assert _applied_once(store, "Grouped") > 0
    _, report = converge(store, "Grouped", rounds=1)  # one sync without groups finds nothing left to apply
    assert report.ok, (report.missing[:2], report.extra[:2], report.different[:2])
    no_duplicates(store, "Grouped")


def test_a_group_killed_mid_backlog_resumes_and_applies_no_record_twice(aws, tmp_path):
    ddb = filled(aws, "Killed")
    store = str(tmp_path / "store")
    bootstrap.run(ddb, "Killed", bucket=BUCKET, store=store, poll_seconds=0.1)
    churn(ddb, "Killed", 0, 600)
    with Store(store) as st:
        before = len(st.checkpoints("Killed"))
    survivor = _group(store, "Killed", "0/2", "--once")
    victim = _group(store, "Killed", "1/2", "--for", "120")

    def victim_applied() -> bool:
        with Store(store) as st:
            return sum(1 for s, cp in st.checkpoints("Killed").items()
                       if cp.sequence_number and ShardGroup(1, 2).owns(s)) >= 2
    wait_until(victim_applied, "group 1/2 committed batches", timeout=120)
    victim.send_signal(signal.SIGKILL)  # mid-backlog: its shards are not all read
    victim.wait()
    restarted = _group(store, "Killed", "1/2", "--once")
    for p in (survivor, restarted):
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    assert len(Store(store).checkpoints("Killed")) > before
    assert _applied_once(store, "Killed") > 0
    _, report = converge(store, "Killed", rounds=1)
    assert report.ok, (report.missing[:2], report.extra[:2], report.different[:2])
    no_duplicates(store, "Killed")
