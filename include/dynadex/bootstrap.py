"""The bootstrap's control-plane steps, as plain functions over boto3 clients.

The ``dynamodb_ingest`` DAG calls these (through thin Airflow tasks); so can
anyone without Airflow. Invariants:

* ``validate_params`` and ``validate_table`` fail with a message saying what
  to change, before anything is started.
* ``pin_stream_start`` records the stream ARN and T0 *before* the export is
  requested, and the export is asked for ExportTime = T0, so snapshot +
  stream (read from the trim horizon, records older than T0 - overlap
  skipped) covers every change.
* ``start_export`` sends a ClientToken derived from the run, table and T0:
  a retry or a cleared task gets the same export back, never a second one.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass

from dynadex.errors import BootstrapError

FORMATS = ("DYNAMODB_JSON", "ION")
TABLE_NAME = re.compile(r"[A-Za-z0-9_.\-]{3,255}")
BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")


# AWS error codes that mean "try again later", never "this request is wrong"
TRANSIENT_CODES = {"LimitExceededException", "ThrottlingException", "ProvisionedThroughputExceededException",
                   "RequestLimitExceeded", "InternalServerError", "ServiceUnavailable", "RequestTimeout"}


CHUNK_TARGET_MAX_MB = 100000
EXPORT_ARN = re.compile(r"arn:aws[a-z\-]*:dynamodb:[^:]*:\d*:table/[^/]+/export/\d{14}-[0-9a-f]{8}")
CONN_ID = re.compile(r"[\w.\-]{1,250}")


def anchored(pattern: re.Pattern) -> str:
    """A JSON-schema pattern meaning fullmatch: JSON schema *searches* (it is not anchored), so anchor it.

    ``(?!\n)`` after ``$``: Python's ``$`` (jsonschema on the server) also matches before a final newline,
    the browser's does not; the lookahead makes both refuse ``"Orders\n"``."""
    return rf"^(?:{pattern.pattern})$(?!\n)"


# JSON schema of every param the dynamodb_ingest DAG takes (the Airflow form and the REST API check these
# before a run is created; ``validate_params`` checks the same at run time, for callers without Airflow).
# Each has a title and a description, so the form says what to type.
PARAMS_SCHEMA = {
    "table_name": {
        "type": "string", "pattern": anchored(TABLE_NAME), "minLength": 3, "maxLength": 255,
        "title": "DynamoDB table",
        "description": "name of the table to index: 3-255 of A-Z a-z 0-9 _ . - (point-in-time recovery and a "
                       "stream with NEW_IMAGE or NEW_AND_OLD_IMAGES must be on)",
    },
    "s3_bucket": {
        "type": ["null", "string"], "pattern": anchored(BUCKET),
        "title": "Export bucket",
        "description": "S3 bucket the export is written to (not needed with an existing export ARN or manifest)",
    },
    "s3_prefix": {
        "type": "string", "maxLength": 1024,
        "title": "Export prefix",
        "description": "key prefix of the export in the bucket (AWSDynamoDB/<ExportId>/ goes under it)",
    },
    "export_format": {
        "type": "string", "enum": list(FORMATS),
        "title": "Export format",
        "description": "format DynamoDB writes the export in: DYNAMODB_JSON (default) or ION; both index the same",
    },
    "chunk_target_mb": {
        "type": ["null", "number"], "exclusiveMinimum": 0, "maximum": CHUNK_TARGET_MAX_MB,
        "title": "Chunk target (MB of gzip)",
        "description": "export files are packed into chunks of about this many MB of gzip, one build_chunk task "
                       f"each; more than 0, at most {CHUNK_TARGET_MAX_MB}. Empty (the default): two chunks for "
                       "each of DYNADEX_MAX_ACTIVE_CHUNKS builders, at most 256 MB each, so every slot works",
    },
    "s3_bucket_owner": {
        "type": ["null", "string"], "pattern": r"^[0-9]{12}$(?!\n)",
        "title": "Export bucket owner (account id)",
        "description": "12-digit AWS account id owning the export bucket, when it is another account's "
                       "(ExportTableToPointInTime's S3BucketOwner); empty: the bucket is this account's",
    },
    "s3_sse_kms_key_id": {
        "type": ["null", "string"], "maxLength": 2048,
        "title": "Export KMS key",
        "description": "KMS key (id, ARN or alias) DynamoDB encrypts the export files with (S3SseAlgorithm KMS); "
                       "empty: the bucket's default encryption (AES256)",
    },
    "store": {
        "type": ["null", "string"],
        "title": "Store",
        "description": "store folder or Postgres URI the index is written to (empty: $DYNADEX_STORE or ./.dynadex)",
    },
    "aws_conn_id": {
        "type": "string", "pattern": anchored(CONN_ID),
        "title": "AWS connection",
        "description": "Airflow connection with the AWS credentials, region and (for the emulator) endpoint_url",
    },
    "export_arn": {
        "type": ["null", "string"], "pattern": anchored(EXPORT_ARN),
        "title": "Existing export ARN",
        "description": "index this existing full export instead of starting one (arn:aws:dynamodb:...:export/...)",
    },
    "export_manifest": {
        "type": ["null", "string"], "pattern": r"^s3://[^/\s]+/\S+$(?!\n)",
        "title": "Existing export manifest (s3://…)",
        "description": "s3:// URL of an existing full export's manifest-summary.json; indexes it without asking "
                       "DynamoDB for the export",
    },
}


