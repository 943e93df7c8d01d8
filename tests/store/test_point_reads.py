"""Point reads (store/point_reads.py) answer every get exactly as DuckLake does at the same snapshot: through
stream batches that write files and delete files, inlined rows and inlined deletions, a flush, a fold and
maintenance; for string, number and composite keys and absent keys. They are taken (counted), and where they
cannot answer (an unknown catalog version, a file gone) the get still answers the same through DuckLake."""

from __future__ import annotations

import json
import random

import pytest

from dynadex.store import Change, Checkpoint, Store, reads
from dynadex.store import point_reads as points
from dynadex.store.errors import NeedsTransaction
from dynadex.store.point_reads import PointReads
from dynadex.types import canonical_item
from tests.support.store import publish_items

ITEMS = 9000  # three row groups of 4 096 rows in each of the two bulk files


def _key_json(key: dict) -> str:
    return json.dumps(key, sort_keys=True)


def _both(st: Store, pr: PointReads, table: str, keys: list[dict]) -> tuple[list, list]:
    """Each key's get with point reads and through DuckLake, each pair read at one snapshot."""
    fast, slow = [], []
    for key in keys:
        kj = _key_json(key)
        a, sa = st.read_snapshot(lambda r: r.get(table, kj), point_reads=pr)
        b, sb = st.read_snapshot(lambda r: r.get(table, kj))
        fast.append((sa.id, a))
        slow.append((sb.id, b))
    return fast, slow


def _batch(st: Store, table: str, changes: list[Change], n: int) -> None:
    st.apply(table, changes, [Checkpoint("s1", str(n))])


@pytest.mark.parametrize("small_rows", [points.SMALL_FILE_ROWS, 0], ids=["key-maps", "row-groups"])
def test_point_reads_answer_as_ducklake_through_batches_flushes_folds_and_maintenance(tmp_path, monkeypatch,
                                                                                     small_rows):
    # every file of this store is small: read through the kept key maps, and (0) through the row groups
    monkeypatch.setattr(points, "SMALL_FILE_ROWS", small_rows)
    rnd = random.Random(30)
    store = tmp_path / "store"
    publish_items(store, "T", [{"pk": {"S": f"k{i:05d}"}, "n": {"N": str(i)}} for i in range(ITEMS)], chunks=2)
    every: list[dict] = [{"pk": {"S": f"k{i:05d}"}} for i in range(ITEMS)]
    absent = [{"pk": {"S": "k"}}, {"pk": {"S": "zzz"}}, {"pk": {"S": "k00001x"}}, {"pk": {"S": ""}}]
    version = iter(range(1000, 10**6))
    touched: list[dict] = []  # every key a batch changed: each is read at every later stage

    def changes(count: int, deletes: int = 0, new: int = 0) -> list[Change]:
        out = []
        for key in rnd.sample(every, count):
            out.append(Change(key, canonical_item({**key, "n": {"N": str(rnd.randrange(10**6))}}), next(version), "s"))
        for key in rnd.sample(every, deletes):
            out.append(Change(key, None, next(version), "s"))
        for _ in range(new):
            key = {"pk": {"S": f"new{rnd.randrange(10**9):09d}"}}
            every.append(key)
            out.append(Change(key, canonical_item({**key, "n": {"N": "1"}}), next(version), "s"))
        touched.extend(ch.keys for ch in (out if len(out) < 50 else rnd.sample(out, 40)))
        return out

    stages = {}
    pr = PointReads(str(store / "data"))  # one for every stage: a plan is made from the last one where it can
    with Store(str(store), read_only=False) as w:
        def stage(name: str) -> None:
            with Store(str(store), sandbox=True) as st:
                keys = rnd.sample(every, 60) + absent + touched
                taken = pr.counts["fast"]
                fast, slow = _both(st, pr, "T", keys)
                assert fast == slow, name
                assert pr.counts["fast"] - taken == len(keys) and not pr.counts["fallback"], (name, pr.counts)
                stages[name] = sum(1 for _, item in fast if item is not None)
                # the table's sync state read from the catalog (no DuckLake) is DuckLake's at that snapshot
                ducklake, snap = st.read_snapshot(lambda r: r.table_state("T"))
                assert reads.DetachedReader(st.lake, snap, pr).table_state("T") == ducklake, name

        stage("published")
        _batch(w, "T", changes(1500, deletes=200, new=300), 1)  # files, and delete files of the bulk files
        stage("a batch of files")
        for n in range(2, 6):  # inlined rows, inlined deletions of bulk and stream files alike
            _batch(w, "T", changes(6, deletes=2, new=2), n)
            stage(f"inlined rows {n}")  # each plan made from the last one (``PointReads._follow``)
        assert pr.counts["followed"] >= 4
        before = w.lake.current_snapshot()
        _batch(w, "T", changes(3), 6)
        with Store(str(store), sandbox=True) as st:  # a batch keeps rows where they are, a flush moves them
            assert not points.moving_since(st.lake, before) and not reads._moving_commits(st.lake, before)
        w.flush_inlined()
        with Store(str(store), sandbox=True) as st:
            assert points.moving_since(st.lake, before) and reads._moving_commits(st.lake, before)
        stage("flushed")
        for n in range(7, 9):
            _batch(w, "T", changes(6, deletes=2, new=2), n)
        _batch(w, "T", changes(1200, deletes=100, new=100), 9)
        w.fold_small_files("T", at_files=2)
        stage("folded")
        for n in range(10, 13):
            _batch(w, "T", changes(4, deletes=1, new=1), n)
        w.compact()
        stage("compacted")
    assert all(stages.values()) and len(stages) == 9


