"""The converged index on real DuckLake files: types, schema growth, conflicts, versions, publish, bad input."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from decimal import Decimal

import pytest

from dynadex.store import Change, Checkpoint, PublishSpec, Store
from dynadex.store.errors import PublishRefused, QueryError, StoreError
from dynadex.store.layout.names import name_text
from dynadex.types import canonical_item, canonical_json
from tests.support.store import cli, publish_items

EVERY_TYPE = {
    "pk": {"S": "k1"},
    "s": {"S": "héllo ☃"},
    "empty": {"S": ""},
    "int": {"N": "42"},
    "dec": {"N": "-12.5"},
    "big": {"N": "12345678901234567890123456789012345678"},
    "tiny": {"N": "1E-130"},
    "huge": {"N": "9.9999999999999999999999999999999999999E+125"},
    "bin": {"B": "AAEC/w=="},
    "yes": {"BOOL": True},
    "nil": {"NULL": True},
    "ss": {"SS": ["b", "a"]},
    "ns": {"NS": ["3", "1.5"]},
    "bs": {"BS": ["Yg==", "YQ=="]},
    "list": {"L": [{"S": "x"}, {"N": "2"}, {"BOOL": False}, {"NULL": True}, {"M": {"q": {"S": "in list"}}}]},
    "map": {"M": {"inner": {"M": {"deep": {"N": "7"}}}, "flag": {"BOOL": False}}},
}


def test_every_type_round_trips_through_each_index(tmp_path):
    publish_items(tmp_path, "T", [EVERY_TYPE, {"pk": {"S": "k2"}, "int": {"N": "1"}}])
    with Store(str(tmp_path)) as st:
        # row index: exact
        assert st.get("T", '{"pk":{"S":"k1"}}') == canonical_json(EVERY_TYPE)
        assert list(st.dump("T"))[0] == canonical_json(EVERY_TYPE)
        # column index: typed columns
        cols, rows = st.query('SELECT s, empty, "int", dec, big, bin, yes, ss, ns, bs, list, "map.inner.deep", '
                              '"map.flag", tiny, huge FROM T WHERE pk = \'k1\'')
        row = dict(zip(cols, rows[0]))
        assert row["s"] == "héllo ☃" and row["empty"] == ""
        assert row["int"] == 42 and row["dec"] == Decimal("-12.5")
        assert row["big"] == Decimal("12345678901234567890123456789012345678")
        assert row["bin"] == b"\x00\x01\x02\xff" and row["yes"] is True
        assert row["ss"] == ["a", "b"] and row["ns"] == [Decimal("1.5"), Decimal("3")]
        assert row["bs"] == [b"a", b"b"]
        assert row["list"] == ["x", "2", "false", None, '{"M":{"q":{"S":"in list"}}}']
        assert row["map.inner.deep"] == 7 and row["map.flag"] is False
        # a path that only ever held NULL has no column (NULL is SQL NULL in whatever column a path has)
        assert "nil" not in [r[0] for r in st.query("SELECT column_name FROM dynadex.columns")[1]]
        types = dict(st.query("SELECT column_name, sql_type FROM dynadex.columns WHERE table_name = 'T'")[1])
        assert types["int"] == "BIGINT" and types["big"] == "DECIMAL(38,0)" and types["dec"] == "DECIMAL(18,9)"
        assert types["tiny"] == "DOUBLE" and types["huge"] == "DOUBLE"  # beyond DECIMAL(38): approximate column ...
        assert row["tiny"] == pytest.approx(1e-130)
        assert '"tiny":{"N":"0.' + "0" * 129 + '1"}' in st.get("T", '{"pk":{"S":"k1"}}')  # ... exact row index
        # inverted index: scalars, set members, list elements, nested paths
        assert st.find("T", "s=héllo ☃") == [canonical_json(EVERY_TYPE)]
        assert st.find("T", "ss=a") == st.find("T", "ns=1.5") == st.find("T", "ns=1.50") == [canonical_json(EVERY_TYPE)]
        assert st.find("T", "bs=YQ==") == st.find("T", "list=x") == st.find("T", "list.q=in list") != []
        assert st.find("T", "map.inner.deep=7") == st.find("T", 'map.inner.deep={"N":"7.0"}') != []
        assert st.find("T", "yes=true") != [] and st.find("T", "nil=null") != []
        assert len(st.find("T", "int=42")) == 1 and len(st.find("T", "int=1")) == 1
        assert st.find("T", "s=nobody") == []
        inv = st.query("SELECT path, kind, value FROM inverted_index.T WHERE key = '{\"pk\":{\"S\":\"k1\"}}' ORDER BY ALL")[1]
        assert ("empty", "S", "") in inv and ("bin", "B", "AAEC/w==") in inv and ("nil", "NULL", None) in inv


def test_hostile_attribute_and_table_names(tmp_path):
    names = ['a.b', 'sp ace', 'quo"te', "ap'os", "select", "--comment", "semi;colon", "日本語", "x; DROP TABLE T; --", "_key"]
    item = {"pk": {"S": "p"}, **{n: {"S": f"v-{i}"} for i, n in enumerate(names)}, "a": {"M": {"b": {"S": "nested"}}}}
    table = "we-ird.Table_1"
    publish_items(tmp_path, table, [item])
    with Store(str(tmp_path)) as st:
        reg = dict(st.query(f"SELECT column_name, path FROM dynadex.columns WHERE table_name = '{table}'")[1])
        # every attribute got its own column; the top-level a.b is escaped apart from map a's b; _key did not clash
        assert len(reg) == len(names) + 2
        assert {"a\\.b", "a.b", "_key#2"} <= set(reg) and json.loads(reg["a.b"]) == ["a", "b"]
        for i, n in enumerate(names):
            col = next(c for c, p in reg.items() if json.loads(p) == [n])
            q = '"' + col.replace('"', '""') + '"'
            assert st.query(f'SELECT {q} FROM "{table}"')[1] == [(f"v-{i}",)]
            assert st.find(table, f"{name_text(n)}=v-{i}") == [canonical_json(item)]
        assert st.find(table, "a.b=nested") == [canonical_json(item)] and st.find(table, "a.b=v-0") == []
        assert st.get(table, '{"pk":{"S":"p"}}') == canonical_json(item)


def test_schema_growth_and_type_conflicts_never_fail(tmp_path):
    publish_items(tmp_path, "T", [{"pk": {"S": "a"}, "price": {"N": "10"}}, {"pk": {"S": "b"}, "price": {"N": "11"}}])
    with Store(str(tmp_path), read_only=False) as st:
        r = st.apply("T", [
            Change({"pk": {"S": "c"}}, canonical_item({"pk": {"S": "c"}, "price": {"S": "n/a"}, "new": {"N": "1"}}), 2, "s"),
            Change({"pk": {"S": "d"}}, canonical_item({"pk": {"S": "d"}, "price": {"N": "1.25"}}), 2, "s"),
            Change({"pk": {"S": "e"}}, canonical_item({"pk": {"S": "e"}, "price": {"M": {"amount": {"N": "3"}}}}), 2, "s"),
        ])
        assert r["upserts"] == 3 and r["columns_added"] == 4
        cols, rows = st.query('SELECT pk, price, "price:S", "price:double", new, "price.amount" FROM T ORDER BY pk')
        assert rows == [
            ("a", 10, None, None, None, None),
            ("b", 11, None, None, None, None),
            ("c", None, "n/a", None, 1, None),
            ("d", None, None, 1.25, None, None),  # a decimal in a BIGINT column overflows to price:double
            ("e", None, None, None, None, 3),
        ]
        assert json.loads(st.get("T", '{"pk":{"S":"d"}}'))["price"] == {"N": "1.25"}  # exact in the row index
    # old data files were not rewritten: the first snapshot's files are still referenced
    with Store(str(tmp_path)) as st:
        assert st.query("SELECT count(*) FROM T")[1] == [(5,)]


def test_stale_versions_never_overwrite_newer(tmp_path):
    publish_items(tmp_path, "T", [{"pk": {"S": "a"}, "v": {"N": "1"}}], version=100)
    with Store(str(tmp_path), read_only=False) as st:
        r = st.apply("T", [Change({"pk": {"S": "a"}}, canonical_item({"pk": {"S": "a"}, "v": {"N": "0"}}), 99, "old")])
        assert r["stale"] == 1 and r["upserts"] == 0
        assert st.apply("T", [Change({"pk": {"S": "a"}}, None, 50, "old delete")])["stale"] == 1
        r = st.apply("T", [
            Change({"pk": {"S": "a"}}, canonical_item({"pk": {"S": "a"}, "v": {"N": "2"}}), 100, "same time"),
            Change({"pk": {"S": "a"}}, canonical_item({"pk": {"S": "a"}, "v": {"N": "3"}}), 101, "newer"),
        ])
        assert r["upserts"] == 1
        assert json.loads(st.get("T", '{"pk":{"S":"a"}}'))["v"] == {"N": "3"}
        assert st.query("SELECT version, origin FROM row_index.T")[1] == [(101, "newer")]
        assert st.query("SELECT v FROM T")[1] == [(3,)]
        assert st.find("T", "v=3") and not st.find("T", "v=1")
        st.apply("T", [Change({"pk": {"S": "a"}}, None, 102, "delete")], [Checkpoint("shard-1", "77")])
        assert st.get("T", '{"pk":{"S":"a"}}') is None
        assert st.query("SELECT count(*) FROM T")[1] == [(0,)] and not st.find("T", "v=3")
        assert st.status("T")["tables"][0]["checkpoints"][0]["sequence_number"] == "77"


def test_failed_batch_commits_nothing(tmp_path):
    publish_items(tmp_path, "T", [{"pk": {"S": "a"}, "v": {"N": "1"}}])
    with Store(str(tmp_path), read_only=False) as st:
        bad = Change({"pk": {"S": "b"}}, canonical_item({"pk": {"N": "1"}, "v": {"N": "1"}}), 5, "wrong key type")
        good = Change({"pk": {"S": "a"}}, None, 5, "delete")
        with pytest.raises(ValueError, match="key"):
            st.apply("T", [good, bad], [Checkpoint("shard-1", "9")])
        assert st.get("T", '{"pk":{"S":"a"}}') is not None
        assert st.status("T")["tables"][0]["checkpoints"] == []


def test_publish_refuses_and_changes_nothing(tmp_path):
    publish_items(tmp_path, "T", [{"pk": {"S": "old"}}], build="b0")
    with Store(str(tmp_path), read_only=False) as st:
        w = st.chunk_writer("T", "b1", "c0", ("pk",), ("S",))
        w.add(canonical_item({"pk": {"S": "a"}}), 1, "t")
        w.finish()
        with pytest.raises(PublishRefused, match="chunk\\(s\\) not built: c1"):
            st.publish(PublishSpec("T", "b1", ["c0", "c1"], ("pk",), ("S",)))
        with pytest.raises(PublishRefused, match="c0 holds 1 items, expected 2"):
            st.publish(PublishSpec("T", "b1", ["c0"], ("pk",), ("S",), expected_items={"c0": 2}))
        with pytest.raises(PublishRefused, match="the export has 5"):
            st.publish(PublishSpec("T", "b1", ["c0"], ("pk",), ("S",), total_items=5))
        w = st.chunk_writer("T", "b1", "c1", ("pk",), ("S",))
        w.add(canonical_item({"pk": {"S": "a"}}), 1, "t")
        w.finish()
        with pytest.raises(PublishRefused, match="appears 2 times"):
            st.publish(PublishSpec("T", "b1", ["c0", "c1"], ("pk",), ("S",)))
        assert [json.loads(i)["pk"] for i in st.dump("T")] == [{"S": "old"}]
        # a chunk re-run replaces its segment: c1 now holds another key, publish succeeds
        w = st.chunk_writer("T", "b1", "c1", ("pk",), ("S",))
        w.add(canonical_item({"pk": {"S": "b"}}), 1, "t")
        w.finish()
        assert st.publish(PublishSpec("T", "b1", ["c0", "c1"], ("pk",), ("S",), total_items=2))["published"]
        assert [json.loads(i)["pk"]["S"] for i in st.dump("T")] == ["a", "b"]
        again = st.publish(PublishSpec("T", "b1", ["c0", "c1"], ("pk",), ("S",), total_items=2))
        assert again == {"published": False, "reason": "already published", "build_id": "b1"}
        assert st.query("SELECT count(*) FROM row_index.T")[1] == [(2,)]


def test_segment_without_manifest_is_not_published(tmp_path):
    with Store(str(tmp_path), read_only=False) as st:
        w = st.chunk_writer("T", "b1", "c0", ("pk",), ("S",), part_items=1)
        w.add(canonical_item({"pk": {"S": "a"}}), 1, "t")
        w.add(canonical_item({"pk": {"S": "b"}}), 1, "t")  # flushed a part, then "crashed"
        with pytest.raises(PublishRefused, match="not built: c0"):
            st.publish(PublishSpec("T", "b1", ["c0"], ("pk",), ("S",)))


def test_query_is_read_only_and_bad_input_is_clear(tmp_path):
    publish_items(tmp_path, "T", [{"pk": {"S": "a"}, "n": {"N": "1"}}])
    for sql in ["DELETE FROM T", "INSERT INTO T (_key) VALUES ('x')", "DROP TABLE T", "CREATE TABLE x (a INT)",
                "SELECT 1; DELETE FROM T", "UPDATE row_index.T SET item = 'x'", "ATTACH 'x.db' AS y", "COPY T TO 'x.csv'"]:
        done = cli(tmp_path, "query", sql)
        assert done.returncode == 1, sql
        assert "read-only" in done.stderr, (sql, done.stderr)
    with Store(str(tmp_path)) as st:
        assert st.query("SELECT count(*) FROM T")[1] == [(1,)]
        with pytest.raises(QueryError, match="does not parse"):
            st.query("SELEC nonsense")
        with pytest.raises(QueryError, match="query failed"):
            st.query("SELECT * FROM no_such_table")
        with pytest.raises(StoreError, match="unknown table 'Nope'.*known: T"):
            st.get("Nope", '{"pk":{"S":"a"}}')
        with pytest.raises(QueryError, match="not valid JSON"):
            st.get("T", '{"pk":')
        with pytest.raises(QueryError, match="has key \\['pk'\\]"):
            st.get("T", '{"id":{"S":"a"}}')
        with pytest.raises(QueryError, match="unknown type tag"):
            st.get("T", '{"pk":{"Q":"a"}}')
    assert cli(tmp_path, "get", "T", '{"pk":{"S":"zz"}}').returncode == 1
    done = cli(tmp_path, "query", "SELECT pk, n FROM T", "--json")
    assert done.returncode == 0 and json.loads(done.stdout) == {"pk": "a", "n": 1}
    assert cli(tmp_path, "dump", "T").stdout == '{"n":{"N":"1"},"pk":{"S":"a"}}\n'
    assert cli(tmp_path / "nothing-here", "status").returncode == 1
    status = json.loads(cli(tmp_path, "status", "--json").stdout)
    assert status["tables"][0]["items"] == 1 and status["tables"][0]["build_id"] == "b1"


def test_number_and_binary_keys(tmp_path):
    items = [{"id": {"N": "10"}, "ts": {"B": "AQ=="}, "v": {"S": "x"}}, {"id": {"N": "9.5"}, "ts": {"B": "Ag=="}}]
    publish_items(tmp_path, "K", items, key=("id", "ts"), types=("N", "B"))
    with Store(str(tmp_path)) as st:
        assert st.get("K", '{"ts":{"B":"AQ=="},"id":{"N":"10.0"}}') == canonical_json(items[0])
        assert st.query("SELECT pk, sk FROM row_index.K ORDER BY pk")[1] == [("10", b"\x01"), ("9.5", b"\x02")]
    with Store(str(tmp_path), read_only=False) as st:
        w = st.chunk_writer("K", "b2", "c0", ("id", "ts"), ("N", "B"))
        with pytest.raises(ValueError, match="key attribute 'id' has type S"):
            w.add(canonical_item({"id": {"S": "x"}, "ts": {"B": "AQ=="}}), 1, "t")
        with pytest.raises(ValueError, match="no key attribute 'ts'"):
            w.add(canonical_item({"id": {"N": "1"}}), 1, "t")


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


def test_settle_freezes_live_objects_and_still_collects_cycles(monkeypatch):
    """settle() spares the collector from re-walking live objects, yet cyclic garbage is reclaimed in time."""
    import gc
    import weakref

    from dynadex import gcpause

    class Node:
        pass

    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle: only the cyclic collector can free it
    ref = weakref.ref(a)
    gcpause.settle()
    assert gc.get_freeze_count() > 0
    del a, b
    monkeypatch.setattr(gcpause, "COLLECT_EVERY_SECONDS", 3600.0)
    gcpause.settle()
    gc.collect()
    assert ref() is not None  # frozen: a plain collection leaves it
    monkeypatch.setattr(gcpause, "COLLECT_EVERY_SECONDS", 0.0)
    gcpause.settle()  # due: unfreeze and collect everything
    assert ref() is None
    gc.unfreeze()


def test_local_catalog_is_in_wal_mode_so_readers_never_block_the_writer(tmp_path):
    """In rollback mode a reader's lock made commits wait a whole second in DuckDB's SQLite busy handler."""
    import sqlite3

    from dynadex.store import Store

    with Store(str(tmp_path / "s"), read_only=False):
        pass
    con = sqlite3.connect(tmp_path / "s" / "catalog.sqlite")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


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


def test_a_store_from_before_write_ids_gets_them_on_the_first_batch(tmp_path):
    publish_items(tmp_path, "T", [canonical_item({"pk": {"S": "a"}, "city": {"S": "Paris"}}),
                                  canonical_item({"pk": {"S": "b"}, "city": {"S": "Lima"}})])
    with Store(str(tmp_path), read_only=False) as st:
        with st.lake.transaction():
            st.lake.con.execute("ALTER TABLE row_index.T DROP COLUMN write_id")
            st.lake.con.execute("ALTER TABLE inverted_index.T DROP COLUMN write_id")
    with Store(str(tmp_path), read_only=False) as st:
        st.apply("T", [Change({"pk": {"S": "a"}}, canonical_item({"pk": {"S": "a"}, "city": {"S": "Rome"}}), 9, "s")])
        assert st.find("T", "city=Lima") != []  # untouched rows and entries: both NULL, still live
        assert st.find("T", "city=Paris") == [] and st.find("T", "city=Rome") != []


def test_a_batch_outlasts_another_process_holding_the_catalog_lock(tmp_path, monkeypatch, caplog):
    """Fault: another process holds the SQLite catalog's write lock until the batch has met it. The batch's
    commit fails with "database is locked" (busy wait cut to 50 ms), runs again on a fresh connection, and
    lands once. The holder lets go only when the first retry is logged (a condition, not a sleep)."""
    import logging

    from dynadex.store.catalog import lake as lake_module

    publish_items(tmp_path, "T", [{"pk": {"S": "a"}, "v": {"N": "1"}}])
    monkeypatch.setattr(lake_module, "SQLITE_BUSY_TIMEOUT_MS", 50)
    caplog.set_level(logging.WARNING, logger="dynadex.store")
    release = tmp_path / "release"

    class Release(logging.Handler):
        def emit(self, record):
            if "database is locked" in record.getMessage():
                release.touch()

    handler = Release()
    logging.getLogger("dynadex.store").addHandler(handler)
    holder = None
    try:
        with Store(str(tmp_path), read_only=False) as st:  # opened first: the batch itself meets the lock
            holder = subprocess.Popen(
                [sys.executable, "-c", "import os, sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
                 "c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); deadline = time.monotonic() + 120\n"
                 "while not os.path.exists(sys.argv[2]) and time.monotonic() < deadline: time.sleep(0.01)\n"
                 "c.execute('ROLLBACK')", str(tmp_path / "catalog.sqlite"), str(release)], stdout=subprocess.PIPE, text=True)
            assert holder.stdout.readline().strip() == "locked"
            result = st.apply("T", [Change({"pk": {"S": "a"}}, canonical_item({"pk": {"S": "a"}, "v": {"N": "2"}}), 2, "s")],
                              [Checkpoint("shard-1", "200")])
    finally:
        logging.getLogger("dynadex.store").removeHandler(handler)
        release.touch()
        assert holder is None or holder.wait(timeout=150) == 0
    assert result["upserts"] == 1
    assert "database is locked" in caplog.text and "attempt 2 of" in caplog.text
    with Store(str(tmp_path)) as st:
        assert st.get("T", '{"pk":{"S":"a"}}') == canonical_json({"pk": {"S": "a"}, "v": {"N": "2"}})
        assert st.query("SELECT count(*) FROM row_index.T")[1] == [(1,)]
        assert st.checkpoints("T")["shard-1"].sequence_number == "200"


def _catalog_holder(catalog, release):
    """Another process that locks the SQLite catalog against every reader (exclusive locking mode) until
    ``release`` exists."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import os, sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
         "c.execute('PRAGMA locking_mode=EXCLUSIVE'); c.execute('SELECT count(*) FROM sqlite_master').fetchall(); "
         "print('locked', flush=True); deadline = time.monotonic() + 120\n"
         "while not os.path.exists(sys.argv[2]) and time.monotonic() < deadline: time.sleep(0.01)",
         str(catalog), str(release)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_read_waits_out_a_locked_catalog_in_milliseconds_not_seconds(tmp_path, monkeypatch):
    """Fault: the catalog is locked while a reader opens the store and queries it. DuckDB's SQLite would
    sleep a whole second per busy wait (the p99 of the freshness lag); a read-only store retries each
    statement itself. The holder lets go once the reader has met the lock three times (a condition)."""
    from dynadex.store.catalog import lake as lake_module

    publish_items(tmp_path, "T", [{"pk": {"S": "a"}, "v": {"N": "1"}}])
    release, met = tmp_path / "release", []
    real_locked = lake_module.locked

    def counting(exc):
        if real_locked(exc):
            met.append(str(exc))
            if len(met) >= 3:
                release.touch()
        return real_locked(exc)

    monkeypatch.setattr(lake_module, "locked", counting)
    holder = _catalog_holder(tmp_path / "catalog.sqlite", release)
    try:
        with Store(str(tmp_path)) as st:
            assert st.query('SELECT v FROM "T"')[1] == [(1,)]
            assert st.get("T", '{"pk":{"S":"a"}}') == canonical_json({"pk": {"S": "a"}, "v": {"N": "1"}})
    finally:
        release.touch()
        assert holder.wait(timeout=150) == 0
    assert len(met) >= 3 and all("database is locked" in m for m in met)


