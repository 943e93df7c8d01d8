"""Maintenance compacts, merges, prunes and expires without changing an answer."""

from __future__ import annotations

import datetime as dt
import json

from dynadex.store import Change, Store
from dynadex.types import canonical_item, canonical_json
from tests.support.store import cli, publish_items


def test_maintenance_compacts_and_expires_without_changing_answers(tmp_path):
    publish_items(tmp_path, "T", [{"pk": {"S": f"k{i}"}, "n": {"N": str(i)}} for i in range(50)])
    with Store(str(tmp_path), read_only=False) as st:
        for round_ in range(6):  # many small commits: many small files and snapshots
            st.apply("T", [Change({"pk": {"S": f"k{i}"}}, canonical_item({"pk": {"S": f"k{i}"}, "n": {"N": str(100 * round_ + i)}}),
                                  10 + round_, "s") for i in range(0, 50, 3)])
        before = sorted(st.dump("T"))
        snapshots = st.query("SELECT count(*) FROM lake.snapshots()")[1][0][0]
        st.compact()
        expired = st.expire(dt.timedelta(seconds=0))
        assert expired["expired_snapshots"] >= snapshots - 2
        assert sorted(st.dump("T")) == before
        assert st.query("SELECT count(*) FROM lake.snapshots()")[1][0][0] < snapshots
        assert st.find("T", "n=503") == [canonical_json({"pk": {"S": "k3"}, "n": {"N": "503"}})]
    done = cli(tmp_path, "maintain", "--keep-seconds", "0")
    assert done.returncode == 0 and json.loads(done.stdout)["compacted"] is True


def test_maintenance_merges_into_files_sized_for_point_lookups(tmp_path):
    """``dynadex maintain`` merged files with DuckLake's defaults: up to 512 MB, inverted entries in 122 880-row
    groups; on a 10 M-item store `get` became 4x and `find` 2.5x slower than over the bulk load's range files
    (decision 0022). The store now sets the inverted index's row groups to 16 384 rows (the row index's stay at
    4 096) and the target file size to 64 MB, so merged files keep the layout lookups need."""
    from dynadex.store.catalog.lake import TARGET_FILE_SIZE

    publish_items(tmp_path, "T", [{"pk": {"S": "seed"}}])
    with Store(str(tmp_path), read_only=False) as st:
        options = {(r[0], r[1]): r[2] for r in st.lake.con.execute(
            "SELECT option_name, scope_entry, value FROM lake.options()").fetchall()}
        assert options[("parquet_row_group_size", "row_index")] == "4096"
        assert options[("parquet_row_group_size", "inverted_index")] == "16384"
        assert options[("target_file_size", None)] == str(int(TARGET_FILE_SIZE.removesuffix("MB")) * 1_000_000)
        for b in range(3):  # batches above the inline limit: three files per index
            st.apply("T", [Change({"pk": {"S": f"k{b}-{i}"}}, canonical_item(
                {"pk": {"S": f"k{b}-{i}"}, "a": {"S": f"x{i % 7}"}, "n": {"N": str(i)}, "c": {"S": "Rome"}}), 5, "s")
                for i in range(2000)])
        st.compact()
        files = [r[0] for r in st.lake.con.execute(
            "SELECT data_file FROM ducklake_list_files('lake', 'T', schema => 'inverted_index')").fetchall()]
        groups = [r[1] for f in files for r in st.lake.con.execute(
            "SELECT DISTINCT row_group_id, row_group_num_rows FROM parquet_metadata(?)", [f]).fetchall()]
        assert sum(groups) >= 24_000 and len(files) <= 2  # merged ...
        assert max(groups) <= 16_384 and len(groups) >= 2  # ... into lookup-sized groups
        assert st.find("T", "a=x3") and len(st.find("T", "c=Rome")) == 6000


def test_superseded_inverted_entries_never_answer_and_maintain_prunes_them(tmp_path):
    """Batches only append inverted entries; find keeps the key's current write, even within one second."""
    item = lambda city, n: canonical_item({"pk": {"S": "a"}, "city": {"S": city}, "n": {"N": str(n)}})  # noqa: E731
    publish_items(tmp_path, "T", [item("Paris", 0), canonical_item({"pk": {"S": "b"}, "city": {"S": "Paris"}})])
    with Store(str(tmp_path), read_only=False) as st:
        # two batches within the same second: same version, so only the write id tells them apart
        st.apply("T", [Change({"pk": {"S": "a"}}, item("Rome", 1), 7_000_000, "s1")])
        st.apply("T", [Change({"pk": {"S": "a"}}, item("Oslo", 2), 7_000_000, "s2")])
        st.apply("T", [Change({"pk": {"S": "b"}}, None, 7_000_000, "s3")])  # a delete leaves entries behind too
        assert st.find("T", "city=Paris") == [] and st.find("T", "city=Rome") == []
        assert st.find("T", "city=Oslo") == [canonical_json(item("Oslo", 2))]
        assert st.find("T", "n=1") == [] and st.find("T", "n=0") == [] and len(st.find("T", "n=2")) == 1
        assert st.find("T", "city=Oslo", limit=1) == st.find("T", "city=Oslo")
        raw = st.query("SELECT count(*) FROM inverted_index.T")[1][0][0]
        assert raw > 3  # the superseded entries are still stored ...
        answers = {q: st.find("T", q) for q in ("city=Paris", "city=Rome", "city=Oslo", "n=2", "pk=a", "pk=b")}
        result = st.compact()
        assert result["stale_inverted_entries_removed"] == raw - 3  # ... until maintenance prunes them
        assert st.query("SELECT count(*) FROM inverted_index.T")[1][0][0] == 3  # pk, city, n of the one live item
        assert {q: st.find("T", q) for q in answers} == answers
