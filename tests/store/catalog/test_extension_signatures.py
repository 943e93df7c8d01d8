"""DuckDB's signature check of the extensions is skipped only in a private extension folder (decision 0029).

DuckDB hashes each extension file (35 MB for DuckLake and for SQLite) at every load, in every new instance:
~0.2 s of every store opened. The check is skipped only while nothing but this user can change what the
folder holds; these tests make the folder unsafe in each way and see the check come back.
"""

from __future__ import annotations

from tests.support.paths import REPO  # noqa: I001 - before the path it builds is used
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dynadex.store.catalog import extensions

INCLUDE = REPO / "include"

PROBE = """
import os, tempfile
from dynadex.store.catalog.extensions import connect
con = connect(threads=1)
folder = tempfile.mkdtemp()
con.execute(f"ATTACH 'ducklake:sqlite:{folder}/c.sqlite' AS lake (DATA_PATH '{folder}/data/')")
con.execute("CREATE TABLE lake.t AS SELECT 42 AS x")
assert con.execute("SELECT x FROM lake.t").fetchone() == (42,)
print(con.execute("SELECT current_setting('allow_unsigned_extensions')").fetchone()[0])
"""


def _probe(ext_dir: Path, **env) -> tuple[bool, str]:
    """A new process opens a DuckLake catalog with extensions laid out in ``ext_dir``: whether its connections
    skip the signature check, and what it logged."""
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(INCLUDE), "DYNADEX_EXTENSION_DIR": str(ext_dir),
                               **env})
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip() == "True", done.stderr


def _layout_dirs(tmp_path: Path) -> tuple[Path, Path]:
    base = tmp_path / "above" / "ext"
    target = base / "v1" / "linux"
    return base, target


def _base_group_writable(tmp_path, base, target):
    extensions._make_private(base, target)
    base.chmod(0o775)


def _base_a_link(tmp_path, base, target):
    real = tmp_path / "real"
    extensions._make_private(real, real / "v1" / "linux")
    base.parent.mkdir(parents=True)
    base.symlink_to(real)


def _open_ancestor(tmp_path, base, target):
    extensions._make_private(base, target)
    base.parent.chmod(0o777)


def _sticky_ancestor(tmp_path, base, target):
    extensions._make_private(base, target)
    base.parent.chmod(0o1777)


def _inner_folder_writable(tmp_path, base, target):
    extensions._make_private(base, target)
    target.parent.chmod(0o777)


@pytest.mark.parametrize("setup, private", [
    (lambda tmp_path, base, target: extensions._make_private(base, target), True),
    (_base_group_writable, False),
    (_inner_folder_writable, False),
    (_base_a_link, False),
    (_open_ancestor, False),  # another user could rename the folder away and put theirs in its place
    (_sticky_ancestor, True),  # as /tmp: others may write in it but not replace what is ours
], ids=["made-here", "base-group-writable", "inner-folder-writable", "base-a-link", "open-ancestor",
        "sticky-ancestor"])
def test_which_folders_are_private(tmp_path, setup, private):
    base, target = _layout_dirs(tmp_path)
    setup(tmp_path, base, target)
    try:
        assert extensions._private(target, base) is private
    finally:
        base.parent.chmod(0o755)


def test_making_private_takes_write_access_from_others_on_our_own_folders(tmp_path):
    base, target = _layout_dirs(tmp_path)
    _base_group_writable(tmp_path, base, target)
    target.chmod(0o777)
    assert not extensions._private(target, base)
    extensions._make_private(base, target)
    assert extensions._private(target, base)
    assert oct(target.stat().st_mode & 0o777) == "0o755"


@pytest.mark.skipif(os.getuid() != 0, reason="giving a folder to another user needs root")
def test_a_folder_of_another_user_is_not_private_and_not_taken(tmp_path):
    base, target = _layout_dirs(tmp_path)
    extensions._make_private(base, target)
    os.chown(base, 4242, 4242)
    extensions._make_private(base, target)
    assert not extensions._private(target, base)
    assert base.stat().st_uid == 4242


def test_connections_skip_the_check_in_a_private_folder_only(tmp_path):
    ext = tmp_path / "shared" / "ext"
    skipped, _ = _probe(ext)
    assert skipped
    # the user asks for DuckDB's check
    assert _probe(ext, DYNADEX_EXTENSION_SIGNATURES="1")[0] is False
    # fault: a folder above it becomes writable by anyone (not sticky)
    ext.parent.chmod(0o777)
    try:
        skipped, logged = _probe(ext)
    finally:
        ext.parent.chmod(0o755)
    assert not skipped and "can be changed by other users" in logged and str(ext) in logged
    assert _probe(ext)[0]


def test_a_planted_file_is_replaced_and_another_extension_keeps_the_check(tmp_path):
    ext = tmp_path / "ext"
    assert _probe(ext)[0]
    (target,) = [p for p in ext.glob("v*/*") if p.is_dir()]
    # fault: a file that is not the package's takes DuckLake's name; the next process links the package's again
    link = target / "ducklake.duckdb_extension"
    link.unlink()
    link.write_bytes(b"\x7fELF" + bytes(1000))
    assert _probe(ext)[0]
    assert link.is_symlink() and "duckdb_extension_ducklake" in os.readlink(link)
    # an extension of the user's own beside ours: it would load unchecked, so every load is checked
    (target / "spatial.duckdb_extension").write_bytes(b"\x7fELF" + bytes(1000))
    skipped, logged = _probe(ext, DYNADEX_LOG_LEVEL="INFO")
    assert not skipped
    assert (target / "spatial.duckdb_extension").exists()