def test_a_catalog_locked_for_longer_than_the_read_wait_is_a_clear_error(tmp_path, monkeypatch):
    from dynadex.store.catalog import lake as lake_module

    publish_items(tmp_path, "T", [{"pk": {"S": "a"}}])
    monkeypatch.setattr(lake_module, "READ_WAIT_SECONDS", 0.3)
    release = tmp_path / "release"
    holder = _catalog_holder(tmp_path / "catalog.sqlite", release)
    try:
        with pytest.raises(StoreError, match="cannot open store .*database is locked"):
            Store(str(tmp_path))
    finally:
        release.touch()
        assert holder.wait(timeout=150) == 0
    with Store(str(tmp_path)) as st:  # and once it is free, the same read works
        assert st.tables() == ["T"]


def test_an_error_of_the_batch_itself_is_not_retried(tmp_path, monkeypatch):
    from dynadex.store.catalog.lake import Lake
    from dynadex.store.errors import KeyError_

    publish_items(tmp_path, "T", [{"pk": {"S": "a"}, "v": {"N": "1"}}])
    reopened = []
    monkeypatch.setattr(Lake, "reopen", lambda self: reopened.append(1))
    with Store(str(tmp_path), read_only=False) as st:
        with pytest.raises(KeyError_):
            st.apply("T", [Change({"pk": {"S": "a"}}, canonical_item({"pk": {"S": "b"}}), 2, "s")])
    assert reopened == []