def validate_params(params: dict) -> dict:
    """Check the run's params again at run time (the UI form checks them too)."""
    problems = []
    name = params.get("table_name")
    if not isinstance(name, str) or not TABLE_NAME.fullmatch(name):
        problems.append(f"table_name {name!r} is not a DynamoDB table name (3-255 of A-Z a-z 0-9 _ . -)")
    fmt = params.get("export_format", "DYNAMODB_JSON")
    if fmt not in FORMATS:
        problems.append(f"export_format {fmt!r} must be one of {', '.join(FORMATS)}")
    target = params.get("chunk_target_mb")
    if target is not None and (isinstance(target, bool) or not isinstance(target, (int, float))
                               or not 0 < target <= CHUNK_TARGET_MAX_MB):
        problems.append(f"chunk_target_mb {target!r} must be a number above 0 and at most {CHUNK_TARGET_MAX_MB}")
    manifest, arn, bucket = params.get("export_manifest"), params.get("export_arn"), params.get("s3_bucket")
    if manifest and not str(manifest).startswith("s3://"):
        problems.append(f"export_manifest {manifest!r} must be an s3:// URL of a manifest-summary.json")
    if arn and not EXPORT_ARN.fullmatch(str(arn)):
        problems.append(f"export_arn {arn!r} is not a DynamoDB export ARN")
    owner = params.get("s3_bucket_owner")
    if owner and not re.fullmatch(r"[0-9]{12}", str(owner)):
        problems.append(f"s3_bucket_owner {owner!r} must be a 12-digit AWS account id")
    if not manifest and not arn and not (isinstance(bucket, str) and BUCKET.fullmatch(bucket)):
        problems.append(f"s3_bucket {bucket!r} is not a bucket name (needed unless export_arn or export_manifest is given)")
    if problems:
        raise BootstrapError("bad parameters: " + "; ".join(problems))
    return params


@dataclass
class TableInfo:
    name: str
    arn: str
    key_names: tuple[str, ...]
    key_types: tuple[str, ...]
    stream_arn: str
    view_type: str
    items_estimate: int

    def to_dict(self) -> dict:
        return {**self.__dict__, "key_names": list(self.key_names), "key_types": list(self.key_types)}

    @classmethod
    def from_dict(cls, d: dict) -> "TableInfo":
        return cls(**{**d, "key_names": tuple(d["key_names"]), "key_types": tuple(d["key_types"])})


@dataclass(frozen=True)
class PinnedStream:
    """The stream position the sync starts from, taken before the export: its ARN and T0 (epoch seconds)."""

    stream_arn: str
    t0: float

    @property
    def start_micros(self) -> int:
        return int(self.t0 * 1_000_000)

    def to_dict(self) -> dict:
        return {"stream_arn": self.stream_arn, "t0": self.t0}

    @classmethod
    def from_dict(cls, d: dict) -> "PinnedStream":
        return cls(d["stream_arn"], float(d["t0"]))


def validate_table(ddb, table_name: str) -> TableInfo:
    try:
        table = ddb.describe_table(TableName=table_name)["Table"]
    except ddb.exceptions.ResourceNotFoundException as exc:
        raise BootstrapError(f"table {table_name!r} does not exist (in this account and region)") from exc
    problems = []
    backups = ddb.describe_continuous_backups(TableName=table_name)["ContinuousBackupsDescription"]
    if backups.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus") != "ENABLED":
        problems.append(
            "point-in-time recovery is off; turn it on: aws dynamodb update-continuous-backups "
            f"--table-name {table_name} --point-in-time-recovery-specification PointInTimeRecoveryEnabled=true"
        )
    spec = table.get("StreamSpecification") or {}
    view = spec.get("StreamViewType")
    if not spec.get("StreamEnabled") or not table.get("LatestStreamArn"):
        problems.append(
            f"DynamoDB Streams is off; turn it on with new images: aws dynamodb update-table --table-name {table_name} "
            "--stream-specification StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES"
        )
    elif view not in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES"):
        problems.append(
            f"the stream's view type is {view}, which carries no new images; recreate the stream with "
            "StreamViewType NEW_IMAGE or NEW_AND_OLD_IMAGES"
        )
    if problems:
        raise BootstrapError(f"table {table_name} cannot be indexed: " + "; ".join(problems))
    types = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
    keys = sorted(table["KeySchema"], key=lambda k: k["KeyType"] != "HASH")
    return TableInfo(
        name=table_name,
        arn=table["TableArn"],
        key_names=tuple(k["AttributeName"] for k in keys),
        key_types=tuple(types[k["AttributeName"]] for k in keys),
        stream_arn=table["LatestStreamArn"],
        view_type=view,
        items_estimate=int(table.get("ItemCount") or 0),
    )


