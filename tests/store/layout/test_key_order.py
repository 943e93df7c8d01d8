"""Key order numbers (store/layout/key_order.py): monotone in DuckDB's key order, the same in SQL as in Python.

Then on a real store whose keys all share their first bytes (``customer#…``, where the key-column filters of
decision 0025 prune nothing): a narrowed batch reads only the row groups of its keys, in both indexes.
"""

from __future__ import annotations

import duckdb
import pytest

from dynadex.store import Change, PublishSpec, Store
from dynadex.store.apply import key_pruning
from dynadex.store.layout.key_order import (
    ABOVE,
    BELOW,
    common_prefix,
    order_number,
    order_number_sql,
    structural_prefix,
    table_prefix,
)
from dynadex.store.layout.shape import key_text
from dynadex.types import canonical_item
from tests.support.spoil import spoil_groups_without

S = ("pk",)


def k(pk: str, sk: str | None = None) -> str:
    item = {"pk": {"S": pk}} if sk is None else {"pk": {"S": pk}, "sk": {"N": sk}}
    return key_text(item, ("pk",) if sk is None else ("pk", "sk"))


HOSTILE = ["", "a", "a\x00", "a\x01b", "ab", "a" * 30, "é", "e\u0301", "日本語", "𝄞", "\U0010ffff", '"', "\\",
           "customer#000001", "customer#000002", "customer#0000010", "customer#", "customer", "customer$",
           "\x7f", "~", " ", "a\"b", "\u2028"]


@pytest.mark.parametrize("prefix", ['{"pk":{"S":"', '{"pk":{"S":"customer#0000', '{"pk":{"S":"日', "", '{"zz'],
                         ids=["structural", "long", "utf8", "empty", "above-all"])
def test_order_numbers_follow_duckdbs_key_order_and_sql_equals_python(prefix):
    """Every pair of keys sorted by DuckDB has non-decreasing numbers, and DuckDB's expression gives exactly
    Python's number for each (keys inside the prefix, below it and above it)."""
    keys = sorted({k(v) for v in HOSTILE} | {k(f"customer#{i:06d}") for i in range(0, 300, 7)}
                  | {k("t", str(n)) for n in (1, 2, 10, 9, -1)})
    con = duckdb.connect()
    con.execute("CREATE TABLE keys (key VARCHAR)")
    con.executemany("INSERT INTO keys VALUES (?)", [[x] for x in keys])
    rows = con.execute(f"SELECT key, {order_number_sql('key', prefix)} FROM keys ORDER BY key").fetchall()
    assert [n for _, n in rows] == [order_number(key, prefix) for key, _ in rows]
    numbers = [n for _, n in rows]
    assert numbers == sorted(numbers)
    assert all(BELOW <= n <= ABOVE for n in numbers)


@pytest.mark.parametrize("key,prefix,want", [
    ('{"pk":{"S":"ab"}}', '{"pk":{"S":"', int.from_bytes(b'ab"}}\0\0', "big")),
    ('{"pk":{"S":"abcdefghij"}}', '{"pk":{"S":"', int.from_bytes(b"abcdefg", "big")),
    ('{"pk":{"S":"é"}}', '{"pk":{"S":"', int.from_bytes('é"}}'.encode().ljust(7, b"\0"), "big")),
    ('{"a":{"S":"x"}}', '{"pk":{"S":"', BELOW),
    ('{"zz":{"S":"x"}}', '{"pk":{"S":"', ABOVE),
], ids=["short", "long", "utf8", "below", "above"])
def test_order_number(key, prefix, want):
    assert order_number(key, prefix) == want


@pytest.mark.parametrize("names,types,bounds,want", [
    (("pk",), ("S",), [], '{"pk":{"S":"'),
    (("pk",), ("S",), [k("customer#000001"), k("customer#009999"), k("customer#000500")], '{"pk":{"S":"customer#00'),
    (("pk",), ("S",), [k("a"), k("b")], '{"pk":{"S":"'),
    (("pk", "sk"), ("S", "N"), [k("t1", "1"), k("t1", "20")], '{"pk":{"S":"t1"},"sk":{"N":"'),
    (("user", "day"), ("S", "S"), [], '{"day":{"S":"'),  # key texts start with the first name in order
    (("pk",), ("N",), [], '{"pk":{"N":"'),
], ids=["empty", "customers", "differ-at-once", "one-partition", "sorted-names", "number"])
def test_table_prefix(names, types, bounds, want):
    assert table_prefix(bounds, names, types) == want
    assert structural_prefix(names, types) in want
    assert all(b.startswith(want) for b in bounds)


def test_common_prefix():
    assert common_prefix("abc", "abd") == "ab" and common_prefix("", "x") == "" and common_prefix("日本", "日") == "日"


ITEMS = 80_000  # 20 row groups of 4 096 in the row index, 5 of 16 384 in the column index


@pytest.fixture()
def store(tmp_path):
    """One published chunk of keys that all start with ``customer#00``."""
    path = str(tmp_path / "store")
    with Store(path, read_only=False, threads=1) as st:
        w = st.chunk_writer("T", "b", "c0", S, ("S",))
        for i in range(ITEMS):
            w.add(canonical_item({"pk": {"S": f"customer#{i:07d}"}, "n": {"N": str(i)}}), 0, "bulk")
        w.finish()
        st.publish(PublishSpec("T", "b", ["c0"], S, ("S",)))
    return path


