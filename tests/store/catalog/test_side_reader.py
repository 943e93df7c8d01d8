"""The catalog's side reader (store/catalog/side_reader.py): Python's sqlite3 in a child process on one kept,
read-only connection. Each request's statements see one snapshot while another process commits; a failure
(SQLite's error, or the child killed in the middle of a read) raises ``SideReadFailed`` and never answers in
part, and the next request is answered by a new child; it writes nothing; it ends with its reader."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading

import pytest

from dynadex.store.catalog.side_reader import SideReader
from dynadex.store.errors import SideReadFailed
from tests.support.poll import wait_until

# a writer in another process: each transaction adds the same number to both tables, many times over
WRITER = """
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
for n in range(1, int(sys.argv[2]) + 1):
    con.execute("BEGIN IMMEDIATE")
    con.execute("INSERT INTO a VALUES (?)", (n,))
    con.execute("INSERT INTO b VALUES (?)", (n,))
    con.execute("COMMIT")
"""


def _catalog(tmp_path) -> str:
    path = str(tmp_path / "catalog.sqlite")
    con = sqlite3.connect(path, isolation_level=None)
    assert con.execute("PRAGMA journal_mode = wal").fetchone()[0] == "wal"  # as DuckLake's catalog (0008)
    con.execute("CREATE TABLE a (n INTEGER)")
    con.execute("CREATE TABLE b (n INTEGER)")
    con.close()
    return path


def test_a_requests_statements_see_one_snapshot_while_another_process_commits(tmp_path):
    path = _catalog(tmp_path)
    reader = SideReader(path)
    commits = 3000
    writer = subprocess.Popen([sys.executable, "-c", WRITER, path, str(commits)])
    try:
        seen, last, ended = set(), 0, False
        while not ended:
            ended = writer.poll() is not None  # one more read after the last commit
            (_, a), (_, b), (_, c) = reader.read(["SELECT max(n), count(*) FROM a", "SELECT max(n), count(*) FROM b",
                                                  "SELECT count(*) FROM a JOIN b USING (n)"])
            assert a == b and c[0][0] == a[0][1], (a, b, c)  # both tables, and their join, at one commit
            now = a[0][0] or 0
            assert now >= last  # never goes back
            seen.add(now)
            last = now
        assert writer.wait() == 0
        assert last == commits and len(seen) > 3  # it read between commits, not only before and after
    finally:
        if writer.poll() is None:
            writer.kill()
        reader.close()


def test_a_child_killed_in_the_middle_of_a_read_fails_that_read_and_the_next_is_answered(tmp_path):
    reader = SideReader(_catalog(tmp_path))
    try:
        assert reader.read(["SELECT count(*) FROM a"]) == [(["count(*)"], [(0,)])]
        first = reader.pid()
        slow = "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 300000000) SELECT count(*) FROM c"
        failed = []

        def read_slowly():
            try:
                reader.read(["SELECT count(*) FROM a", slow])
            except SideReadFailed as exc:
                failed.append(exc)

        t = threading.Thread(target=read_slowly)
        t.start()
        wait_until(lambda: _busy(first), "the child reading")  # the fault lands mid-read
        os.kill(first, signal.SIGKILL)
        t.join(60)
        assert not t.is_alive() and len(failed) == 1 and isinstance(failed[0].__cause__, (OSError, EOFError))
        assert reader.read(["SELECT count(*) FROM b"]) == [(["count(*)"], [(0,)])]  # a new child answers
        assert reader.started == 2 and reader.pid() not in (None, first)
    finally:
        reader.close()


def _busy(pid: int) -> bool:
    """Whether process ``pid`` is running on a CPU (Linux: its state in /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "R"


def test_sqlites_errors_are_raised_and_the_child_answers_on(tmp_path):
    reader = SideReader(_catalog(tmp_path))
    try:
        with pytest.raises(SideReadFailed, match="no such table"):
            reader.read(["SELECT count(*) FROM a", "SELECT * FROM ducklake_inlined_data_9_9"])
        with pytest.raises(SideReadFailed, match="readonly"):  # opened read-only: it never writes the catalog
            reader.read(["INSERT INTO a VALUES (1)"])
        assert reader.read(["SELECT count(*) FROM a"]) == [(["count(*)"], [(0,)])]
        assert reader.started == 1
    finally:
        reader.close()


def test_the_child_ends_with_its_reader(tmp_path):
    reader = SideReader(_catalog(tmp_path))
    reader.read(["SELECT 1"])
    pid = reader.pid()
    reader.close()
    assert reader.pid() is None
    wait_until(lambda: not os.path.exists(f"/proc/{pid}") or _state(pid) == "Z", "the child gone")


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"
