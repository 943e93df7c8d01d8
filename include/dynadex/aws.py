"""boto3 clients configured from the usual AWS settings.

Invariant: with no AWS settings at all, clients point nowhere surprising:
the endpoint comes from ``AWS_ENDPOINT_URL`` (boto3 reads it itself) or from
an explicit ``endpoint_url``; the region defaults to ``us-east-1``. Retries
use botocore's standard mode so throttling, 5xx answers and lost connections
are retried with backoff before an error surfaces (not adaptive mode: its
client-wide rate limiter let one throttled shard slow every read of the
client, and stretched 6 throttled attempts to 30 s; decision 0017): ``MAX_ATTEMPTS`` attempts
in all (``DYNADEX_AWS_MAX_ATTEMPTS``, default 9), each wait at most
``rand * min(2**n, 20)`` s, so one call gives up within ``retry_budget_seconds()``
(91 s by default; decision 0017). Credentials are never logged. A client keeps up to
``POOL_CONNECTIONS`` HTTP connections, so the stream sync's concurrent shard
readers (``SyncSettings.shard_readers``) each reuse one.
"""

from __future__ import annotations

import os
from typing import Any

from dynadex import settings

POOL_CONNECTIONS = 64
MAX_ATTEMPTS = settings.AWS_MAX_ATTEMPTS.read()
"""Attempts per AWS call, the first included (botocore's ``total_max_attempts``; ``settings.AWS_MAX_ATTEMPTS``)."""
MAX_BACKOFF_SECONDS = 20  # botocore's cap on one wait


def retry_budget_seconds(attempts: int | None = None) -> float:
    """The longest botocore waits between the attempts of one call before it raises (its jitter draws
    each wait from 0 up to this bound; on average half of it)."""
    attempts = MAX_ATTEMPTS if attempts is None else attempts
    return float(sum(min(2 ** n, MAX_BACKOFF_SECONDS) for n in range(attempts - 1)))


def retries() -> dict:
    """botocore's retry settings for every dynadex client (the CLI's and the Airflow hooks')."""
    return {"mode": "standard", "total_max_attempts": MAX_ATTEMPTS}


def client(service: str, *, endpoint_url: str | None = None, region: str | None = None, **kwargs: Any):
    import boto3
    from botocore.config import Config

    config = Config(**{"retries": retries(), "max_pool_connections": POOL_CONNECTIONS,
                       **kwargs.pop("config_kwargs", {})})
    return boto3.session.Session().client(
        service,
        endpoint_url=endpoint_url or None,
        region_name=region or os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1",
        config=config,
        **kwargs,
    )


def from_client(value):
    """An attribute map (item, keys, image) in boto3 client shapes -> DynamoDB JSON.

    The client hands B values as raw bytes; only B and BS values are rebuilt (base64), everything
    else is passed through as it is (no copy).
    """
    import base64

    def av(v):
        if type(v) is not dict or len(v) != 1:
            return v
        ((tag, x),) = v.items()
        if tag == "B" and isinstance(x, (bytes, bytearray)):
            return {"B": base64.b64encode(bytes(x)).decode("ascii")}
        if tag == "BS":
            return {"BS": [base64.b64encode(bytes(m)).decode("ascii") if isinstance(m, (bytes, bytearray)) else m for m in x]}
        if tag == "M" and type(x) is dict:
            return {"M": {k: av(m) for k, m in x.items()}}
        if tag == "L" and type(x) is list:
            return {"L": [av(m) for m in x]}
        return v

    return {k: av(v) for k, v in value.items()}


def to_client(value):
    """DynamoDB JSON -> boto3 low-level client shapes (B and BS members as raw bytes)."""
    import base64

    if isinstance(value, dict):
        if len(value) == 1:
            ((tag, v),) = value.items()
            if tag == "B" and isinstance(v, str):
                return {"B": base64.b64decode(v)}
            if tag == "BS" and isinstance(v, list):
                return {"BS": [base64.b64decode(x) if isinstance(x, str) else x for x in v]}
        return {k: to_client(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_client(v) for v in value]
    return value


def error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return response.get("Error", {}).get("Code")
    return None