def test_number_and_composite_keys(tmp_path):
    store = tmp_path / "store"
    items = [{"pk": {"N": str(i // 3)}, "sk": {"B": ["AQ==", "Ag==", "AAE="][i % 3]}, "v": {"S": f"x{i}"}}
             for i in range(300)]
    publish_items(store, "K", items, key=("pk", "sk"), types=("N", "B"))
    with Store(str(store), read_only=False) as w:
        _batch(w, "K", [Change({"pk": {"N": "5"}, "sk": {"B": "AQ=="}}, None, 10, "s"),
                        Change({"pk": {"N": "7"}, "sk": {"B": "Ag=="}},
                               canonical_item({"pk": {"N": "7"}, "sk": {"B": "Ag=="}, "v": {"S": "new"}}), 10, "s"),
                        Change({"pk": {"N": "1.5"}, "sk": {"B": "AQ=="}},
                               canonical_item({"pk": {"N": "1.5"}, "sk": {"B": "AQ=="}}), 10, "s")], 1)
    keys = [{"pk": i["pk"], "sk": i["sk"]} for i in items] + [
        {"pk": {"N": "7.0"}, "sk": {"B": "Ag=="}}, {"pk": {"N": "1.50"}, "sk": {"B": "AQ=="}},
        {"pk": {"N": "1E2"}, "sk": {"B": "AQ=="}}, {"pk": {"N": "99"}, "sk": {"B": "AQ=="}},
        {"pk": {"N": "-0"}, "sk": {"B": "AQ=="}}]
    with Store(str(store), sandbox=True) as st:
        pr = PointReads(st.location.data_path)
        fast, slow = _both(st, pr, "K", keys)
        assert fast == slow
        assert pr.counts["fast"] == len(keys) and not pr.counts["fallback"]
        assert fast[-4][1] is not None and fast[15][1] is None  # 1.50 is 1.5; (5, AQ==) was deleted


def test_a_second_read_of_a_snapshot_needs_no_transaction(tmp_path):
    store = tmp_path / "store"
    publish_items(store, "T", [{"pk": {"S": f"k{i}"}} for i in range(50)])
    with Store(str(store), sandbox=True) as st:
        pr = PointReads(st.location.data_path)
        first, s1 = st.read_snapshot(lambda r: r.get("T", '{"pk":{"S":"k7"}}'), point_reads=pr)
        second, s2 = st.read_snapshot(lambda r: r.get("T", '{"pk":{"S":"k8"}}'), point_reads=pr)
        assert (first, second) == ('{"pk":{"S":"k7"}}', '{"pk":{"S":"k8"}}') and s1 == s2
        assert s1.committed_at == reads._commit_time(st.lake, s1.id)  # read from the catalog's table: the same
        # the first made the plan (and was checked for a flush since), the second used it
        assert pr.counts["plans"] == 1 and pr.counts["detached"] == 2 and pr.counts["fast"] == 2
        # a read that needs DuckLake (a query) runs in a transaction at the same snapshot
        (n, item), s3 = st.read_snapshot(lambda r: (r.items("T"), r.get("T", '{"pk":{"S":"k9"}}')), point_reads=pr)
        assert (n, item, s3.id) == (50, '{"pk":{"S":"k9"}}', s1.id) and pr.counts["detached"] == 2
        # the table's sync state, read without DuckLake, is DuckLake's
        (state, ducklake), _ = st.read_snapshot(lambda r: (r.table_state("T"), st.lake.table_state("T")))
        assert reads.DetachedReader(st.lake, s1, pr).table_state("T") == ducklake == state
        assert pr.state(st.lake, s1.id, "Nope", []) is None
        with pytest.raises(NeedsTransaction):  # a table that is not there: DuckLake says so
            reads.DetachedReader(st.lake, s1, pr).table_state("Nope")


def test_what_it_cannot_read_goes_through_ducklake(tmp_path, monkeypatch):
    store = tmp_path / "store"
    publish_items(store, "T", [{"pk": {"S": f"k{i}"}} for i in range(50)])
    keys = [{"pk": {"S": f"k{i}"}} for i in (1, 2, 49, 50)]
    with Store(str(store), sandbox=True) as st:
        monkeypatch.setattr(points, "CATALOG_VERSION", "0.9")  # a catalog layout it does not know
        pr = PointReads(st.location.data_path)
        fast, slow = _both(st, pr, "T", keys)
        assert fast == slow and pr.counts["fallback"] >= len(keys) and not pr.counts["fast"]
        assert pr.counts["fallback: catalog version 1.0"] == 1  # the catalog is asked once per snapshot
        monkeypatch.undo()

        pr = PointReads(st.location.data_path)
        fast, slow = _both(st, pr, "T", keys[:1])  # a plan kept
        real = PointReads._in_file

        def gone(self, f, key):  # a merge and an expiry removed the plan's file since
            raise FileNotFoundError(f.path)

        monkeypatch.setattr(PointReads, "_in_file", gone)
        taken = pr.counts["fast"]
        fast, slow = _both(st, pr, "T", keys)
        assert fast == slow and [i for _, i in fast].count(None) == 1
        assert pr.counts["fallback"] >= len(keys) and pr.counts["fast"] == taken
        monkeypatch.setattr(PointReads, "_in_file", real)
        assert _both(st, pr, "T", keys)[0] == slow


def test_a_file_outside_the_data_path_is_never_opened(tmp_path):
    store = tmp_path / "store"
    publish_items(store, "T", [{"pk": {"S": "a"}}])
    with Store(str(store), sandbox=True) as st:
        pr = PointReads(str(tmp_path / "elsewhere"))
        fast, slow = _both(st, pr, "T", [{"pk": {"S": "a"}}])
        assert fast == slow and pr.counts["fallback"] >= 1 and not pr.counts["fast"]
        assert any("outside the data path" in k for k in pr.counts)


def test_row_groups_found_by_bisection_are_those_the_statistics_allow():
    rnd = random.Random(4)
    bounds = sorted(f"k{rnd.randrange(10**6):07d}" for _ in range(40))
    ordered = points._Footer(tuple((i * 10, 10, bounds[2 * i], bounds[2 * i + 1]) for i in range(20)),
                             tuple(bounds[2 * i + 1] for i in range(20)))
    # a key on the boundary of two groups (one's max, the next's min) is in both
    edge = points._Footer(((0, 2, "a", "c"), (2, 2, "c", "c"), (4, 2, "c", "e")), ("c", "c", "e"))
    unordered = points._Footer(((0, 5, "m", "p"), (5, 5, "a", "z"), (10, 5, None, None)))
    for footer in (ordered, edge, unordered):
        for key in bounds + ["", "a", "b", "c", "d", "e", "f", "k", "zz", "k05"]:
            allowed = [g for g, (_, _, lo, hi) in enumerate(footer.groups) if lo is None or lo <= key <= hi]
            assert footer.candidates(key) == allowed, (footer, key)
    assert edge.candidates("c") == [0, 1, 2] and unordered.candidates("b") == [1, 2]


def test_a_get_reads_the_newest_snapshot_while_batches_commit_and_flush(tmp_path):
    """Each read starts at the catalog's newest snapshot (``point_reads.newest``, asked of SQLite itself): it
    never answers from before a batch whose commit returned before it started, never goes back, and is DuckLake's
    answer at that snapshot, while the writer commits batches and flushes inlined rows between the reads."""
    store = tmp_path / "store"
    publish_items(store, "T", [{"pk": {"S": "c"}, "n": {"N": "0"}}] + [{"pk": {"S": f"k{i}"}} for i in range(300)])
    key = _key_json({"pk": {"S": "c"}})
    pr = PointReads(str(store / "data"))
    with Store(str(store), read_only=False) as w, Store(str(store), sandbox=True) as st:
        assert points.newest(st.lake) == (st.lake.current_snapshot(), reads._commit_time(st.lake, st.lake.current_snapshot()))
        last_snapshot = 0
        for n in range(1, 13):
            _batch(w, "T", [Change({"pk": {"S": "c"}}, canonical_item({"pk": {"S": "c"}, "n": {"N": str(n)}}),
                                   100 + n, "s")], n)
            if n % 4 == 0:
                w.flush_inlined()  # the rows move from the catalog to a file: the next read must find them there
            committed = w.lake.current_snapshot()
            assert points.newest(st.lake)[0] == committed
            item, snap = st.read_snapshot(lambda r: r.get("T", key), point_reads=pr)
            assert snap.id == committed >= last_snapshot and json.loads(item)["n"] == {"N": str(n)}, (n, snap)
            slow, at = st.read_snapshot(lambda r: r.get("T", key))
            assert (slow, at.id) == (item, snap.id)
            last_snapshot = snap.id
        assert pr.counts["detached"] >= 12 and not pr.counts["fallback"], pr.counts


def test_the_catalog_read_by_sqlite_itself_is_what_duckdbs_scan_reads(tmp_path):
    """``_catalog_rows`` answers through the side reader (Python's sqlite3 in a child process) or ``sqlite_query``
    on a SQLite catalog and through DuckDB's scan of the attached catalog otherwise (a PostgreSQL catalog): all
    three give the same plans, states and checks."""
    store = tmp_path / "store"
    publish_items(store, "T", [{"pk": {"S": f"k{i}"}, "n": {"N": "0"}} for i in range(100)])
    with Store(str(store), read_only=False) as w:
        before = w.lake.current_snapshot()
        for n in range(1, 4):  # inlined rows, inlined deletions of the bulk file, a new state row each
            _batch(w, "T", [Change({"pk": {"S": f"k{n}"}}, canonical_item({"pk": {"S": f"k{n}"}, "n": {"N": str(n)}}),
                                   10 + n, "s"), Change({"pk": {"S": f"k{50 + n}"}}, None, 10 + n, "s")], n)
        w.flush_inlined()
        _batch(w, "T", [Change({"pk": {"S": "new"}}, canonical_item({"pk": {"S": "new"}}), 20, "s")], 4)
    with Store(str(store), sandbox=True) as st:
        cursor, s = points._cursor(st.lake), st.lake.current_snapshot()
        side = cursor.side
        assert cursor.sqlite and side is not None
        got = {}
        for way, sqlite, by in (("side", True, side), ("sqlite_query", True, None), ("scan", False, None)):
            cursor.sqlite, cursor.side = sqlite, by
            points._NEWEST.clear()  # each way reads the newest snapshot itself
            pr = PointReads(str(store / "data"))
            plan = pr._build(st.lake, s, "T")
            state = pr.state(st.lake, s, "T", [])
            followed = pr._follow(st.lake, pr._build(st.lake, s - 1, "T"), s)  # inlined rows since
            followed = followed and (followed.files, followed.inlined)  # (inlined_tables: listed by SQLite only)
            got[way] = (points.newest(st.lake), sorted((f.path, f.deleted) for f in plan.files), plan.inlined,
                        state, points.moving_since(st.lake, before), points.moving_since(st.lake, s - 1),
                        points._inlined_tables(cursor, plan.table_id), followed)
        cursor.sqlite, cursor.side = True, side
        assert got["side"] == got["sqlite_query"] == got["scan"]
        assert not cursor.__dict__.get("side_failures"), cursor.__dict__.get("side_failed")  # each read was its own
        assert side.pid() is not None
        found = got["side"]
        assert found[2] == {'{"pk":{"S":"new"}}': ['{"pk":{"S":"new"}}']} and found[4] and not found[5]
        assert any(f[1] for f in found[1])  # the bulk file's deleted positions
        assert found[3] is not None and found[3].synced_at is not None  # a state row with its times cast
        assert found[7] and found[7][1] == found[2]  # followed from the snapshot before


def test_a_side_read_failing_mid_read_is_read_through_duckdbs_sqlite_and_the_next_starts_a_new_child(
        tmp_path, monkeypatch):
    """A fault injected in the side reader's reply (its pipe ending mid-read, as when the child dies) fails that
    statement only: it is read again through ``sqlite_query``, the gets answer as DuckLake does, with no fallback
    to DuckLake, and the next read starts a new child."""
    from dynadex.store.catalog import side_reader as side_module

    store = tmp_path / "store"
    publish_items(store, "T", [{"pk": {"S": f"k{i}"}, "n": {"N": "0"}} for i in range(100)])
    key = _key_json({"pk": {"S": "k1"}})
    pr = PointReads(str(store / "data"))
    with Store(str(store), read_only=False) as w, Store(str(store), sandbox=True) as st:
        cursor = points._cursor(st.lake)
        assert st.read_snapshot(lambda r: r.get("T", key), point_reads=pr)[0] is not None
        started = cursor.side.started
        real, faults = side_module._exactly, []

        def dying(pipe, n):
            if not faults:
                faults.append(n)
                raise EOFError("the side reader's pipe ended")  # the injected fault
            return real(pipe, n)

        monkeypatch.setattr(side_module, "_exactly", dying)
        for n in range(1, 4):  # each batch a new snapshot whose plan and state are read from the catalog
            _batch(w, "T", [Change({"pk": {"S": "k1"}}, canonical_item({"pk": {"S": "k1"}, "n": {"N": str(n)}}),
                                   10 + n, "s")], n)
            fast, at = st.read_snapshot(lambda r: r.get("T", key), point_reads=pr)
            slow, at_slow = st.read_snapshot(lambda r: r.get("T", key))
            assert (fast, at.id) == (slow, at_slow.id) and json.loads(fast)["n"] == {"N": str(n)}
        assert faults and cursor.__dict__.get("side_failures") == 1, cursor.__dict__.get("side_failed")
        assert cursor.side.started == started + 1 and not pr.counts["fallback"], pr.counts
