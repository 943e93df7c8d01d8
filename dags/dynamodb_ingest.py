"""
### dynamodb_ingest: index a DynamoDB table from an Export to S3, then hand over to the stream sync

Loads a full copy of one DynamoDB table into a dynadex store (DuckLake: row, column and inverted
indexes) from a DynamoDB **Export to S3**, which reads no table capacity, then triggers
`dynamodb_stream_sync`, which follows the table's **stream** from a point taken before the export.

**Prerequisites**

* The table has [point-in-time recovery](https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/PointInTimeRecovery.html)
  on and a [stream](https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Streams.html) with view type
  `NEW_IMAGE` or `NEW_AND_OLD_IMAGES`. `validate_table` checks both and says how to turn them on.
* An S3 bucket DynamoDB may write the export to (`s3_bucket`), readable by the workers.
* An Airflow [AWS connection](https://airflow.apache.org/docs/apache-airflow-providers-amazon/stable/connections/aws.html)
  (`aws_conn_id`, default `aws_default`) allowed to describe the table, export it, read the bucket and
  read the stream. For the bundled emulator put `{"endpoint_url": "http://127.0.0.1:4566", "region_name": "us-east-1"}`
  in its extra (`make airflow` creates that connection).
* The pool `dynadex_chunks` (or env `DYNADEX_CHUNK_POOL`): chunk builds run in it
  (`airflow pools set dynadex_chunks 16 "dynadex chunk builds"`; `make airflow` creates it).

**Params**

| param | meaning |
|---|---|
| `table_name` | the DynamoDB table (3-255 of `A-Z a-z 0-9 _ . -`) |
| `s3_bucket`, `s3_prefix` | where the export is written (`<prefix>/AWSDynamoDB/<ExportId>/`) |
| `export_format` | `DYNAMODB_JSON` or `ION`; both index the same |
| `s3_bucket_owner`, `s3_sse_kms_key_id` | another account's bucket (its 12-digit id) and the KMS key the export is encrypted with (empty: this account, bucket default) |
| `chunk_target_mb` | MB of gzip per chunk: one `build_chunk` task each (keep the count under 1024); empty: two chunks per `DYNADEX_MAX_ACTIVE_CHUNKS` slot, at most 256 MB |
| `store` | store folder or Postgres URI (empty: `$DYNADEX_STORE` or `./.dynadex`) |
| `aws_conn_id` | the AWS connection |
| `export_arn` / `export_manifest` | index an existing full export instead of starting one |

**Steps**: `validate_table` → `pin_stream_start` (stream ARN and T0, before the export) → `start_export`
(ExportTime = T0, idempotent ClientToken) → `wait_export` (deferred: no worker slot held) →
`describe_export` + `plan_chunks` (balanced chunks) → `build_chunk[i]` (mapped, named by chunk: writes the
chunk's final index files) → `prepare_publish` (column types from the chunks' statistics) → `check[j]` (mapped:
per key range, refuse duplicate keys and merge every chunk's rows of the range into one sorted file; per
(path, value) range, the same for inverted entries; cast column files where chunks disagree) → `publish` (one
metadata transaction; emits the `dynadex_index` asset event) → `start_stream_sync`.

**After the first ingest**: `start_stream_sync` unpauses `dynamodb_stream_sync` when it can (through the
REST API, connection `airflow_api`; `make airflow` creates it) and otherwise logs a loud warning:
then unpause `dynamodb_stream_sync` yourself, or the index stops at the export. Its continuous runs follow
every store an ingest published into (Variable `dynadex_stores`).

**Re-running**: bad input or configuration fails at once, without retries (fix it, then clear the task);
transient AWS errors are retried. Clear a failed `build_chunk` map index to rebuild just that chunk;
`publish` then runs again. A cleared `publish` over a published index changes nothing.

Wiring only: task bodies are in `plugins/dynadex_airflow` (which calls `include/dynadex`). See
docs/operations.md ("The DAGs", "Clearing and re-running") and `dynadex status` for lag.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from dynadex import settings
from dynadex.bootstrap import PARAMS_SCHEMA
from dynadex_airflow import assets, ingest_tasks, labels
from dynadex_airflow.dag_defaults import chunk_pool, default_args, timeout
from dynadex_airflow.operators import DynamoDBExportSensor, DynamoDBStartExportOperator, StartStreamSyncOperator

MAX_ACTIVE_CHUNKS = settings.MAX_ACTIVE_CHUNKS.read()
EXPORT_POLL_SECONDS = settings.EXPORT_POLL_SECONDS.read()
EXPORT_TIMEOUT_SECONDS = settings.EXPORT_TIMEOUT_SECONDS.read()


def _param(name: str, default, **extra) -> Param:
    return Param(default, **{**PARAMS_SCHEMA[name], **extra})


@dag(
    dag_id="dynamodb_ingest",
    description="Index a DynamoDB table from an Export to S3 (balanced mapped chunks, one publish), "
                "then hand over to dynamodb_stream_sync",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=4,
    tags=["dynadex"],
    doc_md=__doc__,
    params={
        "table_name": _param("table_name", "Orders"),
        "s3_bucket": _param("s3_bucket", "dynadex-exports"),
        "s3_prefix": _param("s3_prefix", "dynadex"),
        "export_format": _param("export_format", "DYNAMODB_JSON"),
        "s3_bucket_owner": _param("s3_bucket_owner", None),
        "s3_sse_kms_key_id": _param("s3_sse_kms_key_id", None),
        "chunk_target_mb": _param("chunk_target_mb", None),
        "store": _param("store", None),
        "aws_conn_id": _param("aws_conn_id", "aws_default"),
        "export_arn": _param("export_arn", None),
        "export_manifest": _param("export_manifest", None),
    },
    render_template_as_native_obj=True,
    user_defined_filters=labels.FILTERS,
    default_args=default_args(),
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

    @task(max_active_tis_per_dagrun=MAX_ACTIVE_CHUNKS, pool=chunk_pool(), execution_timeout=timeout("chunk"),
          map_index_template=labels.CHUNK_TEMPLATE)
    def build_chunk(spec: dict, meta: dict, table: dict, params=None) -> dict:
        return ingest_tasks.build(spec, meta, table, params)

    @task(execution_timeout=timeout("publish"))
    def prepare_publish(meta: dict, chunks: list, table: dict, built: list, params=None) -> list:
        return ingest_tasks.prepare(meta, chunks, table, params)

    @task(max_active_tis_per_dagrun=MAX_ACTIVE_CHUNKS, pool=chunk_pool(), execution_timeout=timeout("chunk"),
          map_index_template=labels.JOB_TEMPLATE)
    def check(job: dict, meta: dict, table: dict, params=None) -> dict:
        return ingest_tasks.run_check(job, meta, table, params)

    @task(outlets=[assets.INDEX], execution_timeout=timeout("publish"))
    def publish(meta: dict, chunks: list, table: dict, pinned: dict, checked: list, params=None) -> dict:
        result = ingest_tasks.publish(meta, chunks, table, pinned, params)
        get_current_context()["outlet_events"][assets.INDEX].extra = assets.event_extra(
            table["name"], params.get("store"), meta, result)
        return result

    table = validate_table()
    pinned = pin_stream_start(table)
    export_arn = DynamoDBStartExportOperator(
        task_id="start_export",
        table=table,
        pin=pinned,
        s3_bucket="{{ params.s3_bucket }}",
        s3_prefix="{{ params.s3_prefix }}",
        export_format="{{ params.export_format }}",
        s3_bucket_owner="{{ params.s3_bucket_owner or '' }}",
        s3_sse_kms_key_id="{{ params.s3_sse_kms_key_id or '' }}",
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
        execution_timeout=None,  # the deferral has its own timeout (DYNADEX_EXPORT_TIMEOUT_SECONDS)
    ).output
    meta = describe_export(manifest)
    chunks = plan_chunks(manifest)
    built = build_chunk.partial(meta=meta, table=table).expand(spec=chunks)
    jobs = prepare_publish(meta, chunks, table, built)
    checked = check.partial(meta=meta, table=table).expand(job=jobs)
    published = publish(meta, chunks, table, pinned, checked)
    start_sync = StartStreamSyncOperator(
        task_id="start_stream_sync",
        table_name="{{ params.table_name }}",
        store="{{ params.store }}",
        aws_conn_id="{{ params.aws_conn_id }}",
    )
    published >> start_sync


dynamodb_ingest()
