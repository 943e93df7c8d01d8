"""The filters that let a stream batch's few-key statements skip row groups (store/apply/key_pruning.py).

Table-driven for the pure rules; then, on a real store, that a narrowed lookup reads only the row groups
holding its keys where the plain one reads every group, and answers the same.
"""

from __future__ import annotations

import base64
import hashlib

import pytest

from dynadex.store import PublishSpec, Store
from dynadex.store.apply import key_pruning
from dynadex.store.apply.key_pruning import column_filter, row_filter
from dynadex.store.layout.names import row_table
from dynadex.store.layout.shape import key_text
from dynadex.types import canonical_item
from tests.support.spoil import spoil_groups_without

S = ("pk",)
SB = ("pk", "sk")


def s(*values):
    return [{"pk": {"S": v}} for v in values]


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize("names,keys,want", [
    (S, s("k0000001"), ("", [])),  # one key: key = ? prunes by itself
    (S, s("k0000001", "k0500000"), (" AND r.pk IN (?, ?)", ["k0000001", "k0500000"])),
    (S, s("customer#0001", "customer#0002"), ("", [])),  # the same first 8 bytes: a filter would prune nothing
    (S, s("customer#0001", "customer#0002", "order#9"),
     (" AND r.pk IN (?, ?, ?)", ["customer#0001", "customer#0002", "order#9"])),
    (S, s("日本語のキー", "日本語の鍵"), ("", [])),  # 8 bytes of UTF-8 are under 3 characters here: shared
    (S, s("é1", "é2"), (" AND r.pk IN (?, ?)", ["é1", "é2"])),
    (S, s("a", "a", "b"), (" AND r.pk IN (?, ?)", ["a", "b"])),  # each value once
    (S, s(*[f"k{i:04d}" for i in range(33)]), ("", [])),  # over PRUNE_KEYS
    (SB, [{"pk": {"N": "1"}, "sk": {"B": b64(b"\x00a")}}, {"pk": {"N": "2"}, "sk": {"B": b64(b"\x00b")}}],
     (" AND r.pk IN (?, ?) AND r.sk IN (?, ?)", ["1", "2", b"\x00a", b"\x00b"])),  # N as text, B as bytes
    (SB, [{"pk": {"S": "tenant-1"}, "sk": {"S": "2026-01-01"}}, {"pk": {"S": "tenant-1"}, "sk": {"S": "2026-05-01"}}],
     (" AND r.sk IN (?, ?)", ["2026-01-01", "2026-05-01"])),  # one tenant: only the sort key narrows
], ids=["one-key", "two-keys", "shared-prefix", "some-differ", "utf8-shared", "utf8-differs", "duplicates",
        "too-many", "N-and-B", "sort-key-only"])
def test_row_filter(names, keys, want):
    assert row_filter(names, keys, "r") == want


@pytest.mark.parametrize("names,keys,columns,want", [
    (S, s("a1", "b2"), {("pk", "S"): '"pk"'}, (' AND t."pk" IN (?, ?)', ["a1", "b2"])),
    (S, s("a1", "b2"), {("pk", "S"): '"pk#2"'}, (' AND t."pk#2" IN (?, ?)', ["a1", "b2"])),  # the registry's name
    (S, s("a1", "b2"), {}, ("", [])),  # no column known: no filter
    (SB, [{"pk": {"N": "1"}, "sk": {"S": "x1"}}, {"pk": {"N": "2"}, "sk": {"S": "y2"}}],
     {("pk", "N"): '"pk"', ("sk", "S"): '"sk"'}, (' AND t."sk" IN (?, ?)', ["x1", "y2"])),  # N key columns: no
], ids=["S", "renamed", "unknown", "N-skipped"])
def test_column_filter(names, keys, columns, want):
    assert column_filter(names, keys, columns, "t") == want


ITEMS = 80_000  # 20 row groups of 4 096


