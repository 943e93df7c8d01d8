"""Indexing an export without Airflow: plan, build every chunk, publish.

The same three library calls the ``dynamodb_ingest`` DAG makes, run here in
one process (or a pool of ``workers`` processes) for ad-hoc use and
benchmarks. Invariant: the index changes only at the final publish, in one
transaction; any failed check before it leaves the store as it was.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from dynadex.errors import DynadexError
from dynadex.export.build import BuildResult, build_chunk, snapshot_version
from dynadex.export.manifest import Export, read_export
from dynadex.export.plan import ChunkSpec, plan_chunks
from dynadex.store import PublishSpec, Store
from dynadex.store.location import StoreLocation, resolve

log = logging.getLogger("dynadex.ingest")


class KeySpecError(DynadexError, ValueError):
    pass


def parse_key_spec(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``pk[:S|N|B][,sk[:S|N|B]]`` -> (names, types); type defaults to S."""
    names, types = [], []
    for part in text.split(","):
        name, _, t = part.strip().partition(":")
        t = (t or "S").upper()
        if not name or t not in ("S", "N", "B"):
            raise KeySpecError(f"bad key spec {text!r}: expected NAME[:S|N|B][,NAME[:S|N|B]]")
        names.append(name)
        types.append(t)
    if not 1 <= len(names) <= 2:
        raise KeySpecError(f"bad key spec {text!r}: a key has a partition key and at most one sort key")
    return tuple(names), tuple(types)


def iso_to_micros(text: str) -> int:
    when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return int(when.timestamp() * 1_000_000)


@dataclass
class IngestPlan:
    export: Export
    chunks: list[ChunkSpec]
    build_id: str
    version: int


def plan(source: str, chunk_target_mb: float = 256) -> IngestPlan:
    export = read_export(source)
    if export.summary.export_type != "FULL_EXPORT":
        raise DynadexError(f"{export.url(export.summary_key)}: ingest-export takes a full export, this is "
                           f"{export.summary.export_type}")
    chunks = plan_chunks(export.files, int(chunk_target_mb * 1_000_000))
    micros = iso_to_micros(export.summary.export_time)
    return IngestPlan(export, chunks, export.summary.export_id, snapshot_version(micros))


def _build_one(args) -> dict:
    source, spec_dict, location, table, build_id, key_names, key_types, version, threads = args
    export = read_export(source, check_sidecars=False, stat_files=False)
    return build_chunk(export, ChunkSpec.from_dict(spec_dict), location, table, build_id, key_names, key_types,
                       version, threads=threads).to_dict()


def ingest_export(source: str, table: str, key: str, *, store: str | None = None, data_path: str | None = None,
                  workers: int = 1, chunk_target_mb: float = 256, stream_arn: str | None = None,
                  stream_start_micros: int | None = None, checkpoints: list[dict] | None = None) -> dict:
    key_names, key_types = parse_key_spec(key)
    p = plan(source, chunk_target_mb)
    location: StoreLocation = resolve(store, data_path)
    # the workers share the cores: each chunk's DuckDB gets its share of threads, not all of them
    threads = max(1, (os.cpu_count() or 1) // max(1, min(workers, len(p.chunks))))
    jobs = [(source, c.to_dict(), location, table, p.build_id, key_names, key_types, p.version, threads) for c in p.chunks]
    results: list[dict] = []
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(_build_one, jobs))
    else:
        for job in jobs:
            results.append(_build_one(job))
            log.info("built %s", results[-1])
    s = p.export.summary
    with Store(location, read_only=False) as st:
        published = st.publish(
            PublishSpec(
                table=table,
                build_id=p.build_id,
                chunk_ids=[c.chunk_id for c in p.chunks],
                key_names=key_names,
                key_types=key_types,
                expected_items={c.chunk_id: c.items for c in p.chunks},
                total_items=s.item_count,
                export_arn=s.export_arn,
                export_time=s.export_time,
                export_time_micros=iso_to_micros(s.export_time),
                stream_arn=stream_arn,
                stream_start_micros=min(stream_start_micros, iso_to_micros(s.export_time))
                if stream_start_micros else iso_to_micros(s.export_time),
                checkpoints=checkpoints or [],
                export_bucket=s.s3_bucket if source.startswith("s3://") else None,
                export_prefix=s.s3_prefix,
            )
        )
    return {
        "table": table,
        "export": s.export_arn,
        "chunks": len(p.chunks),
        "items": sum(r["items"] for r in results),
        "gzip_bytes": sum(r["gzip_bytes"] for r in results),
        "json_bytes": sum(r["json_bytes"] for r in results),
        "publish": published,
        "builds": [BuildResult(**r).to_dict() for r in results],
    }