def test_the_index_holds_the_numbers_of_its_keys(store):
    with Store(store) as st:
        prefix = st.lake.key_prefix("T")
        assert prefix == '{"pk":{"S":"customer#00'
        rows = st.query('SELECT key, key_order FROM row_index."T" USING SAMPLE 300 ROWS')[1]
        cols = st.query('SELECT _key, _key_order FROM "T" USING SAMPLE 300 ROWS')[1]
    assert len(rows) == len(cols) == 300 and all(n == order_number(key, prefix) for key, n in rows + cols)


def _corrupt_groups_without(store: str, numbers: set[int]) -> dict[str, int]:
    """Fault: overwrite with zeros every column chunk of the row and column indexes' row groups whose key order
    numbers hold none of ``numbers`` (page headers and data; the footer stays), so that any statement reading
    such a group fails. Returns how many groups were spoiled in each file."""
    with Store(store) as st:
        files = [r[0] for r in st.lake.con.execute(
            "SELECT path FROM __ducklake_metadata_lake.ducklake_data_file WHERE end_snapshot IS NULL "
            "AND (path LIKE '%rows.parquet' OR path LIKE '%cols.parquet')").fetchall()]
    assert len(files) == 2
    return {path.rsplit("/", 1)[1]: spoil_groups_without(path, column, numbers, int)
            for path, column in ((f, "key_order" if f.endswith("rows.parquet") else "_key_order") for f in files)}


def test_a_batch_on_shared_prefix_keys_reads_only_the_groups_of_its_keys(store, monkeypatch):
    """Keys whose values share their first 8 bytes, where the key-column filters of 0025 prune nothing. Every
    row group of both indexes that holds none of a 3-change batch's keys is spoiled on disk: the batch (its
    lookup and both deletes, narrowed by the key order numbers) still applies, and reads back through the
    same numbers; a plain ``key IN (...)`` over either index fails on a spoiled group."""
    monkeypatch.setattr(key_pruning, "PRUNE_ABOVE_ROWS", 0)
    chosen = [5, 40_000, 79_990]
    pks = [f"customer#{i:07d}" for i in chosen]
    texts = [k(pk) for pk in pks]
    with Store(store) as st:
        prefix = st.lake.key_prefix("T")
    numbers = [order_number(t, prefix) for t in texts]
    spoiled = _corrupt_groups_without(store, set(numbers))
    assert spoiled["rows.parquet"] >= ITEMS // 4096 - 3 and spoiled["cols.parquet"] >= 2, spoiled
    marks = ", ".join("?" for _ in texts)
    with Store(store, read_only=False) as st:
        st.lake.con.execute("SET enable_external_file_cache = false")
        st.apply("T", [Change({"pk": {"S": pk}}, {"pk": {"S": pk}, "n": {"N": "-1"}}, 10**18, "test") for pk in pks])
        con = st.lake.con
        got = con.execute(f'SELECT _key, n FROM "T" WHERE _key IN ({marks}) AND _key_order IN ({marks})',
                          texts + numbers).fetchall()
        assert sorted(got) == sorted((t, -1) for t in texts)
        rows = con.execute(f'SELECT key, item FROM row_index."T" WHERE key IN ({marks}) AND key_order IN ({marks})',
                           texts + numbers).fetchall()
        assert sorted(key for key, _ in rows) == sorted(texts) and all('"N":"-1"' in item for _, item in rows)
        for table, column in (('row_index."T"', "key"), ('"T"', "_key")):
            with pytest.raises(duckdb.Error):
                con.execute(f"SELECT count(*) FROM {table} WHERE {column} IN ({marks})", texts).fetchall()


def test_a_store_published_before_key_order_numbers_keeps_working(tmp_path, monkeypatch):
    """A table whose state has no key prefix (published by an older release: its indexes have no number
    columns) is written and narrowed as before: by the key attributes' columns."""
    from dynadex.store.apply import changes as changes_module
    from dynadex.store.apply import known_keys

    monkeypatch.setattr(key_pruning, "PRUNE_ABOVE_ROWS", 0)
    monkeypatch.setattr(known_keys, "MOST_KEYS", 0)  # the lookup runs, as for a table too large to keep its keys
    used = []
    real = changes_module.row_filter
    monkeypatch.setattr(changes_module, "row_filter", lambda *a: used.append(real(*a)) or used[-1])
    path = str(tmp_path / "store")
    with Store(path, read_only=False, threads=1) as st:
        w = st.chunk_writer("T", "b", "c0", S, ("S",))
        for i in range(100):
            w.add(canonical_item({"pk": {"S": f"k{i:03d}"}, "n": {"N": str(i)}}), 0, "bulk")
        w.finish()
        st.publish(PublishSpec("T", "b", ["c0"], S, ("S",)))
        con = st.lake.con
        with st.lake.transaction():  # what an older release left: no numbers, no prefix
            con.execute('ALTER TABLE row_index."T" DROP COLUMN key_order')
            con.execute('ALTER TABLE "T" DROP COLUMN _key_order')
            con.execute("UPDATE dynadex.tables SET key_prefix = NULL WHERE table_name = 'T'")
    with Store(path, read_only=False) as st:
        assert st.lake.key_prefix("T") is None
        st.apply("T", [Change({"pk": {"S": f"k{i:03d}"}}, {"pk": {"S": f"k{i:03d}"}, "n": {"N": "-1"}}, 10**18, "t")
                       for i in (1, 50, 99)] + [Change({"pk": {"S": "new"}}, {"pk": {"S": "new"}}, 10**18, "t")])
        assert st.query('SELECT count(*), count(*) FILTER (WHERE n = -1) FROM "T"')[1] == [(101, 3)]
        assert st.query('SELECT count(*) FROM row_index."T"')[1] == [(101,)]
    assert used and used[0][0].startswith(" AND r.pk IN (")  # the lookup, narrowed by the pk column
