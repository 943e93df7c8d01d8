"""The WAL index's header (store/catalog/wal_index.py) changes with every commit to the catalog, from this
process or another, and is never taken when it cannot be trusted (copies that disagree, not initialised, a
file replaced or gone); the newest snapshot a served get reads (``point_reads.newest``) skips its catalog read
only while the header is unchanged, and is DuckLake's newest after every commit."""

from __future__ import annotations

import os
import subprocess
import sys

from dynadex.store import Change, Checkpoint, Store
from dynadex.store import point_reads as points
from dynadex.store.catalog.wal_index import HEADER, WalIndex
from dynadex.types import canonical_item
from tests.support.paths import REPO
from tests.support.store import publish_items


def _header(change: int, init: int = 1) -> bytes:
    head = bytearray(HEADER)
    head[8:12] = change.to_bytes(4, "little")
    head[12] = init
    return bytes(head)


def test_a_header_is_taken_only_when_its_copies_agree_initialised_and_its_file_is_the_one_opened(tmp_path):
    db = tmp_path / "x.sqlite"
    shm = tmp_path / "x.sqlite-shm"
    index = WalIndex(str(db))
    assert index.token() is None  # no index file yet
    shm.write_bytes(_header(1) * 2 + b"\0" * 64)
    first = index.token()
    assert first == _header(1)
    assert index.token() == first
    shm.write_bytes(_header(2) + _header(1) + b"\0" * 64)  # a commit writing its copies: not taken
    assert index.token() is None
    shm.write_bytes(_header(2, init=0) * 2)  # not initialised
    assert index.token() is None
    shm.write_bytes(_header(2) * 2)
    assert index.token() == _header(2)
    # replaced by a file of the same bytes (the index rebuilt): the opened one is not taken, the new one is
    os.rename(shm, tmp_path / "old-shm")
    (tmp_path / "x.sqlite-shm").write_bytes(_header(2) * 2)
    assert index.token() is None
    assert index.token() == _header(2)
    os.unlink(shm)  # removed: not known
    assert index.token() is None


def _commit(w: Store, n: int) -> None:
    key = {"pk": {"S": f"w{n}"}}
    w.apply("T", [Change(key, canonical_item({**key, "n": {"N": str(n)}}), 1000 + n, "s")],
            [Checkpoint("s1", str(n))])


class _Counting:
    def __init__(self, con):
        self.con, self.statements = con, 0

    def execute(self, *args, **kwargs):
        self.statements += 1
        return self.con.execute(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.con, name)


WRITE_IN_CHILD = """
import sys
from dynadex.store import Change, Checkpoint, Store
from dynadex.types import canonical_item
key = {"pk": {"S": "child"}}
with Store(sys.argv[1], read_only=False) as w:
    w.apply("T", [Change(key, canonical_item({**key, "n": {"N": "1"}}), 5000, "s")], [Checkpoint("s1", "child")])
"""


def test_the_newest_snapshot_follows_every_commit_and_is_not_read_again_while_none_came(tmp_path):
    store = tmp_path / "store"
    publish_items(store, "T", [{"pk": {"S": f"k{i}"}} for i in range(50)])
    with Store(str(store), read_only=False) as w, Store(str(store), sandbox=True) as st:
        cursor = points._cursor(st.lake)
        assert cursor.wal_index is not None
        cursor.side = None  # each read of the catalog a DuckDB statement, counted (the side reader's: its own test)
        counted = _Counting(cursor._con)
        cursor._con = counted
        seen = set()
        for n in range(12):
            token = cursor.wal_index.token()
            sid, _ = points.newest(st.lake)
            assert sid == st.lake.current_snapshot()
            seen.add(sid)
            before = counted.statements
            assert points.newest(st.lake)[0] == sid and cursor.wal_index.token() == token
            assert counted.statements == before  # nothing committed: no read of the catalog
            _commit(w, n)
            assert cursor.wal_index.token() != token
            assert points.newest(st.lake)[0] == sid + 1 == st.lake.current_snapshot()
            assert counted.statements == before + 1
        assert len(seen) == 12
        # a commit of another process
        sid = points.newest(st.lake)[0]
        child = subprocess.run([sys.executable, "-c", WRITE_IN_CHILD, str(store)], capture_output=True, text=True,
                               env={**os.environ, "PYTHONPATH": f"{REPO / 'include'}:{REPO / 'plugins'}"})
        assert child.returncode == 0, child.stderr[-2000:]
        assert points.newest(st.lake)[0] == st.lake.current_snapshot() > sid


def test_off_the_catalog_is_read_at_every_look(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNADEX_CATALOG_WAL_INDEX", "0")
    store = tmp_path / "store"
    publish_items(store, "T", [{"pk": {"S": "k"}}])
    with Store(str(store), sandbox=True) as st:
        cursor = points._cursor(st.lake)
        assert cursor.wal_index is None
        cursor.side = None  # each read of the catalog a DuckDB statement, counted (the side reader's: its own test)
        counted = _Counting(cursor._con)
        cursor._con = counted
        points.newest(st.lake)
        points.newest(st.lake)
        assert counted.statements == 2
