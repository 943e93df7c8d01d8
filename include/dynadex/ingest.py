"""Indexing an export without Airflow: plan, build every chunk, prepare, run the checks, publish.

The same library calls the ``dynamodb_ingest`` DAG makes, run here in a pool
of ``workers`` processes (default: one per core) for ad-hoc use and
benchmarks. Invariant: the index changes only at the final publish, in one
metadata transaction; any failed check before it leaves the store as it was.

Defaults use the machine: with no chunk target, chunks are sized so there
are at least two per worker (at most 256 MB of gzip each), so every core
builds whatever the export's size; each build's DuckDB gets its share of the
cores (``threads_per_build``).

One pool of worker processes runs both the builds and the checks, so the
workers start (and import) once per ingest, each reads the export's manifests
once, and the checks ask the catalog once whether the build is published
rather than once per job. The phases' CPU seconds add up the workers' own
time per task; the workers' start and stop are reported apart.
"""

from __future__ import annotations

import logging
import math
import os
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from dynadex.errors import DynadexError, KeySpecError
from dynadex.export.manifest import Export, read_export
from dynadex.store import Checkpoint, PublishSpec, Store
from dynadex.store.bulk import prepare as prep
from dynadex.store.bulk.build import BuildResult, build_chunk, snapshot_version
from dynadex.store.bulk.plan import ChunkSpec, plan_chunks
from dynadex.store.bulk.publish import ExportMeta
from dynadex.store.catalog.location import StoreLocation, resolve

log = logging.getLogger("dynadex.ingest")


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


MAX_CHUNK_MB = 256
MIN_CHUNK_MB = 1
CHUNKS_PER_WORKER = 2


def auto_chunk_target_mb(total_bytes: int, parallelism: int) -> float:
    """A chunk target that gives every one of ``parallelism`` builders work (two chunks each, for balance),
    with chunks of at most 256 MB of gzip and at least 1 MB."""
    want = total_bytes / 1e6 / max(1, parallelism * CHUNKS_PER_WORKER)
    return max(MIN_CHUNK_MB, min(MAX_CHUNK_MB, math.ceil(want * 10) / 10))


