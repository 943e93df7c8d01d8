"""Export to S3 as AWS does it: point in time, real layout, full and incremental, JSON and ION.

Invariants:

* A full export holds the table exactly as it was at ExportTime (read from
  the per-item write history), however writes continued afterwards.
* Layout: ``<prefix>/AWSDynamoDB/<ExportId>/_started`` at once; when the
  export completes, ``data/<26 chars>.json.gz`` (or ``.ion.gz``) split by key
  hash over ``export_files`` files (empty partitions are empty gzip files),
  then ``manifest-files.json`` + ``.md5`` and ``manifest-summary.json`` +
  ``.md5``. Incremental data files sit under the shared ``AWSDynamoDB/data/``.
  Fields and their order follow the genuine AWS files.
* AWS's errors: PITR off -> PointInTimeRecoveryUnavailableException; a time
  outside the PITR window or in the future -> InvalidExportTimeException;
  the same ClientToken with other parameters within 8 h ->
  ImportConflictException; a window shorter than 15 min or longer than 24 h
  -> ValidationException; a missing bucket -> FAILED with FailureCode.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import gzip
import hashlib
import json
import random
import re
import string
import threading
import zlib
from dataclasses import dataclass, field
from decimal import Decimal

from moto.core.exceptions import JsonRESTError

from dynadex.local_aws.feed import now
from dynadex.local_aws.lock import LOCK
from dynadex.local_aws.validate import item_size
from dynadex.types import canonical_json

TOKEN_SECONDS = 8 * 3600


def _error(code: str, message: str) -> JsonRESTError:
    return JsonRESTError(code, message)


def seconds(value) -> float:
    """A request timestamp (moto hands datetimes, numbers or strings) -> epoch seconds."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.timestamp()
    if isinstance(value, (int, float, Decimal)):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def iso_ms(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(t * 1000) % 1000:03d}Z"


def _md5_sidecar(body: bytes) -> bytes:
    """A manifest's ``.md5`` sidecar: base64(MD5) as real exports hold it (2022), like ``md5Checksum``."""
    return base64.b64encode(hashlib.md5(body).digest())


def export_id(t: float) -> str:
    return f"{int(t * 1000):014d}-{random.getrandbits(32):08x}"


def _file_name(rnd: random.Random) -> str:
    return "".join(rnd.choice(string.ascii_lowercase + "234567") for _ in range(26))


# ------------------------------------------------------------------------ ION


def _ion_value(av: dict):
    from amazon.ion.core import IonType
    from amazon.ion.simple_types import IonPyBytes, IonPyDecimal, IonPyDict, IonPyList, IonPyNull

    ((tag, v),) = av.items()
    if tag == "S":
        return v
    if tag == "N":
        return IonPyDecimal.from_value(IonType.DECIMAL, Decimal(v))
    if tag == "B":
        return IonPyBytes.from_value(IonType.BLOB, base64.b64decode(v))
    if tag == "BOOL":
        return v
    if tag == "NULL":
        return IonPyNull.from_value(IonType.NULL, None)
    if tag in ("SS", "NS", "BS"):
        inner = {"SS": "S", "NS": "N", "BS": "B"}[tag]
        return IonPyList.from_value(IonType.LIST, [_ion_value({inner: m}) for m in v], (f"$dynamodb_{tag}",))
    if tag == "L":
        return IonPyList.from_value(IonType.LIST, [_ion_value(x) for x in v])
    d = IonPyDict.from_value(IonType.STRUCT, {})
    for k, x in v.items():
        d[k] = _ion_value(x)
    return d


def ion_line(fields: dict) -> str:
    from amazon.ion import simpleion
    from amazon.ion.core import IonType
    from amazon.ion.simple_types import IonPyDict

    top = IonPyDict.from_value(IonType.STRUCT, {})
    for name, value in fields.items():
        if name == "Metadata":
            meta = IonPyDict.from_value(IonType.STRUCT, {})
            for k, x in value.items():
                meta[k] = _ion_value(x)
            top[name] = meta
        else:
            top[name] = _ion_value({"M": value})
    text = simpleion.dumps(top, binary=False, omit_version_marker=True)
    return "$ion_1_0 " + text


# ------------------------------------------------------------------- exports


