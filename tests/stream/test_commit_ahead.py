"""A batch commits on its own thread while the next is read (decision 0042): in order, exactly once, and a failed
commit stops the run before any later batch (a fake stream, real stores)."""

from __future__ import annotations

import threading

import pytest

from dynadex.stream.commit_ahead import CommitAhead
from dynadex.stream.sync import SyncSettings, TableSync
from tests.support.fake_streams import ChainStream, Table, followed_store

RECORDS = 4 * 2 * 3000  # 4 roots x 2 generations x 3 000 records, over 700 keys


def _stream() -> ChainStream:
    return ChainStream(4, 2, 3000, filters=True, keys=700)


def _settings(ahead: bool) -> SyncSettings:
    return SyncSettings(batch_seconds=60, batch_records=1000, backlog_batch_factor=4, overlap_seconds=0,
                        commit_ahead=ahead, shard_readers=1)


def _contents(store) -> tuple:
    rows = store.query("SELECT key, item FROM row_index.T ORDER BY key")[1]
    cps = sorted((k, c.sequence_number, c.ended) for k, c in store.checkpoints("T").items())
    return rows, cps


def _recording(store, fail_at: int | None = None) -> list:
    """Wraps ``store.apply``: each commit's thread and checkpoints, in the order they ran; the ``fail_at``-th
    (1-based) raises instead of committing (the fault: a commit that fails on the committer's thread)."""
    calls: list = []
    apply = store.apply

    def recorded(table, changes, checkpoints, **kw):
        calls.append((threading.current_thread().name, [(c.shard_id, c.sequence_number) for c in checkpoints]))
        if len(calls) == fail_at:
            raise RuntimeError("catalog write failed (injected)")
        return apply(table, changes, checkpoints, **kw)

    store.apply = recorded
    return calls


def test_committing_ahead_leaves_the_store_committing_in_turn_leaves(tmp_path):
    results = {}
    for ahead in (False, True):
        with followed_store(str(tmp_path / f"ahead{int(ahead)}")) as store:
            calls = _recording(store)
            stats = TableSync(store, "T", Table(), _stream(), None, _settings(ahead)).run(until=0, until_caught_up=True)
            results[ahead] = _contents(store)
            assert stats["records"] == RECORDS and stats["batches"] == len(calls)
            threads = {name.split("_")[0] for name, _ in calls}
            if ahead:
                assert stats["commits_ahead"] > 0 and "dynadex-commit" in threads
            else:
                assert stats["commits_ahead"] == 0 and threads == {"MainThread"}
            # each shard's checkpoint only moves forward from one commit to the next: batches committed in order
            last: dict = {}
            for _, cps in calls:
                for shard, seq in cps:
                    assert seq > last.get(shard, ""), (shard, seq)
                    last[shard] = seq
    assert results[True] == results[False]
    rows, cps = results[True]
    assert len(rows) == 701 and all(ended for shard, _, ended in cps if shard.endswith("-00000"))


def test_a_failed_commit_ahead_stops_the_run_and_a_rerun_repeats_nothing(tmp_path):
    with followed_store(str(tmp_path / "ref")) as ref:
        TableSync(ref, "T", Table(), _stream(), None, _settings(False)).run(until=0, until_caught_up=True)
        expected = _contents(ref)
    with followed_store(str(tmp_path / "faulty")) as store:
        streams = _stream()
        calls = _recording(store, fail_at=3)
        with pytest.raises(RuntimeError, match="injected"):
            TableSync(store, "T", Table(), streams, None, _settings(True)).run(until=0, until_caught_up=True)
        assert len(calls) == 3 and calls[2][0].startswith("dynadex-commit")  # it failed ahead, on the committer
        # the store holds exactly the two batches before the fault, with their checkpoints
        stored = {k: c.sequence_number for k, c in store.checkpoints("T").items()}
        assert stored == dict(calls[1][1]) | {k: v for k, v in dict(calls[0][1]).items() if k not in dict(calls[1][1])}
        store.apply = store.__class__.apply.__get__(store)  # the fault is gone
        rerun = TableSync(store, "T", Table(), streams, None, _settings(True)).run(until=0, until_caught_up=True)
        # read again only what the two committed batches had not covered: nothing applied twice, nothing lost
        covered = sum(int(seq) - int(_first(streams, shard)) + 1 for shard, seq in stored.items())
        assert rerun["records"] == RECORDS - covered
        assert _contents(store) == expected


def _first(streams: ChainStream, shard: str) -> str:
    return streams.records[shard][0]["dynamodb"]["SequenceNumber"]


def test_commits_run_one_at_a_time_in_order_and_an_error_surfaces_at_the_next_settle():
    ran: list[int] = []
    gate = threading.Event()

    def slow():
        gate.wait(10)
        ran.append(1)

    with CommitAhead(True) as ahead:
        ahead.submit(slow, ahead=True)
        assert ahead.in_flight and ran == []  # submit returned while the commit waits
        gate.set()
        ahead.submit(lambda: ran.append(2), ahead=True)  # starts only after the first ended
        ahead.settle()
        assert ran == [1, 2] and not ahead.in_flight

        def broken():
            raise OSError("disk full (injected)")

        ahead.submit(broken, ahead=True)
        with pytest.raises(OSError, match="injected"):
            ahead.submit(lambda: ran.append(3), ahead=True)
        assert ran == [1, 2]  # the batch after a failed one never commits
    with pytest.raises(OSError, match="injected"):  # and a run's end never hides one
        with CommitAhead(True) as ahead:
            ahead.submit(broken, ahead=True)


def test_off_or_at_the_tip_every_commit_ends_before_submit_returns():
    for enabled, ahead_asked in ((False, True), (True, False)):
        ran: list[int] = []
        with CommitAhead(enabled) as ahead:
            ahead.submit(lambda: ran.append(1), ahead=ahead_asked)
            assert ran == [1] and not ahead.in_flight and ahead.overlapped == 0
