"""Where a bulk build keeps its things: the attempt folders of chunk files, the staging area of manifests
and job records, and their cleanup after a publish.

Invariants:

* A chunk's files are written into a fresh attempt folder under the store's
  data path (``<data>/bulk/<table>/<build>/<chunk>/<attempt>/``), never over
  files of an earlier attempt, so a chunk re-run (or a re-run after publish)
  can never change a file a published snapshot reads. Files of attempts that
  no manifest names are orphans: never read, deleted by maintenance.
* Every record in the staging area is written whole or not at all
  (``atomic_write``: a temporary file, then a move).
* Every name that becomes a path is checked by ``safe_name`` first.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from urllib.parse import urlparse

from pyarrow import fs as pafs

from dynadex.store.catalog.location import StoreLocation
from dynadex.store.errors import StoreError

_SAFE = re.compile(r"[A-Za-z0-9_.\-]{1,255}")


def safe_name(what: str, name: str) -> str:
    if not _SAFE.fullmatch(name) or name in (".", ".."):
        raise StoreError(f"{what} {name!r} must be 1-255 characters of letters, digits, '_', '.' or '-'")
    return name


# ------------------------------------------------------------------ where things are


def _s3_fs(location: StoreLocation) -> pafs.FileSystem:
    return pafs.S3FileSystem(**location.aws().arrow_s3_options())


def filesystem(base: str, location: StoreLocation) -> tuple[pafs.FileSystem, str]:
    """The filesystem holding ``base`` (a local folder or an s3:// URL) and the path inside it."""
    if base.startswith("s3://"):
        url = urlparse(base)
        return _s3_fs(location), f"{url.netloc}{url.path}".rstrip("/")
    return pafs.LocalFileSystem(), base.rstrip("/")


def uri(base: str, path: str) -> str:
    """A path from ``filesystem`` as DuckDB reads it."""
    return f"s3://{path}" if base.startswith("s3://") else path


def chunk_path(table: str, build_id: str, chunk_id: str) -> str:
    return f"{safe_name('table', table)}/{safe_name('build id', build_id)}/{safe_name('chunk id', chunk_id)}"


def staging_dir(location: StoreLocation, table: str, build_id: str) -> tuple[pafs.FileSystem, str]:
    fs, base = filesystem(location.staging, location)
    return fs, f"{base}/{safe_name('table', table)}/{safe_name('build id', build_id)}"


def bulk_root(location: StoreLocation) -> str:
    return location.data_path + "bulk/"


def new_attempt_dir(location: StoreLocation, table: str, build_id: str, chunk_id: str) -> str:
    """A fresh folder (URI) for one attempt at a chunk's files; created when local."""
    base = bulk_root(location)
    fs, path = filesystem(base, location)
    d = f"{path}/{chunk_path(table, build_id, chunk_id)}/{uuid.uuid4().hex[:12]}"
    fs.create_dir(d, recursive=True)
    return uri(base, d)


def atomic_write(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    tmp = f"{path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    with fs.open_output_stream(tmp) as out:
        out.write(data)
    fs.move(tmp, path)


def write_json(location: StoreLocation, table: str, build_id: str, name: str, doc: dict) -> None:
    """A small record beside the build's manifests (publish job results)."""
    fs, d = staging_dir(location, table, build_id)
    fs.create_dir(f"{d}/_publish", recursive=True)
    atomic_write(fs, f"{d}/_publish/{safe_name('record', name)}.json", json.dumps(doc, ensure_ascii=False).encode())


def read_json(location: StoreLocation, table: str, build_id: str, name: str) -> dict | None:
    fs, d = staging_dir(location, table, build_id)
    path = f"{d}/_publish/{safe_name('record', name)}.json"
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        return None
    with fs.open_input_stream(path) as f:
        return json.loads(f.read())


def remove_other_staging(location: StoreLocation, table: str, keep_build: str) -> list[str]:
    """After ``keep_build`` is published: drop the manifests and job records of the table's other builds.
    The published build's stay, so clearing and re-running any of its tasks stays a no-op."""
    fs, base = filesystem(location.staging, location)
    d = f"{base}/{safe_name('table', table)}"
    removed = []
    for info in fs.get_file_info(pafs.FileSelector(d, allow_not_found=True)):
        if info.type == pafs.FileType.Directory and info.base_name != keep_build:
            fs.delete_dir(info.path)
            removed.append(info.base_name)
    return removed