def test_a_batch_that_briefly_cannot_see_its_table_runs_again(tmp_path, monkeypatch):
    """Fault: the first read of the table's state comes back empty, as another connection's
    ducklake_flush_inlined_data can make it (duckdb/ducklake#1413). The batch runs again and lands once."""
    from dynadex.store.catalog.lake import Lake

    publish_items(tmp_path, "T", [{"pk": {"S": "a"}, "v": {"N": "1"}}])
    real = Lake.table_state
    calls = []

    def flaky(self, table):
        calls.append(table)
        return None if len(calls) == 1 else real(self, table)

    monkeypatch.setattr(Lake, "table_state", flaky)
    with Store(str(tmp_path), read_only=False) as st:
        st.apply("T", [Change({"pk": {"S": "a"}}, canonical_item({"pk": {"S": "a"}, "v": {"N": "2"}}), 2, "s")])
    monkeypatch.setattr(Lake, "table_state", real)
    with Store(str(tmp_path)) as st:
        assert st.get("T", '{"pk":{"S":"a"}}') == canonical_json({"pk": {"S": "a"}, "v": {"N": "2"}})
        assert st.query("SELECT count(*) FROM row_index.T")[1] == [(1,)]
    assert len(calls) >= 2


def test_a_batch_after_maintenance_in_another_process_starts_on_a_fresh_connection(tmp_path):
    """Fault: between two batches of one open store, `dynadex maintain` runs in another process (flushes the
    inlined rows of a column the batches added, expires their snapshots) after the writer's connection read
    the catalog. Before the fix the next batch failed at once, not retried: "Failed to read inlined data
    from DuckLake: Table with name ducklake_inlined_data_11_2 does not exist" (the sync process died; found
    by bench/bench_two_writers.py). Now the batch sees the other writer's commit and starts on a fresh
    connection: no failed attempt, and every batch lands."""
    from dynadex.store.catalog import contention

    def item(i, v):
        return canonical_item({"pk": {"S": f"k{i:03d}"}, "v": {"N": str(v)}, f"a{v}": {"S": "x"}})

    publish_items(tmp_path, "T", [item(i, 0) for i in range(20)])
    contention.reset()
    with Store(str(tmp_path), read_only=False) as st:
        for v in range(1, 3):
            st.apply("T", [Change({"pk": {"S": f"k{v:03d}"}}, item(v, v), 10 + v, "s")], [Checkpoint("s1", str(v))])
            st.table_state("T"), st.checkpoints("T")  # what the sync reads between batches
            done = cli(tmp_path, "maintain", "--keep-seconds", "0")
            assert done.returncode == 0, done.stderr
        st.apply("T", [Change({"pk": {"S": "k009"}}, item(9, 9), 20, "s")], [Checkpoint("s1", "9")])
    got = contention.snapshot()
    assert got.retries == 0, got  # not saved by a retry: the stale connection was never used
    assert got.reopened == 2, got  # after each of the two maintenance runs
    with Store(str(tmp_path)) as st:
        assert st.query("SELECT count(*), count(DISTINCT key) FROM row_index.T")[1] == [(20, 20)]
        assert sorted(json.loads(st.get("T", json.dumps({"pk": {"S": f"k{v:03d}"}}, separators=(",", ":")))).get("v", {}).get("N")
                      for v in (1, 2, 9)) == ["1", "2", "9"]
        assert st.checkpoints("T")["s1"].sequence_number == "9"


