"""The flush of inlined rows: on one DuckDB thread, the connection's own setting back after it, and before every
fold (decision 0033)."""

from __future__ import annotations

from dynadex.store import Change, Checkpoint, Store
from dynadex.types import canonical_item
from tests.support.store import Hooked, publish_items


def _batches(st, n: int, first: int = 0) -> None:
    """``n`` one-change batches, each adding an attribute never seen (a column of the column index)."""
    for b in range(first, first + n):
        key = {"pk": {"S": f"k{b % 5}"}}
        st.apply("T", [Change(key, canonical_item({**key, f"a{b}": {"S": "x"}}), 10 + b, "s")],
                 [Checkpoint("s1", str(b))])


def _inlined_rows(st) -> int:
    """Rows of table T still inlined in the catalog, every index and schema version."""
    con = st.lake.con
    tables = con.execute("SELECT DISTINCT i.table_name FROM __ducklake_metadata_lake.ducklake_inlined_data_tables i "
                         "JOIN __ducklake_metadata_lake.ducklake_table t USING (table_id) "
                         "WHERE t.table_name = 'T'").fetchall()
    return sum(con.execute(f"SELECT count(*) FROM __ducklake_metadata_lake.{name}").fetchone()[0]
               for (name,) in tables)


def test_the_flush_runs_on_one_thread_and_gives_the_connection_its_threads_back(tmp_path):
    publish_items(tmp_path, "T", [{"pk": {"S": f"k{i}"}} for i in range(5)])
    seen = []
    with Store(str(tmp_path), read_only=False, threads=2) as st:
        _batches(st, 4)
        assert _inlined_rows(st) > 0
        con = st.lake.con
        st.lake.con = Hooked(con, before=lambda sql: "flush_inlined" in sql and seen.append(
            con.execute("SELECT current_setting('threads')").fetchone()[0]))
        st.flush_inlined()
        st.lake.con = con
        assert seen == [1]  # the CALL ran on one thread
        assert con.execute("SELECT current_setting('threads')").fetchone()[0] == 2
        assert _inlined_rows(st) == 0
        assert sorted(st.dump("T")) and st.checkpoints("T")["s1"].sequence_number == "3"


def test_a_fold_flushes_the_inlined_rows_first_unless_told_they_just_were(tmp_path):
    """A fold with rows of a batch that added a column still inlined failed its commit every retry alike in the
    DuckLake we run ("Referenced column ... not found"): the fold flushes first."""
    publish_items(tmp_path, "T", [{"pk": {"S": f"k{i}"}} for i in range(5)])
    with Store(str(tmp_path), read_only=False) as st:
        _batches(st, 3)
        before = sorted(st.dump("T"))
        calls = []
        con = st.lake.con
        st.lake.con = Hooked(con, before=lambda sql: calls.append(
            "flush" if "flush_inlined" in sql else "rewrite" if "rewrite_data_files" in sql else None))
        st.fold_small_files("T", at_files=2, flush_first=False)
        assert "flush" not in calls
        assert _inlined_rows(st) > 0
        st.fold_small_files("T", at_files=2)
        st.lake.con = con
        assert calls.count("flush") == 1 and _inlined_rows(st) == 0
        assert sorted(st.dump("T")) == before
