"""Stream sync against the emulator over HTTP: convergence, rollover, expiry, crashes, gaps and their recovery."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

from dynadex import bootstrap
from dynadex.store import Store
from dynadex.stream import SyncSettings, sync_table
from dynadex.stream.errors import NeedsBootstrap
from dynadex.stream.recover import windows
from dynadex.stream.verify import verify
from tests.support.clock import sync_clock_ahead
from tests.support.emulator import BUCKET, make_table
from tests.support.poll import wait_until
from tests.support.sync import Writer, clients, converge

pytestmark = pytest.mark.emulator(bucket=BUCKET, env=True, export_seconds=0.5, export_files=3, stream_shards=3,
                                  rollover_records=40, iterator_seconds=1.5, ttl_interval_seconds=0.3,
                                  min_incremental_seconds=1)


def test_writes_during_and_after_export_converge_with_rollover_ttl_and_expiry(aws, tmp_path):
    make_table(aws, "Live", ttl="expires")
    ddb = aws.client("dynamodb")
    store = str(tmp_path / "store")
    for i in range(200):
        ddb.put_item(TableName="Live", Item={"pk": {"S": f"k{i}"}, "n": {"N": str(i)}})
    with Writer(ddb, "Live") as w:
        result = bootstrap.run(ddb, "Live", bucket="dynadex-exports", store=store, poll_seconds=0.1)
        assert result["publish"]["published"]
        after = w.count
        wait_until(lambda: w.count >= after + 50, "50 writes after the bootstrap")
    # keep syncing while writes go on: a long-lived sync whose idle polls outlive the 1.5 s iterators
    settings = SyncSettings(idle_max_seconds=2.5, batch_records=200)
    ddb2, streams, s3 = clients()
    with Writer(ddb, "Live", seed=2) as w2:
        with Store(store, read_only=False) as st:
            # runs of 5 s until two batches landed while the writes go on: on a loaded 2-core box, opening the
            # store, the first refresh and the first batch took a whole 5 s window (a CI-like run, 2026-12-07)
            stats: dict = {}
            deadline = time.monotonic() + 90
            while stats.get("batches", 0) < 2 and time.monotonic() < deadline:
                run = sync_table(st, "Live", ddb2, streams, s3, seconds=5, settings=settings)
                for k in ("records", "batches"):
                    stats[k] = stats.get(k, 0) + run.get(k, 0)
    with Store(store, read_only=False) as st:  # a new run: new iterators, from the checkpoints
        # idle polls back off 0.05, 0.1, … 1.6 s: the 1.6 s pause (past the 1.5 s iterators) starts about 1.6 s
        # in; 6 s leave it room on a loaded machine (with 4 s it was sometimes cut short)
        more = sync_table(st, "Live", ddb2, streams, s3, seconds=6, settings=settings)
    stats2, report = converge(store, "Live")
    assert report.ok, (report.missing[:2], report.extra[:2], report.different[:2])
    assert w.count + w2.count > 100
    assert stats["records"] > 0 and stats["batches"] >= 2
    assert more["expired_iterators"] >= 1  # iterators expired and were renewed from the checkpoint
    with Store(store) as st:
        status = st.status("Live")["tables"][0]
        shards = status["checkpoints"]
        assert any(c["parent_shard_id"] for c in shards)  # rolled over into child shards
        assert any(c["ended"] for c in shards)
        assert st.query("SELECT count(*) = count(DISTINCT key) FROM row_index.Live")[1] == [(True,)]
        ttl_events = [e for e in st.query("SELECT kind FROM dynadex.events WHERE table_name = 'Live'")[1] if e[0] == "ttl_deletes"]
        assert ttl_events  # TTL deletes were applied and recorded as such


def test_sigkill_at_random_points_loses_and_duplicates_nothing(aws, tmp_path):
    make_table(aws, "Crashy")
    ddb = aws.client("dynamodb")
    store = str(tmp_path / "store")
    for i in range(100):
        ddb.put_item(TableName="Crashy", Item={"pk": {"S": f"k{i}"}, "n": {"N": str(i)}})
    bootstrap.run(ddb, "Crashy", bucket="dynadex-exports", store=store, poll_seconds=0.1)
    rnd = random.Random(20261127)
    env = {**os.environ, "DYNADEX_BATCH_RECORDS": "25", "DYNADEX_BATCH_SECONDS": "0.05"}
    killed = 0
    with Writer(ddb, "Crashy", seed=3, keys=150):
        for trial in range(20):
            proc = subprocess.Popen([sys.executable, "-m", "dynadex.cli", "sync", "Crashy", "--for", "30", "--store", store],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
            time.sleep(rnd.uniform(0.8, 2.5))  # startup takes ~1 s: kills land before, during and after batches
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                killed += 1
            proc.wait()
    assert killed >= 18
    _, report = converge(store, "Crashy")
    assert report.ok, (report.missing[:2], report.extra[:2], report.different[:2])
    with Store(store) as st:
        assert st.query("SELECT count(*) = count(DISTINCT key) FROM row_index.Crashy")[1] == [(True,)]
        assert st.query("SELECT count(*) FROM Crashy")[1] == st.query("SELECT count(*) FROM row_index.Crashy")[1]


def test_recovery_windows_cover_the_gap():
    assert windows(0, 100, 15, 40) == [(0, 100 / 3), (100 / 3, 200 / 3), (200 / 3, 100)]
    assert windows(90, 100, 15, 40) == [(85, 100)]  # shorter than AWS's minimum: starts earlier
    for a, b in windows(0, 10 * 86400 + 7, 900, 86400):
        assert 900 <= b - a <= 86400


def _short_lived(emulator, monkeypatch, retention: float, pitr: float, **knobs):
    aws = emulator(bucket=BUCKET, env=True, export_seconds=0.3, export_files=2, stream_shards=2,
                   retention_seconds=retention, min_incremental_seconds=1, pitr_window_seconds=pitr, **knobs)
    for name, value in dict(DYNADEX_STREAM_RETENTION_SECONDS=f"{retention:g}", DYNADEX_MIN_INCREMENTAL_SECONDS="1",
                            DYNADEX_PITR_WINDOW_SECONDS=f"{pitr:g}", DYNADEX_EXPORT_POLL_SECONDS="0.1",
                            DYNADEX_OVERLAP_SECONDS="1").items():
        monkeypatch.setenv(name, value)  # the sync is told the emulator's retention and PITR window
    return aws


@pytest.fixture
def short_lived(emulator, monkeypatch):
    """An emulator whose stream keeps records 3 s and whose PITR reaches back 12 s."""
    return _short_lived(emulator, monkeypatch, 3, 12)


@pytest.fixture
def roomy(emulator, monkeypatch):
    """Retention 10 s and PITR 24 s: room for a sync pass on a loaded machine to stay within the retention.
    Its clock can be moved on (``roomy.clock.advance``)."""
    return _short_lived(emulator, monkeypatch, 10, 24, test_clock=1)


def test_gap_after_retention_recovered_by_incremental_export(roomy, tmp_path):
    """Changes the stream trimmed before the sync read them come back through an incremental export. The
    emulator's clock is moved past the retention (nothing waits for it), so the stream itself says the records
    were trimmed. Retention 10 s (roomy): a 3 s retention also trimmed records the sync had not yet reached after
    the recovery when the box was loaded (a test of the machine, not of the code)."""
    make_table(roomy, "Gappy")
    ddb = roomy.client("dynamodb")
    store = str(tmp_path / "store")
    for i in range(50):
        ddb.put_item(TableName="Gappy", Item={"pk": {"S": f"k{i}"}, "n": {"N": str(i)}})
    bootstrap.run(ddb, "Gappy", bucket="dynadex-exports", store=store, poll_seconds=0.1)
    stats, report = converge(store, "Gappy")
    assert report.ok
    # sync stops; changes happen; 11 s pass on the emulator's clock: the stream trims them (retention 10 s)
    for i in range(30):
        ddb.put_item(TableName="Gappy", Item={"pk": {"S": f"k{i}"}, "n": {"N": str(1000 + i)}})
    ddb.delete_item(TableName="Gappy", Key={"pk": {"S": "k49"}})
    written = time.time()
    roomy.clock.advance(11)
    # the recovery exports up to a second ago by the sync's own clock (recover.py): these writes are that old
    wait_until(lambda: time.time() > written + 1.05, "the writes to be older than the recovery's 1 s margin")
    ddb.put_item(TableName="Gappy", Item={"pk": {"S": "after"}, "n": {"N": "1"}})
    stats, report = converge(store, "Gappy")
    assert stats["recoveries"] >= 1
    assert report.ok, (report.missing[:2], report.extra[:2], report.different[:2])
    with Store(store) as st:
        kinds = [r[0] for r in st.query("SELECT kind FROM dynadex.events WHERE table_name = 'Gappy'")[1]]
        assert "recovery" in kinds  # visible in status
        assert any(e["kind"] == "recovery" for e in st.status("Gappy")["tables"][0]["recent_events"])


def test_changed_stream_arn_is_a_gap(short_lived, tmp_path):
    make_table(short_lived, "Restream")
    ddb = short_lived.client("dynamodb")
    store = str(tmp_path / "store")
    ddb.put_item(TableName="Restream", Item={"pk": {"S": "a"}})
    bootstrap.run(ddb, "Restream", bucket="dynadex-exports", store=store, poll_seconds=0.1)
    ddb.update_table(TableName="Restream", StreamSpecification={"StreamEnabled": False})
    ddb.put_item(TableName="Restream", Item={"pk": {"S": "while-off"}})
    ddb.update_table(TableName="Restream", StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})
    ddb.put_item(TableName="Restream", Item={"pk": {"S": "b"}})
    stats, report = converge(store, "Restream")
    assert stats["recoveries"] >= 1 and report.ok
    with Store(store) as st:
        assert st.table_state("Restream").stream_arn == ddb.describe_table(TableName="Restream")["Table"]["LatestStreamArn"]


def test_gap_beyond_pitr_window_needs_a_fresh_bootstrap(short_lived, tmp_path):
    """A sync that comes back later than the PITR window reaches asks for a fresh bootstrap, which converges.
    "Later" is the sync's clock moved 13 s on (nothing waits for it): the decision is the sync's, taken from its
    own clock before it reads or writes anything; the re-bootstrap then runs on the wall clock, as the emulator."""
    make_table(short_lived, "Ancient")
    ddb = short_lived.client("dynamodb")
    store = str(tmp_path / "store")
    ddb.put_item(TableName="Ancient", Item={"pk": {"S": "a"}})
    bootstrap.run(ddb, "Ancient", bucket="dynadex-exports", store=store, poll_seconds=0.1)
    ddb.put_item(TableName="Ancient", Item={"pk": {"S": "b"}})
    ddb.put_item(TableName="Ancient", Item={"pk": {"S": "c"}})
    d, streams, s3 = clients()
    with Store(store, read_only=False) as st:
        with sync_clock_ahead(13):  # beyond the 12 s PITR window and the 3 s retention
            with pytest.raises(NeedsBootstrap, match="beyond the point-in-time recovery window"):
                sync_table(st, "Ancient", d, streams, s3, seconds=0)
    bootstrap.run(ddb, "Ancient", bucket="dynadex-exports", store=store, poll_seconds=0.1)  # the re-bootstrap
    _, report = converge(store, "Ancient")
    assert report.ok and report.table_items == 3


def test_verify_reports_every_difference_and_the_cli_exits_1(aws, tmp_path):
    """Faults injected behind the sync's back: a missing, an extra and a changed item, each reported."""
    make_table(aws, "Drift")
    ddb = aws.client("dynamodb")
    store = str(tmp_path / "store")
    for k in range(30):
        ddb.put_item(TableName="Drift", Item={"pk": {"S": f"k{k:02d}"}, "n": {"N": str(k)}})
    bootstrap.run(ddb, "Drift", bucket="dynadex-exports", store=store, poll_seconds=0.1)
    _, report = converge(store, "Drift")
    assert report.ok and report.table_items == 30
    # the table moves on while nothing syncs
    ddb.put_item(TableName="Drift", Item={"pk": {"S": "new"}, "n": {"N": "1"}})  # missing from the index
    ddb.delete_item(TableName="Drift", Key={"pk": {"S": "k00"}})  # extra in the index
    ddb.put_item(TableName="Drift", Item={"pk": {"S": "k01"}, "n": {"N": "1.5"}})  # different
    ddb.put_item(TableName="Drift", Item={"pk": {"S": "k02"}, "n": {"N": "2"}, "x": {"BOOL": True}})  # different
    with Store(store) as st:
        report = verify(st, "Drift", ddb, keep=1, batch=7)  # small batches and a short list: counts stay exact
    assert not report.ok
    assert (report.table_items, report.index_items) == (30, 30)
    assert (report.missing_count, report.extra_count, report.different_count) == (1, 1, 2)
    assert report.missing == ['{"n":{"N":"1"},"pk":{"S":"new"}}']
    assert report.extra == ['{"n":{"N":"0"},"pk":{"S":"k00"}}']
    assert report.different == [('{"n":{"N":"1.5"},"pk":{"S":"k01"}}', '{"n":{"N":"1"},"pk":{"S":"k01"}}')]
    out = subprocess.run([sys.executable, "-m", "dynadex.cli", "verify", "Drift", "--store", store],
                         capture_output=True, text=True, env={**os.environ})
    assert out.returncode == 1
    assert "DIFFERENT (1 missing, 1 extra, 2 different)" in out.stdout
    assert 'missing from the index: {"n":{"N":"1"},"pk":{"S":"new"}}' in out.stdout
    _, report = converge(store, "Drift")  # and the sync closes the gap
    assert report.ok and report.table_items == 30


