"""Chunk segments: one chunk's rows for the three indexes, staged as Parquet before publish.

Invariants:

* A segment is a pure function of its chunk: the same items give the same
  rows in files at the same paths (``staging/<table>/<build>/<chunk>/``), so
  re-running a chunk replaces its segment, never adds to it. The order of
  rows inside a file is not part of it (the DuckDB build writes in parallel);
  publish sorts.
* The manifest ``segment.json`` is written last and removed first: a segment
  without a manifest does not exist for publish, so a crash mid-write can
  never be published as a short chunk.
* Memory stays bounded: items are shaped and flushed in parts of
  ``part_items`` items.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from dynadex.store.location import StoreError, StoreLocation
from dynadex.store.names import KEY_COLUMN, staging_name
from dynadex.store.shape import NumberStats, Shaped

MANIFEST = "segment.json"
_SAFE = re.compile(r"[A-Za-z0-9_.\-]{1,255}")

KIND_ARROW = {
    "S": pa.string(),
    "N": pa.string(),
    "B": pa.binary(),
    "BOOL": pa.bool_(),
    "SS": pa.list_(pa.string()),
    "NS": pa.list_(pa.string()),
    "BS": pa.list_(pa.binary()),
    "L": pa.list_(pa.string()),
}


def safe_name(what: str, name: str) -> str:
    if not _SAFE.fullmatch(name) or name in (".", ".."):
        raise StoreError(f"{what} {name!r} must be 1-255 characters of letters, digits, '_', '.' or '-'")
    return name


def staging_fs(location: StoreLocation) -> tuple[pafs.FileSystem, str]:
    """The filesystem and base path of the staging area."""
    if location.staging.startswith("s3://"):
        url = urlparse(location.staging)
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        kwargs = {"region": os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1"}
        if endpoint:
            e = urlparse(endpoint)
            kwargs.update(endpoint_override=e.netloc, scheme=e.scheme)
        if os.environ.get("AWS_ACCESS_KEY_ID"):
            kwargs.update(access_key=os.environ["AWS_ACCESS_KEY_ID"], secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
                          session_token=os.environ.get("AWS_SESSION_TOKEN"))
        return pafs.S3FileSystem(**kwargs), f"{url.netloc}{url.path}".rstrip("/")
    return pafs.LocalFileSystem(), location.staging.rstrip("/")


def segment_dir(location: StoreLocation, table: str, build_id: str, chunk_id: str) -> tuple[pafs.FileSystem, str]:
    fs, base = staging_fs(location)
    return fs, f"{base}/{safe_name('table', table)}/{safe_name('build id', build_id)}/{safe_name('chunk id', chunk_id)}"


def uri(location: StoreLocation, path: str) -> str:
    """A path from ``staging_fs`` as DuckDB reads it."""
    return f"s3://{path}" if location.staging.startswith("s3://") else path


def _atomic_write(fs: pafs.FileSystem, path: str, write) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with fs.open_output_stream(tmp) as out:
        write(out)
    fs.move(tmp, path)


def rows_arrow(shaped: Shaped, key_types: tuple[str, ...]) -> pa.Table:
    arrays = {"key": pa.array(shaped.keys, pa.string())}
    for name, values, t in (("pk", shaped.pk, key_types[0] if key_types else "S"),
                            ("sk", shaped.sk, key_types[1] if len(key_types) > 1 else None)):
        if t is None:
            continue
        arrays[name] = pa.array(values, pa.binary() if t == "B" else pa.string())
    arrays["item"] = pa.array(shaped.items, pa.string())
    arrays["version"] = pa.array(shaped.versions, pa.int64())
    arrays["origin"] = pa.array(shaped.origins, pa.string())
    return pa.table(arrays)


def columns_arrow(shaped: Shaped) -> pa.Table:
    shaped.pad()
    arrays = {KEY_COLUMN: pa.array(shaped.keys, pa.string())}
    for (path, kind), values in sorted(shaped.columns.items()):
        arrays[staging_name(path, kind)] = pa.array(values, KIND_ARROW[kind])
    return pa.table(arrays)


def inverted_arrow(shaped: Shaped) -> pa.Table:
    return pa.table(
        {
            "path": pa.array(shaped.inv_path, pa.string()),
            "kind": pa.array(shaped.inv_kind, pa.string()),
            "value": pa.array(shaped.inv_value, pa.string()),
            "key": pa.array(shaped.inv_key, pa.string()),
        }
    )


@dataclass
class ColumnInfo:
    kind: str
    count: int = 0
    number: NumberStats | None = None


class SegmentWriter:
    """Shapes items of one chunk and stages them; ``finish`` publishes the manifest."""

    def __init__(self, location: StoreLocation, table: str, build_id: str, chunk_id: str,
                 key_names: tuple[str, ...], key_types: tuple[str, ...], *, part_items: int = 100_000):
        self.location = location
        self.table, self.build_id, self.chunk_id = table, build_id, chunk_id
        self.key_names, self.key_types = tuple(key_names), tuple(key_types)
        self.part_items = part_items
        self.fs, self.dir = segment_dir(location, table, build_id, chunk_id)
        self._remove_manifest()
        self.fs.create_dir(self.dir, recursive=True)
        self.parts: dict[str, list[str]] = {"rows": [], "cols": [], "inv": []}
        self.columns: dict[str, ColumnInfo] = {}
        self.items = 0
        self.shaped = Shaped()

    def _remove_manifest(self) -> None:
        info = self.fs.get_file_info(f"{self.dir}/{MANIFEST}")
        if info.type != pafs.FileType.NotFound:
            self.fs.delete_file(f"{self.dir}/{MANIFEST}")

    def add(self, item: dict, version: int, origin: str) -> None:
        self.shaped.add(item, self.key_names, version, origin, self.key_types)
        if len(self.shaped) >= self.part_items:
            self._flush()

    def _flush(self) -> None:
        shaped = self.shaped
        if not len(shaped) and self.parts["rows"]:
            return
        n = len(self.parts["rows"])
        for kind, table in (("rows", rows_arrow(shaped, self.key_types)), ("cols", columns_arrow(shaped)),
                            ("inv", inverted_arrow(shaped))):
            path = f"{self.dir}/{kind}-{n:05d}.parquet"
            _atomic_write(self.fs, path, lambda out, t=table: pq.write_table(t, out, compression="zstd"))
            self.parts[kind].append(path)
        for (path, kind), values in shaped.columns.items():
            name = staging_name(path, kind)
            info = self.columns.get(name)
            if info is None:
                info = self.columns[name] = ColumnInfo(kind)
            info.count += sum(1 for v in values if v is not None)
            stats = shaped.number_stats.get((path, kind))
            if stats is not None:
                if info.number is None:
                    info.number = NumberStats(True, 0, 0)
                info.number.merge(stats)
        self.items += len(shaped)
        self.shaped = Shaped()

    def finish(self, extra: dict | None = None) -> dict:
        self._flush()
        manifest = {
            "table": self.table,
            "build_id": self.build_id,
            "chunk_id": self.chunk_id,
            "items": self.items,
            "key_names": list(self.key_names),
            "key_types": list(self.key_types),
            "parts": {k: [uri(self.location, p) for p in v] for k, v in self.parts.items()},
            "columns": {
                name: {"kind": c.kind, "count": c.count, "number": c.number.to_dict() if c.number else None}
                for name, c in sorted(self.columns.items())
            },
            "extra": extra or {},
        }
        data = json.dumps(manifest, indent=1).encode()
        _atomic_write(self.fs, f"{self.dir}/{MANIFEST}", lambda out: out.write(data))
        return manifest


def read_manifest(location: StoreLocation, table: str, build_id: str, chunk_id: str) -> dict | None:
    fs, d = segment_dir(location, table, build_id, chunk_id)
    path = f"{d}/{MANIFEST}"
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        return None
    with fs.open_input_stream(path) as f:
        return json.loads(f.read())


def remove_build(location: StoreLocation, table: str, build_id: str) -> None:
    fs, base = staging_fs(location)
    path = f"{base}/{safe_name('table', table)}/{safe_name('build id', build_id)}"
    if fs.get_file_info(path).type != pafs.FileType.NotFound:
        fs.delete_dir(path)