def pk_of(k: int) -> str:
    return hashlib.sha1(str(k).encode()).hexdigest()  # random text: the key column does not compress away


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("prune"))
    with Store(path, read_only=False, threads=1) as st:
        w = st.chunk_writer("T", "b", "c0", S, ("S",))
        for k in range(ITEMS):
            w.add(canonical_item({"pk": {"S": pk_of(k)}, "n": {"N": str(k)}}), 0, "bulk")
        w.finish()
        st.publish(PublishSpec("T", "b", ["c0"], S, ("S",)))
    return path


def _corrupt_groups_without(store: str, pks: set[str]) -> int:
    """Fault: spoil every row group of the row index that holds none of ``pks`` (spoil.py)."""
    with Store(store) as st:  # the row index's one registered file (the chunk's own was merged into it)
        (rows_file,) = [r[0] for r in st.lake.con.execute(
            "SELECT path FROM __ducklake_metadata_lake.ducklake_data_file WHERE end_snapshot IS NULL "
            "AND path LIKE '%rows.parquet'").fetchall()]
    return spoil_groups_without(rows_file, "pk", pks)


def test_a_narrowed_lookup_reads_only_the_groups_holding_its_keys(store):
    """Real DuckDB, real DuckLake files: 3 keys of 80 000, in 3 of the row index's 20 groups, and every other
    group spoiled on disk. The plain ``key IN (...)`` reads every group and fails on the first spoiled one;
    with the row filter, the lookup never reads them and answers the 3 rows."""
    import duckdb

    wanted = [{"pk": {"S": pk_of(k)}} for k in (3, 41_000, 79_999)]
    keys = [key_text(k, S) for k in wanted]
    base = f"SELECT r.key, r.version FROM {row_table('T')} r WHERE r.key IN ({', '.join('?' for _ in keys)})"
    extra, params = row_filter(S, wanted, "r")
    assert extra
    assert _corrupt_groups_without(store, {k["pk"]["S"] for k in wanted}) >= ITEMS // 4096 - 3
    with Store(store) as st:
        con = st.lake.con
        con.execute("SET enable_external_file_cache = false")
        assert sorted(k for k, _ in con.execute(base + extra, keys + params).fetchall()) == sorted(keys)
        with pytest.raises(duckdb.Error):
            con.execute(base, keys).fetchall()


def test_prune_keys_bounds_the_filter(monkeypatch):
    monkeypatch.setattr(key_pruning, "PRUNE_KEYS", 2)
    assert row_filter(S, s("a1", "b2"), "r")[0]
    assert row_filter(S, s("a1", "b2", "c3"), "r") == ("", [])


def test_dynadex_narrow_keys_0_turns_it_off():
    """The operator's switch (settings.NARROW_KEYS), read at import: with 0, no batch statement is narrowed."""
    import os
    import subprocess
    import sys

    probe = ("from dynadex.store.apply.key_pruning import row_filter; "
             "print(repr(row_filter(('pk',), [{'pk': {'S': 'a1'}}, {'pk': {'S': 'b2'}}], 'r')))")
    for value, want in (("0", "('', [])"), ("", "(' AND r.pk IN (?, ?)', ['a1', 'b2'])")):
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                             env={**os.environ, "DYNADEX_NARROW_KEYS": value})
        assert out.stdout.strip() == want, out.stdout


@pytest.mark.parametrize("rows,most", [(0, 32), (500_000, 32), (1_000_000, 61), (4_000_000, 244),
                                       (100_000_000, 256)])
def test_order_numbers_narrow_more_keys_on_larger_tables(rows, most):
    """Key order numbers prune exactly, so larger tables narrow larger batches: one key per 16 384 rows
    (a quarter of the row groups), at least PRUNE_KEYS, at most ORDER_KEYS."""
    assert key_pruning.order_keys(rows) == most
    keys = [f'{{"pk":{{"S":"k{i:05d}"}}}}' for i in range(most + 1)]
    assert key_pruning.order_filter(keys[:most], '{"pk":{"S":"', "key_order", "t", most)[0]
    assert key_pruning.order_filter(keys, '{"pk":{"S":"', "key_order", "t", most) == ("", [])


def test_order_numbers_narrow_nothing_when_narrowing_is_off(monkeypatch):
    monkeypatch.setattr(key_pruning, "PRUNE_KEYS", 0)
    assert key_pruning.order_keys(100_000_000) == 0
