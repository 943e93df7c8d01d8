"""Bodies of the dynamodb_ingest tasks: each one call into include/dynadex, plus logging.

Every task is safe to retry and to clear: validation and planning are pure
reads, start_export is idempotent by ClientToken, a chunk rebuild replaces its
segment, and publish is one transaction that is a no-op once done.

Every body is wrapped in ``@fail_fast`` (dynadex_airflow/failures.py): a
DynadexError (bad input or configuration) fails the task at once, without
retries; transient errors keep them. Wrap any new task body the same way.
"""

from __future__ import annotations

import logging

from dynadex import bootstrap
from dynadex.errors import BootstrapError
from dynadex.export.manifest import read_export
from dynadex.ingest import auto_chunk_target_mb
from dynadex.store import PublishSpec, Store
from dynadex.store.bulk import prepare as prep
from dynadex.store.bulk.build import build_chunk as build_one
from dynadex.store.bulk.plan import ChunkSpec, makespan_ratio, plan_chunks
from dynadex.store.bulk.publish import ExportMeta
from dynadex_airflow.failures import fail_fast
from dynadex_airflow.hooks import client, store_location

log = logging.getLogger("dynadex.ingest")


@fail_fast
def validate(params: dict) -> dict:
    bootstrap.validate_params(params)
    info = bootstrap.validate_table(client("dynamodb", params["aws_conn_id"]), params["table_name"])
    log.info("table %s: key %s, stream %s (%s)", info.name, info.key_names, info.stream_arn, info.view_type)
    return info.to_dict()


@fail_fast
def pin(table: dict) -> dict:
    pinned = bootstrap.pin_stream_start(bootstrap.TableInfo.from_dict(table))
    log.info("stream pinned: %s from T0=%s", pinned.stream_arn, pinned.t0)
    return pinned.to_dict()


def _full_export(manifest: str, params: dict):
    export = read_export(manifest, s3_client=client("s3", params["aws_conn_id"]))
    if export.summary.export_type != "FULL_EXPORT":
        raise BootstrapError(f"{manifest} is an {export.summary.export_type}; the bootstrap needs a full export")
    return export


@fail_fast
def describe(manifest: str, params: dict) -> dict:
    """What publish needs to know about the export (an ExportMeta; XCom carries its dict)."""
    return ExportMeta.of(_full_export(manifest, params).summary, manifest).to_dict()


@fail_fast
def plan(manifest: str, params: dict, parallelism: int = 16) -> list[dict]:
    """Balanced chunk specs (keys, sizes, counts, checksums only). With no chunk target, chunks are sized so
    that ``parallelism`` builders (the DAG's max_active_chunks) get two each, at most 256 MB of gzip."""
    export = _full_export(manifest, params)
    target = params.get("chunk_target_mb")
    if target in (None, "", "auto"):
        target = auto_chunk_target_mb(sum(f.size or 0 for f in export.files), parallelism)
        log.info("chunk target %.1f MB of gzip (auto: two chunks for each of %d builders)", target, parallelism)
    chunks = plan_chunks(export.files, max(1, int(float(target) * 1_000_000)))
    log.info("%d files, %d items, %d bytes -> %d chunks (largest/mean %.3f)", len(export.files),
             export.summary.item_count, sum(f.size or 0 for f in export.files), len(chunks), makespan_ratio(chunks))
    return [c.to_dict() for c in chunks]


@fail_fast
def build(spec: dict, meta: dict, table: dict, params: dict) -> dict:
    chunk, export_meta, info = ChunkSpec.from_dict(spec), ExportMeta.from_dict(meta), bootstrap.TableInfo.from_dict(table)
    export = read_export(export_meta.manifest, check_sidecars=False, stat_files=False,
                         s3_client=client("s3", params["aws_conn_id"]))
    result = build_one(export, chunk, _location(params), info.name, export_meta.build_id, info.key_names,
                       info.key_types, export_meta.version)
    log.info("%s: %d items, %.1f MB gzip / %.1f MB JSON in %.1fs (%.1f MB/s)", chunk.label(), result.items,
             result.gzip_bytes / 1e6, result.json_bytes / 1e6, result.seconds, result.json_bytes / 1e6 / max(result.seconds, 1e-9))
    return result.to_dict()


def _location(params: dict):
    """The run's store, reached (for an s3:// data path) with the run's AWS connection."""
    return store_location(params.get("store"), params["aws_conn_id"])


def _spec(meta: dict, chunks: list[dict], table: dict, pinned: dict | None, params: dict) -> PublishSpec:
    """The publish these XCom values describe (PublishSpec.for_export, as ``ingest_export`` builds it)."""
    info = bootstrap.TableInfo.from_dict(table)
    stream = bootstrap.PinnedStream.from_dict(pinned) if pinned else None
    return PublishSpec.for_export(
        info.name, info.key_names, info.key_types, ExportMeta.from_dict(meta),
        [ChunkSpec.from_dict(c) for c in chunks],
        stream_arn=(stream.stream_arn if stream else None) or info.stream_arn,
        stream_start_micros=stream.start_micros if stream else None,
        export_bucket=params.get("s3_bucket"), export_prefix=params.get("s3_prefix"))


@fail_fast
def prepare(meta: dict, chunks: list[dict], table: dict, params: dict) -> list[dict]:
    """Decide the columns and plan the parallel checks (reads the chunk manifests only). The plan is kept
    beside the manifests; XCom carries the jobs (names and key bounds) the check tasks map over."""
    spec = _spec(meta, chunks, table, None, params)
    location = _location(params)
    plan = prep.prepare(location, spec.table, spec.build_id, spec.chunk_ids, spec.key_names,
                        spec.expected_items, spec.total_items)
    prep.save_plan(location, plan)
    count = {kind: sum(1 for j in plan.jobs if j.kind == kind) for kind in ("keys", "entries")}
    log.info("%s: %d items in %d chunks; %d columns; %d key ranges (check + merge rows and columns), %d "
             "inverted-entry ranges (merge); %d chunk(s) whose columns are cast on the way", spec.table, plan.items,
             len(plan.chunk_ids), len(plan.columns), count["keys"], count["entries"], len(plan.cast_chunks))
    return [{**j.to_dict(), "label": j.label(count[j.kind])} for j in plan.jobs]


@fail_fast
def run_check(job: dict, meta: dict, table: dict, params: dict) -> dict:
    location = _location(params)
    plan = prep.load_plan(location, bootstrap.TableInfo.from_dict(table).name, ExportMeta.from_dict(meta).build_id)
    record = prep.run_job(location, plan, prep.Job.from_dict({k: v for k, v in job.items() if k != "label"}))
    log.info("%s: %s", job["label"], record.figures())
    return {"digest": record.digest, **record.figures()}


@fail_fast
def publish(meta: dict, chunks: list[dict], table: dict, pinned: dict | None, params: dict) -> dict:
    spec = _spec(meta, chunks, table, pinned, params)
    with Store(_location(params), read_only=False) as st:
        state = st.lake.table_state(spec.table)
        already = state is not None and state.build_id == spec.build_id
        plan = None if already else prep.load_plan(st.location, spec.table, spec.build_id)
        result = st.publish(spec, plan)
    log.info("publish %s: %s", spec.table, result)
    return result