def test_idle_table_followed_by_a_running_sync_recovers_a_gap_without_bootstrap(roomy, tmp_path):
    """Idle longer than PITR and the retention, but the sync kept finding the stream at its tip: recovery
    starts from that instant, not from the last change long ago (which would ask for a fresh bootstrap),
    and the idle sync is not taken for a stale one."""
    make_table(roomy, "Quiet")
    ddb = roomy.client("dynamodb")
    store = str(tmp_path / "store")
    ddb.put_item(TableName="Quiet", Item={"pk": {"S": "a"}})
    bootstrap.run(ddb, "Quiet", bucket="dynadex-exports", store=store, poll_seconds=0.1)
    d, streams, s3 = clients()
    settings = SyncSettings(caught_up_note_seconds=0.5)
    with Store(store, read_only=False) as st:
        stats = sync_table(st, "Quiet", d, streams, s3, seconds=26, settings=settings)  # beyond PITR (24 s)
        assert stats.get("recoveries", 0) == 0  # idle, not stale
        state = st.table_state("Quiet")
        assert time.time() - state.last_change_micros / 1e6 < 3  # applied through a moment ago
    # now a gap: the stream is switched off and on (a new ARN) while writes go on
    ddb.update_table(TableName="Quiet", StreamSpecification={"StreamEnabled": False})
    ddb.put_item(TableName="Quiet", Item={"pk": {"S": "while-off"}})
    ddb.update_table(TableName="Quiet", StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})
    ddb.put_item(TableName="Quiet", Item={"pk": {"S": "b"}})
    stats, report = converge(store, "Quiet")  # would raise NeedsBootstrap if recovery began at the last change
    assert stats["recoveries"] >= 1 and report.ok and report.table_items == 3


