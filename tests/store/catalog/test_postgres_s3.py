"""The distributed store: DuckLake catalog in a real PostgreSQL server, data files on S3 (the emulator).

PostgreSQL comes from Debian's packages (.ci/run installs it); the test starts its own
throw-away cluster on a free port. Without the server binaries the test is skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dynadex.store import Change, PublishSpec, Store
from dynadex.types import canonical_item
from tests.support.paths import REPO


@pytest.fixture(scope="module")
def postgres(postgres_server):
    return postgres_server.database("dynadex")


def test_postgres_catalog_with_s3_data(postgres, emulator):
    aws = emulator(bucket="lake", env=True)
    s3 = aws.client("s3")
    with Store(postgres, data_path="s3://lake/data/", read_only=False) as st:
        assert st.location.catalog.startswith("postgres:") and st.location.is_s3
        w = st.chunk_writer("Orders", "b1", "c0", ("pk",), ("S",))
        for i in range(500):
            w.add(canonical_item({"pk": {"S": f"k{i}"}, "n": {"N": str(i)}, "city": {"S": "Paris" if i % 2 else "Rome"}}), 1, "t")
        w.finish()
        assert st.publish(PublishSpec("Orders", "b1", ["c0"], ("pk",), ("S",), total_items=500))["published"]
        st.apply("Orders", [Change({"pk": {"S": "k1"}}, canonical_item({"pk": {"S": "k1"}, "n": {"N": "-1"}, "new": {"BOOL": True}}), 5, "s"),
                            Change({"pk": {"S": "k2"}}, None, 5, "s")])
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="lake")["Contents"]]
    # the chunk's final files, on S3 under bulk/ (a two-change stream batch is inlined in the catalog)
    assert any(k.startswith("data/bulk/Orders/b1/c0/") and k.endswith("/rows.parquet") for k in keys)
    # another process reads through the CLI, with the same settings
    env = {**os.environ}
    done = subprocess.run([sys.executable, "-m", "dynadex.cli", "query", "SELECT count(*) AS n, sum(n) AS s FROM Orders",
                           "--json", "--store", postgres, "--data-path", "s3://lake/data/"],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == '{"n": 499, "s": 124746}'  # 124750 - 1 - 1 (k1 -> -1) - 2 (k2 deleted)
    with Store(postgres, data_path="s3://lake/data/") as st:
        assert st.find("Orders", "new=true") == ['{"n":{"N":"-1"},"new":{"BOOL":true},"pk":{"S":"k1"}}']
        assert st.get("Orders", '{"pk":{"S":"k2"}}') is None
    from dynadex.store.catalog.location import resolve  # the display never shows a password
    assert "secret" not in resolve("postgresql://u:secret@h/db", "s3://b/").display


def test_duckdb_chunk_build_writes_its_segment_to_s3(postgres, emulator, tmp_path):
    """The DuckDB build path with S3 data (a distributed deployment): the chunk's final files on S3, then a
    publish that registers them."""
    import json as _json

    from dynadex.export import read_export
    from dynadex.store import resolve
    from dynadex.store.bulk.build import build_chunk
    from dynadex.store.bulk.chunk_manifest import read_manifest
    from dynadex.store.bulk.plan import plan_chunks

    emulator(bucket="lake", env=True)
    sys.path.insert(0, str(REPO / "bench"))
    from gen_export import generate

    summary = generate(tmp_path, 3000, 3)
    export = read_export(str(summary))
    [spec] = plan_chunks(export.files, 10**15)
    location = resolve(postgres, "s3://lake/data/")
    result = build_chunk(export, spec, location, "Gen", "b1", ("pk", "sk"), ("S", "N"), 1)
    manifest = read_manifest(location, "Gen", "b1", spec.chunk_id)
    assert result.items == 3000 and manifest.built_by == "duckdb"
    assert all(p.startswith("s3://lake/data/bulk/Gen/b1/") for files in manifest.files.values() for p in files)
    with Store(postgres, data_path="s3://lake/data/", read_only=False) as st:
        assert st.publish(PublishSpec("Gen", "b1", [spec.chunk_id], ("pk", "sk"), ("S", "N"), total_items=3000))["published"]
        assert st.query('SELECT count(*) FROM "Gen"')[1][0][0] == 3000
        hit = st.find("Gen", "email=user7@example.com")
        assert len(hit) == 1 and _json.loads(hit[0])["pk"] == {"S": "customer#000000007"}


def test_a_delete_racing_a_fold_fails_the_fold_which_folds_again(postgres_server, tmp_path):
    """On a PostgreSQL catalog no writer lock keeps a fold and a stream batch apart (store/catalog/writer_lock.py):
    a delete that commits after the fold read its files' rows makes DuckLake's conflict check fail the fold's
    commit, and ``Lake.retrying`` folds again from the new snapshot, so the deleted row never comes back
    (decision 0028; tests/store/upkeep/test_small_files.py has the SQLite catalog's side)."""
    import random
    import threading

    from dynadex.store import Checkpoint
    from dynadex.store.apply.changes import apply_changes
    from dynadex.store.layout.names import row_table
    from dynadex.store.upkeep import small_files
    from dynadex.stream.sync import record_changes
    from tests.support.records import rand_records
    from tests.support.store import Hooked

    catalog, data = postgres_server.database("fold_race"), str(tmp_path / "data")
    rnd = random.Random(3)
    with Store(catalog, data_path=data, read_only=False) as st:
        w = st.chunk_writer("T", "b1", "c0", ("pk",), ("S",))
        for i in range(300):
            w.add(canonical_item({"pk": {"S": f"k{i:04d}"}, "n": {"N": "0"}}), 1, "bulk")
        w.finish()
        st.publish(PublishSpec("T", "b1", ["c0"], ("pk",), ("S",), total_items=300))
        for b in range(3):  # files: over the inline limit
            changes = [ch for ch, _ in record_changes(rand_records(rnd, 1500, b + 1, False, 1200), "s")]
            st.apply("T", changes, [Checkpoint("s", f"{b:04d}")])
        last = small_files.foldable(small_files.listed(st.lake, "row_index", "T"))[-1]
        key, = st.lake.con.execute(f"SELECT key FROM {row_table('T')} WHERE filename = ? LIMIT 1", [last]).fetchone()
        victim = canonical_item({"pk": {"S": key.split('"S":"')[1].split('"')[0]}})
        with Store(catalog, data_path=data, read_only=False) as other:
            outcome = []

            def delete() -> None:
                try:
                    outcome.append(apply_changes(other.lake, "T", [Change(victim, None, 9 * 10**18, "o")]))
                except Exception as exc:  # noqa: BLE001 - checked below
                    outcome.append(exc)

            def after(sql: str) -> None:
                if sql.startswith("INSERT INTO") and "filename IN" in sql and not outcome:
                    racer = threading.Thread(target=delete)
                    racer.start()
                    racer.join(60)

            hooked = Hooked(st.lake.con, after=after)
            st.lake.con = hooked
            # the fold alone: its flush of inlined rows first would be one more commit, which this unretried
            # delete would meet as a stale cache (Lake.retrying runs such a write again)
            folded = st.fold_small_files("T", at_files=2, flush_first=False)
        assert outcome == [{"upserts": 0, "deletes": 1, "stale": 0, "columns_added": 0}]  # committed mid-fold
        assert st.lake.con is not hooked  # the fold's first commit failed: it ran again on a fresh connection
        assert folded == {"row_index": 3, "main": 3, "inverted_index": 3}
        assert st.get("T", key) is None
        assert st.lake.con.execute(f"SELECT count(*) - count(DISTINCT key) FROM {row_table('T')}").fetchone() == (0,)
        assert st.lake.con.execute('SELECT count(*) FROM main."T" WHERE _key = ?', [key]).fetchone() == (0,)
        # the bulk load's file lost most of its rows: read from DuckLake's PostgreSQL catalog tables, its share
        # makes it worn, and it is rewritten alone
        st.flush_inlined()
        bulk = [p for p, _ in small_files.listed(st.lake, "row_index", "T") if "/bulk/" in p]
        rows = st.lake.con.execute(f"SELECT count(*) FROM {row_table('T')}").fetchone()
        assert len(bulk) == 1 and st.fold_small_files("T", at_files=99, rewrite_worn=True)["row_index worn"] >= 1
        assert bulk[0] not in [p for p, _ in small_files.listed(st.lake, "row_index", "T")]
        assert st.lake.con.execute(f"SELECT count(*) FROM {row_table('T')}").fetchone() == rows
        assert st.get("T", key) is None
