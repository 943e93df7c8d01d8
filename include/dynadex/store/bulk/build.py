"""Building one chunk: stream its data files, verify them, write its final index files.

Two paths write the same files: ``fastbuild`` (DuckDB; DYNAMODB_JSON lines,
and ION lines converted to them, in its proven domain, which is what AWS
writes) and the exact Python path
below, which takes every chunk the fast path declines and owns every error
message. ``DYNADEX_BUILD=python`` forces the Python path.

Invariants:

* The chunk's files are a pure function of the chunk spec and the export:
  same chunk id, same files, same rows (re-running writes a new attempt and
  replaces the manifest, never adds; see ``store/bulk/chunk_manifest.py``).
* Nothing is recorded as complete (no chunk manifest) unless every file of
  the chunk verified: MD5, complete gzip, item count, every line a valid
  item with the table's key. Errors name the file, the line and the path.
* A full disk ends the build with ``StoreFull`` naming the chunk and the
  file; the chunk has no manifest, so it counts as not built.
* Memory is bounded by one read block plus one staged part (DuckDB spills
  its sorts beyond its memory limit).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from dynadex import settings
from dynadex.errors import MalformedLine
from dynadex.export.manifest import Export
from dynadex.export.reader import FileStats, iter_lines
from dynadex.export.records import parser_for
from dynadex.store.bulk.chunk_writer import ChunkWriter
from dynadex.store.bulk.fastbuild import build_chunk_fast
from dynadex.store.bulk.plan import ChunkSpec
from dynadex.store.catalog.disk_full import reported
from dynadex.store.catalog.location import StoreLocation
from dynadex.store.errors import KeyError_

log = logging.getLogger("dynadex.build")

OVERLAP_MICROS = 5 * 60 * 1_000_000


@dataclass
class BuildResult:
    chunk_id: str
    items: int
    gzip_bytes: int
    json_bytes: int
    seconds: float
    engine: str = "python"  # "duckdb": the fast path built the chunk (its odd lines through Python); "python": all of it

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def _env_threads() -> int | None:
    """DuckDB threads for one chunk build (DYNADEX_BUILD_THREADS; default: all cores)."""
    return settings.BUILD_THREADS.read()


def _published_chunk(location: StoreLocation, table: str, build_id: str, chunk_id: str):
    """The chunk's manifest when its build is the table's published snapshot, else None."""
    from dynadex.store.bulk.chunk_manifest import read_manifest
    from dynadex.store.bulk.prepare import is_published

    manifest = read_manifest(location, table, build_id, chunk_id)
    if manifest is None:
        return None
    return manifest if is_published(location, table, build_id) else None


def snapshot_version(export_time_micros: int, overlap_micros: int = OVERLAP_MICROS) -> int:
    """Version of snapshot items: old enough that every stream record in the overlap applies over them."""
    return export_time_micros - overlap_micros


def build_chunk(export: Export, spec: ChunkSpec, location: StoreLocation, table: str, build_id: str,
                key_names: tuple[str, ...], key_types: tuple[str, ...], version: int,
                *, part_items: int = 100_000, threads: int | None = None) -> BuildResult:
    """Build the chunk's final files (a full disk: ``StoreFull``, the chunk left unbuilt: no manifest)."""
    with reported(f"chunk {spec.chunk_id} of build {build_id} of {table}"):
        return _build_chunk(export, spec, location, table, build_id, key_names, key_types, version,
                            part_items=part_items, threads=threads)


def _build_chunk(export: Export, spec: ChunkSpec, location: StoreLocation, table: str, build_id: str,
                 key_names: tuple[str, ...], key_types: tuple[str, ...], version: int,
                 *, part_items: int, threads: int | None) -> BuildResult:
    if export.summary.export_type != "FULL_EXPORT":
        raise ValueError("build_chunk takes a full export; incremental exports are applied as changes")
    origin = f"export:{export.summary.export_id}"
    started = time.monotonic()
    done = _published_chunk(location, table, build_id, spec.chunk_id)
    if done is not None:  # cleared and re-run after publish: the snapshot reads these files, leave them
        log.info("%s: build %s is already published; nothing to do", spec.chunk_id, build_id)
        return BuildResult(spec.chunk_id, done.items, done.gzip_bytes, done.json_bytes, 0.0, "published")
    if settings.BUILD.read() != "python":
        fast = build_chunk_fast(export, spec, location, table, build_id, key_names, key_types, version, origin,
                                threads=threads or _env_threads())
        if fast is not None:
            return BuildResult(spec.chunk_id, fast.items, fast.gzip_bytes, fast.json_bytes, time.monotonic() - started,
                               "duckdb")
    parse = parser_for(export.summary.output_format)
    writer = ChunkWriter(location, table, build_id, spec.chunk_id, key_names, key_types, part_items=part_items)
    gz = raw = 0
    for n, data_file in enumerate(spec.files, 1):
        where = export.url(data_file.key)
        stats = FileStats()
        for number, line in iter_lines(export.source, data_file, stats):
            record = parse(line, where, number)
            try:
                writer.add(record.item, version, origin)
            except KeyError_ as exc:
                raise MalformedLine(where, str(exc), number) from exc
        gz += stats.gzip_bytes
        raw += stats.json_bytes
        elapsed = max(time.monotonic() - started, 1e-9)
        log.info("%s: file %d/%d done (%d items); %d items, %.1f MB/s so far",
                 spec.chunk_id, n, len(spec.files), stats.items, writer.items + len(writer.shaped), raw / elapsed / 1e6)
    manifest = writer.finish({"files": [f.key for f in spec.files], "json_bytes": raw, "gzip_bytes": gz},
                             threads=threads or _env_threads())
    return BuildResult(spec.chunk_id, manifest.items, gz, raw, time.monotonic() - started)