def test_an_inlined_table_read_stale_is_retried_where_no_lock_orders_the_writers():
    """The net under the fix above, for Postgres catalogs (no writer lock: another writer can commit during
    the work itself): the same failure runs the write again on a fresh connection."""
    import duckdb

    from dynadex.store.catalog.lake import retryable

    assert retryable(duckdb.CatalogException(
        "Catalog Error: Failed to read inlined data from DuckLake: Table with name ducklake_inlined_data_11_3 "
        "does not exist!"))
    assert not retryable(duckdb.CatalogException("Catalog Error: Table with name nope does not exist!"))


def test_a_long_open_reader_answers_after_maintenance_in_another_process(tmp_path):
    """Fault: a reader keeps its store open (a service answering queries) while a batch adds a column and
    `dynadex maintain` runs in another process. Before, its next SQL on the column index failed with
    "Failed to read inlined data from DuckLake: ... does not exist"; now the read runs once more on a fresh
    connection and answers."""
    def item(i, v):
        return canonical_item({"pk": {"S": f"k{i:03d}"}, "v": {"N": str(v)}, f"a{v}": {"S": "x"}})

    publish_items(tmp_path, "T", [item(i, 0) for i in range(20)])
    with Store(str(tmp_path), read_only=False) as st:
        st.apply("T", [Change({"pk": {"S": "k001"}}, item(1, 1), 11, "s")], [Checkpoint("s1", "1")])
    with Store(str(tmp_path)) as reader:
        assert reader.query("SELECT count(*), count(a1) FROM T")[1] == [(20, 1)]
        with Store(str(tmp_path), read_only=False) as st:
            st.apply("T", [Change({"pk": {"S": "k002"}}, item(2, 2), 12, "s")], [Checkpoint("s1", "2")])
        assert reader.query("SELECT count(*), count(a2) FROM T")[1] == [(20, 1)]
        done = cli(tmp_path, "maintain", "--keep-seconds", "0")
        assert done.returncode == 0, done.stderr
        assert reader.query("SELECT count(*), count(a2) FROM T")[1] == [(20, 1)]
        assert reader.get("T", '{"pk":{"S":"k002"}}') == canonical_json(item(2, 2))
        assert reader.find("T", "a2=x") == [canonical_json(item(2, 2))]


