"""Publish: make a set of chunk segments the table's snapshot, in one transaction.

Invariants:

* All or nothing: the three indexes, the column registry, the chunk ledger,
  the table's export/stream state and its initial shard checkpoints change
  in ONE DuckLake transaction. Readers see the previous snapshot until the
  commit, then the new one.
* Refuses (changing nothing) when a chunk's segment is missing, when a
  chunk's item count differs from what the plan expected, when the total
  differs from the export's item count, or when a key appears twice.
* Publishing the same build again is a no-op.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field

from dynadex.errors import DynadexError
from dynadex.store.lake import Lake
from dynadex.store.names import (
    KEY_COLUMN,
    STATE_SCHEMA,
    column_table,
    inverted_table,
    parse_staging_name,
    quote,
    row_table,
    staging_name,
)
from dynadex.store.registry import Registry
from dynadex.store.segments import read_manifest, remove_build
from dynadex.store.shape import NumberStats
from dynadex.store.writes import BULK_WRITE_ID


log = logging.getLogger("dynadex.publish")


class PublishRefused(DynadexError, ValueError):
    """Publish found the chunks incomplete or inconsistent; nothing was changed."""


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
    cols += ["item VARCHAR", "version BIGINT", "origin VARCHAR", "write_id BIGINT"]
    return f"CREATE TABLE {row_table(table)} ({', '.join(cols)})"


def _manifests(lake: Lake, spec: PublishSpec) -> list[dict]:
    manifests, missing, wrong = [], [], []
    for chunk_id in spec.chunk_ids:
        m = read_manifest(lake.location, spec.table, spec.build_id, chunk_id)
        if m is None:
            missing.append(chunk_id)
            continue
        expected = (spec.expected_items or {}).get(chunk_id)
        if expected is not None and m["items"] != expected:
            wrong.append(f"{chunk_id} holds {m['items']} items, expected {expected}")
        if tuple(m["key_names"]) != tuple(spec.key_names):
            wrong.append(f"{chunk_id} was built with key {m['key_names']}, expected {list(spec.key_names)}")
        manifests.append(m)
    if missing:
        raise PublishRefused(f"publish of {spec.table} build {spec.build_id} refused: chunk(s) not built: {', '.join(missing)}")
    if wrong:
        raise PublishRefused(f"publish of {spec.table} build {spec.build_id} refused: {'; '.join(wrong)}")
    total = sum(m["items"] for m in manifests)
    if spec.total_items is not None and total != spec.total_items:
        raise PublishRefused(
            f"publish of {spec.table} build {spec.build_id} refused: chunks hold {total} items, the export has {spec.total_items}"
        )
    return manifests


def _merged_infos(manifests: list[dict]) -> dict:
    infos: dict = {}
    for m in manifests:
        for name, c in m["columns"].items():
            path, kind = parse_staging_name(name)
            count, stats = infos.get((path, kind), (0, None))
            if c["number"] is not None:
                s = NumberStats.from_dict(c["number"])
                if stats is None:
                    stats = s
                else:
                    stats.merge(s)
            infos[(path, kind)] = (count + c["count"], stats)
    return infos


def publish(lake: Lake, spec: PublishSpec) -> dict:
    state = lake.table_state(spec.table)
    if state is not None and state["build_id"] == spec.build_id:
        return {"published": False, "reason": "already published", "build_id": spec.build_id}
    manifests = _manifests(lake, spec)
    rows = [p for m in manifests for p in m["parts"]["rows"]]
    cols = [p for m in manifests for p in m["parts"]["cols"]]
    inv = [p for m in manifests for p in m["parts"]["inv"]]
    con = lake.con
    total = sum(m["items"] for m in manifests)
    if rows:
        dup = con.execute(
            "SELECT key, count(*) FROM read_parquet(?) GROUP BY key HAVING count(*) > 1 LIMIT 1", [rows]
        ).fetchone()
        if dup:
            raise PublishRefused(f"publish of {spec.table} build {spec.build_id} refused: key {dup[0]} appears {dup[1]} times")
    registry = Registry.for_publish(_merged_infos(manifests))
    t = time.monotonic()

    def step(name: str) -> None:
        nonlocal t
        now = time.monotonic()
        log.info("publish %s: %s in %.1fs", spec.table, name, now - t)
        t = now

    with lake.transaction():
        for schema_table in (column_table(spec.table), row_table(spec.table), inverted_table(spec.table)):
            con.execute(f"DROP TABLE IF EXISTS {schema_table}")
        con.execute(row_index_ddl(spec.table, spec.key_types))
        if rows:
            key_cols = "key, pk" + (", sk" if len(spec.key_types) > 1 else "")
            con.execute(
                f"INSERT INTO {row_table(spec.table)} SELECT {key_cols}, item, version, origin, {BULK_WRITE_ID} "
                "FROM read_parquet(?) ORDER BY key",
                [rows],
            )
            step("row index")
        col_defs = [f"{quote(KEY_COLUMN)} VARCHAR"] + [f"{quote(c.name)} {c.sql_type}" for c in registry.columns]
        con.execute(f"CREATE TABLE {column_table(spec.table)} ({', '.join(col_defs)})")
        if cols:
            select = [quote(KEY_COLUMN)] + [
                f"CAST({quote(staging_name(c.path, c.kind))} AS {c.sql_type})" for c in registry.columns
            ]
            con.execute(
                f"INSERT INTO {column_table(spec.table)} SELECT {', '.join(select)} "
                f"FROM read_parquet(?, union_by_name = true) ORDER BY {quote(KEY_COLUMN)}",
                [cols],
            )
            step("column index")
        con.execute(f"CREATE TABLE {inverted_table(spec.table)} (path VARCHAR, kind VARCHAR, value VARCHAR, key VARCHAR, "
                    "write_id BIGINT)")
        if inv:
            con.execute(
                f"INSERT INTO {inverted_table(spec.table)} SELECT path, kind, value, key, {BULK_WRITE_ID} "
                "FROM read_parquet(?) ORDER BY path, value",  # find sorts its keys itself
                [inv],
            )
            step("inverted index")
        for t in ("columns", "tables", "checkpoints"):
            con.execute(f"DELETE FROM {STATE_SCHEMA}.{t} WHERE table_name = ?", [spec.table])
        registry.save_new(con, spec.table, registry.columns)
        con.execute(
            f"INSERT INTO {STATE_SCHEMA}.tables VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, now(), ?, NULL, ?, ?, now())",
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
            ],
        )
        for cp in spec.checkpoints:
            con.execute(
                f"INSERT INTO {STATE_SCHEMA}.checkpoints VALUES (?, ?, ?, ?, ?, now())",
                [spec.table, cp["shard_id"], cp.get("parent_shard_id"), cp.get("sequence_number"), bool(cp.get("ended"))],
            )
        for m in manifests:
            con.execute(
                f"INSERT INTO {STATE_SCHEMA}.chunks VALUES (?, ?, ?, ?, ?, now())",
                [spec.table, spec.build_id, m["chunk_id"], m["items"], json.dumps(m["parts"])],
            )
        con.execute(
            f"INSERT INTO {STATE_SCHEMA}.events VALUES (?, now(), 'publish', ?)",
            [spec.table, json.dumps({"build_id": spec.build_id, "items": total, "chunks": len(manifests),
                                     "export_arn": spec.export_arn})],
        )
    if not spec.keep_staging:
        remove_build(lake.location, spec.table, spec.build_id)
    return {"published": True, "build_id": spec.build_id, "items": total, "chunks": len(manifests),
            "columns": len(registry.columns)}

