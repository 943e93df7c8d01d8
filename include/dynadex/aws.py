"""boto3 clients configured from the usual AWS settings.

Invariant: with no AWS settings at all, clients point nowhere surprising:
the endpoint comes from ``AWS_ENDPOINT_URL`` (boto3 reads it itself) or from
an explicit ``endpoint_url``; the region defaults to ``us-east-1``. Retries
use botocore's adaptive mode so throttling is retried with backoff before an
error surfaces. Credentials are never logged.
"""

from __future__ import annotations

import os
from typing import Any


def client(service: str, *, endpoint_url: str | None = None, region: str | None = None, **kwargs: Any):
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "adaptive", "max_attempts": 8}, **kwargs.pop("config_kwargs", {}))
    return boto3.session.Session().client(
        service,
        endpoint_url=endpoint_url or None,
        region_name=region or os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1",
        config=config,
        **kwargs,
    )


def from_client(value):
    """boto3 low-level client shapes -> DynamoDB JSON (the client hands B values as raw bytes)."""
    import base64

    if isinstance(value, dict):
        return {k: from_client(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_client(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    return value


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