def _data_files(st, schema: str, table: str = "T") -> int:
    return st.lake.con.execute("SELECT count(*) FROM ducklake_list_files('lake', ?, schema => ?)", [table, schema]).fetchone()[0]


def test_small_batches_are_inlined_until_flushed_and_answers_never_change(tmp_path, monkeypatch):
    """A quiet table's stream batches must not leave three Parquet files each (every later statement opened
    them all: a batch slowed by 1 ms per batch before); they stay in the catalog until ``flush_inlined``
    writes them out, and every index answers the same before and after (decision 0021)."""
    monkeypatch.setattr("dynadex.store.catalog.lake.INLINE_ROWS", 1000)  # DYNADEX_INLINE_ROWS=1000
    publish_items(tmp_path, "T", [{"pk": {"S": f"k{i}"}, "city": {"S": "Rome"}} for i in range(40)])
    with Store(str(tmp_path), read_only=False) as st:
        schemas = ("row_index", "main", "inverted_index")
        files = {s: _data_files(st, s) for s in schemas}
        for b in range(30):  # 30 batches of 4 changes: replaces, new keys and a delete each
            st.apply("T", [Change({"pk": {"S": f"k{(b * 3 + j) % 60}"}},
                                  canonical_item({"pk": {"S": f"k{(b * 3 + j) % 60}"}, "city": {"S": f"c{b}"}}),
                                  100 + b, "s") for j in range(3)]
                     + [Change({"pk": {"S": f"k{(b * 7) % 40}"}}, None, 100 + b, "s")],
                     [Checkpoint("shard-1", str(1000 + b))])
        assert {s: _data_files(st, s) for s in schemas} == files  # nothing written as files
        before = sorted(st.dump("T"))
        cities = st.query('SELECT city, count(*) FROM main."T" GROUP BY ALL ORDER BY ALL')[1]
        found = st.find("T", "city=c29")
        assert len(found) == 3 and before
        st.flush_inlined()
        after = {s: _data_files(st, s) for s in schemas}
        assert all(after[s] > files[s] for s in schemas)  # the inlined rows went into files
        assert sorted(st.dump("T")) == before
        assert st.query('SELECT city, count(*) FROM main."T" GROUP BY ALL ORDER BY ALL')[1] == cities
        assert st.find("T", "city=c29") == found
        assert st.checkpoints("T")["shard-1"].sequence_number == "1029"
    with Store(str(tmp_path)) as reader:  # another connection reads the flushed store alike
        assert sorted(reader.dump("T")) == before


