"""Disk full under the store's data path, while a chunk's files and while a stream batch are written.

The disk is a real 8 MB tmpfs mounted for the test (we run as root) and filled with a ballast file, so
DuckDB itself meets ENOSPC; where mounting is not allowed (some CI), the same tests inject
OSError(ENOSPC) at the file-write boundary instead (a chunk's row file, a batch's insert). The test id
says which ran: ``[tmpfs]`` or ``[injected-enospc]``. After the fault: one clear error, nothing half
committed (the old snapshot, the old checkpoints); after freeing the space a re-run completes and
verify passes.

A small stream batch's rows are inlined in the catalog (decision 0021, on by default), so a full *data*
disk fails only a batch above the inline limit, which writes files; a small one commits, and its rows meet
the full disk when the sync flushes them into files: that flush fails, loses nothing, and lands once space
is freed.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from dynadex import bootstrap
from dynadex.store import Store
from dynadex.store.catalog.lake import ALIAS
from dynadex.store.errors import StoreFull
from dynadex.stream import sync_table
from dynadex.stream.verify import verify
from tests.support.emulator import BUCKET
from tests.support.sync import churn, clients, converge, filled, no_duplicates


def _can_mount() -> bool:
    probe = tempfile.mkdtemp(prefix="dynadex-tmpfs-probe-")
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", probe], capture_output=True)
        if done.returncode:
            return False
        subprocess.run(["umount", probe], check=True, capture_output=True)
        return True
    except OSError:
        return False
    finally:
        os.rmdir(probe)


# DYNADEX_TEST_DISK=injected-enospc runs the fallback where tmpfs would work too
DISK = os.environ.get("DYNADEX_TEST_DISK") or ("tmpfs" if _can_mount() else "injected-enospc")

pytestmark = pytest.mark.emulator(bucket=BUCKET, env=True, export_seconds=0.3, export_files=2, stream_shards=2)


class SmallDisk:
    """The store's data path on a small disk that ``fill`` fills and ``free`` frees."""

    def __init__(self, root: Path, mode: str):
        self.root, self.mode = root, mode
        self.patches = pytest.MonkeyPatch()
        self.ballast = root / "ballast"
        root.mkdir()
        if mode == "tmpfs":
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(root)], check=True)

    @property
    def data_path(self) -> str:
        return str(self.root / "data")

    def fill(self) -> None:
        if self.mode == "tmpfs":
            with open(self.ballast, "wb", buffering=0) as f:
                for block in (1 << 16, 1 << 12, 1 << 9):  # to the last block: nothing is left
                    try:
                        while True:
                            f.write(b"\0" * block)
                    except OSError as exc:
                        assert exc.errno == errno.ENOSPC
            return
        from dynadex.store.apply import changes
        from dynadex.store.bulk import chunk_files

        def no_space(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device", self.data_path)

        self.patches.setattr(chunk_files, "write_rows", no_space)
        self.patches.setattr(changes, "_insert", no_space)

    def free(self) -> None:
        if self.mode == "tmpfs":
            self.ballast.unlink()
        else:
            self.patches.undo()

    def close(self) -> None:
        self.patches.undo()
        if self.mode == "tmpfs":
            subprocess.run(["umount", "-l", str(self.root)], check=False)


@pytest.fixture(params=[DISK])
def disk(request, tmp_path, monkeypatch):
    d = SmallDisk(tmp_path / "disk", request.param)
    monkeypatch.setenv("DYNADEX_DATA_PATH", d.data_path)  # every Store(store) of the test finds its data there
    print(f"disk full injected by: {request.param}")
    try:
        yield d
    finally:
        d.close()


def snapshot(store: str, table: str):
    with Store(store) as st:
        return sorted(st.dump(table)), st.checkpoints(table), st.status(table)["tables"][0]["build_id"]


def test_disk_full_while_writing_a_chunk_publishes_nothing_then_completes(aws, disk, tmp_path):
    table = f"FullChunk{disk.mode.split('-')[0]}"
    ddb = filled(aws, table)
    store = str(tmp_path / "store")
    bootstrap.run(ddb, table, bucket=BUCKET, store=store, data_path=disk.data_path, poll_seconds=0.1, workers=1)
    before = snapshot(store, table)
    churn(ddb, table, 0, 40)
    disk.fill()
    with pytest.raises(StoreFull) as info:
        bootstrap.run(ddb, table, bucket=BUCKET, store=store, data_path=disk.data_path, poll_seconds=0.1, workers=1)
    text = str(info.value)
    assert "No space left on device" in text and f"of {table}" in text and "chunk c" in text, text
    assert snapshot(store, table) == before  # readers see the old snapshot; nothing published
    disk.free()
    bootstrap.run(ddb, table, bucket=BUCKET, store=store, data_path=disk.data_path, poll_seconds=0.1, workers=1)
    with Store(store) as st:
        assert verify(st, table, ddb).ok
    no_duplicates(store, table)


def _data_files(store: str, table: str) -> int:
    """Data files of the table's three indexes that the catalog lists (inlined rows are in none)."""
    with Store(store) as st:
        return sum(st.lake.con.execute(f"SELECT count(*) FROM ducklake_list_files('{ALIAS}', ?, schema => ?)",
                                       [table, schema]).fetchone()[0]
                   for schema in ("main", "row_index", "inverted_index"))


INLINE_LIMIT = 20  # the stores' inline limit in the batch tests below: the 300-change batch holds more rows


def test_disk_full_while_writing_a_stream_batch_keeps_the_checkpoints_then_catches_up(aws, disk, tmp_path, monkeypatch):
    """A batch above the inline limit writes its rows as files (a backlog's batch: over 1000 rows at the
    default limit; here a limit of 20, set on the store as ``DYNADEX_INLINE_ROWS=20`` would): on a full data
    disk it fails with one clear error and commits nothing, checkpoints included."""
    monkeypatch.setattr("dynadex.store.catalog.lake.INLINE_ROWS", INLINE_LIMIT)  # the store takes it when created
    table = f"FullBatch{disk.mode.split('-')[0]}"
    ddb = filled(aws, table)
    store = str(tmp_path / "store")
    bootstrap.run(ddb, table, bucket=BUCKET, store=store, data_path=disk.data_path, poll_seconds=0.1, workers=1)
    _, report = converge(store, table)
    assert report.ok
    with Store(store) as st:
        assert st.lake.con.execute(f"SELECT value FROM {ALIAS}.options() WHERE option_name = "
                                   "'data_inlining_row_limit'").fetchone() == (str(INLINE_LIMIT),)
    before = snapshot(store, table)
    churn(ddb, table, 0, 300)
    disk.fill()
    d, streams, s3 = clients()
    with Store(store, read_only=False) as st:
        with pytest.raises(StoreFull) as info:
            sync_table(st, table, d, streams, s3, seconds=0)
    text = str(info.value)
    assert text.startswith(f"{table}: batch of ") and "No space left on device" in text, text
    assert snapshot(store, table) == before  # rolled back with its checkpoints
    disk.free()
    _, report = converge(store, table)
    assert report.ok, (report.missing[:2], report.extra[:2], report.different[:2])
    no_duplicates(store, table)


def test_small_batches_commit_on_a_full_data_disk_and_their_rows_land_when_flushed(aws, disk, tmp_path, monkeypatch):
    """Small batches (under the default inline limit of 1000 rows) write no file: on a full data disk they
    commit with their checkpoints and the index answers like the table at once. Their flush into files is
    what meets the full disk: it fails with one clear error and loses nothing (the rows stay inlined,
    readable); once space is freed the flush writes them out and the index still equals the table."""
    if disk.mode != "tmpfs":
        pytest.skip("needs a real small disk: injected ENOSPC replaces the batch's insert, inlined or not")
    monkeypatch.setattr("dynadex.store.catalog.lake.INLINE_ROWS", 1000)  # the default, whatever DYNADEX_INLINE_ROWS says
    table = "FullInlined"
    ddb = filled(aws, table)
    store = str(tmp_path / "store")
    bootstrap.run(ddb, table, bucket=BUCKET, store=store, data_path=disk.data_path, poll_seconds=0.1, workers=1)
    _, report = converge(store, table)
    assert report.ok
    before = snapshot(store, table)
    files = _data_files(store, table)
    churn(ddb, table, 0, 300)
    disk.fill()
    d, streams, s3 = clients()
    with Store(store, read_only=False) as st:
        stats = sync_table(st, table, d, streams, s3, seconds=0)
    assert stats["applied"] > 0 and stats["flushes"] == 0, stats
    after = snapshot(store, table)
    assert after[1] != before[1]  # the checkpoints moved with the batches
    assert _data_files(store, table) == files  # no file written: the rows are in the catalog
    with Store(store) as st:
        assert verify(st, table, ddb).ok  # the index equals the table, data disk still full
    with Store(store, read_only=False) as st:
        with pytest.raises(StoreFull) as info:
            st.flush_inlined()
    text = str(info.value)
    assert text.startswith("flush of inlined rows: no space left") and store in text, text
    assert snapshot(store, table) == after and _data_files(store, table) == files  # nothing lost, nothing half done
    disk.free()
    with Store(store, read_only=False) as st:
        st.flush_inlined()
    assert _data_files(store, table) > files  # the inlined rows went into files
    assert snapshot(store, table)[:2] == after[:2]
    with Store(store) as st:
        assert verify(st, table, ddb).ok
    no_duplicates(store, table)


def test_a_catalog_on_a_full_disk_says_so_and_opens_once_space_is_freed(aws, tmp_path):
    """The whole store (SQLite catalog too) on the small disk, through the CLI: one line saying the disk is
    full (when SQLite cannot open the catalog it only says "disk I/O error": the store checks the free space).
    Needs the real tmpfs: free space is what it checks."""
    if DISK != "tmpfs":
        pytest.skip("needs a real small disk (tmpfs mount not allowed here); the data-path tests ran injected")
    root = tmp_path / "whole"
    d = SmallDisk(root, "tmpfs")
    try:
        table = "FullCatalog"
        ddb = filled(aws, table)
        store = str(root / "store")
        os.environ.pop("DYNADEX_DATA_PATH", None)
        bootstrap.run(ddb, table, bucket=BUCKET, store=store, poll_seconds=0.1, workers=1)
        before = snapshot(store, table)
        churn(ddb, table, 0, 50)
        d.fill()
        result = subprocess.run([sys.executable, "-m", "dynadex.cli", "sync", table, "--store", store],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
        # one line either way: SQLite cannot open the catalog (the store checks the free space and says so),
        # or it opens and the batch finds no room: its rows inlined in the catalog fail the catalog's COMMIT
        # ("database or disk is full", which names no file: the error names the store), a larger batch's files
        # fail to write
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("dynadex: error: "), result.stderr
        assert "no space left" in lines[0] and str(root / "store") in lines[0], lines[0]
        print(lines[0])
        d.free()
        assert snapshot(store, table) == before
        _, report = converge(store, table)
        assert report.ok
        no_duplicates(store, table)
    finally:
        d.close()
