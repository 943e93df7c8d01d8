"""Folding small stream files (store/upkeep/small_files.py, decision 0028): which files, same answers, one sorted file,
a concurrent delete never undone, maintenance and the sync fold."""

from __future__ import annotations

import random
import threading

import pytest

from dynadex.store import Change, Checkpoint, Store
from dynadex.store.apply.changes import apply_changes
from dynadex.store.catalog.lake import ALIAS
from dynadex.store.layout.names import row_table
from dynadex.store.upkeep import small_files
from dynadex.stream.sync import record_changes
from dynadex.types import canonical_item
from tests.support.fake_streams import ChainStream, Table, followed_store
from tests.support.records import key_of, rand_records
from tests.support.store import Hooked, dump, new_store

BULK = "/s/data/bulk/T/b1/merged-keys-1/0a1b/rows.parquet"


def lake_file(name: str) -> str:
    return f"/s/data/row_index/T/ducklake-{name}.parquet"


@pytest.mark.parametrize("files, most, chosen", [
    ([], 100, []),
    ([(BULK, 10)], 100, []),  # a bulk load's range file stays as written, however small
    ([(lake_file("a"), 10), (lake_file("b"), small_files.FOLD_BELOW_BYTES)], 100, [lake_file("a")]),  # not small
    ([(lake_file("a"), 30), (lake_file("b"), 10), (lake_file("c"), 20)], 100,
     [lake_file("b"), lake_file("c"), lake_file("a")]),  # smallest first
    ([(lake_file("a"), 30), (lake_file("b"), 10), (lake_file("c"), 20)], 35,
     [lake_file("b"), lake_file("c")]),  # up to the bytes a fold may write
    ([(lake_file("a"), 300)], 35, [lake_file("a")]),  # one file over the bound still goes: nothing else would
    ([("s3://b/p/inverted_index/T/ducklake-x.parquet", 5), ("s3://b/p/bulk/T/b1/c0/entries.parquet", 5)], 100,
     ["s3://b/p/inverted_index/T/ducklake-x.parquet"]),
])
def test_foldable_takes_the_small_files_ducklake_wrote(files, most, chosen):
    assert small_files.foldable(files, most) == chosen


def test_fold_statements_read_and_delete_the_same_files_by_name():
    insert, delete = small_files.fold_sql("row_index", 'we"ird', "key", 3)
    target = f'{ALIAS}."row_index"."we""ird"'
    assert insert == (f"INSERT INTO {target} SELECT * FROM {target} WHERE filename IN (?, ?, ?) ORDER BY key")
    assert delete == f"DELETE FROM {target} WHERE filename IN (?, ?, ?)"


def files_of(st: Store, schema: str) -> list[tuple[str, int]]:
    return small_files.listed(st.lake, schema, "T")


def batches(path, composite: bool, count: int, seed: int = 7) -> str:
    """A published store of 300 items, then ``count`` batches of 1 500 records over 1 200 keys: each batch
    writes files (over the inline limit) and replaces rows held in the earlier batches' files."""
    rnd = random.Random(seed)
    snapshot = [canonical_item({**k, "n": {"N": "0"}}) for k in
                [({"pk": {"N": str(i % 7)}, "sk": {"B": i.to_bytes(2, "big") + b"\xff"}} if composite
                  else {"pk": {"S": f"k{i:04d}"}}) for i in range(300)]]
    store = new_store(path, composite, snapshot)
    with Store(store, read_only=False) as st:
        for b in range(count):
            changes = [ch for ch, _ in record_changes(rand_records(rnd, 1500, b + 1, composite, 1200), "s")]
            apply_changes(st.lake, "T", changes, [Checkpoint("s", f"{b:04d}")])
    return store


def with_write_ids(store: str) -> list:
    with Store(store) as st:
        return st.lake.con.execute(f"SELECT key, write_id FROM {row_table('T')} ORDER BY key").fetchall()


