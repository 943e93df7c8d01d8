"""Publish: register the chunks' files as the table's new snapshot, in one metadata transaction.

Invariants:

* Publish never reads or writes item data: it reads the chunk manifests and
  the records of the plan's jobs (``prepare``), then in ONE DuckLake
  transaction creates the three tables with the final column types,
  registers the files (``ducklake_add_data_files``): the key-range jobs' row
  and column files and the entry-range jobs' inverted files (a small
  build's: the chunks'), and writes the
  column registry, the chunk ledger, the table's export/stream state and its
  initial shard checkpoints. Its cost grows with the number of files, not of
  items. Readers see the previous snapshot until the commit, then the new one.
* Refuses (changing nothing) when a chunk is missing, a chunk's item count
  differs from the plan's, the total differs from the export's, a key appears
  twice, a job of the plan has no record for the chunks as they are now, or
  the merged ranges hold other counts of rows, column-index rows or entries
  than the chunks.
* Publishing the same build again is a no-op.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field

from dynadex.export.manifest import ExportSummary
from dynadex.store.bulk import prepare as prep
from dynadex.store.bulk.build import snapshot_version
from dynadex.store.bulk.plan import ChunkSpec
from dynadex.store.bulk.prepare import PublishPlan
from dynadex.store.bulk.staging import remove_other_staging
from dynadex.store.catalog import state
from dynadex.store.catalog.lake import ALIAS, Lake
from dynadex.store.catalog.state import Checkpoint, TableState
from dynadex.store.errors import PublishRefused
from dynadex.store.layout.names import (
    INVERTED_SCHEMA,
    KEY_COLUMN,
    KEY_ORDER_COLUMN,
    ROW_KEY_ORDER,
    ROW_SCHEMA,
    column_table,
    inverted_table,
    literal,
    quote,
    row_table,
)

log = logging.getLogger("dynadex.publish")


@dataclass
class PublishSpec:
    table: str
    build_id: str
    chunk_ids: list[str]
    key_names: tuple[str, ...]
    key_types: tuple[str, ...]
    expected_items: dict[str, int] | None = None  # chunk id -> items the plan promised
    total_items: int | None = None  # the export's itemCount
    export_arn: str | None = None
    export_time: str | None = None
    export_time_micros: int | None = None
    stream_arn: str | None = None
    stream_start_micros: int | None = None
    checkpoints: list[Checkpoint] = field(default_factory=list)  # each shard's start, pinned before the export
    export_bucket: str | None = None  # where recovery's incremental exports go
    export_prefix: str | None = None
    keep_staging: bool = False


    @classmethod
    def for_export(cls, table: str, key_names, key_types, meta: "ExportMeta", chunks: list[ChunkSpec], *,
                   stream_arn: str | None = None, stream_start_micros: int | None = None,
                   checkpoints: list[Checkpoint] = (), export_bucket: str | None = None,
                   export_prefix: str | None = None) -> "PublishSpec":
        """The one way a publish of an export is described (the DAG's tasks and ``ingest_export`` alike).

        The stream is read from no later than the export time: an existing export may be older than the
        stream start that was pinned for it, and a start after it would lose the changes in between."""
        start = meta.export_time_micros if stream_start_micros is None else min(stream_start_micros,
                                                                                 meta.export_time_micros)
        return cls(table=table, build_id=meta.build_id, chunk_ids=[c.chunk_id for c in chunks],
                   key_names=tuple(key_names), key_types=tuple(key_types),
                   expected_items={c.chunk_id: c.items for c in chunks}, total_items=meta.total_items,
                   export_arn=meta.export_arn, export_time=meta.export_time,
                   export_time_micros=meta.export_time_micros, stream_arn=stream_arn, stream_start_micros=start,
                   checkpoints=list(checkpoints), export_bucket=meta.bucket or export_bucket,
                   export_prefix=meta.prefix or export_prefix)


@dataclass(frozen=True)
class ExportMeta:
    """What a load needs to know of its export (small: it travels between the DAG's tasks through XCom)."""

    manifest: str  # the export's manifest-summary.json (a local path or an s3:// URL)
    build_id: str  # the export's id: chunks, jobs and the publish are filed under it
    export_arn: str
    export_time: str
    export_time_micros: int
    version: int  # of every snapshot item (snapshot_version): the stream's overlap applies over it
    total_items: int
    format: str  # DYNAMODB_JSON or ION
    bucket: str | None = None  # where the export is, so recovery's incremental exports go there too
    prefix: str | None = None

    @classmethod
    def of(cls, summary: ExportSummary, manifest: str) -> "ExportMeta":
        micros = summary.export_time_micros
        return cls(manifest, summary.export_id, summary.export_arn, summary.export_time, micros,
                   snapshot_version(micros), summary.item_count, summary.output_format,
                   manifest.split("/")[2] if manifest.startswith("s3://") else None, summary.s3_prefix)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ExportMeta":
        return cls(**d)


def row_index_ddl(table: str, key_types: tuple[str, ...]) -> str:
    def sql(t: str) -> str:
        return "BLOB" if t == "B" else "VARCHAR"

    cols = ["key VARCHAR", f"pk {sql(key_types[0])}"]
    if len(key_types) > 1:
        cols.append(f"sk {sql(key_types[1])}")
    cols += ["item VARCHAR", "version BIGINT", "origin VARCHAR", "write_id BIGINT", f"{ROW_KEY_ORDER} BIGINT"]
    return f"CREATE TABLE {row_table(table)} ({', '.join(cols)})"


INVERTED_DDL = "(path VARCHAR, kind VARCHAR, value VARCHAR, key VARCHAR, write_id BIGINT)"


def _add_files(con, schema: str, table: str, files: list[str]) -> None:
    if files:
        con.execute(f"CALL ducklake_add_data_files({literal(ALIAS)}, ?, ?, schema => ?, allow_missing => true)",
                    [table, files, schema])


def publish(lake: Lake, spec: PublishSpec, prepared: PublishPlan | None = None) -> dict:
    """Commit the build. Without ``prepared`` (tests, small stores) the plan's jobs run here, one by one;
    the DAG and ``ingest-export`` run them in parallel first and pass the plan."""
    before = lake.table_state(spec.table)
    if before is not None and before.build_id == spec.build_id:
        return {"published": False, "reason": "already published", "build_id": spec.build_id}
    started = time.monotonic()
    manifests = prep.read_manifests(lake.location, spec.table, spec.build_id, spec.chunk_ids, spec.key_names,
                                    spec.expected_items, spec.total_items)
    current = prep.plan_for(spec.table, spec.build_id, manifests)
    if prepared is None:
        for job in current.jobs:
            prep.run_job(lake.location, current, job)
    elif prepared.digest != current.digest:
        raise PublishRefused(f"publish of {spec.table} build {spec.build_id} refused: chunks were rebuilt since "
                             "publish was prepared; prepare again")
    records = prep.results(lake.location, current)
    checked = sum(r.rows for r in records.values() if r.job.kind == "keys")
    if checked != current.items:
        raise PublishRefused(f"publish of {spec.table} build {spec.build_id} refused: the key checks saw {checked} "
                             f"keys, the chunks hold {current.items}")
    merged = {kind: [r for _, r in sorted(records.items()) if r.job.kind == kind] for kind in ("keys", "entries")}
    older = [r.job.name for r in merged["keys"] if r.cols is None]
    if older:  # a key-range job run by a release that left the column files to conform jobs
        raise PublishRefused(f"publish of {spec.table} build {spec.build_id} refused: job(s) {', '.join(older)} "
                             "were run by an older release; clear the check tasks (or prepare again) to run them again")
    entries_merged = any(j.kind == "entries" for j in current.jobs)  # else the chunks' inverted files as they are
    entries = sum(m.inverted_entries for m in manifests)
    counts = {"keys": ("merged", current.items), "columns": ("cols_merged", current.items),
              "entries": ("merged", entries)}
    for kind, (field_, want) in counts.items():
        got = sum(getattr(r, field_) for r in merged["entries" if kind == "entries" else "keys"])
        if (kind != "entries" or entries_merged) and got != want:
            raise PublishRefused(f"publish of {spec.table} build {spec.build_id} refused: the {kind} ranges merged "
                                 f"{got} rows, the chunks hold {want}")
    files = {"rows": [f for r in merged["keys"] for f in r.files],
             "cols": [f for r in merged["keys"] for f in r.cols],
             "inv": [f for r in merged["entries"] for f in r.files]}
    if not entries_merged:
        files["inv"] += [f for m in manifests for f in m.files["inv"]]
    registry = current.registry()
    con = lake.con
    with lake.transaction():
        for schema_table in (column_table(spec.table), row_table(spec.table), inverted_table(spec.table)):
            con.execute(f"DROP TABLE IF EXISTS {schema_table}")
        con.execute(row_index_ddl(spec.table, spec.key_types))
        col_defs = [f"{quote(KEY_COLUMN)} VARCHAR", f"{quote(KEY_ORDER_COLUMN)} BIGINT"] + \
            [f"{quote(c.name)} {c.sql_type}" for c in registry.columns]
        con.execute(f"CREATE TABLE {column_table(spec.table)} ({', '.join(col_defs)})")
        con.execute(f"CREATE TABLE {inverted_table(spec.table)} {INVERTED_DDL}")
        # later merges (maintenance) keep each index in its lookup order
        con.execute(f"ALTER TABLE {row_table(spec.table)} SET SORTED BY (key)")
        con.execute(f"ALTER TABLE {column_table(spec.table)} SET SORTED BY ({quote(KEY_COLUMN)})")
        con.execute(f"ALTER TABLE {inverted_table(spec.table)} SET SORTED BY (path, value)")
        _add_files(con, ROW_SCHEMA, spec.table, files["rows"])
        _add_files(con, "main", spec.table, files["cols"])
        _add_files(con, INVERTED_SCHEMA, spec.table, files["inv"])
        state.replace_table(con, TableState(
            spec.table, tuple(spec.key_names), tuple(spec.key_types), build_id=spec.build_id,
            export_arn=spec.export_arn, export_time=spec.export_time, export_time_micros=spec.export_time_micros,
            stream_arn=spec.stream_arn, stream_start_micros=spec.stream_start_micros,
            last_change_micros=spec.export_time_micros, export_bucket=spec.export_bucket,
            export_prefix=spec.export_prefix, key_prefix=current.key_prefix))
        state.save_columns(con, spec.table, registry.columns)
        state.replace_checkpoints(con, spec.table, list(spec.checkpoints))
        state.record_chunks(con, spec.table, spec.build_id, manifests)
        state.record_event(con, spec.table, "publish", {
            "build_id": spec.build_id, "items": current.items, "chunks": len(manifests),
            "files": sum(len(v) for v in files.values()), "export_arn": spec.export_arn})
    lake.published(spec.table)  # this connection's cache: the new key prefix
    seconds = time.monotonic() - started
    log.info("publish %s: %d chunks, %d files, %d items registered in %.2fs", spec.table, len(manifests),
             sum(len(v) for v in files.values()), current.items, seconds)
    if not spec.keep_staging:
        remove_other_staging(lake.location, spec.table, spec.build_id)
    return {"published": True, "build_id": spec.build_id, "items": current.items, "chunks": len(manifests),
            "columns": len(registry.columns), "files": sum(len(v) for v in files.values()),
            "cast_chunks": len(current.cast_chunks), "seconds": round(seconds, 3)}
