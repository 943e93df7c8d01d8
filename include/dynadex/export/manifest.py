"""Reading and checking an export's manifests.

Invariants:

* ``manifest-summary.json`` without ``exportType`` is a FULL_EXPORT (AWS
  omits the field for full exports).
* ``dataFileS3Key`` and ``manifestFilesS3Key`` are keys from the bucket root,
  used exactly as written.
* The optional sidecars (``manifest-*.md5`` or ``manifest-*.checksum``) must
  match the manifest bytes when present (hex or base64 MD5 accepted).
* Every ``dataFileS3Key`` lies under the export's ``AWSDynamoDB`` folder (the
  files manifest's grandparent: a full export's data sit in its own folder,
  an incremental export's in the shared ``AWSDynamoDB/data/``), and, when
  files are stat'ed, exists.
* The files manifest's item counts must add up to the summary's ``itemCount``
  (``Export.check_total``). Which count is wrong is only known once the data
  files were counted, so readers call it after verifying every data file
  against its own entry (``reader.iter_lines``): a data file that disagrees
  with its entry is named with both counts, before the totals are compared.
  Every inconsistency raises a ``ManifestError`` naming the file.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import posixpath
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dynadex.errors import ItemCountMismatch, ManifestError, MissingFileError
from dynadex.export.source import LocalSource, SummaryLocation, locate

FULL_EXPORT = "FULL_EXPORT"
INCREMENTAL_EXPORT = "INCREMENTAL_EXPORT"
FORMATS = ("DYNAMODB_JSON", "ION")


@dataclass(frozen=True)
class DataFile:
    key: str
    item_count: int
    md5: str  # base64(MD5(gzip bytes))
    etag: str | None = None
    size: int | None = None  # bytes, when known (listing or local stat)


def iso_to_micros(text: str) -> int:
    """An ISO 8601 instant as AWS writes it (``2024-05-14T11:14:20.608Z``; no zone means UTC) in microseconds."""
    when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return int(when.timestamp() * 1_000_000)


@dataclass(frozen=True)
class ExportSummary:
    export_arn: str
    export_type: str
    output_format: str
    table_arn: str | None
    export_time: str | None
    from_time: str | None
    to_time: str | None
    output_view: str | None
    start_time: str | None
    end_time: str | None
    s3_bucket: str | None
    s3_prefix: str | None
    manifest_files_key: str
    item_count: int
    billed_size_bytes: int | None
    raw: dict = field(repr=False, compare=False, default_factory=dict)

    @property
    def export_id(self) -> str:
        return self.export_arn.rsplit("/", 1)[-1]

    @property
    def export_time_micros(self) -> int:
        """The export time (a full export's point in time) in microseconds since the epoch, UTC."""
        return iso_to_micros(self.export_time)

    @property
    def table_name(self) -> str | None:
        if not self.table_arn:
            return None
        return self.table_arn.split(":table/", 1)[-1].split("/", 1)[0]


@dataclass
class Export:
    """An export: where it lies, its summary and its data files."""

    source: object
    summary_key: str
    summary: ExportSummary
    files: list[DataFile]

    def url(self, key: str) -> str:
        return self.source.url(key)

    @property
    def listed_items(self) -> int:
        return sum(f.item_count for f in self.files)

    def check_total(self) -> None:
        """Refuse an export whose files manifest does not add up to the summary's itemCount."""
        s = self.summary
        if self.listed_items != s.item_count:
            raise ItemCountMismatch(self.url(s.manifest_files_key), f"data files hold {self.listed_items} items but "
                                    f"the summary {self.url(self.summary_key)} says {s.item_count}")

    def to_dict(self) -> dict:
        s = self.summary
        return {
            "location": self.url(self.summary_key),
            "exportArn": s.export_arn,
            "exportType": s.export_type,
            "outputFormat": s.output_format,
            "tableArn": s.table_arn,
            "exportTime": s.export_time,
            "exportFromTime": s.from_time,
            "exportToTime": s.to_time,
            "files": len(self.files),
            "itemCount": s.item_count,
            "billedSizeBytes": s.billed_size_bytes,
            "bytes": sum(f.size or 0 for f in self.files),
            "dataFiles": [asdict(f) for f in self.files],
        }


def _require(raw: dict, name: str, kind: type | tuple, where: str, optional: bool = False):
    if name not in raw or raw[name] is None:
        if optional:
            return None
        raise ManifestError(where, f"field {name!r} is missing")
    value = raw[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ManifestError(where, f"field {name!r} has the wrong type ({type(value).__name__})")
    return value


def parse_summary(data: bytes, where: str) -> ExportSummary:
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(where, f"not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ManifestError(where, "not a JSON object")
    export_type = _require(raw, "exportType", str, where, optional=True) or FULL_EXPORT
    if export_type not in (FULL_EXPORT, INCREMENTAL_EXPORT):
        raise ManifestError(where, f"unknown exportType {export_type!r}")
    output_format = _require(raw, "outputFormat", str, where)
    if output_format not in FORMATS:
        raise ManifestError(where, f"unknown outputFormat {output_format!r} (expected {' or '.join(FORMATS)})")
    item_count = _require(raw, "itemCount", int, where)
    if item_count < 0:
        raise ManifestError(where, "itemCount is negative")
    summary = ExportSummary(
        export_arn=_require(raw, "exportArn", str, where),
        export_type=export_type,
        output_format=output_format,
        table_arn=_require(raw, "tableArn", str, where, optional=True),
        export_time=_require(raw, "exportTime", str, where, optional=True),
        from_time=_require(raw, "exportFromTime", str, where, optional=True),
        to_time=_require(raw, "exportToTime", str, where, optional=True),
        output_view=_require(raw, "outputView", str, where, optional=True),
        start_time=_require(raw, "startTime", str, where, optional=True),
        end_time=_require(raw, "endTime", str, where, optional=True),
        s3_bucket=_require(raw, "s3Bucket", str, where, optional=True),
        s3_prefix=_require(raw, "s3Prefix", str, where, optional=True),
        manifest_files_key=_require(raw, "manifestFilesS3Key", str, where),
        item_count=item_count,
        billed_size_bytes=_require(raw, "billedSizeBytes", int, where, optional=True),
        raw=raw,
    )
    if export_type == FULL_EXPORT and not summary.export_time:
        raise ManifestError(where, "a full export needs 'exportTime'")
    if export_type == INCREMENTAL_EXPORT and not (summary.from_time and summary.to_time):
        raise ManifestError(where, "an incremental export needs 'exportFromTime' and 'exportToTime'")
    return summary


def data_folder(manifest_files_key: str) -> str:
    """The folder every data file of the export lies under: ``<prefix>/AWSDynamoDB/``."""
    folder = posixpath.dirname(posixpath.dirname(manifest_files_key))
    return f"{folder}/" if folder else ""


def _check_key(key: str, folder: str, where: str, number: int) -> None:
    parts = key.split("/")
    if not key.startswith(folder) or any(p in ("", ".", "..") for p in parts) or key.startswith("/"):
        raise ManifestError(where, f"dataFileS3Key {key!r} lies outside the export's folder {folder or '/'!r}",
                            line=number)


def parse_files(data: bytes, where: str, folder: str | None = None) -> list[DataFile]:
    """The data files a files manifest lists (each key under ``folder`` when given)."""
    files = []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(where, "not UTF-8 text") from exc
    seen = set()
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ManifestError(where, f"not valid JSON: {exc.msg}", line=number) from exc
        if not isinstance(raw, dict):
            raise ManifestError(where, "not a JSON object", line=number)
        at = f"{where} line {number}"
        key = _require(raw, "dataFileS3Key", str, at)
        count = _require(raw, "itemCount", int, at)
        md5 = _require(raw, "md5Checksum", str, at)
        if count < 0:
            raise ManifestError(where, "itemCount is negative", line=number)
        if key in seen:
            raise ManifestError(where, f"data file {key!r} is listed twice", line=number)
        if folder is not None:
            _check_key(key, folder, where, number)
        seen.add(key)
        files.append(DataFile(key=key, item_count=count, md5=md5, etag=raw.get("etag")))
    return files


def md5_matches(expected_text: str, data: bytes) -> bool:
    """True when a sidecar's text (hex or base64 MD5) matches ``data``."""
    digest = hashlib.md5(data).digest()
    text = expected_text.strip().split()[0] if expected_text.strip() else ""
    if len(text) == 32:
        try:
            return bytes.fromhex(text) == digest
        except ValueError:
            return False
    try:
        return base64.b64decode(text, validate=True) == digest
    except (binascii.Error, ValueError):
        return False


def _check_sidecars(source, json_key: str, data: bytes) -> None:
    stem = json_key[: -len(".json")] if json_key.endswith(".json") else json_key
    for suffix in (".md5", ".checksum"):
        key = stem + suffix
        if source.exists(key):
            text = source.read(key).decode("utf-8", "replace")
            if not md5_matches(text, data):
                from dynadex.errors import ChecksumMismatch

                raise ChecksumMismatch(source.url(json_key), f"MD5 does not match its sidecar {key.rsplit('/', 1)[-1]}")


def _rebase_local(location: SummaryLocation, summary: ExportSummary) -> tuple[LocalSource, str]:
    """Find the bucket root of a local export from ``manifestFilesS3Key``.

    The summary lies in the same folder as the files manifest, so the bucket
    root is the summary's folder with the manifest key's folder taken off.
    """
    folder = location.source.root.resolve()
    key_dir = posixpath.dirname(summary.manifest_files_key)
    parts = [p for p in key_dir.split("/") if p]
    root = folder
    for part in reversed(parts):
        if root.name != part:
            raise ManifestError(
                str(folder / location.summary_key),
                f"the folder does not end with {key_dir!r} (from manifestFilesS3Key); "
                "keep the export laid out as in its bucket",
            )
        root = root.parent
    return LocalSource(root), posixpath.join(key_dir, location.summary_key) if key_dir else location.summary_key


def read_export(location: str | SummaryLocation, *, check_sidecars: bool = True, stat_files: bool = True,
                s3_client=None) -> Export:
    """Read and check both manifests of the export at ``location`` (an S3 client may be given for s3:// URLs)."""
    if isinstance(location, str):
        location = locate(location, s3_client)
    where = location.source.url(location.summary_key)
    data = location.source.read(location.summary_key)
    summary = parse_summary(data, where)
    if isinstance(location.source, LocalSource):
        source, summary_key = _rebase_local(location, summary)
    else:
        source, summary_key = location.source, location.summary_key
    if check_sidecars:
        _check_sidecars(source, summary_key, data)
    files_where = source.url(summary.manifest_files_key)
    try:
        files_data = source.read(summary.manifest_files_key)
    except MissingFileError as exc:
        raise ManifestError(files_where, f"files manifest unreadable: {exc.reason}") from exc
    if check_sidecars:
        _check_sidecars(source, summary.manifest_files_key, files_data)
    files = parse_files(files_data, files_where, data_folder(summary.manifest_files_key))
    if stat_files:
        files = [_with_size(source, f, files_where) for f in files]
    return Export(source=source, summary_key=summary_key, summary=summary, files=files)


def _with_size(source, f: DataFile, files_where: str) -> DataFile:
    """The data file with its size; a missing one is refused now, before any work is planned on it."""
    from dataclasses import replace

    if isinstance(source, LocalSource):
        path: Path = source.path(f.key)
        if not path.is_file():
            raise MissingFileError(source.url(f.key), f"file not found (a data file listed in {files_where})")
        return replace(f, size=path.stat().st_size)
    try:
        head = source._call(f.key, source.client.head_object)
    except MissingFileError as exc:
        raise MissingFileError(exc.where, f"{exc.reason} (a data file listed in {files_where})") from exc
    return replace(f, size=int(head["ContentLength"]))