@pytest.mark.parametrize("inline_rows", [0, 1000])
def test_a_small_batch_holding_nul_commits_as_files_and_later_ones_inline_again(tmp_path, monkeypatch, inline_rows):
    """DuckLake 1.5.5 fails at COMMIT when it inlines a VARCHAR[] holding U+0000 (a legal DynamoDB string):
    such a batch must write files instead, and the batches after it inline again (Lake.not_inlined) when
    inlining is on; with DuckLake's own limit (off) a 1-change batch would be inlined too."""
    monkeypatch.setattr("dynadex.store.catalog.lake.INLINE_ROWS", inline_rows)
    publish_items(tmp_path, "T", [{"pk": {"S": "a"}}])
    nul = canonical_item({"pk": {"S": "n\x00k"}, "tags": {"SS": ["x\x00y", "z"]}, "s": {"S": "p\x00q"}})
    with Store(str(tmp_path), read_only=False) as st:
        st.apply("T", [Change({"pk": {"S": "n\x00k"}}, nul, 5, "s")])
        files = _data_files(st, "main")
        assert json.loads(st.get("T", json.dumps({"pk": {"S": "n\x00k"}}))) == nul
        assert st.query('SELECT tags FROM main."T" WHERE tags IS NOT NULL')[1] == [(["x\x00y", "z"],)]
        st.apply("T", [Change({"pk": {"S": "b"}}, canonical_item({"pk": {"S": "b"}, "tags": {"SS": ["w"]}}), 6, "s")])
        assert _data_files(st, "main") == files or not inline_rows  # inlined again
        st.flush_inlined()
        assert sorted(json.loads(t)["pk"]["S"] for t in st.dump("T")) == ["a", "b", "n\x00k"]


def _columns(st, table="T") -> list[tuple[str, str, str]]:
    return st.lake.con.execute("SELECT path, kind, column_name FROM dynadex.columns WHERE table_name = ? "
                               "ORDER BY rowid", [table]).fetchall()