def test_children_are_found_when_their_parent_ends_and_read_in_the_same_batch(aws, tmp_path):
    """Against the emulator over HTTP: a backlog spanning several generations of every shard is applied in
    one batch, parents before children, with the checkpoints of both (the children found as each parent
    ends: tests/stream/test_shard_discovery.py covers children created after the last refresh)."""
    make_table(aws, "Rolling")
    ddb = aws.client("dynamodb")
    store = str(tmp_path / "store")
    ddb.put_item(TableName="Rolling", Item={"pk": {"S": "seed"}})
    assert bootstrap.run(ddb, "Rolling", bucket="dynadex-exports", store=store, poll_seconds=0.1)["publish"]["published"]
    for i in range(400):  # 40 records per shard generation: about 10 generations over the 3 shards
        ddb.put_item(TableName="Rolling", Item={"pk": {"S": f"k{i % 150}"}, "n": {"N": str(i)}})
    ddb2, streams, s3 = clients()
    with Store(store, read_only=False) as st:
        stats = sync_table(st, "Rolling", ddb2, streams, s3, seconds=0,
                           settings=SyncSettings(batch_seconds=60, batch_records=100_000))
        cps = st.checkpoints("Rolling")
    assert stats["records"] >= 400 and stats["batches"] == 1, stats
    ended = [s for s, c in cps.items() if c.ended]
    assert len(ended) >= 6 and sum(1 for c in cps.values() if c.parent_shard_id in ended) >= 6
    with Store(store) as st:
        assert verify(st, "Rolling", ddb).ok