@dataclass
class Export:
    arn: str
    export_id: str
    table: object
    feed: object
    bucket: str
    prefix: str
    export_format: str
    export_type: str
    export_time: float | None
    from_time: float | None
    to_time: float | None
    view_type: str | None
    client_token: str | None
    requested: float
    account_id: str
    region: str
    params_key: str
    status: str = "IN_PROGRESS"
    end_time: float | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    item_count: int = 0
    billed: int = 0
    manifest_key: str | None = None
    files: list = field(default_factory=list)
    sse_algorithm: str = "AES256"
    kms_key_id: str | None = None
    bucket_owner: str | None = None

    @property
    def base(self) -> str:
        return f"{self.prefix}/AWSDynamoDB" if self.prefix else "AWSDynamoDB"

    def describe(self) -> dict:
        d = {
            "ExportArn": self.arn,
            "ExportStatus": self.status,
            "StartTime": self.requested,
            "TableArn": self.table.table_arn,
            "TableId": getattr(self.table, "table_id", None) or _table_id(self.table),
            "S3Bucket": self.bucket,
            "S3BucketOwner": self.bucket_owner or self.account_id,
            "S3Prefix": self.prefix,
            "S3SseAlgorithm": self.sse_algorithm,
            "ExportFormat": self.export_format,
            "ExportType": self.export_type,
        }
        if self.kms_key_id:
            d["S3SseKmsKeyId"] = self.kms_key_id
        if self.export_type == "FULL_EXPORT":
            d["ExportTime"] = self.export_time
        else:
            d["IncrementalExportSpecification"] = {
                "ExportFromTime": self.from_time,
                "ExportToTime": self.to_time,
                "ExportViewType": self.view_type,
            }
        if self.client_token:
            d["ClientToken"] = self.client_token
        if self.status != "IN_PROGRESS":
            d["EndTime"] = self.end_time
        if self.status == "COMPLETED":
            d["ExportManifest"] = self.manifest_key
            d["ItemCount"] = self.item_count
            d["BilledSizeBytes"] = self.billed
        if self.status == "FAILED":
            d["FailureCode"] = self.failure_code
            d["FailureMessage"] = self.failure_message
        return d


def _table_id(table) -> str:
    import uuid

    return str(uuid.uuid5(uuid.NAMESPACE_URL, table.table_arn))