def test_a_batch_knows_the_snapshot_it_commits_and_reads_the_registry_once(tmp_path, monkeypatch):
    """A small batch's statements cost ~20-45 ms each: a batch does not read the column registry again while
    no other writer committed (decision 0021), nor the catalog's snapshot after its own commit (it is the one
    before plus one). Were that sum wrong, every batch would start on a fresh connection."""
    from dynadex.store.catalog import contention, state

    publish_items(tmp_path, "T", [{"pk": {"S": f"k{i}"}, "v": {"N": str(i)}} for i in range(10)])
    loads = []
    real = state.load_registry
    monkeypatch.setattr(state, "load_registry", lambda con, table: loads.append(table) or real(con, table))
    contention.reset()
    with Store(str(tmp_path), read_only=False) as st:
        for v in range(1, 6):
            st.apply("T", [Change({"pk": {"S": "k1"}}, canonical_item({"pk": {"S": "k1"}, "v": {"N": str(v)},
                                                                       f"new{v % 2}": {"S": "x"}}), 10 + v, "s")],
                     [Checkpoint("s1", str(v))])
            assert st.lake._seen_snapshot == st.lake.current_snapshot()
        assert [c[2] for c in _columns(st)] == ["pk", "v", "new1", "new0"]
    assert loads == ["T"]  # the first batch only
    assert contention.snapshot().reopened == 0


def test_another_writers_new_column_reaches_a_cached_registry(tmp_path):
    """Two writers on one store, each adding columns: the one whose registry is cached meets the other's
    commit (Lake._fresh_for_write starts it on a fresh connection, which drops the cache), so the path the
    other added keeps its one column, and no column is added twice, not even in an attempt that fails."""
    from dynadex.store.catalog import contention

    publish_items(tmp_path, "T", [{"pk": {"S": "a"}, "v": {"N": "1"}}])
    contention.reset()

    def put(st, key, version, **attrs):
        st.apply("T", [Change({"pk": {"S": key}}, canonical_item({"pk": {"S": key}, **attrs}), version, "s")])

    with Store(str(tmp_path), read_only=False) as one, Store(str(tmp_path), read_only=False) as two:
        put(one, "a", 2, x={"S": "one"})  # one caches the registry with x
        put(two, "b", 3, y={"N": "5"})  # two adds y
        put(one, "c", 4, y={"N": "6"}, x={"S": "c"})  # one must map y to two's column
        put(two, "d", 5, y={"S": "text"})  # another kind at y: y:S
        put(one, "e", 6, y={"S": "more"})
        assert [c[2] for c in _columns(one)] == ["pk", "v", "x", "y", "y:S"]
        assert one.query('SELECT pk, x, y, "y:S" FROM T ORDER BY pk')[1] == [
            ("a", "one", None, None), ("b", None, 5, None), ("c", "c", 6, None), ("d", None, None, "text"),
            ("e", None, None, "more")]
    assert contention.snapshot().retries == 0  # never "column already exists", then run again


def test_a_batch_that_failed_leaves_no_column_in_the_cached_registry(tmp_path, monkeypatch):
    """A batch that added a column and then failed (rolled back) must not leave that column in the registry
    the next batch uses: the next batch adds it again, for real."""
    from dynadex.store.apply import changes

    publish_items(tmp_path, "T", [{"pk": {"S": "a"}, "v": {"N": "1"}}])
    real = changes._write_indexes
    with Store(str(tmp_path), read_only=False) as st:
        st.apply("T", [Change({"pk": {"S": "a"}}, canonical_item({"pk": {"S": "a"}, "v": {"N": "2"}}), 2, "s")])

        def broken(*args, **kwargs):
            raise ValueError("the batch fails after adding its column")

        monkeypatch.setattr(changes, "_write_indexes", broken)
        with pytest.raises(ValueError):
            st.apply("T", [Change({"pk": {"S": "b"}}, canonical_item({"pk": {"S": "b"}, "z": {"S": "q"}}), 3, "s")])
        monkeypatch.setattr(changes, "_write_indexes", real)
        st.apply("T", [Change({"pk": {"S": "b"}}, canonical_item({"pk": {"S": "b"}, "z": {"S": "q"}}), 3, "s")])
        assert [c[2] for c in _columns(st)] == ["pk", "v", "z"]
        assert st.query("SELECT pk, z FROM T ORDER BY pk")[1] == [("a", None), ("b", "q")]


@pytest.mark.parametrize("shards", [2, 60])  # as parameters, and over CHECKPOINT_LITERALS as an Arrow table
def test_a_batch_replaces_the_checkpoints_of_its_shards_only(tmp_path, shards):
    publish_items(tmp_path, "T", [{"pk": {"S": "a"}}])
    with Store(str(tmp_path), read_only=False) as st:
        st.apply("T", [], [Checkpoint("other", "7", None, True)])
        for n in (1, 2):
            st.apply("T", [Change({"pk": {"S": "a"}}, canonical_item({"pk": {"S": "a"}, "n": {"N": str(n)}}), n, "s")],
                     [Checkpoint(f"s{i}", f"{n}{i}", "p" if i % 2 else None, i == 0 and n == 2) for i in range(shards)])
        got = st.checkpoints("T")
    assert got.pop("other") == Checkpoint("other", "7", None, True)
    assert got == {f"s{i}": Checkpoint(f"s{i}", f"2{i}", "p" if i % 2 else None, i == 0) for i in range(shards)}


