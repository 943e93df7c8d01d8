"""Where an export lies: an S3 bucket, or a local folder laid out like one.

Invariant: every key is relative to the bucket root, exactly as AWS writes it
in the manifests (``dataFileS3Key`` is never rebuilt), and every error names
the object by its full location (``s3://bucket/key`` or the local path).
Reads stream: ``open`` never loads a whole data file into memory.
S3 throttling, 5xx answers and lost connections are retried by botocore
(``aws.MAX_ATTEMPTS``); what is left of them is an ``S3Unavailable`` naming
the object (transient: the task's retries apply), never a missing file.
Each keeps botocore's (or the OS's) error as its cause: boto3 signs S3
requests in the Authorization header, so neither the URL nor the text of a
botocore error holds a signature or a key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import urlparse

from dynadex.errors import ManifestError, MissingFileError, S3Unavailable

SUMMARY_NAME = "manifest-summary.json"


class ExportSource(Protocol):
    def url(self, key: str) -> str: ...

    def open(self, key: str) -> BinaryIO: ...

    def read(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...


@dataclass(frozen=True)
class LocalSource:
    """A folder standing for a bucket root."""

    root: Path

    def path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents and path != self.root.resolve():
            raise ManifestError(str(self.root), f"key {key!r} escapes the export folder")
        return path

    def url(self, key: str) -> str:
        return str(self.root / key)

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self.path(key), "rb")
        except FileNotFoundError as exc:
            raise MissingFileError(self.url(key), "file not found") from exc
        except PermissionError as exc:
            raise MissingFileError(self.url(key), "permission denied") from exc

    def read(self, key: str) -> bytes:
        with self.open(key) as f:
            return f.read()

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()


THROTTLED = {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "ServiceUnavailable",
             "InternalError", "RequestTimeout"}


class _Body:
    """An S3 object's body whose read failures (the connection lost mid-object) name the object."""

    def __init__(self, body, url: str):
        self.body, self.url = body, url

    def read(self, size: int = -1) -> bytes:
        from dynadex.reach import connection_failure

        try:
            return self.body.read(None if size is None or size < 0 else size)
        except Exception as exc:
            if connection_failure(exc) or isinstance(exc, OSError):
                raise S3Unavailable(self.url, f"connection lost while reading: {exc}") from exc
            raise

    def close(self) -> None:
        self.body.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class S3Source:
    """An S3 bucket, read with boto3 (endpoint and credentials from the usual AWS settings)."""

    bucket: str
    client: object = None

    def __post_init__(self) -> None:
        if self.client is None:
            from dynadex.aws import client

            self.client = client("s3")

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _call(self, key: str, fn, **kwargs):
        from botocore.exceptions import ClientError

        from dynadex.reach import connection_failure

        try:
            return fn(Bucket=self.bucket, Key=key, **kwargs)
        except ClientError as exc:
            error, meta = exc.response.get("Error", {}), exc.response.get("ResponseMetadata", {})
            code, status = error.get("Code", ""), int(meta.get("HTTPStatusCode") or 0)
            if code in ("NoSuchKey", "404", "NotFound"):
                raise MissingFileError(self.url(key), "object not found") from exc
            if code in ("NoSuchBucket",):
                raise MissingFileError(self.url(key), f"bucket {self.bucket!r} does not exist") from exc
            if code in ("AccessDenied", "403", "Forbidden"):
                raise MissingFileError(self.url(key), "access denied") from exc
            if status >= 500 or code in THROTTLED:
                raise S3Unavailable(self.url(key), f"S3 answered {code} (HTTP {status}) "
                                    f"{int(meta.get('RetryAttempts') or 0) + 1} times: {error.get('Message', '')}"
                                    ) from exc
            raise MissingFileError(self.url(key), f"S3 error {code}") from exc
        except Exception as exc:
            if connection_failure(exc):
                raise S3Unavailable(self.url(key), str(exc)) from exc
            raise

    def open(self, key: str) -> BinaryIO:
        return _Body(self._call(key, self.client.get_object)["Body"], self.url(key))

    def read(self, key: str) -> bytes:
        body = self.open(key)
        try:
            return body.read()
        finally:
            body.close()

    def exists(self, key: str) -> bool:
        try:
            self._call(key, self.client.head_object)
            return True
        except MissingFileError:
            return False


@dataclass(frozen=True)
class SummaryLocation:
    """The source holding an export and the key of its ``manifest-summary.json``."""

    source: ExportSource
    summary_key: str


def locate(location: str, s3_client=None) -> SummaryLocation:
    """Resolve ``SOURCE`` of ``inspect-export``: an s3:// URL or a local path.

    A local path may name the summary file itself or the folder holding it;
    its bucket root is found later from ``manifestFilesS3Key`` (see
    ``manifest.read_export``). Here the bucket root is provisionally the
    summary's folder.
    """
    if location.startswith("s3://"):
        parsed = urlparse(location)
        key = parsed.path.lstrip("/")
        if not parsed.netloc:
            raise ManifestError(location, "an s3:// location needs a bucket name")
        if not key or key.endswith("/"):
            key = f"{key}{SUMMARY_NAME}"
        return SummaryLocation(S3Source(parsed.netloc, s3_client), key)
    path = Path(os.path.expanduser(location))
    if path.is_dir():
        path = path / SUMMARY_NAME
    if not path.is_file():
        raise MissingFileError(str(path), "manifest summary not found")
    return SummaryLocation(LocalSource(path.parent), path.name)