@pytest.mark.parametrize("composite", [False, True], ids=["pk-S", "pk-N+sk-B"])
def test_fold_keeps_every_answer_and_leaves_one_sorted_file_per_index(tmp_path, composite):
    store = batches(tmp_path, composite, 4)
    before, ids = dump(store), with_write_ids(store)
    with Store(store, read_only=False) as st:
        small = {i.schema: small_files.foldable(files_of(st, i.schema)) for i in small_files.INDEXES}
        assert all(len(f) == 4 for f in small.values()), small  # one file per batch and index
        assert st.fold_small_files("T", at_files=5, indexes=small_files.INDEXES) == {}  # below the count: nothing
        assert st.fold_small_files("T", at_files=2, indexes=small_files.INDEXES) == {s: 4 for s in small}
        for index in small_files.INDEXES:
            files = files_of(st, index.schema)
            left = small_files.foldable(files)
            assert len(left) == 1 and not set(left) & set(small[index.schema])  # the old files are gone
            assert len(files) == 2  # and the bulk load's file is as it was
            as_written, as_sorted, n = st.lake.con.execute(  # in the bulk load's order (NULLs last, as DuckDB sorts)
                f"SELECT list(({index.order_by}) ORDER BY file_row_number), "
                f"list(({index.order_by}) ORDER BY {index.order_by}, file_row_number), count(*) "
                "FROM read_parquet(?, file_row_number = true)", [left[0]]).fetchone()
            assert as_written == as_sorted and n > 1000
    assert dump(store) == before and with_write_ids(store) == ids
    with Store(store) as st:  # and a lookup of each stored key still finds its item
        for key, item in st.lake.con.execute(f"SELECT key, item FROM {row_table('T')} USING SAMPLE 20 ROWS").fetchall():
            assert st.get("T", key) == item


W = small_files.Wear
R = small_files.Rewrite


@pytest.mark.parametrize("wears, skip, most, chosen", [
    ([W("a", 10, 100, 0.5), W("b", 10, 100, 0.2)], set(), 100, [R("a")]),  # under a quarter deleted: left
    ([W("a", 10, 100, 0.25), W("b", 10, 100, 0.9)], set(), 100, [R("b"), R("a")]),  # most deleted first
    ([W("a", 10, 100, 0.5), W("b", 10, 100, 0.9)], {"b"}, 100, [R("a")]),  # folded anyway with the small files
    # over the bound alone and the most deleted: a slice of it, as many rows as the bound holds at its bytes per row
    ([W("big", 500, 1000, 0.9), W("a", 10, 100, 0.5)], set(), 100, [R("big", 200)]),
    ([W("big", 500, 1000, 0.3), W("a", 10, 100, 0.5)], set(), 100, [R("a")]),  # less deleted: its turn comes later
    ([W("big", 500, 1000, 0.9), W("a", 10, 100, 0.5)], set(), None, [R("big"), R("a")]),  # no bound
    ([W("huge", 10**12, 10, 0.9)], set(), 100, [R("huge", 1)]),  # a slice is never empty
    ([], set(), 100, []),
])
def test_worn_takes_the_files_that_lost_a_quarter_of_their_rows(wears, skip, most, chosen):
    assert small_files.worn(wears, skip, most_bytes=most) == chosen


def test_slice_statements_move_and_delete_the_same_keys_of_one_file():
    assert small_files.slice_end_sql("main", "T", '"_key"') == (
        f'SELECT "_key" FROM {ALIAS}."main"."T" WHERE filename = ? ORDER BY "_key" LIMIT 1 OFFSET ?')
    insert, delete = small_files.slice_sql("row_index", "T", "key")
    target = f'{ALIAS}."row_index"."T"'
    assert insert == f"INSERT INTO {target} SELECT * FROM {target} WHERE filename = ? AND key < ? ORDER BY key"
    assert delete == f"DELETE FROM {target} WHERE filename = ? AND key < ?"