class ExportEngine:
    def __init__(self, knobs):
        self.knobs = knobs
        self.exports: dict[str, Export] = {}
        self.tokens: dict[str, tuple[str, float]] = {}  # token -> (export arn, when)

    # request handling
    def start(self, backend, body: dict, feed_of) -> Export:
        with LOCK:
            table_arn = body.get("TableArn") or ""
            name = table_arn.split(":table/", 1)[-1].split("/", 1)[0]
            try:
                table = backend.get_table(name)
            except Exception as exc:
                raise _error("TableNotFoundException", f"Table not found: {table_arn}") from exc
            if body.get("FilterSpecification"):
                raise _error("ValidationException", "FilterSpecification is not supported by the dynadex emulator "
                             "(dynadex local-aws): export the whole table and filter while reading")
            export_type = body.get("ExportType") or "FULL_EXPORT"
            export_format = body.get("ExportFormat") or "DYNAMODB_JSON"
            if export_format not in ("DYNAMODB_JSON", "ION"):
                raise _error("ValidationException", f"Invalid ExportFormat {export_format}")
            params = {k: v for k, v in body.items() if k != "ClientToken"}
            params_key = json.dumps(params, sort_keys=True, default=str)
            token = body.get("ClientToken")
            t = now()
            if token and token in self.tokens:
                arn, when = self.tokens[token]
                if t - when < TOKEN_SECONDS:
                    existing = self.exports[arn]
                    if existing.params_key != params_key:
                        raise _error(
                            "ImportConflictException",
                            "There was a conflict when importing from the specified S3 source: the ClientToken "
                            "was already used with different parameters",
                        )
                    return existing
            pitr = table.continuous_backups.get("PointInTimeRecoveryDescription", {})
            if pitr.get("PointInTimeRecoveryStatus") != "ENABLED":
                raise _error(
                    "PointInTimeRecoveryUnavailableException",
                    f"Point in time recovery is not enabled for table '{table.name}'",
                )
            earliest = max(float(pitr.get("EarliestRestorableDateTime") or 0), t - self.knobs.pitr_window_seconds)
            export_time = from_time = to_time = view = None
            if export_type == "FULL_EXPORT":
                export_time = seconds(body["ExportTime"]) if body.get("ExportTime") is not None else t
                self._check_time(export_time, earliest, t, "ExportTime")
            elif export_type == "INCREMENTAL_EXPORT":
                spec = body.get("IncrementalExportSpecification") or {}
                if spec.get("ExportFromTime") is None:
                    raise _error("ValidationException", "IncrementalExportSpecification.ExportFromTime is required")
                from_time = seconds(spec["ExportFromTime"])
                to_time = seconds(spec["ExportToTime"]) if spec.get("ExportToTime") is not None else t
                view = spec.get("ExportViewType") or "NEW_AND_OLD_IMAGES"
                if view not in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES"):
                    raise _error("ValidationException", f"Invalid ExportViewType {view}")
                self._check_time(from_time, earliest, t, "ExportFromTime")
                self._check_time(to_time, earliest, t, "ExportToTime")
                span = to_time - from_time
                if span < self.knobs.min_incremental_seconds:
                    raise _error("ValidationException", "Incremental export period from ExportFromTime to ExportToTime "
                                 f"must be at least {self.knobs.min_incremental_seconds / 60:g} minutes")
                if span > self.knobs.max_incremental_seconds:
                    raise _error("ValidationException", "Incremental export period from ExportFromTime to ExportToTime "
                                 f"must be at most {self.knobs.max_incremental_seconds / 3600:g} hours")
            else:
                raise _error("ValidationException", f"Invalid ExportType {export_type}")
            sse = body.get("S3SseAlgorithm") or "AES256"
            if sse not in ("AES256", "KMS"):
                raise _error("ValidationException", f"1 validation error detected: Value '{sse}' at 's3SseAlgorithm' "
                             "failed to satisfy constraint: Member must satisfy enum value set: [KMS, AES256]")
            if body.get("S3SseKmsKeyId") and sse != "KMS":
                raise _error("ValidationException", "S3SseKmsKeyId can only be given with S3SseAlgorithm KMS")
            owner = body.get("S3BucketOwner")
            if owner is not None and not re.fullmatch(r"[0-9]{12}", str(owner)):
                raise _error("ValidationException", f"1 validation error detected: Value '{owner}' at 's3BucketOwner' "
                             "failed to satisfy constraint: Member must satisfy regular expression pattern: [0-9]{12}")
            eid = export_id(t)
            export = Export(
                arn=f"{table.table_arn}/export/{eid}", export_id=eid, table=table, feed=feed_of(table),
                bucket=body.get("S3Bucket") or "", prefix=(body.get("S3Prefix") or "").strip("/"),
                export_format=export_format, export_type=export_type, export_time=export_time, from_time=from_time,
                to_time=to_time, view_type=view, client_token=token, requested=t, account_id=backend.account_id,
                region=backend.region_name, params_key=params_key, sse_algorithm=sse,
                kms_key_id=body.get("S3SseKmsKeyId") or None, bucket_owner=owner,
            )
            self.exports[export.arn] = export
            if token:
                self.tokens[token] = (export.arn, t)
            s3 = self._s3(export)
            if s3 is not None and export.bucket in s3.buckets:
                s3.put_object(export.bucket, f"{export.base}/{eid}/_started", b"")
            timer = threading.Timer(self.knobs.export_seconds, self._complete, [export])
            timer.daemon = True
            timer.start()
            return export

    @staticmethod
    def _check_time(t: float, earliest: float, latest: float, what: str) -> None:
        if t > latest + 1:
            raise _error("InvalidExportTimeException", f"{what} {iso_ms(t)} is in the future")
        if t < earliest - 1:
            raise _error("InvalidExportTimeException",
                         f"{what} {iso_ms(t)} is outside the point in time recovery window (earliest {iso_ms(earliest)})")

    def _s3(self, export: Export):
        from moto.s3.models import s3_backends
        from moto.utilities.utils import get_partition

        return s3_backends[export.account_id][get_partition(export.region)]

    def describe(self, arn: str) -> Export:
        with LOCK:
            export = self.exports.get(arn)
            if export is None:
                raise _error("ExportNotFoundException", f"Export not found: {arn}")
            return export

    def list(self, table_arn: str | None) -> list[Export]:
        with LOCK:
            return [e for e in self.exports.values() if not table_arn or e.table.table_arn == table_arn]

    def list_page(self, table_arn: str | None, max_results, token: str | None) -> tuple[list[Export], str | None]:
        """One page of ListExports (MaxResults 1..25, default 25) and the NextToken of the next, if any."""
        if max_results is not None and not 1 <= int(max_results) <= 25:
            raise _error("ValidationException", f"1 validation error detected: Value '{max_results}' at 'maxResults' "
                         "failed to satisfy constraint: Member must have value less than or equal to 25")
        exports = self.list(table_arn)
        start = 0
        if token:
            arns = [e.arn for e in exports]
            try:
                start = arns.index(base64.urlsafe_b64decode(token.encode()).decode()) + 1
            except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
                raise _error("ValidationException", "Invalid NextToken") from exc
        size = int(max_results or 25)
        page = exports[start:start + size]
        more = start + size < len(exports)
        return page, base64.urlsafe_b64encode(page[-1].arn.encode()).decode() if more and page else None

    # the work
    def _complete(self, export: Export) -> None:
        with LOCK:
            try:
                s3 = self._s3(export)
                if export.bucket not in s3.buckets:
                    export.status, export.failure_code = "FAILED", "S3NoSuchBucket"
                    export.failure_message = "The specified bucket does not exist"
                else:
                    self._write(export, s3)
                    export.status = "COMPLETED"
            except Exception as exc:  # pragma: no cover - reported through DescribeExport
                export.status, export.failure_code, export.failure_message = "FAILED", "UNKNOWN", str(exc)
            export.end_time = now()

    def _lines(self, export: Export) -> list[tuple[dict, str]]:
        """(keys, line text) of every record of the export."""
        table = export.table
        key_names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
        ion = export.export_format == "ION"
        out = []
        if export.export_type == "FULL_EXPORT":
            for image in export.feed.snapshot(export.export_time):
                keys = {k: image[k] for k in key_names}
                doc = {"Item": image}
                out.append((keys, image, ion_line(doc) if ion else json.dumps(doc, separators=(",", ":"), ensure_ascii=False)))
        else:
            for keys, old, new, when in export.feed.changes(export.from_time, export.to_time):
                micros = str(int(when * 1_000_000))
                doc = {"Metadata": {"WriteTimestampMicros": {"N": micros}}, "Keys": keys}
                if new is not None:
                    doc["NewImage"] = new
                if old is not None and export.view_type == "NEW_AND_OLD_IMAGES":
                    doc["OldImage"] = old
                out.append((keys, new or old, ion_line(doc) if ion else json.dumps(doc, separators=(",", ":"), ensure_ascii=False)))
        return out

    def _write(self, export: Export, s3) -> None:
        records = self._lines(export)
        n = max(1, self.knobs.export_files)
        parts: list[list[str]] = [[] for _ in range(n)]
        billed = 0
        for keys, image, line in records:
            parts[zlib.crc32(canonical_json(keys).encode()) % n].append(line)
            billed += item_size(image or keys)
        rnd = random.Random(export.export_id)
        ext = "ion.gz" if export.export_format == "ION" else "json.gz"
        data_dir = f"{export.base}/data" if export.export_type == "INCREMENTAL_EXPORT" else f"{export.base}/{export.export_id}/data"
        manifest_lines = []
        for lines in parts:
            raw = "".join(line + "\n" for line in lines).encode()
            body = gzip.compress(raw, mtime=0)
            key = f"{data_dir}/{_file_name(rnd)}.{ext}"
            s3.put_object(export.bucket, key, body)
            digest = hashlib.md5(body).digest()
            manifest_lines.append(
                {"itemCount": len(lines), "md5Checksum": base64.b64encode(digest).decode(),
                 "etag": hashlib.md5(digest).hexdigest() + "-1", "dataFileS3Key": key}
            )
        folder = f"{export.base}/{export.export_id}"
        files_body = "".join(json.dumps(m, separators=(",", ":")) + "\n" for m in manifest_lines).encode()
        s3.put_object(export.bucket, f"{folder}/manifest-files.json", files_body)
        s3.put_object(export.bucket, f"{folder}/manifest-files.md5", _md5_sidecar(files_body))
        export.item_count = len(records)
        export.billed = billed
        summary = {
            "version": "2020-06-30" if export.export_type == "FULL_EXPORT" else "2023-08-01",
            "exportArn": export.arn,
            "startTime": iso_ms(export.requested),
            "endTime": iso_ms(now()),
            "tableArn": export.table.table_arn,
            "tableId": _table_id(export.table),
        }
        if export.export_type == "FULL_EXPORT":
            summary["exportTime"] = iso_ms(export.export_time)
        else:
            summary["exportFromTime"] = iso_ms(export.from_time)
            summary["exportToTime"] = iso_ms(export.to_time)
        summary.update(
            {
                "s3Bucket": export.bucket,
                "s3Prefix": export.prefix or None,
                "s3SseAlgorithm": export.sse_algorithm,
                "s3SseKmsKeyId": export.kms_key_id,
                "manifestFilesS3Key": f"{folder}/manifest-files.json",
                "billedSizeBytes": billed,
                "itemCount": len(records),
                "outputFormat": export.export_format,
            }
        )
        if export.export_type == "INCREMENTAL_EXPORT":
            summary["outputView"] = export.view_type
            summary["exportType"] = "INCREMENTAL_EXPORT"
        summary_body = json.dumps(summary, separators=(",", ":")).encode()
        s3.put_object(export.bucket, f"{folder}/manifest-summary.json", summary_body)
        s3.put_object(export.bucket, f"{folder}/manifest-summary.md5", _md5_sidecar(summary_body))
        export.manifest_key = f"{folder}/manifest-summary.json"
