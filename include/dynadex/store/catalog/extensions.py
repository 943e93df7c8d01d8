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
* DuckDB's check of each extension's signature (hashing its 35 MB at every
  load, in every new instance: ~0.2 s for DuckLake and SQLite) is skipped
  only while the extension directory is private: it and the folders under it
  are this user's and writable by no one else, and no folder above it lets
  another user replace it. Then nothing but the pip packages' own files can
  be loaded from it, files as trusted as DuckDB's own library beside them.
  Otherwise, or with ``DYNADEX_EXTENSION_SIGNATURES=1``, DuckDB checks every
  load as it does by default (decision 0029).
"""

from __future__ import annotations

import importlib
import itertools
import logging
import os
import shutil
import socket
import stat
import tempfile
from functools import lru_cache
from pathlib import Path

import duckdb

from dynadex import settings

log = logging.getLogger("dynadex.extensions")

# pip package -> the extension's own name (its entry point)
PACKAGES = {
    "duckdb_extension_ducklake": "ducklake",
    "duckdb_extension_sqlite": "sqlite_scanner",
    "duckdb_extension_postgres": "postgres_scanner",
    "duckdb_extension_httpfs": "httpfs",
}


def extension_directory() -> str:
    return _layout()[0]


def signatures_skipped() -> bool:
    """Whether new connections load the extensions without DuckDB's signature check (the module docstring)."""
    return _layout()[1]


def _safe(st: os.stat_result, mine: bool) -> bool:
    """One folder of a path (``lstat``): ``mine`` (the extension folders) is this user's, a real folder no one
    else may write in; above them a folder is this user's or root's and, if others may write in it, sticky
    (as /tmp is: they cannot rename or replace what is in it); a symbolic link above them is this user's or
    root's, so no one else can point it elsewhere."""
    uid = os.getuid()
    if stat.S_ISLNK(st.st_mode):
        return not mine and st.st_uid in (uid, 0)
    if not stat.S_ISDIR(st.st_mode):
        return False
    others_write = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if mine:
        return st.st_uid == uid and not others_write
    return st.st_uid in (uid, 0) and (not others_write or bool(st.st_mode & stat.S_ISVTX))


def _private(folder: Path, top: Path) -> bool:
    """Only this user can change what ``folder`` (``top`` or under it) holds: every step of its path, as
    written and as resolved, passes ``_safe`` (from ``top`` down, ``mine``)."""
    chains = ((Path(os.path.abspath(folder)), Path(os.path.abspath(top))), (folder.resolve(), top.resolve()))
    for path, mine_from in chains:
        for step in (path, *path.parents):
            try:
                st = os.lstat(step)
            except OSError:
                return False
            if not _safe(st, step == mine_from or mine_from in step.parents):
                return False
    return True


def _make_private(base: Path, target: Path) -> None:
    """Create the folders from ``base`` down to ``target`` for this user only; take write access away from
    others on those this user already owns (a folder made by an older release under a permissive umask)."""
    base.parent.mkdir(parents=True, exist_ok=True)
    parts = target.relative_to(base).parts
    for depth in range(len(parts) + 1):
        folder = base.joinpath(*parts[:depth])
        folder.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(folder)
        if st.st_uid == os.getuid() and st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            os.chmod(folder, stat.S_IMODE(st.st_mode) & ~(stat.S_IWGRP | stat.S_IWOTH))


@lru_cache(maxsize=1)
def _layout() -> tuple[str, bool]:
    """Lay out the extension directory once per process; return it and whether it is private."""
    version = duckdb.__version__
    platform = duckdb.connect().sql("PRAGMA platform").fetchone()[0]
    base = Path(settings.EXTENSION_DIR.read() or Path(tempfile.gettempdir()) / f"dynadex-duckdb-ext-{os.getuid()}")
    target = base / f"v{version}" / platform
    _make_private(base, target)
    private = _private(target, base)
    wanted = {}
    for package, name in PACKAGES.items():
        try:
            module = importlib.import_module(package)
        except ImportError:
            continue
        files = list(Path(module.__file__).parent.glob(f"extensions/v{version}/*.duckdb_extension"))
        if not files:
            continue
        link = target / f"{name}.duckdb_extension"
        wanted[link.name] = files[0]
        if link.is_symlink() and Path(os.readlink(link)) == files[0]:
            continue
        tmp = target / f".{name}.{os.getpid()}.tmp"
        if tmp.exists() or tmp.is_symlink():
            tmp.unlink()
        tmp.symlink_to(files[0])
        os.replace(tmp, link)
    # only our links may be loaded without a check: any other extension there (a user's own) keeps it on
    others = sorted(e.name for e in os.scandir(target) if e.name.endswith(".duckdb_extension") and not (
        e.is_symlink() and Path(os.readlink(e.path)) == wanted.get(e.name)))
    if not private:
        log.warning("DuckDB extension directory %s can be changed by other users: every DuckDB instance checks "
                    "the extensions' signatures (~0.1 s each); make it yours and not writable by others, or set "
                    "DYNADEX_EXTENSION_DIR to such a folder", target)
    elif others:
        log.info("DuckDB extension directory %s holds other extensions (%s): every DuckDB instance checks the "
                 "extensions' signatures", target, ", ".join(others))
    return str(base), private and not others and not settings.EXTENSION_SIGNATURES.read()


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
        # the extensions are the pip packages' own files in a private folder (module docstring)
        "allow_unsigned_extensions": signatures_skipped(),
    }
    if threads:
        config["threads"] = threads
    # bounded memory whatever the data size: DuckDB spills sorts and joins to disk beyond this
    config["memory_limit"] = settings.DUCKDB_MEMORY.read() or memory_limit or "1500MB"
    config["temp_directory"] = spill_directory()
    con = duckdb.connect(database, read_only=read_only, config=config)
    con.execute("SET enable_progress_bar = false")  # it would scribble over task logs
    return con
