"""A built chunk: its final index files and its manifest, the only record that the chunk exists.

Invariants:

* A chunk's files are written into a fresh attempt folder under the store's
  data path (``<data>/bulk/<table>/<build>/<chunk>/<attempt>/``), never over
  files of an earlier attempt, so a chunk re-run (or a re-run after publish)
  can never change a file a published snapshot reads. Files of attempts that
  no manifest names are orphans: never read, deleted by maintenance.
* The manifest (``segment.json`` in the staging area) is written last and
  removed first: without it the chunk does not exist for publish, so a crash
  mid-write is never published as a short chunk. This module is the only
  writer and reader of manifests.
* The files are already in the final layout: rows sorted by key in small row
  groups, columns sorted by key, inverted entries sorted by (path, value),
  every file typed so that publish only registers it.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import asdict, dataclass, field
from urllib.parse import urlparse

from pyarrow import fs as pafs

from dynadex.store.location import StoreError, StoreLocation
from dynadex.store.shape import NumberStats

MANIFEST = "segment.json"
INDEXES = ("rows", "cols", "inv")
_SAFE = re.compile(r"[A-Za-z0-9_.\-]{1,255}")


def safe_name(what: str, name: str) -> str:
    if not _SAFE.fullmatch(name) or name in (".", ".."):
        raise StoreError(f"{what} {name!r} must be 1-255 characters of letters, digits, '_', '.' or '-'")
    return name


# ------------------------------------------------------------------ typed records


@dataclass
class ColumnStats:
    """One (path, kind) of a chunk: how many items fill it, what its numbers need, how the chunk wrote it."""

    path: tuple[str, ...]
    kind: str
    count: int
    number: NumberStats | None = None
    name: str = ""  # the column's name in the chunk's column file
    sql_type: str = ""  # its type there

    def to_dict(self) -> dict:
        return {"path": list(self.path), "kind": self.kind, "count": self.count,
                "number": self.number.to_dict() if self.number else None, "name": self.name, "sql_type": self.sql_type}

    @classmethod
    def from_dict(cls, d: dict) -> "ColumnStats":
        return cls(tuple(d["path"]), d["kind"], int(d["count"]),
                   NumberStats.from_dict(d["number"]) if d.get("number") else None, d.get("name", ""),
                   d.get("sql_type", ""))

    def merge(self, other: "ColumnStats") -> None:
        self.count += other.count
        if other.number is not None:
            if self.number is None:
                self.number = NumberStats(other.number.integral, other.number.int_digits, other.number.scale)
            else:
                self.number.merge(other.number)


def merge_stats(groups) -> dict[tuple[tuple[str, ...], str], ColumnStats]:
    """(path, kind) -> merged ColumnStats over several lists of ColumnStats (names and types dropped)."""
    out: dict = {}
    for stats in groups:
        for s in stats:
            k = (s.path, s.kind)
            if k not in out:
                out[k] = ColumnStats(s.path, s.kind, 0)
            out[k].merge(s)
    return out


@dataclass
class ChunkManifest:
    table: str
    build_id: str
    chunk_id: str
    items: int
    key_names: tuple[str, ...]
    key_types: tuple[str, ...]
    files: dict[str, list[str]]  # rows / cols / inv -> file URIs as DuckDB reads them
    columns: list[ColumnStats]
    key_bounds: list[str] = field(default_factory=list)  # min, evenly spaced keys, max (sorted); [] if empty
    inverted_entries: int = 0
    inverted_bounds: list[list] = field(default_factory=list)  # [path, value, key]: min, evenly spaced, max
    built_by: str = "python"
    python_lines: int = 0
    source_files: list[str] = field(default_factory=list)
    json_bytes: int = 0
    gzip_bytes: int = 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["key_names"], d["key_types"] = list(self.key_names), list(self.key_types)
        d["columns"] = [c.to_dict() for c in self.columns]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ChunkManifest":
        d = dict(d)
        d["key_names"], d["key_types"] = tuple(d["key_names"]), tuple(d["key_types"])
        d["columns"] = [ColumnStats.from_dict(c) for c in d["columns"]]
        return cls(**d)

    @property
    def digest_part(self) -> str:
        """What identifies this chunk's output: its files (a new attempt has new paths)."""
        return json.dumps([self.chunk_id, self.items, self.files], sort_keys=True)


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


def _chunk_path(table: str, build_id: str, chunk_id: str) -> str:
    return f"{safe_name('table', table)}/{safe_name('build id', build_id)}/{safe_name('chunk id', chunk_id)}"


def staging_dir(location: StoreLocation, table: str, build_id: str) -> tuple[pafs.FileSystem, str]:
    fs, base = filesystem(location.staging, location)
    return fs, f"{base}/{safe_name('table', table)}/{safe_name('build id', build_id)}"


def manifest_path(location: StoreLocation, table: str, build_id: str, chunk_id: str) -> tuple[pafs.FileSystem, str]:
    fs, base = filesystem(location.staging, location)
    return fs, f"{base}/{_chunk_path(table, build_id, chunk_id)}/{MANIFEST}"


def bulk_root(location: StoreLocation) -> str:
    return location.data_path + "bulk/"


def new_attempt_dir(location: StoreLocation, table: str, build_id: str, chunk_id: str) -> str:
    """A fresh folder (URI) for one attempt at a chunk's files; created when local."""
    base = bulk_root(location)
    fs, path = filesystem(base, location)
    d = f"{path}/{_chunk_path(table, build_id, chunk_id)}/{uuid.uuid4().hex[:12]}"
    fs.create_dir(d, recursive=True)
    return uri(base, d)


# ------------------------------------------------------------------ the manifest


def _atomic_write(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    tmp = f"{path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    with fs.open_output_stream(tmp) as out:
        out.write(data)
    fs.move(tmp, path)


def remove_manifest(location: StoreLocation, table: str, build_id: str, chunk_id: str) -> None:
    """First step of any (re)build: the chunk stops existing for publish."""
    fs, path = manifest_path(location, table, build_id, chunk_id)
    if fs.get_file_info(path).type != pafs.FileType.NotFound:
        fs.delete_file(path)


def write_manifest(location: StoreLocation, manifest: ChunkManifest) -> None:
    """Last step of a build: the chunk exists, with exactly these files."""
    fs, path = manifest_path(location, manifest.table, manifest.build_id, manifest.chunk_id)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    _atomic_write(fs, path, json.dumps(manifest.to_dict(), indent=1, ensure_ascii=False).encode())


def read_manifest(location: StoreLocation, table: str, build_id: str, chunk_id: str) -> ChunkManifest | None:
    fs, path = manifest_path(location, table, build_id, chunk_id)
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        return None
    with fs.open_input_stream(path) as f:
        return ChunkManifest.from_dict(json.loads(f.read()))


def write_json(location: StoreLocation, table: str, build_id: str, name: str, doc: dict) -> None:
    """A small record beside the build's manifests (publish job results)."""
    fs, d = staging_dir(location, table, build_id)
    fs.create_dir(f"{d}/_publish", recursive=True)
    _atomic_write(fs, f"{d}/_publish/{safe_name('record', name)}.json", json.dumps(doc, ensure_ascii=False).encode())


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
