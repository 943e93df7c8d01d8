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

import json
import logging
import time
from dataclasses import dataclass, field

from dynadex.store.bulk import prepare as prep
from dynadex.store.bulk.prepare import PublishPlan
from dynadex.store.bulk.staging import remove_other_staging
from dynadex.store.catalog.lake import ALIAS, Lake
from dynadex.store.errors import PublishRefused
from dynadex.store.layout.names import (
    INVERTED_SCHEMA,
    KEY_COLUMN,
    KEY_ORDER_COLUMN,
    ROW_KEY_ORDER,
    ROW_SCHEMA,
    STATE_SCHEMA,
    column_table,
    inverted_table,
    literal,
    quote,
    row_table,
)
from dynadex.store.layout.registry import STATEMENT_ROWS

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
    checkpoints: list[dict] = field(default_factory=list)  # shard_id, parent_shard_id, sequence_number
    export_bucket: str | None = None  # where recovery's incremental exports go
    export_prefix: str | None = None
    keep_staging: bool = False


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
    state = lake.table_state(spec.table)
    if state is not None and state["build_id"] == spec.build_id:
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
    checked = sum(r["rows"] for r in records.values() if r["job"]["kind"] == "keys")
    if checked != current.items:
        raise PublishRefused(f"publish of {spec.table} build {spec.build_id} refused: the key checks saw {checked} "
                             f"keys, the chunks hold {current.items}")
    merged = {kind: [r for _, r in sorted(records.items()) if r["job"]["kind"] == kind] for kind in ("keys", "entries")}
    older = [r["job"]["name"] for r in merged["keys"] if "cols" not in r]
    if older:  # a key-range job run by a release that left the column files to conform jobs
        raise PublishRefused(f"publish of {spec.table} build {spec.build_id} refused: job(s) {', '.join(older)} "
                             "were run by an older release; clear the check tasks (or prepare again) to run them again")
    entries_merged = any(j.kind == "entries" for j in current.jobs)  # else the chunks' inverted files as they are
    entries = sum(m.inverted_entries for m in manifests)
    counts = {"keys": ("merged", current.items), "columns": ("cols_merged", current.items),
              "entries": ("merged", entries)}
    for kind, (field_, want) in counts.items():
        got = sum(r[field_] for r in merged["entries" if kind == "entries" else "keys"])
        if (kind != "entries" or entries_merged) and got != want:
            raise PublishRefused(f"publish of {spec.table} build {spec.build_id} refused: the {kind} ranges merged "
                                 f"{got} rows, the chunks hold {want}")
    files = {"rows": [f for r in merged["keys"] for f in r["files"]],
             "cols": [f for r in merged["keys"] for f in r["cols"]],
             "inv": [f for r in merged["entries"] for f in r["files"]]}
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
        for t in ("columns", "tables", "checkpoints"):
            con.execute(f"DELETE FROM {STATE_SCHEMA}.{t} WHERE table_name = ?", [spec.table])
        registry.save_new(con, spec.table, registry.columns)
        con.execute(
            f"INSERT INTO {STATE_SCHEMA}.tables VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, now(), ?, NULL, ?, ?, now(), ?)",
            [
                spec.table,
                json.dumps(list(spec.key_names)),
                json.dumps(list(spec.key_types)),
                spec.build_id,
                spec.export_arn,
                spec.export_time,
                spec.export_time_micros,
                spec.stream_arn,
                spec.stream_start_micros,
                spec.export_time_micros,
                spec.export_bucket,
                spec.export_prefix,
                current.key_prefix,
            ],
        )
        for cp in spec.checkpoints:
            con.execute(
                f"INSERT INTO {STATE_SCHEMA}.checkpoints VALUES (?, ?, ?, ?, ?, now())",
                [spec.table, cp["shard_id"], cp.get("parent_shard_id"), cp.get("sequence_number"), bool(cp.get("ended"))],
            )
        # the files each chunk built (registered merged by range); a statement per 500 chunks, not per chunk:
        # each costs a round trip to the catalog, and a terabyte's load has hundreds of chunks
        for start in range(0, len(manifests), STATEMENT_ROWS):
            part = manifests[start:start + STATEMENT_ROWS]
            con.execute(f"INSERT INTO {STATE_SCHEMA}.chunks VALUES " + ", ".join("(?, ?, ?, ?, ?, now())" for _ in part),
                        [v for m in part for v in (spec.table, spec.build_id, m.chunk_id, m.items, json.dumps(m.files))])
        con.execute(
            f"INSERT INTO {STATE_SCHEMA}.events VALUES (?, now(), 'publish', ?)",
            [spec.table, json.dumps({"build_id": spec.build_id, "items": current.items, "chunks": len(manifests),
                                     "files": sum(len(v) for v in files.values()), "export_arn": spec.export_arn})],
        )
    lake.published(spec.table)  # this connection's cache: the new key prefix
    seconds = time.monotonic() - started
    log.info("publish %s: %d chunks, %d files, %d items registered in %.2fs", spec.table, len(manifests),
             sum(len(v) for v in files.values()), current.items, seconds)
    if not spec.keep_staging:
        remove_other_staging(lake.location, spec.table, spec.build_id)
    return {"published": True, "build_id": spec.build_id, "items": current.items, "chunks": len(manifests),
            "columns": len(registry.columns), "files": sum(len(v) for v in files.values()),
            "cast_chunks": len(current.cast_chunks), "seconds": round(seconds, 3)}