@pytest.mark.parametrize("composite", [False, True], ids=["pk-S", "pk-N+sk-B"])
def test_a_worn_bulk_file_is_rewritten_alone_and_every_answer_stays(tmp_path, composite):
    """The bulk load's file has lost most of its rows to the batches (inlined deletions, flushed into delete
    files): a fold that may rewrite worn files writes its live rows alone into a new file, in key order, and
    drops it; answers are unchanged."""
    store = batches(tmp_path, composite, 3)
    before, ids = dump(store), with_write_ids(store)
    with Store(store, read_only=False) as st:
        st.flush_inlined()  # as the sync does before it folds: inlined deletions become delete files and count
        bulk = {i.schema: [p for p, _ in files_of(st, i.schema) if "/bulk/" in p] for i in small_files.KEYED}
        assert all(len(f) == 1 for f in bulk.values()), bulk
        shares = {i.schema: small_files.deleted_shares(st.lake, i.schema, "T", files_of(st, i.schema))
                  for i in small_files.KEYED}
        for schema, rows in shares.items():
            share = {w.path: w.deleted for w in rows}[bulk[schema][0]]
            assert share >= small_files.WORN_SHARE, (schema, share)
        live = {i.schema: st.lake.con.execute(f'SELECT count(*) FROM {ALIAS}."{i.schema}"."T" WHERE filename = ?',
                                              bulk[i.schema]).fetchone()[0] for i in small_files.KEYED}
        listed_before = {i.schema: {p for p, _ in files_of(st, i.schema)} for i in small_files.KEYED}
        # no small files folded (at 99), only the worn ones rewritten, each alone (the batches' files too)
        worn_before = {i.schema: sum(w.deleted >= small_files.WORN_SHARE for w in shares[i.schema])
                       for i in small_files.KEYED}
        assert st.fold_small_files("T", at_files=99, rewrite_worn=True) == {
            f"{schema} worn": n for schema, n in worn_before.items()}
        for index in small_files.KEYED:
            files = [p for p, _ in files_of(st, index.schema)]
            assert bulk[index.schema][0] not in files  # dropped from the snapshot
            new = [p for p in files if p not in listed_before[index.schema]]
            counts = [st.lake.con.execute("SELECT count(*) FROM read_parquet(?)", [p]).fetchone()[0] for p in new]
            assert live[index.schema] in counts  # one new file holding exactly the old one's live rows
            path = new[counts.index(live[index.schema])]
            as_written, as_sorted = st.lake.con.execute(
                f"SELECT list(({index.order_by}) ORDER BY file_row_number), list(({index.order_by}) ORDER BY "
                f"{index.order_by}) FROM read_parquet(?, file_row_number = true)", [path]).fetchone()
            assert as_written == as_sorted
        assert st.fold_small_files("T", at_files=99, rewrite_worn=True) == {}  # nothing worn left
    assert dump(store) == before and with_write_ids(store) == ids


def one_big_worn_file(path, composite: bool) -> str:
    """A published store of 3 000 items, then one batch of 1 500 records over those keys (flushed): the bulk
    load's row and column files each lost about two fifths of their rows."""
    snapshot = [canonical_item({**key_of(i, composite), "n": {"N": str(i)}}) for i in range(3000)]
    store = new_store(path, composite, snapshot)
    with Store(store, read_only=False) as st:
        changes = [ch for ch, _ in record_changes(rand_records(random.Random(5), 1500, 1, composite, 3000), "s")]
        apply_changes(st.lake, "T", changes, [Checkpoint("s", "0001")])
        st.flush_inlined()
    return store


def bulk_bytes(st: Store) -> int:
    """The size of the larger of the bulk load's row and column files."""
    return max(size for i in small_files.KEYED for p, size in files_of(st, i.schema) if "/bulk/" in p)


def live_keys(st: Store, index, path: str) -> list:
    return [k for k, in st.lake.con.execute(f"SELECT {index.order_by} FROM {ALIAS}.{index.schema}.\"T\" "
                                            f"WHERE filename = ? ORDER BY {index.order_by}", [path]).fetchall()]


