"""A shard that answered a full page has its next page fetched while the sync converts (decision 0042): one
GetRecords in flight per shard at most, every record applied once, and a failed read-ahead read again as usual
(a fake stream, real stores)."""

from __future__ import annotations

import threading

from dynadex.stream.sync import SyncSettings, TableSync
from tests.support.fake_streams import ChainStream, Table, followed_store

RECORDS = 3 * 2 * 2500


class Watched(ChainStream):
    """``ChainStream`` that counts GetRecords in flight per shard, notes which thread sent each, and fails the
    read-ahead calls listed in ``fail`` (by their rank among read-ahead calls) with an expired iterator."""

    def __init__(self, fail=()):
        super().__init__(3, 2, 2500, filters=True, keys=900)
        self.lock = threading.Lock()
        self.in_flight: dict[str, int] = {}
        self.sent: dict[str, int] = {}  # GetRecords per iterator (a page's position): a page fetched twice shows
        self.most_in_flight = 0
        self.ahead_calls = 0
        self.fail = set(fail)
        self.failed = 0

    def get_records(self, ShardIterator, Limit=1000):  # noqa: N803 - boto3's names
        sid = ShardIterator.split("|")[0]
        ahead = threading.current_thread().name.startswith("dynadex-read-ahead")
        with self.lock:
            self.in_flight[sid] = self.in_flight.get(sid, 0) + 1
            self.sent[ShardIterator] = self.sent.get(ShardIterator, 0) + 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight[sid])
            if ahead:
                self.ahead_calls += 1
                failing = self.ahead_calls in self.fail
        try:
            if ahead and failing:
                self.failed += 1
                raise _Expired()
            return super().get_records(ShardIterator, Limit)
        finally:
            with self.lock:
                self.in_flight[sid] -= 1


class _Expired(Exception):
    response = {"Error": {"Code": "ExpiredIteratorException", "Message": "Iterator expired (injected)"}}


def _sync(store, streams, read_ahead: bool) -> dict:
    return TableSync(store, "T", Table(), streams, None, SyncSettings(
        batch_seconds=60, batch_records=1000, backlog_batch_factor=4, overlap_seconds=0, shard_readers=4,
        read_ahead=read_ahead, max_backoff_attempts=1)).run(until=0, until_caught_up=True)


def _contents(store) -> tuple:
    rows = store.query("SELECT key, item FROM row_index.T ORDER BY key")[1]
    return rows, sorted((k, c.sequence_number, c.ended) for k, c in store.checkpoints("T").items())


def test_pages_read_ahead_leave_the_store_reading_in_turn_leaves(tmp_path):
    found = {}
    for ahead in (False, True):
        streams = Watched()
        with followed_store(str(tmp_path / f"a{int(ahead)}")) as store:
            stats = _sync(store, streams, ahead)
            found[ahead] = _contents(store)
        assert stats["records"] == RECORDS  # each record read and converted once
        assert streams.most_in_flight == 1  # never two GetRecords on one shard at once
        assert set(streams.sent.values()) == {1}  # nor one page twice: a page read ahead is taken, not read again
        assert (streams.ahead_calls > 0) == ahead
    assert found[True] == found[False] and len(found[True][0]) == 901


def test_a_failed_read_ahead_is_read_again_as_usual(tmp_path):
    with followed_store(str(tmp_path / "ref")) as ref:
        _sync(ref, Watched(), False)
        expected = _contents(ref)
    streams = Watched(fail={1, 2, 5})
    with followed_store(str(tmp_path / "faulty")) as store:
        stats = _sync(store, streams, True)
        assert streams.failed == 3 and streams.most_in_flight == 1
        assert sum(n - 1 for n in streams.sent.values()) == 3  # only the failed pages were sent again
        assert stats["records"] == RECORDS and _contents(store) == expected