def threads_per_build(workers: int, chunks: int) -> int:
    """The builders share the cores: each chunk's DuckDB gets its share of threads, not all of them."""
    return max(1, (os.cpu_count() or 1) // max(1, min(workers, chunks)))


@dataclass
class IngestPlan:
    export: Export
    chunks: list[ChunkSpec]
    build_id: str
    version: int
    chunk_target_mb: float


def plan(source: str, chunk_target_mb: float | None = None, parallelism: int = 1) -> IngestPlan:
    export = read_export(source)
    if export.summary.export_type != "FULL_EXPORT":
        raise DynadexError(f"{export.url(export.summary_key)}: ingest-export takes a full export, this is "
                           f"{export.summary.export_type}")
    if chunk_target_mb is None:
        chunk_target_mb = auto_chunk_target_mb(sum(f.size or 0 for f in export.files), parallelism)
    if chunk_target_mb <= 0:
        raise DynadexError(f"chunk target must be more than 0 MB, got {chunk_target_mb}")
    chunks = plan_chunks(export.files, int(chunk_target_mb * 1_000_000))
    return IngestPlan(export, chunks, export.summary.export_id, snapshot_version(export.summary.export_time_micros),
                      chunk_target_mb)


_EXPORTS: dict[str, Export] = {}  # per worker process: the export's manifests, read once


def _export(source: str) -> Export:
    if source not in _EXPORTS:
        _EXPORTS.clear()
        _EXPORTS[source] = read_export(source, check_sidecars=False, stat_files=False)
    return _EXPORTS[source]


def _build_one(args) -> dict:
    source, spec_dict, location, table, build_id, key_names, key_types, version, threads = args
    return build_chunk(_export(source), ChunkSpec.from_dict(spec_dict), location, table, build_id, key_names,
                       key_types, version, threads=threads).to_dict()


def _is_published(args) -> bool:
    return prep.is_published(*args)


def _run_job(args) -> dict:
    location, plan_dict, job_dict, threads, published = args
    return prep.run_job(location, prep.PublishPlan.from_dict(plan_dict), prep.Job.from_dict(job_dict),
                        threads=threads, published=published).to_dict()


def _own_cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def _cpu_seconds() -> float:
    """User + system CPU of this process and of its finished workers."""
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return _own_cpu() + kids.ru_utime + kids.ru_stime


def _timed(task) -> tuple:
    """Run in a worker: the task's result and the worker's CPU seconds for it."""
    fn, args = task
    started = _own_cpu()
    return fn(args), _own_cpu() - started


class _Workers:
    """One pool for every phase (started on first use); ``map`` returns the results and the CPU seconds the
    workers spent on them (0 when the tasks ran here, where this process's own CPU counts them)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.pool: ProcessPoolExecutor | None = None
        self.task_cpu = 0.0

    def map(self, fn, jobs: list, pooled: bool | None = None) -> tuple[list, float]:
        """``pooled``: run in the pool even a single task (None: when there are several, or the pool runs)."""
        if pooled is None:
            pooled = len(jobs) > 1 or self.pool is not None
        if self.workers <= 1 or not pooled:
            return [fn(job) for job in jobs], 0.0
        if self.pool is None:
            self.pool = ProcessPoolExecutor(max_workers=self.workers)
        done = list(self.pool.map(_timed, [(fn, job) for job in jobs]))
        spent = sum(c for _, c in done)
        self.task_cpu += spent
        return [r for r, _ in done], spent

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None


def ingest_export(source: str, table: str, key: str, *, store: str | None = None, data_path: str | None = None,
                  workers: int | None = None, chunk_target_mb: float | None = None, stream_arn: str | None = None,
                  stream_start_micros: int | None = None, checkpoints: list[Checkpoint] = ()) -> dict:
    key_names, key_types = parse_key_spec(key)
    workers = workers or os.cpu_count() or 1
    phases: dict[str, float] = {}
    cpu: dict[str, float] = {}  # CPU seconds of each phase, this process and its workers' tasks together
    t, c = time.monotonic(), _own_cpu()
    pool = _Workers(workers)
    children_before = _cpu_seconds() - _own_cpu()

    def phase(name: str, in_workers: float = 0.0) -> None:
        nonlocal t, c
        now, used = time.monotonic(), _own_cpu()
        phases[name], cpu[name] = round(now - t, 3), round(used - c + in_workers, 3)
        log.info("ingest %s: %s took %.2fs (%.2f CPU seconds)", table, name, now - t, used - c + in_workers)
        t, c = now, used

    try:
        p = plan(source, chunk_target_mb, workers)
        location: StoreLocation = resolve(store, data_path)
        phase("plan")
        threads = threads_per_build(workers, len(p.chunks))
        jobs = [(source, c.to_dict(), location, table, p.build_id, key_names, key_types, p.version, threads)
                for c in p.chunks]
        results, spent = pool.map(_build_one, jobs)
        p.export.check_total()  # every data file held what its entry says: now the entries must add up
        phase("build", spent)
        s = p.export.summary
        spec = PublishSpec.for_export(table, key_names, key_types, ExportMeta.of(s, source), p.chunks,
                                      stream_arn=stream_arn, stream_start_micros=stream_start_micros,
                                      checkpoints=checkpoints)
        prepared = prep.prepare(location, table, p.build_id, spec.chunk_ids, key_names, spec.expected_items,
                                spec.total_items)
        phase("prepare")
        job_threads = threads_per_build(workers, len(prepared.jobs))
        spent = 0.0
        if prepared.jobs:  # asked once for all the jobs (each asks when run alone: a task re-run after publish)
            # in a worker when the jobs run in workers: this process forks none after opening a DuckDB
            [done_before], spent = pool.map(_is_published, [(location, table, p.build_id)],
                                            pooled=len(prepared.jobs) > 1 or None)
            _done, more = pool.map(_run_job, [(location, prepared.to_dict(), j.to_dict(), job_threads, done_before)
                                              for j in prepared.jobs])
            spent += more
        phase("checks", spent)
    finally:
        pool.close()
    with Store(location, read_only=False) as st:
        published = st.publish(spec, prepared)
    phase("publish")
    # the workers' own start, imports and stop, beyond their tasks (counted once they have ended)
    cpu["workers_start"] = round(max(0.0, _cpu_seconds() - _own_cpu() - children_before - pool.task_cpu), 3)
    return {
        "table": table,
        "export": s.export_arn,
        "chunks": len(p.chunks),
        "workers": workers,
        "chunk_target_mb": p.chunk_target_mb,
        "items": sum(r["items"] for r in results),
        "gzip_bytes": sum(r["gzip_bytes"] for r in results),
        "json_bytes": sum(r["json_bytes"] for r in results),
        "publish": published,
        "jobs": {"key_ranges": sum(1 for j in prepared.jobs if j.kind == "keys"),
                 "entry_ranges": sum(1 for j in prepared.jobs if j.kind == "entries"),
                 "cast_chunks": len(prepared.cast_chunks)},
        "phases": phases,
        "cpu_seconds": cpu,
        "builds": [BuildResult(**r).to_dict() for r in results],
    }
