"""DynamoDB Streams' read calls answered straight from the ``StreamRegistry``, not through moto's dispatch.

Our ``StreamRegistry`` already answers DescribeStream, GetShardIterator and
GetRecords; moto only routed the request to it. That routing (Flask, moto's
backend lookup, which lists moto's package directory on every request, and
its per-request handler class) cost ~1 ms of the emulator's ~1.3 ms per idle
GetRecords, so a pass over 128 shards spent most of its time there (decision
0024).

Invariants:

* ``ACTIONS`` are the only code that turns a request body into a registry
  call: moto's handlers (server.py, kept for ``lane=False``) call them too, so
  both ways answer the same JSON and raise the same errors.
* An error is moto's own ``JsonRESTError``, sent with its status, headers
  and body, exactly as moto sends it.
* The lane sits behind ``FaultsApp``: injected errors and outages apply to
  these calls as to every other. Every other request (another target, a body
  that is not a JSON object) goes on to moto unchanged, its body intact.
* The registry takes the emulator's one lock itself, so the lane never runs
  beside a moto request, a TTL sweep or an export snapshot.
"""

from __future__ import annotations

import io
import json
import uuid

from dynadex.local_aws.faults import status_line
from dynadex.local_aws.streams import RecordsPage, encode

PREFIX = "DynamoDBStreams_20120810"


def describe_stream(registry, body: dict) -> dict:
    out = registry.describe_stream(body.get("StreamArn"), body.get("Limit"), body.get("ExclusiveStartShardId"),
                                   body.get("ShardFilter"))
    if isinstance(out.get("CreationRequestDateTime"), float):  # AWS (and moto's serializer) send milliseconds
        out = {**out, "CreationRequestDateTime": round(out["CreationRequestDateTime"], 3)}
    return {"StreamDescription": out}


def get_shard_iterator(registry, body: dict) -> dict:
    from dynadex.local_aws.exports import seconds

    seq, stamp = body.get("SequenceNumber"), body.get("Timestamp")
    return {"ShardIterator": registry.get_shard_iterator(
        body.get("StreamArn"), body.get("ShardId"), body.get("ShardIteratorType"),
        None if seq is None else str(seq), None if stamp is None else seconds(stamp))}


def json_body(doc: dict | RecordsPage) -> bytes:
    """An answer as DynamoDB Streams writes it: compact JSON, UTF-8 (``streams.encode``); a page of records is
    joined from the records' own JSON, encoded when they were written."""
    return doc.json() if isinstance(doc, RecordsPage) else encode(doc)


def get_records(registry, body: dict) -> RecordsPage:
    return registry.get_records(body.get("ShardIterator"), body.get("Limit"))


ACTIONS = {"DescribeStream": describe_stream, "GetShardIterator": get_shard_iterator, "GetRecords": get_records}


def _headers(content_type: str, body: bytes) -> list[tuple[str, str]]:
    return [("Content-Type", content_type), ("server", "amazon.com"),
            ("x-amzn-requestid", uuid.uuid4().hex + uuid.uuid4().hex[:20]), ("Content-Length", str(len(body)))]


class StreamsLane:
    """WSGI middleware: the calls in ``ACTIONS`` answered by ``registry``; everything else passed to ``app``."""

    def __init__(self, app, registry):
        self.app, self.registry = app, registry

    def __call__(self, environ, start_response):
        prefix, _, op = environ.get("HTTP_X_AMZ_TARGET", "").partition(".")
        action = ACTIONS.get(op) if prefix == PREFIX else None
        if action is None:
            return self.app(environ, start_response)
        raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):  # moto's answer to a malformed body, whatever it is
            environ["wsgi.input"] = io.BytesIO(raw)
            return self.app(environ, start_response)
        from moto.core.exceptions import JsonRESTError

        try:
            out = json_body(action(self.registry, body))
        except JsonRESTError as err:
            text = err.get_body().encode()
            headers = [h for h in err.get_headers() if h[0].lower() != "content-type"]
            start_response(status_line(err.code),
                           headers + _headers(err.content_type, text))
            return [text]
        start_response("200 OK", _headers("application/x-amz-json-1.0", out))
        return [out]
