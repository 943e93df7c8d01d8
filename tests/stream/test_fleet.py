"""Many tables in one process (stream.fleet) and the probe of a quiet table (stream.probe), against the emulator."""

from __future__ import annotations

import time

import pytest

from dynadex.store import Store
from dynadex.stream import fleet
from dynadex.stream.probe import QuietTable, TableProbe
from tests.support.emulator import BUCKET
from tests.support.many_tables import published_empty
from tests.support.sync import clients

pytestmark = pytest.mark.emulator(bucket=BUCKET, env=True, stream_shards=2)

QUICK = dict(quiet_after_seconds=0.5, poll_seconds=0.05)


def test_a_probe_finds_a_write_without_moving_any_checkpoint(aws, tmp_path):
    store = str(tmp_path / "store")
    published_empty(aws, store, ["P1"])
    ddb, streams, _ = clients()
    (quiet,) = fleet.quiet_tables([(store, "P1")], lambda s: s, streams, 300.0)
    assert QuietTable.from_dict(quiet.to_dict()) == quiet  # the contract that travels to the triggerer
    assert len(quiet.shards) == 2 and all(m.sequence_number is None for m in quiet.shards)
    probe = TableProbe(quiet, streams)
    assert probe.news() is None and probe.news() is None
    ddb.put_item(TableName="P1", Item={"pk": {"S": "a"}})
    assert "records on shard" in probe.news()
    with Store(store) as st:
        assert all(c.sequence_number is None for c in st.checkpoints("P1").values())  # nothing committed
        assert st.get("P1", '{"pk":{"S":"a"}}') is None


def test_a_fleet_reads_only_the_table_with_news_and_returns_when_all_are_quiet(aws, tmp_path):
    store = str(tmp_path / "store")
    names = [f"F{i}" for i in range(4)]
    published_empty(aws, store, names)
    ddb, streams, s3 = clients()
    locate = lambda s: s  # noqa: E731
    quiet = fleet.quiet_tables([(store, n) for n in names], locate, streams, 300.0)
    settings = fleet.FleetSettings(**QUICK)
    r = fleet.follow(quiet, locate, ddb, streams, s3, until=time.time() + 60, settings=settings)
    assert r.stats == {} and not r.stopped and len(r.quiet) == 4  # nothing to read: back at once
    for n in range(3):
        ddb.put_item(TableName="F2", Item={"pk": {"S": f"k{n}"}})
    r = fleet.follow(r.quiet, locate, ddb, streams, s3, until=time.time() + 60, settings=settings)
    assert list(r.stats) == [(store, "F2")] and r.stats[(store, "F2")]["applied"] == 3
    assert r.stats[(store, "F2")]["quiet"] == 1  # it ended at its tip, quiet, not at the window
    with Store(store) as st:
        assert st.query('SELECT count(*) FROM row_index."F2"')[1] == [(3,)]
        assert any(c.sequence_number for c in st.checkpoints("F2").values())
    # the probes now start from the new checkpoints: the same records are not news again
    assert all(TableProbe(q, streams).news() is None for q in r.quiet)
    r = fleet.follow(r.quiet, locate, ddb, streams, s3, until=time.time() + 60, settings=settings)
    assert r.stats == {}


def test_a_fleet_stops_when_asked_and_its_syncs_end_at_a_batch(aws, tmp_path):
    store = str(tmp_path / "store")
    published_empty(aws, store, ["S1"])
    ddb, streams, s3 = clients()
    locate = lambda s: s  # noqa: E731
    quiet = fleet.quiet_tables([(store, "S1")], locate, streams, 300.0)
    ddb.put_item(TableName="S1", Item={"pk": {"S": "x"}})
    settings = fleet.FleetSettings(quiet_after_seconds=3600, poll_seconds=0.05)
    settings.sync.stop_check_seconds = 0.2
    asked = []
    r = fleet.follow(quiet, locate, ddb, streams, s3, until=time.time() + 120, settings=settings,
                     should_stop=lambda: asked.append(1) or len(asked) > 3)
    assert r.stopped and r.stats[(store, "S1")]["applied"] == 1
