"""A batch of changes on real DuckLake files: versions, atomicity, write ids, small batches inlined until
flushed, the cached column registry, and the checkpoints a batch replaces."""

from __future__ import annotations

import json

import pytest

from dynadex.store import Change, Checkpoint, Store
from dynadex.types import canonical_item
from tests.support.store import publish_items


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