def test_cli_bootstrap_then_sync_follows_without_airflow(aws, tmp_path):
    """`dynadex bootstrap TABLE --bucket B`: the key from DescribeTable, progress while the export runs, the
    export's KMS and bucket-owner settings passed on, the checkpoint stored; `dynadex sync` then follows."""
    make_table(aws, "ByCli")
    ddb = aws.client("dynamodb")
    for i in range(60):
        ddb.put_item(TableName="ByCli", Item={"pk": {"S": f"k{i}"}, "n": {"N": str(i)}})
    store = str(tmp_path / "store")
    cmd = [sys.executable, "-m", "dynadex.cli"]
    done = subprocess.run([*cmd, "bootstrap", "ByCli", "--bucket", "dynadex-exports", "--prefix", "cli", "--store", store,
                           "--poll-seconds", "0.1", "--kms-key-id", "alias/dynadex-exports", "--bucket-owner",
                           "123456789012"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "key pk:S" in done.stderr and "export IN_PROGRESS for" in done.stderr and "export COMPLETED" in done.stderr
    assert "ByCli: 60 items" in done.stdout and "dynadex sync ByCli" in done.stdout
    [arn] = [e["ExportArn"] for e in ddb.list_exports(TableArn=ddb.describe_table(TableName="ByCli")["Table"]["TableArn"])
             ["ExportSummaries"]]
    described = ddb.describe_export(ExportArn=arn)["ExportDescription"]
    assert (described["S3SseAlgorithm"], described["S3SseKmsKeyId"], described["S3BucketOwner"]) == (
        "KMS", "alias/dynadex-exports", "123456789012")
    ddb.put_item(TableName="ByCli", Item={"pk": {"S": "late"}, "n": {"N": "-1"}})
    ddb.delete_item(TableName="ByCli", Key={"pk": {"S": "k0"}})
    synced = subprocess.run([*cmd, "sync", "ByCli", "--once", "--store", store], capture_output=True, text=True, timeout=300)
    assert synced.returncode == 0, synced.stderr
    checked = subprocess.run([*cmd, "verify", "ByCli", "--store", store], capture_output=True, text=True, timeout=300)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    bad = subprocess.run([*cmd, "bootstrap", "NoSuchTable", "--bucket", "dynadex-exports", "--store", store],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "NoSuchTable" in bad.stderr and "Traceback" not in bad.stderr


class WatchedReads:
    """A real streams client whose GetRecords holds each call until a second one is in flight (or, once, until a
    generous deadline): reads that can overlap are seen to, with no timing assertion. Counts reads in flight,
    overall and per shard (iterators are mapped back to the shard they were issued for)."""

    def __init__(self, inner):
        self.inner = inner
        self.cond = threading.Condition()
        self.shard_of: dict[str, str] = {}
        self.in_flight = 0
        self.per_shard: dict[str, int] = {}
        self.max_in_flight = 0
        self.max_per_shard = 0
        self.waiting = True  # until the first overlap (or the first deadline)

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def get_shard_iterator(self, **kw):
        out = self.inner.get_shard_iterator(**kw)
        with self.cond:
            self.shard_of[out["ShardIterator"]] = kw["ShardId"]
        return out

    def get_records(self, **kw):
        with self.cond:
            shard = self.shard_of[kw["ShardIterator"]]
            self.in_flight += 1
            self.per_shard[shard] = self.per_shard.get(shard, 0) + 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.max_per_shard = max(self.max_per_shard, self.per_shard[shard])
            self.cond.notify_all()
            if self.waiting and not self.cond.wait_for(lambda: self.in_flight > 1, timeout=20):
                self.waiting = False  # sequential reads: never two in flight; stop holding them up
            if self.in_flight > 1:
                self.waiting = False
        try:
            page = self.inner.get_records(**kw)
        finally:
            with self.cond:
                self.in_flight -= 1
                self.per_shard[shard] -= 1
        if page.get("NextShardIterator"):
            with self.cond:
                self.shard_of[page["NextShardIterator"]] = shard
        return page


def test_reads_of_different_shards_overlap_never_two_on_one_shard(aws, tmp_path):
    """The shard readers: GetRecords on different shards of one table are in flight together (at most
    ``shard_readers``), never two on one shard; the batches still apply exactly once (the index verifies).
    Sequentially (shard_readers=1, or the code before the pool) the most in flight is 1."""
    make_table(aws, "Overlap")
    ddb = aws.client("dynamodb")
    store = str(tmp_path / "store")
    ddb.put_item(TableName="Overlap", Item={"pk": {"S": "seed"}})
    assert bootstrap.run(ddb, "Overlap", bucket="dynadex-exports", store=store, poll_seconds=0.1)["publish"]["published"]
    for i in range(150):  # several generations of the 3 shards (rollover every 40 records)
        ddb.put_item(TableName="Overlap", Item={"pk": {"S": f"k{i % 90}"}, "n": {"N": str(i)}})
    ddb2, streams, s3 = clients()
    watched = WatchedReads(streams)
    with Store(store, read_only=False) as st:
        stats = sync_table(st, "Overlap", ddb2, watched, s3, seconds=0, settings=SyncSettings(shard_readers=2))
    assert stats["records"] >= 150
    assert 1 < watched.max_in_flight <= 2, watched.max_in_flight
    assert watched.max_per_shard == 1
    with Store(store) as st:
        assert verify(st, "Overlap", ddb).ok


@pytest.fixture
def wide(emulator):
    """A second emulator whose streams have 64 shards, rolling over every 12 records (for one test: the
    environment points back at the module's emulator afterwards)."""
    return emulator(bucket=BUCKET, env=True, export_seconds=0.5, export_files=2, stream_shards=64, rollover_records=12,
                    min_incremental_seconds=1)


def test_64_shards_rolling_over_while_writes_continue_converge(wide, tmp_path):
    make_table(wide, "Wide")
    ddb = wide.client("dynamodb")
    store = str(tmp_path / "store")
    for i in range(100):
        ddb.put_item(TableName="Wide", Item={"pk": {"S": f"k{i}"}, "n": {"N": str(i)}})
    assert bootstrap.run(ddb, "Wide", bucket="dynadex-exports", store=store, poll_seconds=0.1)["publish"]["published"]
    ddb2, streams, s3 = clients()
    with Writer(ddb, "Wide", keys=2000) as w:
        with Store(store, read_only=False) as st:
            stats = sync_table(st, "Wide", ddb2, streams, s3, seconds=4, settings=SyncSettings(shard_readers=8))
        wait_until(lambda: w.count >= 1200, "1 200 writes")  # about 19 per shard: every shard rolls over
    _, report = converge(store, "Wide")
    assert report.ok, (report.missing[:2], report.extra[:2], report.different[:2])
    assert stats["records"] > 0 and stats["batches"] >= 1  # it applied while writes went on (more batches: load-bound)
    with Store(store) as st:
        cps = st.checkpoints("Wide")
    ended = {s for s, c in cps.items() if c.ended}
    assert len(cps) >= 64 + 32 and len(ended) >= 32, (len(cps), len(ended))
    assert sum(1 for c in cps.values() if c.parent_shard_id in ended) >= 32


def test_two_tables_of_one_store_sync_side_by_side_and_keep_every_checkpoint(aws, tmp_path):
    """What the stream DAG's per-table mapped tasks do: two processes sync two tables of ONE store (one
    DuckLake catalog) at once, first while both tables are written, then (writes stopped) until each is
    caught up. Both keep committing (the store's writers take turns), both converge, and no checkpoint was
    lost to the other writer's commits: a further pass over either table reads nothing."""
    store = str(tmp_path / "store")
    tables = ("SideA", "SideB")
    for name in tables:
        make_table(aws, name)
        ddb = aws.client("dynamodb")
        for i in range(50):
            ddb.put_item(TableName=name, Item={"pk": {"S": f"k{i}"}, "n": {"N": str(i)}})
        assert bootstrap.run(ddb, name, bucket="dynadex-exports", store=store, poll_seconds=0.1)["publish"]["published"]
    env = {**os.environ, "DYNADEX_BATCH_SECONDS": "0.1", "DYNADEX_IDLE_MAX_SECONDS": "0.2"}

    def side_by_side(*how: str) -> list[dict]:
        procs = [subprocess.Popen([sys.executable, "-m", "dynadex.cli", "sync", name, *how, "--store", store],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name in tables]
        outs = [p.communicate(timeout=300) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
        return [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]

    writers = [Writer(ddb, name, seed=n, keys=200) for n, name in enumerate(tables)]
    for w in writers:
        w.thread.start()
    try:
        during = side_by_side("--for", "8")
    finally:
        for w in writers:
            w.stop.set()
            w.thread.join()
    after = side_by_side("--once")
    assert all(w.count > 50 for w in writers), [w.count for w in writers]
    # both took turns: without the store's writer lock one table's batches starved (1 batch in 15 s, 7 retries)
    assert all(s["batches"] >= 2 and s["applied"] > 0 for s in during), during
    ddb2, streams, s3 = clients()
    for name in tables:
        with Store(store, read_only=False) as st:
            again = sync_table(st, name, ddb2, streams, s3, seconds=0)
        assert again["records"] == 0, (name, again, during, after)  # every record the runs read was checkpointed
        with Store(store) as st:
            assert verify(st, name, ddb2).ok, name


def test_a_run_asked_to_stop_ends_at_a_batch_boundary_and_the_next_resumes_exactly(aws, tmp_path):
    """``should_stop`` (another run waits: a new table's handover) ends a long sync window between batches;
    the checkpoints it leaves let the next sync resume with nothing lost or repeated."""
    make_table(aws, "Stopping")
    ddb = aws.client("dynamodb")
    store = str(tmp_path / "store")
    ddb.put_item(TableName="Stopping", Item={"pk": {"S": "seed"}})
    assert bootstrap.run(ddb, "Stopping", bucket="dynadex-exports", store=store, poll_seconds=0.1)["publish"]["published"]
    for i in range(50):
        ddb.put_item(TableName="Stopping", Item={"pk": {"S": f"k{i}"}, "n": {"N": str(i)}})
    asked, wanted = [], threading.Event()

    def should_stop():
        asked.append(time.time())
        return wanted.is_set()

    ddb2, streams, s3 = clients()
    settings = SyncSettings(stop_check_seconds=0.2, batch_seconds=0.1)
    with Store(store, read_only=False) as st:
        def writes_then_stop():  # more writes while the window is open, then the other run "arrives"
            for i in range(50, 80):
                ddb.put_item(TableName="Stopping", Item={"pk": {"S": f"k{i}"}, "n": {"N": str(i)}})
            try:
                wait_until(lambda: len(asked) >= 2, "the loop to ask (and be told no)", every=0.05)
            finally:
                wanted.set()  # even if it never asked: the assertions below say so, the run does not go on 600 s

        th = threading.Thread(target=writes_then_stop)
        th.start()
        stats = sync_table(st, "Stopping", ddb2, streams, s3, seconds=600, settings=settings, should_stop=should_stop)
        th.join()
    assert stats.get("stopped_early") == 1 and len(asked) >= 3, (stats, len(asked))
    for i in range(80, 90):  # and changes made after it ended
        ddb.put_item(TableName="Stopping", Item={"pk": {"S": f"k{i}"}, "n": {"N": str(i)}})
    with Store(store, read_only=False) as st:
        sync_table(st, "Stopping", ddb2, streams, s3, seconds=0)
    with Store(store) as st:
        assert verify(st, "Stopping", ddb).ok
        assert st.query('SELECT count(*) FROM "Stopping"')[1] == [(91,)]


def test_a_failing_stop_question_does_not_stop_the_sync(aws, tmp_path):
    """A stop question that fails (Airflow's API unreachable) is not a reason to end the run: the sync goes on
    and asks again; the answer "stop" then ends it. No time window: the run is bounded by the answers."""
    make_table(aws, "StopFails")
    ddb = aws.client("dynamodb")
    store = str(tmp_path / "store")
    ddb.put_item(TableName="StopFails", Item={"pk": {"S": "seed"}})
    assert bootstrap.run(ddb, "StopFails", bucket="dynadex-exports", store=store, poll_seconds=0.1)["publish"]["published"]
    asked = []

    def broken():
        """Fails three times, then says stop: the sync must go on past each failure and ask again."""
        asked.append(1)
        if len(asked) <= 3:
            raise ConnectionError("execution API unreachable")
        return True

    ddb2, streams, s3 = clients()
    with Store(store, read_only=False) as st:
        # a bound only (the answer ends the run): a loaded box must not end it before the question was asked
        stats = sync_table(st, "StopFails", ddb2, streams, s3, seconds=300,
                           settings=SyncSettings(stop_check_seconds=0.1), should_stop=broken)
    assert len(asked) == 4 and stats.get("stopped_early") == 1, (asked, stats)


def test_a_shard_without_checkpoint_starts_at_the_snapshot_not_at_the_horizon(aws, tmp_path):
    """After a bootstrap, the stream's records from before the snapshot (up to 24 h of them on AWS) are not
    read to be skipped: a shard with no checkpoint starts AT_TIMESTAMP of the stream start minus the
    overlap. With the option off, the same sync reads and skips them; both end equal to the table."""
    make_table(aws, "Horizon")
    ddb = aws.client("dynamodb")
    for i in range(60):
        ddb.put_item(TableName="Horizon", Item={"pk": {"S": f"old{i}"}, "n": {"N": str(i)}})
    written = time.time()
    # the export's T0 is taken by the bootstrap's clock: the records above are more than the 0.5 s overlap older
    wait_until(lambda: time.time() > written + 1.2, "the records to be 1.2 s old")
    stores = {at: str(tmp_path / f"store-{at}") for at in (True, False)}
    for where in stores.values():  # two bootstraps of the same table, one store each
        assert bootstrap.run(ddb, "Horizon", bucket="dynadex-exports", store=where, poll_seconds=0.1)["publish"]["published"]
    for i in range(20):
        ddb.put_item(TableName="Horizon", Item={"pk": {"S": f"new{i}"}, "n": {"N": str(i)}})
    ddb2, streams, s3 = clients()
    got = {}
    for at, where in stores.items():
        with Store(where, read_only=False) as st:
            got[at] = sync_table(st, "Horizon", ddb2, streams, s3, seconds=0,
                                 settings=SyncSettings(overlap_seconds=0.5, at_timestamp=at))
        with Store(where) as st:
            assert verify(st, "Horizon", ddb).ok
    assert got[True]["skipped_old"] == 0 and got[True]["records"] >= 20, got
    assert got[False]["skipped_old"] >= 60, got


def test_a_first_sync_later_than_the_retention_after_t0_is_a_gap_even_if_the_publish_was_recent(roomy, tmp_path):
    """An export of hours and a paused sync: the first sync can start more than the retention after T0 while
    the publish is recent. Its shards have no checkpoints, so nothing else would notice that records from T0
    on were trimmed: the retention is measured from T0 until a sync has run, and the gap is recovered."""
    make_table(roomy, "LateFirst")
    ddb = roomy.client("dynamodb")
    store = str(tmp_path / "store")
    ddb.put_item(TableName="LateFirst", Item={"pk": {"S": "a"}})
    bootstrap.run(ddb, "LateFirst", bucket="dynadex-exports", store=store, poll_seconds=0.1)
    with Store(store, read_only=False) as st:  # as if T0 were 12 s ago (retention 10 s), the publish just now
        t0 = st.table_state("LateFirst").stream_start_micros
        st.apply("LateFirst", [], state_updates={"stream_start_micros": t0 - 12_000_000})
        st.lake.execute("UPDATE dynadex.tables SET synced_at = published_at WHERE table_name = 'LateFirst'")
    ddb.put_item(TableName="LateFirst", Item={"pk": {"S": "b"}})
    stats, report = converge(store, "LateFirst")
    assert stats["recoveries"] >= 1 and report.ok and report.table_items == 2, stats
    with Store(store) as st:
        events = st.status("LateFirst")["tables"][0]["recent_events"]
        assert any(e["kind"] == "recovery" and "retention" in json.dumps(e["detail"]) for e in events), events
