"""The server's gets by point reads (store/point_reads.py): taken unless ``DYNADEX_POINT_READS=0``, and whole
snapshots while a writer in another process commits batches, flushes inlined rows, folds small files and runs
maintenance: within one read every key answers from the same snapshot, a client never sees a snapshot or a
counter go back, and no key that exists is missed."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading

import pytest

from dynadex.serve import readers as readers_module
from dynadex.serve.readers import Readers
from dynadex.store import Change, Checkpoint, Store
from dynadex.types import canonical_item
from tests.support.poll import wait_until
from tests.support.serve import ROOT
from tests.support.store import publish_items

KEYS = 200
BATCHES = 60
READERS = 4

WRITER = """
import random, sys
from dynadex.store import Change, Checkpoint, Store
from dynadex.types import canonical_item
rnd = random.Random(5)
with Store(sys.argv[1], read_only=False) as st:
    for b in range(1, {batches} + 1):
        keys = [{{"pk": {{"S": "c"}}}}] + [{{"pk": {{"S": f"k{{rnd.randrange({keys})}}"}}}} for _ in range(3)]
        st.apply("T", [Change(k, canonical_item({{**k, "n": {{"N": str(b)}}}}), 100 + b, "s") for k in keys],
                 [Checkpoint("s1", str(b))])
        if b % 5 == 4:
            st.flush_inlined()
        if b % 7 == 6:
            st.fold_small_files("T", at_files=2)
        if b % 30 == 29:
            st.compact()
