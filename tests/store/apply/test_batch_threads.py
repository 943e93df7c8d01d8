"""A batch's statements on the threads ``Store.apply(threads=)`` asks for, the store's own setting back after it,
also when the batch fails (decision 0045)."""

from __future__ import annotations

import json

import pytest

from dynadex.store import Change, Checkpoint, Store, TableBatch
from dynadex.types import canonical_item
from tests.support.store import Hooked, publish_items


def _changes(n: int, version: int) -> list[Change]:
    return [Change({"pk": {"S": f"k{i}"}}, canonical_item({"pk": {"S": f"k{i}"}, "v": {"N": str(version)}}),
                   version, "s") for i in range(n)]


def _threads_seen(st, n: int, threads: int | None, version: int, *, many: bool = False) -> set[int]:
    """The DuckDB threads each INSERT and DELETE of one batch of ``n`` changes ran on (``many``: committed by
    ``apply_many`` beside a small batch of table U that asks for nothing)."""
    con, seen = st.lake.con, set()

    def before(sql: str) -> None:
        if sql.lstrip().upper().startswith(("INSERT", "DELETE")):
            seen.add(int(con.execute("SELECT current_setting('threads')").fetchone()[0]))

    st.lake.con = Hooked(con, before=before)
    try:
        if many:
            st.apply_many([TableBatch("U", _changes(3, version), [Checkpoint("s1", str(version))]),
                           TableBatch("T", _changes(n, version), [Checkpoint("s1", str(version))],
                                      threads=threads)])
        else:
            st.apply("T", _changes(n, version), [Checkpoint("s1", str(version))], threads=threads)
    finally:
        st.lake.con = con
    return seen


def _threads(st) -> int:
    return int(st.lake.con.execute("SELECT current_setting('threads')").fetchone()[0])


def test_a_batch_runs_on_the_threads_asked_and_the_store_gets_its_own_back(tmp_path):
    publish_items(tmp_path, "T", [{"pk": {"S": f"k{i}"}} for i in range(50)])
    with Store(str(tmp_path), read_only=False, threads=1) as st:
        assert _threads_seen(st, 100, 2, version=10) == {2}
        assert _threads(st) == 1
        assert _threads_seen(st, 100, None, version=11) == {1}  # not asked: the store's own
        assert _threads_seen(st, 100, 1, version=12) == {1}
        assert _threads(st) == 1
        assert json.loads(st.get("T", '{"pk":{"S":"k7"}}'))["v"] == {"N": "12"}


def test_a_shared_commit_runs_on_the_most_threads_any_of_its_batches_asks(tmp_path):
    for table in ("T", "U"):
        publish_items(tmp_path, table, [{"pk": {"S": f"k{i}"}} for i in range(5)])
    with Store(str(tmp_path), read_only=False, threads=1) as st:
        assert _threads_seen(st, 100, 2, version=10, many=True) == {2}
        assert _threads(st) == 1
        assert _threads_seen(st, 100, None, version=11, many=True) == {1}
        assert json.loads(st.get("U", '{"pk":{"S":"k2"}}'))["v"] == {"N": "11"}


def test_a_failed_batch_gives_the_store_its_threads_back_and_commits_nothing(tmp_path):
    publish_items(tmp_path, "T", [{"pk": {"S": f"k{i}"}} for i in range(50)])
    with Store(str(tmp_path), read_only=False, threads=1) as st:
        con = st.lake.con

        def fail(sql: str) -> None:
            if sql.lstrip().upper().startswith("INSERT"):
                raise RuntimeError("injected: the disk went away mid-batch")

        st.lake.con = Hooked(con, before=fail)
        try:
            with pytest.raises(RuntimeError, match="injected"):
                st.apply("T", _changes(100, 10), [Checkpoint("s1", "10")], threads=2)
        finally:
            st.lake.con = con
        assert _threads(st) == 1
        assert st.checkpoints("T") == {}
        assert json.loads(st.get("T", '{"pk":{"S":"k7"}}')) == {"pk": {"S": "k7"}}