def test_a_writing_store_keeps_its_catalog_connected_and_its_wal_small(tmp_path):
    """DuckDB's SQLite opens a connection per transaction; when the count of connections to the catalog fell
    to zero between two batches, the last one out removed the WAL and the next one in rebuilt its index under
    an exclusive lock, and a reader or writer of another process meeting that lock slept a whole second
    (store/catalog/hold.py). A writing store now keeps one connection open: the WAL survives every commit.
    Its held read is renewed past each commit, so the WAL still starts over (it grew by ~170 KB a batch with
    the read left pinned)."""
    publish_items(tmp_path, "T", [{"pk": {"S": f"k{i}"}, "v": {"N": "0"}} for i in range(50)])
    wal = tmp_path / "catalog.sqlite-wal"
    with Store(str(tmp_path), read_only=False) as st:
        sizes = []
        for b in range(60):
            st.apply("T", [Change({"pk": {"S": f"k{(b + j) % 50}"}},
                                  canonical_item({"pk": {"S": f"k{(b + j) % 50}"}, "v": {"N": str(b)}}), 10 + b, "s")
                           for j in range(5)], [Checkpoint("s1", str(b))])
            assert wal.exists(), f"the WAL was removed after batch {b}: no connection to the catalog stayed open"
            sizes.append(wal.stat().st_size)
        assert max(sizes) < 1_000_000, sizes  # ~95 KB here; with the read left pinned, 3.6 MB by batch 60
        assert st.query("SELECT count(*), max(v) FROM T")[1] == [(50, 59)]


def test_a_reader_polling_beside_the_syncs_flushes_never_fails(tmp_path):
    """Fault: a reader keeps its store open and polls while a writer in another process commits batches that
    add columns and flushes its inlined rows every 10 batches, as the sync does every 100. The reader's query
    used to fail when it met a flush: "Catalog Error: Table with name ducklake_inlined_data_11_2 does not
    exist!" (another wording of the stale cache ``Lake.reading`` already ran again for; a polling dashboard
    died at the sync's first flush), or "Current transaction is aborted". A race: it failed in about one run
    in three before the fix; the wordings themselves are checked below. A read at the instant of a flush can
    still miss the flushed rows, which the next read has (DuckLake's flush race, duckdb/ducklake#1413; README
    Known limits): counted here, not refused."""
    publish_items(tmp_path, "T", [{"pk": {"S": f"k{i}"}, "v": {"N": "0"}} for i in range(50)])
    writer = subprocess.Popen([sys.executable, "-c", f"""
from dynadex.store import Change, Checkpoint, Store
from dynadex.types import canonical_item
with Store({str(tmp_path)!r}, read_only=False) as st:
    for b in range(60):
        key = {{"pk": {{"S": f"k{{b % 50}}"}}}}
        st.apply("T", [Change(key, canonical_item({{**key, "v": {{"N": "1"}}, f"a{{b % 7}}": {{"S": "x"}}}}), 10 + b,
                              "s")], [Checkpoint("s1", str(b))])
        if b % 10 == 9:
            st.flush_inlined()
"""])
    polls = 0
    with Store(str(tmp_path)) as reader:
        while writer.poll() is None:
            count, total = reader.query("SELECT count(*), sum(v) FROM T")[1][0]  # raises on failure
            assert count <= 50 and 0 <= (total or 0) <= 50  # a read may miss rows at a flush (Known limits)
            polls += 1
        assert writer.returncode == 0
        assert reader.query("SELECT count(*), sum(v) FROM T")[1] == [(50, 50)]
    assert polls > 10


def test_a_read_that_meets_flush_after_flush_runs_again_until_it_gets_through(tmp_path, monkeypatch):
    """Fault: a read fails with the stale-cache wordings on its first connection and again on the fresh one (a
    writer's next flush, as CI met under load). It runs on a fresh connection each time and answers; a read
    that fails every time gives up after ``READ_ATTEMPTS`` with DuckDB's own error, and an unrelated error is
    not run again."""
    import duckdb

    from dynadex.store.catalog import lake as lake_module

    publish_items(tmp_path, "T", [{"pk": {"S": "a"}, "v": {"N": "1"}}])
    failures = [duckdb.CatalogException("Catalog Error: Table with name ducklake_inlined_data_11_2 does not exist!"),
                duckdb.TransactionException("TransactionContext Error: Failed to read inlined data from DuckLake: "
                                            "Current transaction is aborted (please ROLLBACK)")]
    with Store(str(tmp_path)) as st:
        lake = st.lake
        runs, connections = [], []

        def flaky():
            runs.append(1)
            connections.append(lake.con)  # held, so no two can share an id
            if len(runs) <= len(failures):
                raise failures[len(runs) - 1]
            return lake.con.execute("SELECT count(*) FROM T").fetchall()

        assert lake.reading(flaky) == [(1,)]
        assert len(runs) == 3 and len({id(c) for c in connections}) == 3  # a fresh connection each attempt

        runs.clear()

        def always():
            runs.append(1)
            raise failures[1]

        with pytest.raises(duckdb.TransactionException, match="Current transaction is aborted"):
            lake.reading(always)
        assert len(runs) == lake_module.READ_ATTEMPTS

        runs.clear()

        def unrelated():
            runs.append(1)
            raise duckdb.CatalogException("Catalog Error: Table with name nope does not exist!")

        with pytest.raises(duckdb.CatalogException, match="nope"):
            lake.reading(unrelated)
        assert len(runs) == 1


def test_stale_inlined_data_is_recognised_in_each_wording():
    import duckdb

    from dynadex.store.catalog.lake import stale_cache

    assert stale_cache(duckdb.InvalidInputException(
        "Invalid Input Error: Attempting to fetch from an unsuccessful query result\nError: Catalog Error: Table "
        "with name ducklake_inlined_data_11_2 does not exist!\nDid you mean \"ducklake_inlined_data_13_2\"?"))
    assert stale_cache(duckdb.CatalogException("Catalog Error: Failed to read inlined data from DuckLake: x"))
    assert not stale_cache(duckdb.CatalogException("Catalog Error: Table with name nope does not exist!"))
