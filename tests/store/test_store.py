"""The Store facade on real DuckLake files: every type round-trips through the three indexes, hostile
names, schema growth and type conflicts, number and binary keys, and reads that refuse to write."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from dynadex.store import Change, Checkpoint, Store
from dynadex.store.errors import QueryError, StoreError
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


def test_the_followed_tables_are_read_together_as_each_alone(tmp_path):
    for t in ("A", "B"):
        publish_items(tmp_path, t, [{"pk": {"S": "a"}}])
    with Store(str(tmp_path), read_only=False) as st:
        st.apply("A", [], [Checkpoint("shard-1", "5"), Checkpoint("shard-2", "6", "shard-1", True)])
        held = st.followed(["B", "A"])
        assert list(held) == ["B", "A"]
        for t in ("A", "B"):
            assert held[t] == (st.table_state(t), st.checkpoints(t))
        assert len(held["A"][1]) == 2 and held["B"][1] == {}
        with pytest.raises(StoreError, match="unknown table 'C'"):
            st.followed(["A", "C"])
