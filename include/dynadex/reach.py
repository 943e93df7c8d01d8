"""An AWS endpoint that does not answer becomes one clear, transient error naming it.

Invariant: botocore's connection failures (refused, closed before an
answer, connect or read timeout), which surface only once its retries
(``aws.MAX_ATTEMPTS`` attempts, within ``aws.retry_budget_seconds()``) are
spent, leave ``unreachable`` as an ``AwsUnreachable`` whose message names
the endpoint URL, the attempts made and what was being done; every other
error passes through untouched. The error is transient (``TransientError``),
so Airflow keeps the task's retries, and the CLI prints one line, no
traceback. Nothing here decides what was committed: callers keep their own
transaction boundaries (a sync's last committed batch stands).
"""

from __future__ import annotations

from contextlib import contextmanager

from dynadex.errors import AwsUnreachable


def connection_failure(exc: BaseException) -> bool:
    from botocore.exceptions import ConnectionError, HTTPClientError

    return isinstance(exc, (ConnectionError, HTTPClientError))


def as_unreachable(exc: BaseException, doing: str) -> AwsUnreachable:
    from dynadex.aws import MAX_ATTEMPTS, retry_budget_seconds

    endpoint = getattr(exc, "kwargs", {}).get("endpoint_url") or "(unknown endpoint)"
    kind = type(exc).__name__
    return AwsUnreachable(endpoint, f"{kind} while {doing}, after {MAX_ATTEMPTS} attempts with backoff "
                                    f"(up to {retry_budget_seconds():g} s; DYNADEX_AWS_MAX_ATTEMPTS); "
                                    "nothing after the last commit was applied: run again once it answers")


@contextmanager
def unreachable(doing: str):
    """Inside: a botocore connection failure is re-raised as ``AwsUnreachable`` (chained)."""
    try:
        yield
    except Exception as exc:
        if connection_failure(exc):
            raise as_unreachable(exc, doing) from exc
        raise
