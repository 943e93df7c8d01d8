"""The errors dynadex raises for bad input, and those of its top-level modules.

Invariant: every error raised for bad input is a ``DynadexError`` whose
message names what is wrong and where (file, line, attribute path), and
carries no credential. The CLI prints the message and exits 1. A
``TransientError`` is a service's failure: Airflow keeps the task's retries
(plugins/dynadex_airflow/failures.py). Each package keeps its own in one
``errors`` module beside this one's kind: ``dynadex.store.errors``,
``dynadex.stream.errors``, ``dynadex.local_aws.errors``.
"""

from __future__ import annotations


class DynadexError(Exception):
    """Base of every error dynadex raises for bad input or a failed check."""


class ExportError(DynadexError, ValueError):
    """An export that cannot be read or does not verify.

    ``where`` names the file (an ``s3://`` URL or a local path) and, for a
    data line, ``line`` its 1-based number.
    """

    def __init__(self, where: str, reason: str, line: int | None = None):
        self.where = where
        self.reason = reason
        self.line = line
        at = f"{where} line {line}" if line is not None else where
        super().__init__(f"{at}: {reason}")

    def __reduce__(self):  # a builder process's error reaches the parent whole (default pickling drops args)
        return (type(self), (self.where, self.reason, self.line))


class ManifestError(ExportError):
    """A manifest that is missing, malformed or inconsistent."""


class MissingFileError(ExportError):
    """A file the manifest names is not there (or access was denied)."""


class ChecksumMismatch(ExportError):
    """A file whose bytes do not match the checksum the manifest gives."""


class ItemCountMismatch(ExportError):
    """A data file (or the whole export) whose item count disagrees with the manifest."""


class CorruptDataFile(ExportError):
    """A data file that is not valid gzip, or is truncated."""


class MalformedLine(ExportError):
    """A data line that is not a valid export record."""


class TransientError(DynadexError):
    """A failure of the service, not of the input: running again later can succeed.

    The message names what failed; ``transient`` tells Airflow's ``fail_fast`` to keep the task's retries.
    """

    transient = True


class S3Unavailable(ExportError, TransientError):
    """An S3 object that could not be read because S3 kept answering 5xx or throttling (after the retries)."""


class AwsUnreachable(TransientError):
    """An AWS endpoint that did not answer (connection refused, closed or timed out) after the retries."""

    def __init__(self, endpoint: str, reason: str):
        self.endpoint = endpoint
        self.reason = reason
        super().__init__(f"AWS endpoint {endpoint} unreachable: {reason}")

    def __reduce__(self):
        return (type(self), (self.endpoint, self.reason))


class AwsThrottled(TransientError):
    """An AWS call still throttled (or answering 5xx) after every retry of its budget."""


class CredentialsError(DynadexError, RuntimeError):
    """The S3 settings could not be handed to DuckDB (the message never holds the secret)."""


class BootstrapError(DynadexError, ValueError):
    """A table, parameter or export that cannot be bootstrapped as asked."""


class KeySpecError(DynadexError, ValueError):
    """A key spec (``pk[:S|N|B][,sk[:S|N|B]]``) that cannot be read."""


class AttributeValueError(DynadexError, ValueError):
    """A value that is not a valid DynamoDB attribute value.

    ``path`` names the attribute (``a.b[2]``); ``reason`` says what is wrong.
    """

    def __init__(self, path: str, reason: str):
        self.path = path
        self.reason = reason
        where = f"attribute {path!r}" if path else "the item"
        super().__init__(f"{reason} (at {where})")