def pin_stream_start(info: TableInfo) -> PinnedStream:
    """The stream position the sync will start from, taken before the export: stream ARN and T0."""
    return PinnedStream(info.stream_arn, round(time.time(), 3))


def client_token(*parts: str) -> str:
    return "dynadex-" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:48]


def start_export(ddb, info: TableInfo, *, bucket: str, prefix: str, export_format: str, export_time: float,
                 token: str, bucket_owner: str | None = None, kms_key_id: str | None = None) -> str:
    kwargs = dict(TableArn=info.arn, ExportTime=export_time, S3Bucket=bucket, ExportFormat=export_format,
                  ExportType="FULL_EXPORT", ClientToken=token)
    if prefix:
        kwargs["S3Prefix"] = prefix.strip("/")
    if bucket_owner:
        kwargs["S3BucketOwner"] = bucket_owner
    if kms_key_id:
        kwargs.update(S3SseAlgorithm="KMS", S3SseKmsKeyId=kms_key_id)
    try:
        return ddb.export_table_to_point_in_time(**kwargs)["ExportDescription"]["ExportArn"]
    except Exception as exc:  # botocore ClientError: keep AWS's code and message
        err = getattr(exc, "response", {}).get("Error", {})
        status = getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if err and err.get("Code") not in TRANSIENT_CODES and status < 500:
            raise BootstrapError(f"export of {info.name} refused by AWS: {err.get('Code')}: "
                                 f"{err.get('Message')}") from exc
        raise  # throttling or a server error: not a refusal, so the task's retries apply (same ClientToken)


def describe_export(ddb, export_arn: str) -> dict:
    return ddb.describe_export(ExportArn=export_arn)["ExportDescription"]


def manifest_url(description: dict) -> str:
    """s3:// URL of a COMPLETED export's manifest-summary.json."""
    if description.get("ExportStatus") != "COMPLETED":
        raise BootstrapError(
            f"export {description.get('ExportArn')} is {description.get('ExportStatus')}"
            + (f": {description.get('FailureCode')}: {description.get('FailureMessage')}" if description.get("FailureCode") else "")
        )
    return f"s3://{description['S3Bucket']}/{description['ExportManifest']}"



def run(ddb, table_name: str, *, bucket: str, prefix: str = "dynadex", export_format: str = "DYNAMODB_JSON",
        store: str | None = None, data_path: str | None = None, chunk_target_mb: float | None = None,
        workers: int | None = None, poll_seconds: float = 5, timeout_seconds: float = 6 * 3600,
        token_parts: tuple[str, ...] = (), bucket_owner: str | None = None, kms_key_id: str | None = None,
        progress=None) -> dict:
    """The whole bootstrap in one process (what the DAG does, task by task): validate, pin, export, wait, index.

    ``progress(text)`` hears each step and, while the export runs, its status every poll."""
    from dynadex.ingest import ingest_export

    say = progress or (lambda text: None)
    info = validate_table(ddb, table_name)
    key = ",".join(f"{n}:{t}" for n, t in zip(info.key_names, info.key_types))
    say(f"table {table_name}: key {key}, about {info.items_estimate} items (DescribeTable's estimate), "
        f"stream {info.stream_arn}")
    pinned = pin_stream_start(info)
    say(f"stream pinned at T0 {pinned.t0:.3f}: the sync will read from there")
    token = client_token("dynadex-run", table_name, str(pinned.t0), *token_parts)
    arn = start_export(ddb, info, bucket=bucket, prefix=prefix, export_format=export_format,
                       export_time=pinned.t0, token=token, bucket_owner=bucket_owner, kms_key_id=kms_key_id)
    say(f"export {arn} started to s3://{bucket}/{prefix.strip('/')} ({export_format})")
    started = time.time()
    deadline = started + timeout_seconds
    while True:
        description = describe_export(ddb, arn)
        if description["ExportStatus"] != "IN_PROGRESS":
            break
        if time.time() > deadline:
            raise BootstrapError(f"export {arn} still IN_PROGRESS after {timeout_seconds:g}s")
        say(f"export IN_PROGRESS for {time.time() - started:.0f}s")
        time.sleep(poll_seconds)
    manifest = manifest_url(description)
    say(f"export {description['ExportStatus']} after {time.time() - started:.0f}s: "
        f"{description.get('ItemCount', '?')} items, {description.get('BilledSizeBytes', '?')} bytes; indexing {manifest}")
    result = ingest_export(manifest, table_name, key, store=store, data_path=data_path, workers=workers,
                           chunk_target_mb=chunk_target_mb, stream_arn=pinned.stream_arn,
                           stream_start_micros=pinned.start_micros)
    return {**result, "export_arn": arn, "manifest": manifest, "t0": pinned.t0}