@pytest.mark.parametrize("composite", [False, True], ids=["pk-S", "pk-N+sk-B"])
def test_a_worn_file_over_the_bound_is_moved_a_slice_per_fold_and_every_answer_stays(tmp_path, monkeypatch, composite):
    """The bound of one fold is a fifth of the bulk load's file: each fold moves about that many bytes of its
    live rows, the first in key order, into a new sorted file, so what is left of it is always a key suffix;
    after the last slice the file is gone and its slices are disjoint sorted files holding exactly its live
    rows. Answers and write ids are the same after every fold."""
    store = one_big_worn_file(tmp_path, composite)
    before, ids = dump(store), with_write_ids(store)
    with Store(store, read_only=False) as st:
        bulk = {i: [p for p, _ in files_of(st, i.schema) if "/bulk/" in p] for i in small_files.KEYED}
        assert all(len(f) == 1 for f in bulk.values()), bulk
        bulk = {i: f[0] for i, f in bulk.items()}
        wear = {}
        for i in small_files.KEYED:
            wear[i], = [w for w in small_files.deleted_shares(st.lake, i.schema, "T", files_of(st, i.schema))
                        if w.path == bulk[i]]
        assert all(small_files.WORN_SHARE <= w.deleted < 0.6 for w in wear.values()), wear
        monkeypatch.setattr(small_files, "WORN_MOST_BYTES", max(w.size for w in wear.values()) // 5)
        rows = {i: wear[i].records * small_files.WORN_MOST_BYTES // wear[i].size for i in small_files.KEYED}
        first_live = {i: live_keys(st, i, bulk[i]) for i in small_files.KEYED}
        listed_before = {i: {p for p, _ in files_of(st, i.schema)} for i in small_files.KEYED}
        left = dict(first_live)
        folds = 0
        while any(left.values()):
            got = st.fold_small_files("T", at_files=99, rewrite_worn=True)
            folds += 1
            assert got and folds < 20
            for index in small_files.KEYED:
                was = left[index]
                kept = bulk[index] in {p for p, _ in files_of(st, index.schema)}
                now = live_keys(st, index, bulk[index]) if kept else []
                moved = len(was) - len(now)
                assert now == was[moved:]  # the first keys moved, the rest as it was
                if now:  # a slice: the bound's rows, the file kept for the next fold
                    assert moved == rows[index] and got[index.schema + small_files.SLICED] == 1
                elif was:  # the last slice: the file is dropped
                    assert moved <= rows[index] and got[index.schema + small_files.WORN] == 1
                left[index] = now
            assert dump(store) == before and with_write_ids(store) == ids
        assert folds >= 3
        assert st.fold_small_files("T", at_files=99, rewrite_worn=True) == {}  # nothing worn left
        for index in small_files.KEYED:
            new = sorted(p for p, _ in files_of(st, index.schema) if p not in listed_before[index])
            spans = []
            for path in new:  # each slice one file, sorted as written
                as_written, as_sorted = st.lake.con.execute(
                    f"SELECT list(({index.order_by}) ORDER BY file_row_number), list(({index.order_by}) ORDER BY "
                    f"{index.order_by}) FROM read_parquet(?, file_row_number = true)", [path]).fetchone()
                assert as_written == as_sorted
                spans.append(as_sorted)
            spans.sort()
            assert [k for span in spans for k in span] == first_live[index]  # disjoint, exactly the live rows
    assert dump(store) == before and with_write_ids(store) == ids


def test_maintenance_moves_a_large_worn_file_a_transaction_per_slice(tmp_path, monkeypatch):
    """Maintenance goes on slicing until the file is gone, each slice in a transaction of its own, the writer
    lock released between (the sync's batches go on meanwhile)."""
    store = one_big_worn_file(tmp_path, False)
    before = dump(store)
    with Store(store, read_only=False) as st:
        monkeypatch.setattr(small_files, "WORN_MOST_BYTES", bulk_bytes(st) // 4)
        works, retrying = [], st.lake.retrying

        def noted(what, work, **kw):
            works.append(what)
            return retrying(what, work, **kw)
        monkeypatch.setattr(st.lake, "retrying", noted)
        result = st.compact()
        assert result["worn_slices"] >= 4 and result["worn_files_rewritten"] == 2, result
        assert works.count("maintenance: T: worn file slice") >= 3, works
        for index in small_files.KEYED:
            assert not [p for p, _ in files_of(st, index.schema) if "/bulk/" in p]
    after = dump(store)
    assert {k: v for k, v in after.items() if k != "all_inverted"} == {
        k: v for k, v in before.items() if k != "all_inverted"}


def test_a_slice_that_fails_half_way_leaves_nothing_and_the_next_fold_goes_on(tmp_path, monkeypatch):
    """The fault: the slice's delete fails after its insert ran. The transaction rolls back (no row twice,
    none lost, the file as it was) and the next fold moves the same slice."""
    store = one_big_worn_file(tmp_path, False)
    before, ids = dump(store), with_write_ids(store)
    with Store(store, read_only=False) as st:
        monkeypatch.setattr(small_files, "WORN_MOST_BYTES", bulk_bytes(st) // 4)
        bulk = [p for p, _ in files_of(st, "row_index") if "/bulk/" in p][0]
        index = small_files.KEYED[0]
        live = live_keys(st, index, bulk)

        def fail(sql: str) -> None:
            if sql.startswith("DELETE FROM") and "key < ?" in sql:
                raise RuntimeError("injected: the disk went away")

        con = st.lake.con
        st.lake.con = Hooked(con, before=fail)
        with pytest.raises(RuntimeError, match="injected"):
            small_files.fold(st.lake, "T", at_files=99, rewrite_worn=True)
        st.lake.con = con
        st.lake.reopen()
        assert live_keys(st, index, bulk) == live
        assert dump(store) == before and with_write_ids(store) == ids
        assert st.fold_small_files("T", at_files=99, rewrite_worn=True)["row_index" + small_files.SLICED] == 1
        assert live_keys(st, index, bulk) == live[len(live) - len(live_keys(st, index, bulk)):]
    assert dump(store) == before and with_write_ids(store) == ids


@pytest.mark.parametrize("moment", ["after the fold listed its files", "after the fold read their rows"])
def test_a_delete_racing_a_fold_is_never_undone(tmp_path, moment):
    """The fault: another connection deletes a key whose row is in one of the folded files, in another thread,
    past the store's writer lock (as a writer on a PostgreSQL catalog, which has none, would), at ``moment``.
    After the listing, the delete commits and the fold reads the rows without it. After the read, the fold
    holds this SQLite catalog's write lock, so the delete's commit fails as retryable, and its retry (as
    ``Lake.retrying`` would run it) deletes the row from the folded file. Either way the key stays deleted."""
    from dynadex.store.catalog.lake import retryable

    store = batches(tmp_path, False, 3)
    with Store(store, read_only=False) as st, Store(store, read_only=False) as other:
        last = small_files.foldable(files_of(st, "row_index"))[-1]
        key, = st.lake.con.execute(f"SELECT key FROM {row_table('T')} WHERE filename = ? LIMIT 1", [last]).fetchone()
        victim = canonical_item({"pk": {"S": key.split('"S":"')[1].split('"')[0]}})
        outcome, listings = [], []

        def delete() -> None:  # apply_changes itself: no writer lock, no retry
            try:
                outcome.append(apply_changes(other.lake, "T", [Change(victim, None, 9_000_000_000_000_000, "o")]))
            except Exception as exc:  # noqa: BLE001 - checked below
                outcome.append(exc)

        def after(sql: str) -> None:
            listings.append(sql) if "ducklake_list_files" in sql else None
            due = (len(listings) == len(small_files.INDEXES) and "ducklake_list_files" in sql
                   if moment.endswith("listed its files") else sql.startswith("INSERT INTO") and "filename IN" in sql)
            if due and not outcome:
                racer = threading.Thread(target=delete)
                racer.start()
                racer.join(60)

        st.lake.con = Hooked(st.lake.con, after=after)
        # the fold alone: its flush of inlined rows first would be one more commit, which this unretried delete
        # would meet as a stale cache (Lake.retrying runs such a write again)
        folded = st.fold_small_files("T", at_files=2, flush_first=False)
        assert folded == {"row_index": 3, "main": 3, "inverted_index": 3}
        deleted = {"upserts": 0, "deletes": 1, "stale": 0, "columns_added": 0}
        if moment.endswith("listed its files"):
            assert outcome == [deleted]
        else:
            assert len(outcome) == 1 and isinstance(outcome[0], Exception) and retryable(outcome[0]), outcome
            other.lake.reopen()
            assert apply_changes(other.lake, "T", [Change(victim, None, 9_000_000_000_000_000, "o")]) == deleted
        assert st.get("T", key) is None
        assert st.lake.con.execute(f"SELECT count(*) - count(DISTINCT key) FROM {row_table('T')}").fetchone() == (0,)
        assert st.lake.con.execute('SELECT count(*) FROM main."T" WHERE _key = ?', [key]).fetchone() == (0,)


def test_maintenance_folds_every_index_including_pruned_inverted_files_and_rewrites_worn_ones(tmp_path):
    store = batches(tmp_path, False, 3)
    before = dump(store)
    with Store(store, read_only=False) as st:
        result = st.compact()  # prune deletes inverted entries from the batch files: DuckLake's merge skips them
        assert result["stale_inverted_entries_removed"] > 0 and result["small_files_folded"] == 9
        assert result["worn_files_rewritten"] == 2  # the bulk load's row and column files lost most rows
        for index in small_files.KEYED:
            assert not [p for p, _ in files_of(st, index.schema) if "/bulk/" in p]
        for index in small_files.INDEXES:
            assert len(small_files.foldable(files_of(st, index.schema))) == 1
    after = dump(store)
    assert after["all_inverted"] == after["live_inverted"]  # pruned ...
    assert {k: v for k, v in after.items() if k != "all_inverted"} == {
        k: v for k, v in before.items() if k != "all_inverted"}  # ... and every answer as it was


def test_the_sync_folds_its_small_files_as_it_goes(tmp_path, monkeypatch):
    """A run of batches over the inline limit (one file per index each): every ``fold_every_batches`` batches
    the sync folds each index holding ``FOLD_AT_FILES`` small files, so a run never piles them up, and every
    entry is still found."""
    from dynadex.stream.sync import SyncSettings, TableSync

    monkeypatch.setattr(small_files, "FOLD_AT_FILES", 3)
    with followed_store(str(tmp_path)) as st:
        sync = TableSync(st, "T", Table(), ChainStream(1, 1, per_shard=12_000, filters=True), None,
                         SyncSettings(batch_seconds=60, batch_records=1_500, overlap_seconds=0, fold_every_batches=2,
                                      backlog_batch_factor=1))  # fixed batches: 8 of them, folds between
        stats = sync.run(until=0, until_caught_up=True)
        assert stats["batches"] >= 6 and stats["folds"] >= 2
        for index in small_files.INDEXES:  # the inverted index too: each stream file was one more for `find`
            assert len(small_files.foldable(files_of(st, index.schema))) < 3 + 2  # at most a check's worth left
        assert st.query("SELECT count(*), count(DISTINCT key) FROM row_index.T")[1] == [(12_001, 12_001)]
        # every entry is still found, from the folded files and the ones left: the first, a middle, the last
        for seq, key in ((1, "r0g0i0"), (6_000, "r0g0i5999"), (12_000, "r0g0i11999")):
            assert st.find("T", f"n={seq}") == [f'{{"n":{{"N":"{seq}"}},"pk":{{"S":"{key}"}}}}']
        assert st.query("SELECT count(*) FROM inverted_index.T WHERE path = 'n'")[1] == [(12_000,)]
