"""DuckDB connections that load extensions from their pip packages only.

Invariants:

* No connection made here downloads anything. Extensions come from the
  ``duckdb-extension-*`` wheels pinned to the DuckDB version; we lay out a
  private extension directory with the names DuckDB expects (see
  docs/decisions/0002) and turn auto-install off.
* Every connection spills into a folder of its own. DuckDB names its spill
  files the same in every instance (``duckdb_temp_storage_…-0.tmp``), so two
  instances spilling into one folder overwrite each other's blocks: two chunk
  builds in parallel (two mapped tasks on one worker, or ``ingest-export
  --workers 2``) crashed the second one with a segfault in DuckDB, every time
  at 1 M items a chunk. The folders sit under one root; DuckDB removes its own
  when its instance closes, and a process that died leaves one that the next
  process on the same host removes.
"""

from __future__ import annotations

import importlib
import itertools
import os
import shutil
import socket
import tempfile
from functools import lru_cache
from pathlib import Path

import duckdb

from dynadex import settings

# pip package -> the extension's own name (its entry point)
PACKAGES = {
    "duckdb_extension_ducklake": "ducklake",
    "duckdb_extension_sqlite": "sqlite_scanner",
    "duckdb_extension_postgres": "postgres_scanner",
    "duckdb_extension_httpfs": "httpfs",
}


@lru_cache(maxsize=1)
def extension_directory() -> str:
    version = duckdb.__version__
    platform = duckdb.connect().sql("PRAGMA platform").fetchone()[0]
    base = Path(settings.EXTENSION_DIR.read() or Path(tempfile.gettempdir()) / f"dynadex-duckdb-ext-{os.getuid()}")
    target = base / f"v{version}" / platform
    target.mkdir(parents=True, exist_ok=True)
    for package, name in PACKAGES.items():
        try:
            module = importlib.import_module(package)
        except ImportError:
            continue
        files = list(Path(module.__file__).parent.glob(f"extensions/v{version}/*.duckdb_extension"))
        if not files:
            continue
        link = target / f"{name}.duckdb_extension"
        if link.is_symlink() and Path(os.readlink(link)) == files[0]:
            continue
        tmp = target / f".{name}.{os.getpid()}.tmp"
        if tmp.exists() or tmp.is_symlink():
            tmp.unlink()
        tmp.symlink_to(files[0])
        os.replace(tmp, link)
    return str(base)


# Modules DuckDB's Python binding tries to import while binding parameters and results. When one is not
# installed, every failed import searches all of sys.path again: ~150 searches per statement, 6.7 s of a
# 31 s stream sync (profiled). A finder in front answers "not installed" for them at once.
_OPTIONAL = ("pandas", "polars")


class _Absent:
    """A meta-path finder for optional modules known not to be installed: the import fails at once."""

    def __init__(self, names: set[str]):
        self.names = names

    def find_spec(self, name, path=None, target=None):
        if name.split(".", 1)[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


@lru_cache(maxsize=1)
def _mark_absent_modules() -> None:
    import importlib.util
    import sys

    absent = {n for n in _OPTIONAL if n not in sys.modules and importlib.util.find_spec(n) is None}
    if absent:
        sys.meta_path.insert(0, _Absent(absent))


_instances = itertools.count()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


@lru_cache(maxsize=None)
def _prune_dead(root: str, host: str) -> None:
    """Once per process and root: make the root (DuckDB makes only the last folder of a spill path) and remove
    the spill folders this host's dead processes left."""
    try:
        os.makedirs(root, exist_ok=True)
        entries = list(os.scandir(root))
    except OSError:  # unwritable: a connection that never spills still works; one that does names the folder
        return
    for entry in entries:
        name_host, _, rest = entry.name.rpartition("~")
        pid = rest.split("-", 1)[0]
        if entry.is_dir() and name_host == host and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(entry.path, ignore_errors=True)


def spill_directory() -> str:
    """A spill folder for one new DuckDB instance: ``<root>/<host>~<pid>-<n>`` (not created: DuckDB makes it
    when it first spills and removes it when the instance closes). Root: ``DYNADEX_DUCKDB_TEMP`` or the temp
    directory's ``dynadex-duckdb-spill``; the host keeps processes of other machines sharing it apart."""
    root = settings.DUCKDB_TEMP.read() or str(Path(tempfile.gettempdir()) / "dynadex-duckdb-spill")
    host = socket.gethostname().replace("~", "-")
    _prune_dead(root, host)
    return str(Path(root) / f"{host}~{os.getpid()}-{next(_instances)}")


def connect(database: str = ":memory:", *, read_only: bool = False, threads: int | None = None,
            memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    _mark_absent_modules()
    config = {
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": True,
        "extension_directory": extension_directory(),
    }
    if threads:
        config["threads"] = threads
    # bounded memory whatever the data size: DuckDB spills sorts and joins to disk beyond this
    config["memory_limit"] = settings.DUCKDB_MEMORY.read() or memory_limit or "1500MB"
    config["temp_directory"] = spill_directory()
    con = duckdb.connect(database, read_only=read_only, config=config)
    con.execute("SET enable_progress_bar = false")  # it would scribble over task logs
    return con
