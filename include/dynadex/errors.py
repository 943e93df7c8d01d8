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

from contextlib import contextmanager
from typing import Callable, Iterator


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


class SettingError(DynadexError, ValueError):
    """An environment variable declared in ``dynadex.settings`` whose value is not of its type.

    The message names the variable, the value as given and what was expected:
    ``DYNADEX_BATCH_RECORDS='abc' is not an integer (default 10000)``.
    """


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


# ------------------------------------------------------------------ causes
#
# A wrapped failure keeps its cause (``raise X(...) from exc``): the DuckDB, botocore or OS error behind it
# shows in the traceback. Where that cause may quote a secret (a Postgres connection string with its
# password, an S3 secret statement with its key), the raise sits in ``scrubbed_causes``, which swaps each
# chained exception for a stand-in whose text went through the caller's masking.


class ScrubbedCause(Exception):
    """The stand-in for a cause whose type cannot be built from one message (its type named in the text)."""


def scrubbed(exc: BaseException, clean: Callable[[BaseException], str],
             _done: dict[int, BaseException] | None = None) -> BaseException:
    """A copy of ``exc`` to chain from when its text may hold a secret: same type where it can be built
    from one message (DuckDB's errors, ``OSError``), else ``ScrubbedCause`` naming the type; message
    ``clean(exc)``; ``exc``'s traceback (code lines, no values); its own cause and context scrubbed alike.
    Nothing else of ``exc`` (arguments, attributes) is kept."""
    done = {} if _done is None else _done
    if id(exc) in done:
        return done[id(exc)]
    text = clean(exc)
    try:
        copy = type(exc)(text)
        if str(copy) != text:
            raise TypeError(type(exc).__name__)
    except Exception:  # noqa: BLE001 - any constructor that does not take one message
        copy = ScrubbedCause(f"{type(exc).__module__}.{type(exc).__qualname__}: {text}")
    done[id(exc)] = copy
    copy.__traceback__ = exc.__traceback__
    suppress = exc.__suppress_context__
    copy.__cause__ = None if exc.__cause__ is None else scrubbed(exc.__cause__, clean, done)
    copy.__context__ = None if exc.__context__ is None else scrubbed(exc.__context__, clean, done)
    copy.__suppress_context__ = suppress
    return copy


@contextmanager
def scrubbed_causes(clean: Callable[[BaseException], str]) -> Iterator[None]:
    """Inside: the exception leaving the block keeps its cause and context, each replaced by ``scrubbed``
    (all the way down), so neither its traceback nor anything walking ``__cause__``/``__context__`` meets
    what ``clean`` takes out. Its own message is the raiser's to keep clean. Used as::

        with scrubbed_causes(lambda e: mask(str(e))):
            try:
                con.execute(attach)
            except duckdb.Error as exc:
                raise StoreError(f"cannot open store {display}: {mask(str(exc))}") from exc
    """
    try:
        yield
    except BaseException as exc:
        done: dict[int, BaseException] = {}
        suppress = exc.__suppress_context__
        exc.__cause__ = None if exc.__cause__ is None else scrubbed(exc.__cause__, clean, done)
        exc.__context__ = None if exc.__context__ is None else scrubbed(exc.__context__, clean, done)
        exc.__suppress_context__ = suppress
        raise  # the same exception: its traceback goes on, its chain is the scrubbed one