"""


@pytest.mark.parametrize("value", ["1", "0"])
def test_the_setting_turns_point_reads_off(tmp_path, monkeypatch, value):
    store = tmp_path / "store"
    publish_items(store, "T", [{"pk": {"S": "a"}}])
    monkeypatch.setenv("DYNADEX_POINT_READS", value)
    readers = Readers(str(store), connections=1)
    try:
        item, _, _ = readers.read(lambda r: r.get("T", '{"pk":{"S":"a"}}'), timeout=30, tables=["T"], gets=True)
        assert item == '{"pk":{"S":"a"}}'
        assert (readers.point_reads is not None) == (value == "1")
        if value == "1":
            assert readers.point_reads.counts["fast"] == 1
    finally:
        readers.close()


@pytest.mark.slow  # a writer of the same pattern as test_whole_snapshots' died of a native crash now and then
def test_gets_read_whole_snapshots_while_a_writer_flushes_folds_and_compacts(tmp_path):
    store = tmp_path / "store"
    publish_items(store, "T", [{"pk": {"S": f"k{i}"}, "n": {"N": "0"}} for i in range(KEYS)]
                  + [{"pk": {"S": "c"}, "n": {"N": "0"}}])
    readers = Readers(str(store), connections=2)
    writer = subprocess.Popen([sys.executable, "-X", "faulthandler", "-c",
                               WRITER.format(batches=BATCHES, keys=KEYS), str(store)],
                              cwd=ROOT, stderr=subprocess.PIPE, text=True)
    problems: list = []
    seen: dict[int, int] = {}  # snapshot -> the counter's value in it
    lock = threading.Lock()
    done = [0] * READERS

    def client(i: int) -> None:
        rnd = random.Random(i)
        last_snapshot = last_c = 0
        while writer.poll() is None or done[i] < 5:
            keys = ["c"] + [f"k{rnd.randrange(KEYS)}" for _ in range(3)]

            def work(reader):
                return [reader.get("T", json.dumps({"pk": {"S": k}})) for k in keys]

            try:
                items, snapshot, _ = readers.read(work, timeout=60, tables=["T"], gets=True)
            except Exception as exc:  # noqa: BLE001 - every failure is a finding
                with lock:
                    problems.append(("failed", repr(exc)))
                continue
            done[i] += 1
            if any(item is None for item in items):
                problems.append(("missed", snapshot.id, keys, items))
                continue
            c, *others = [int(json.loads(item)["n"]["N"]) for item in items]
            with lock:
                if seen.setdefault(snapshot.id, c) != c:
                    problems.append(("two counters in one snapshot", snapshot.id, seen[snapshot.id], c))
            if snapshot.id < last_snapshot or c < last_c:
                problems.append(("went back", last_snapshot, snapshot.id, last_c, c))
            if any(n > c for n in others):  # every batch writes the counter: no item is newer than it
                problems.append(("newer than the counter", snapshot.id, c, others))
            last_snapshot, last_c = snapshot.id, c

    threads = [threading.Thread(target=client, args=(i,)) for i in range(READERS)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=600)
        assert writer.wait(timeout=60) == 0, writer.stderr.read()
        assert not problems, problems[:5]
        assert len(set(seen.values())) > 3, seen  # the reads did overlap the writes
        counts = readers.point_reads.counts
        assert counts["fast"] > counts["fallback"] and counts["detached"] > 0, counts
        print(f"{sum(done)} reads over {len(seen)} snapshots; point reads {dict(counts)}")
        with Store(str(store), sandbox=True) as st:  # at the end, every key as DuckLake answers it
            keys = [json.dumps({"pk": {"S": k}}) for k in ["c"] + [f"k{i}" for i in range(KEYS)]]
            fast = st.read_snapshot(lambda r: [r.get("T", k) for k in keys], point_reads=readers.point_reads)
            slow = st.read_snapshot(lambda r: [r.get("T", k) for k in keys])
            assert fast == slow and json.loads(fast[0][0])["n"] == {"N": str(BATCHES)}
    finally:
        if writer.poll() is None:
            writer.kill()
        readers.close()


def test_the_warmer_reads_a_new_snapshot_before_a_get_meets_it(tmp_path, monkeypatch):
    """A commit to the catalog, then no get: the warmer makes the plan and the sync state of the table got
    before, at the new snapshot, kept as a checked read keeps them; the next get makes no plan and answers the
    new item. A table never found is not warmed."""
    monkeypatch.setenv("DYNADEX_SERVE_WARM_SECONDS", "0.005")
    monkeypatch.setattr(readers_module, "IDLE_AFTER_SECONDS", 3600.0)  # a slow commit here is no idle server
    store = tmp_path / "store"
    publish_items(store, "T", [{"pk": {"S": f"k{i}"}, "n": {"N": "0"}} for i in range(20)])
    readers = Readers(str(store), connections=2)
    try:
        get = lambda r: r.get("T", '{"pk":{"S":"k3"}}')  # noqa: E731
        _, first, _ = readers.read(get, timeout=30, tables=["T"], gets=True)
        with pytest.raises(Exception):
            readers.read(lambda r: r.get("Nope", '{"pk":{"S":"k3"}}'), timeout=30, tables=["Nope"], gets=True)
        assert list(readers._hot) == ["T"]
        got_at = readers._last_get
        pr = readers.point_reads
        with Store(str(store), read_only=False) as w:
            for b in range(1, 4):
                key = {"pk": {"S": "k3"}}
                w.apply("T", [Change(key, canonical_item({**key, "n": {"N": str(b)}}), 100 + b, "s")],
                        [Checkpoint("s1", str(b))])
                sid = w.lake.current_snapshot()
                assert sid > first.id
                wait_until(lambda: pr.kept("T", sid) and (sid, "T") in readers._states, f"snapshot {sid} warmed",
                           timeout=30)
                assert readers._last_get == got_at  # the warmer's reads are no client's gets
                plans = pr.counts["plans"]
                item, snapshot, fresh = readers.read(get, timeout=30, tables=["T"], gets=True)
                assert snapshot.id == sid and json.loads(item)["n"] == {"N": str(b)}
                assert pr.counts["plans"] == plans and fresh["T"] is not None
                got_at = readers._last_get
    finally:
        readers.close()
    assert not readers._warmer.is_alive()


def test_no_warmer_when_set_to_0(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNADEX_SERVE_WARM_SECONDS", "0")
    store = tmp_path / "store"
    publish_items(store, "T", [{"pk": {"S": "a"}}])
    readers = Readers(str(store), connections=1)
    try:
        assert readers._warmer is None
    finally:
        readers.close()
