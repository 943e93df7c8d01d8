"""A built chunk: its final index files and its manifest, the only record that the chunk exists.

Invariants:

* A chunk's files live in a fresh attempt folder (``staging.new_attempt_dir``),
  never over an earlier attempt's.
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
from dataclasses import asdict, dataclass, field

from pyarrow import fs as pafs

from dynadex.store.bulk.staging import atomic_write, chunk_path, filesystem
from dynadex.store.catalog.location import StoreLocation
from dynadex.store.layout.shape import NumberStats

MANIFEST = "segment.json"
INDEXES = ("rows", "cols", "inv")


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
    files: dict[str, list[str]] = field(default_factory=dict)  # rows / cols / inv -> file URIs as DuckDB reads them
    columns: list[ColumnStats] = field(default_factory=list)
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


# ------------------------------------------------------------------ the manifest


def manifest_path(location: StoreLocation, table: str, build_id: str, chunk_id: str) -> tuple[pafs.FileSystem, str]:
    fs, base = filesystem(location.staging, location)
    return fs, f"{base}/{chunk_path(table, build_id, chunk_id)}/{MANIFEST}"


def remove_manifest(location: StoreLocation, table: str, build_id: str, chunk_id: str) -> None:
    """First step of any (re)build: the chunk stops existing for publish."""
    fs, path = manifest_path(location, table, build_id, chunk_id)
    if fs.get_file_info(path).type != pafs.FileType.NotFound:
        fs.delete_file(path)


def write_manifest(location: StoreLocation, manifest: ChunkManifest) -> None:
    """Last step of a build: the chunk exists, with exactly these files."""
    fs, path = manifest_path(location, manifest.table, manifest.build_id, manifest.chunk_id)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    atomic_write(fs, path, json.dumps(manifest.to_dict(), indent=1, ensure_ascii=False).encode())


def read_manifest(location: StoreLocation, table: str, build_id: str, chunk_id: str) -> ChunkManifest | None:
    fs, path = manifest_path(location, table, build_id, chunk_id)
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        return None
    with fs.open_input_stream(path) as f:
        return ChunkManifest.from_dict(json.loads(f.read()))
