"""Readers in other processes while a writer commits: they always see whole snapshots.

Two real processes share one SQLite-catalogued DuckLake store. The writer
alternates full publishes (each build has a different item count and a
build tag on every item) with change batches that move value between two
items (the total stays constant). The reader checks, on every query, that
what it sees is one whole snapshot: one build tag, the build's item count in
all three indexes (current inverted entries: batches append, see
store/layout/writes.py), and the constant total.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

WRITER = textwrap.dedent(
    """
    import sys, time, random
    from dynadex.store import Change, PublishSpec, Store
    from dynadex.types import canonical_item
    store = sys.argv[1]
    rnd = random.Random(7)
    def item(i, build, x):
        return canonical_item({"pk": {"S": f"k{i:05d}"}, "build": {"N": str(build)}, "x": {"N": str(x)},
                               "tag": {"S": f"b{build}"}})
    with Store(store, read_only=False) as st:
        deadline = time.time() + float(sys.argv[2])
        build = 0
        while time.time() < deadline:
            build += 1
            n = 200 + 37 * (build % 5)          # item count differs per build
            w = st.chunk_writer("T", f"b{build}", "c0", ("pk",), ("S",))
            for i in range(n):
                w.add(item(i, build, 100), build * 1000, "bulk")   # total = 100 * n
            w.finish()
            st.publish(PublishSpec("T", f"b{build}", ["c0"], ("pk",), ("S",), total_items=n))
            xs = [100] * n
            for step in range(5):                 # value moves between two items per batch
                a, b = rnd.sample(range(n), 2)
                amount = rnd.randint(1, 50)
                xs[a] -= amount; xs[b] += amount
                v = build * 1000 + step + 1
                st.apply("T", [Change({"pk": {"S": f"k{a:05d}"}}, item(a, build, xs[a]), v, "s"),
                               Change({"pk": {"S": f"k{b:05d}"}}, item(b, build, xs[b]), v, "s")])
        print(json.dumps({"builds": build}) if False else build)
    """
)

READER = textwrap.dedent(
    """
    import sys, time, json
    from dynadex.store import Store
    store = sys.argv[1]
    deadline = time.time() + float(sys.argv[2])
    checks = 0
    seen_builds = set()
    while time.time() < deadline:
        try:
            st = Store(store)
        except Exception as exc:     # store not created yet
            time.sleep(0.05); continue
        with st:
            if "T" not in st.tables():
                time.sleep(0.05); continue
            cols, rows = st.query(
                "SELECT (SELECT count(*) FROM T), (SELECT count(DISTINCT build) FROM T), (SELECT min(build) FROM T),"
                " (SELECT sum(x) FROM T), (SELECT count(*) FROM row_index.T),"
                " (SELECT count(*) FROM inverted_index.T i JOIN row_index.T r USING (key)"
                "  WHERE i.path = 'tag' AND r.write_id IS NOT DISTINCT FROM i.write_id),"  # current entries only
                " (SELECT count(DISTINCT value) FROM inverted_index.T WHERE path = 'tag')")
            n, builds, build, total, rows_n, inv_n, inv_tags = rows[0]
            expected = 200 + 37 * (build % 5)
            assert builds == 1, f"mixed builds visible: {builds}"
            assert n == expected == rows_n == inv_n, (n, expected, rows_n, inv_n)
            assert inv_tags == 1, inv_tags
            assert total == 100 * n, (total, n)
            checks += 1
            seen_builds.add(build)
    print(json.dumps({"checks": checks, "builds": len(seen_builds)}))
    """
)


def test_reader_process_sees_only_whole_snapshots_while_writer_commits(tmp_path):
    store = str(tmp_path / "store")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, store, "12"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    reader = subprocess.Popen([sys.executable, "-c", READER, store, "12"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    r_out, r_err = reader.communicate(timeout=120)
    w_out, w_err = writer.communicate(timeout=120)
    assert writer.returncode == 0, w_err[-3000:]
    assert reader.returncode == 0, r_err[-3000:]
    result = json.loads(r_out.strip().splitlines()[-1])
    builds_written = int(w_out.strip().splitlines()[-1])
    assert builds_written >= 3
    assert result["checks"] >= 5, result
    assert result["builds"] >= 2, result  # the reader really saw the snapshot change under it


BATCHES = textwrap.dedent(
    """
    import json, os, random, sys, time
    from dynadex.store import Change, Checkpoint, PublishSpec, Store
    from dynadex.types import canonical_item
    store, rounds_file, wanted = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rnd = random.Random(11)
    def item(i, v):
        return canonical_item({"pk": {"S": f"k{i:03d}"}, "v": {"N": str(v)}, "city": {"S": ["Oslo", "Paris", "Rome"][v % 3]}})
    def rounds():  # maintenance rounds ended so far (-1: maintenance not started)
        try:
            return int(open(rounds_file).read())
        except (OSError, ValueError):
            return -1
    expected = {}
    with Store(store, read_only=False) as st:
        w = st.chunk_writer("T", "b1", "c0", ("pk",), ("S",))
        for i in range(300):
            w.add(item(i, 0), 1, "bulk")
            expected[f"k{i:03d}"] = 0
        w.finish()
        st.publish(PublishSpec("T", "b1", ["c0"], ("pk",), ("S",), total_items=300))
        print("published", flush=True)
        # batches until maintenance has ended `wanted` rounds meanwhile (a condition, not a time window: a
        # faster writer or a slower box changes how many fit, not whether they overlap); a bound, not a target
        bound, v, during = time.time() + 300, 0, []
        while (v < 5 or rounds() < wanted) and time.time() < bound:
            v += 1
            keys = rnd.sample(range(300), 20)
            st.apply("T", [Change({"pk": {"S": f"k{i:03d}"}}, item(i, v), 10 + v, "s") for i in keys],
                     [Checkpoint("shard-1", str(1000 + v))])
            expected.update({f"k{i:03d}": v for i in keys})
            during.append(rounds())
    # batches committed while maintenance was under way (after it started, before its last wanted round ended)
    print(json.dumps({"batches": v, "expected": expected, "rounds_seen": sorted(set(during)),
                      "during_maintenance": sum(1 for r in during if 0 <= r < wanted)}))
    """
)

MAINTAIN = textwrap.dedent(
    """
    import datetime as dt, os, sys
    from dynadex.store import Store
    store, rounds_file, wanted = sys.argv[1], sys.argv[2], int(sys.argv[3])
    def tell(runs):  # atomically, for the writer to read
        with open(rounds_file + ".tmp", "w") as f:
            f.write(str(runs))
        os.replace(rounds_file + ".tmp", rounds_file)
    runs = 0
    tell(runs)
    while runs < wanted:
        with Store(store, read_only=False) as st:
            st.compact()
            st.expire(dt.timedelta(0))
        runs += 1
        tell(runs)
    print(runs)
    """
)


def test_stream_batches_and_maintenance_commit_side_by_side(tmp_path):
    """A stream writer and the maintenance job in two processes on one store: both commit the same
    catalog all the time (before retries, about one batch in twenty failed with "database is locked").
    Neither fails, the writer keeps committing while maintenance rounds run (it writes until three rounds
    have ended, however long they take), and the index ends exactly as the batches left it, in all three
    indexes."""
    store, rounds_file, wanted = str(tmp_path / "store"), str(tmp_path / "maintenance-rounds"), "3"
    writer = subprocess.Popen([sys.executable, "-c", BATCHES, store, rounds_file, wanted], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "published"
    maintainer = subprocess.Popen([sys.executable, "-c", MAINTAIN, store, rounds_file, wanted], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
    m_out, m_err = maintainer.communicate(timeout=360)
    if maintainer.returncode != 0:
        writer.kill()  # it would wait for rounds that never end
    w_out, w_err = writer.communicate(timeout=360)
    assert writer.returncode == 0, w_err[-3000:]
    assert maintainer.returncode == 0, m_err[-3000:]
    done = json.loads(w_out.strip().splitlines()[-1])
    assert int(m_out.strip().splitlines()[-1]) == 3
    # side by side: the writer saw every round end (0, 1, 2 then 3) and committed batches while they ran
    seen = {k: done[k] for k in done if k != "expected"}
    assert done["rounds_seen"][-1] == 3 and done["during_maintenance"] >= 2, seen
    assert done["batches"] >= 5
    from dynadex.store import Store

    with Store(store) as st:
        rows = dict(st.query("SELECT pk, v FROM T")[1])
        assert rows == done["expected"]
        assert st.query("SELECT count(*), count(DISTINCT key) FROM row_index.T")[1] == [(300, 300)]
        for city, rest in (("Oslo", 0), ("Paris", 1), ("Rome", 2)):
            found = sorted(json.loads(i)["pk"]["S"] for i in st.find("T", f"city={city}"))
            assert found == sorted(k for k, v in done["expected"].items() if v % 3 == rest)
        assert st.checkpoints("T")["shard-1"].sequence_number == str(1000 + done["batches"])
