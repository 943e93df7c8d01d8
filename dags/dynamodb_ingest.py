"""dynamodb_ingest: index a DynamoDB table from an Export to S3, then hand over to stream sync.

validate_table -> pin_stream_start -> start_export -> wait_export (deferred) -> describe_export + plan_chunks
-> build_chunk[i] (mapped, one per balanced chunk: writes the chunk's final index files)
-> prepare_publish (column types from the chunks' statistics) -> check[j] (mapped: duplicate keys by key range,
   columns cast where chunks disagree) -> publish (one metadata transaction) -> start_stream_sync.

Wiring only: every task body is in plugins/dynadex_airflow (which calls include/dynadex).
Re-run a failed chunk by clearing its build_chunk map index; publish then runs again.
"""

from __future__ import annotations

import os

import pendulum
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Param, dag, get_current_context, task

from dynadex.bootstrap import PARAMS_SCHEMA
from dynadex_airflow import ingest_tasks
from dynadex_airflow.operators import DynamoDBExportSensor, DynamoDBStartExportOperator

MAX_ACTIVE_CHUNKS = int(os.environ.get("DYNADEX_MAX_ACTIVE_CHUNKS", "16"))
EXPORT_POLL_SECONDS = float(os.environ.get("DYNADEX_EXPORT_POLL_SECONDS", "30"))
EXPORT_TIMEOUT_SECONDS = float(os.environ.get("DYNADEX_EXPORT_TIMEOUT_SECONDS", str(6 * 3600)))
RETRIES = int(os.environ.get("DYNADEX_TASK_RETRIES", "2"))
RETRY_DELAY = pendulum.duration(seconds=float(os.environ.get("DYNADEX_RETRY_DELAY_SECONDS", "60")))


def _param(name: str, default, **extra) -> Param:
    return Param(default, **{**PARAMS_SCHEMA[name], **extra})


@dag(
    dag_id="dynamodb_ingest",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=4,
    tags=["dynadex"],
    doc_md=__doc__,
    params={
        "table_name": _param("table_name", "Orders", title="DynamoDB table"),
        "s3_bucket": _param("s3_bucket", "dynadex-exports", title="Export bucket"),
        "s3_prefix": _param("s3_prefix", "dynadex", title="Export prefix"),
        "export_format": _param("export_format", "DYNAMODB_JSON", title="Export format"),
        "chunk_target_mb": _param("chunk_target_mb", 256, title="Chunk target (MB of gzip)"),
        "store": _param("store", None, title="Store"),
        "aws_conn_id": _param("aws_conn_id", "aws_default", title="AWS connection"),
        "export_arn": _param("export_arn", None, title="Existing export ARN"),
        "export_manifest": _param("export_manifest", None, title="Existing export manifest (s3://…)"),
    },
    render_template_as_native_obj=True,
    default_args={"retries": RETRIES, "retry_delay": RETRY_DELAY, "retry_exponential_backoff": True},
)
def dynamodb_ingest():
    @task
    def validate_table(params=None) -> dict:
        return ingest_tasks.validate(params)

    @task
    def pin_stream_start(table: dict) -> dict:
        return ingest_tasks.pin(table)

    @task
    def describe_export(manifest: str, params=None) -> dict:
        return ingest_tasks.describe(manifest, params)

    @task
    def plan_chunks(manifest: str, params=None) -> list:
        return ingest_tasks.plan(manifest, params, MAX_ACTIVE_CHUNKS)

    @task(max_active_tis_per_dagrun=MAX_ACTIVE_CHUNKS,
          map_index_template="{{ dynadex_chunk_label }}")
    def build_chunk(spec: dict, meta: dict, table: dict, params=None) -> dict:
        from dynadex.export.plan import ChunkSpec

        get_current_context()["dynadex_chunk_label"] = ChunkSpec.from_dict(spec).label()
        return ingest_tasks.build(spec, meta, table, params)

    @task
    def prepare_publish(meta: dict, chunks: list, table: dict, built: list, params=None) -> list:
        return ingest_tasks.prepare(meta, chunks, table, params)

    @task(max_active_tis_per_dagrun=MAX_ACTIVE_CHUNKS, map_index_template="{{ dynadex_job_label }}")
    def check(job: dict, meta: dict, table: dict, params=None) -> dict:
        get_current_context()["dynadex_job_label"] = job["label"]
        return ingest_tasks.run_check(job, meta, table, params)

    @task
    def publish(meta: dict, chunks: list, table: dict, pinned: dict, checked: list, params=None) -> dict:
        return ingest_tasks.publish(meta, chunks, table, pinned, params)

    table = validate_table()
    pinned = pin_stream_start(table)
    export_arn = DynamoDBStartExportOperator(
        task_id="start_export",
        table=table,
        pin=pinned,
        s3_bucket="{{ params.s3_bucket }}",
        s3_prefix="{{ params.s3_prefix }}",
        export_format="{{ params.export_format }}",
        export_arn="{{ params.export_arn or '' }}",
        export_manifest="{{ params.export_manifest or '' }}",
        aws_conn_id="{{ params.aws_conn_id }}",
    ).output
    manifest = DynamoDBExportSensor(
        task_id="wait_export",
        export_arn=export_arn,
        export_manifest="{{ params.export_manifest or '' }}",
        aws_conn_id="{{ params.aws_conn_id }}",
        poke_interval=EXPORT_POLL_SECONDS,
        timeout=EXPORT_TIMEOUT_SECONDS,
    ).output
    meta = describe_export(manifest)
    chunks = plan_chunks(manifest)
    built = build_chunk.partial(meta=meta, table=table).expand(spec=chunks)
    jobs = prepare_publish(meta, chunks, table, built)
    checked = check.partial(meta=meta, table=table).expand(job=jobs)
    published = publish(meta, chunks, table, pinned, checked)
    start_sync = TriggerDagRunOperator(
        task_id="start_stream_sync",
        trigger_dag_id="dynamodb_stream_sync",
        conf={"table_name": "{{ params.table_name }}", "store": "{{ params.store }}",
              "aws_conn_id": "{{ params.aws_conn_id }}"},
        wait_for_completion=False,
    )
    published >> start_sync


dynamodb_ingest()
