"""Deterministic failures fail at once; transient ones keep their retries.

Invariant: a ``DynadexError`` (bad input or configuration: a bad param, a
missing table, PITR or the stream off, a missing manifest, a corrupt data
file, a refused publish) raised by a task body becomes Airflow's
``AirflowFailException``, which fails the task instance with no retry: running
it again would fail the same way, only later. Anything else (throttling after
the backoff, a network error, a lock held by another process) propagates as
it is (the same type), so the task's ``retries`` apply. The message is kept;
the original error is chained for the log. No password reaches the log: an
error quoting a Postgres connection string is shown through ``mask``
(``without_secrets``).

The core library (include/dynadex) never imports Airflow: this is the one
place that maps its errors to Airflow's. Wrap every task body with
``@fail_fast`` (operators: their ``execute`` and ``execute_complete``).
"""

from __future__ import annotations

import functools

from airflow.sdk.exceptions import AirflowFailException

from dynadex.errors import DynadexError


def deterministic(exc: BaseException) -> bool:
    """True when running the task again cannot help (the error is about input or configuration)."""
    return isinstance(exc, DynadexError) and not getattr(exc, "transient", False)


def fail_fast(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except AirflowFailException:
            raise
        except Exception as exc:
            from dynadex.store.catalog.location import without_secrets  # the store's modules: not at DAG parse

            shown = without_secrets(exc)  # a Postgres catalog's error quotes its connection string
            if not deterministic(exc) and shown is exc:
                raise
            failure = shown
            if deterministic(exc):
                failure = AirflowFailException(f"{type(exc).__name__}: {shown} (not retried: this is not transient)")
                failure.__cause__ = shown
        # raised outside the handler, so Python does not chain the unscrubbed original as its context
        raise failure

    return wrapper
