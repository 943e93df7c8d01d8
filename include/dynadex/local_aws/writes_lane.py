"""DynamoDB's BatchWriteItem answered straight against moto's tables, not through moto's dispatch.

Through moto, one BatchWriteItem of 25 items cost ~13 ms of the emulator's
time: Flask, moto's model-driven parser and serializer walking every
attribute value, each value validated three times (the request, moto's
own checks, the final image) and each image rebuilt from moto's item
(``to_json``) before the stream saw it. So a stream could not be filled with
millions of records: 2 150 writes/s (issue 29, decision 0038).

The lane does each step once: the body is parsed by ``json``; the values are
checked by ``validate.check_request`` (the same function moto's path runs);
the new image of a put is the request's item itself (canonical, numbers as
DynamoDB stores them); the old image is the item's last entry in the
``ChangeFeed`` history, which every write to the item went through
(``image_of`` the moto item when the history does not know it, e.g. a
table restored from a backup).

Invariants:

* The lane answers only a request it can answer exactly as moto's path
  does. It first checks everything without changing anything; a request
  that does not fit (a table with secondary indexes, an unknown table, an
  unexpected field, any refusal or doubt) goes on to moto untouched, body
  intact, so errors are moto's and strict's own, word for word.
* What a request writes is what moto's path writes: the same moto items
  (``Item``, built by moto), one history entry and one stream record per
  item whose image changed (INSERT / MODIFY / REMOVE, images by the
  stream's view type), none for a write that changed nothing or a delete of
  a missing item. Items are changed in request order, then recorded in that
  order; a failure while changing them puts every item back and records
  nothing.
* The cyclic garbage collector does not run inside a request (``gcpause.quiet``): the emulator keeps
  every write's history and stream record, and each collection walked them all again (about 40% of a
  write's CPU at 20 000 items, more as they grow); it collects at most once a minute between requests.
* It runs behind ``FaultsApp`` (injected errors and outages apply) and holds
  the emulator's one ``LOCK`` while it reads or writes, so it never runs
  beside a moto request, a TTL sweep or an export snapshot.
* ``write_bulk`` (``POST /_dynadex/batch-writes``) applies many
  BatchWriteItem bodies in one HTTP request, each exactly as if it had been
  sent alone, in order; it stops at the first one refused and says which.
"""

from __future__ import annotations

import io
import json
import uuid
import zlib

from dynadex.gcpause import quiet
from dynadex.local_aws import validate
from dynadex.local_aws.errors import NotInLane
from dynadex.local_aws.faults import status_line
from dynadex.local_aws.lock import LOCK

TARGET = "DynamoDB_20120810.BatchWriteItem"
BULK_PATH = "/_dynadex/batch-writes"
_FIELDS = {"RequestItems", "ReturnConsumedCapacity", "ReturnItemCollectionMetrics"}


class Op:
    """One put or delete, checked and ready to apply."""

    __slots__ = ("feed", "table", "hash_value", "range_value", "item", "key", "keys", "new_img", "before")

    def __init__(self, feed, table, hash_value, range_value, item, key, keys, new_img):
        self.feed, self.table, self.hash_value, self.range_value = feed, table, hash_value, range_value
        self.item, self.key, self.keys, self.new_img = item, key, keys, new_img
        self.before = None


def backend_for(request):
    """moto's DynamoDB backend this request addresses, found by moto's own rules (region, account)."""
    from moto.dynamodb.models import dynamodb_backends
    from moto.dynamodb.responses import DynamoHandler
    from moto.iam.models import mark_account_as_visited

    auth = request.headers.get("Authorization", "")
    if "AWS4" not in auth:
        raise NotInLane("no AWS4 signature: moto finds the region another way")
    handler = DynamoHandler()
    handler.headers = request.headers
    handler.querystring = {}
    region = handler.get_region_from_url(request, request.url)
    account = handler.get_current_account()
    mark_account_as_visited(account_id=account, access_key=handler.get_access_key(), service="dynamodb",
                            region=region)
    return dynamodb_backends[account][region]


def _table(backend, name):
    table = backend.tables.get(name) if isinstance(name, str) else None
    if table is None or table.global_indexes or table.indexes:
        raise NotInLane(f"table {name!r}: unknown, or with secondary indexes (moto checks their keys)")
    return table


def prepare(backend, body, binary: bool = True) -> list[Op]:
    """Every write of one BatchWriteItem body, checked; changes nothing. Raises NotInLane when moto must answer.

    ``binary=False`` says the body holds no B or BS value (its text has no ``"B``): nothing to decode."""
    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    from dynadex.aws import from_client, to_client
    from dynadex.local_aws.feed import key_of
    from dynadex.local_aws.strict import check_json_shapes, normalise_request
    from dynadex.types import canonical_item

    if type(body) is not dict or not set(body) <= _FIELDS or type(body.get("RequestItems")) is not dict:
        raise NotInLane("not a plain BatchWriteItem")
    for name, requests in body["RequestItems"].items():
        _table(backend, name)
        if type(requests) is not list:
            raise NotInLane("requests not a list")
        for request in requests:
            if type(request) is not dict or len(request) != 1:
                raise NotInLane("a write request that is not exactly one put or delete")
            ((kind, inner),) = request.items()
            field = {"PutRequest": "Item", "DeleteRequest": "Key"}.get(kind)
            if field is None or type(inner) is not dict or set(inner) != {field} or type(inner[field]) is not dict:
                raise NotInLane("a write request that is not exactly one put or delete")
    if check_json_shapes(body) is not None:
        raise NotInLane("JSON shapes: moto's path answers SerializationException")
    if binary:  # as moto's parser hands them on (and strict checks them): B and BS members as raw bytes
        try:
            for requests in body["RequestItems"].values():
                for request in requests:
                    ((kind, inner),) = request.items()
                    field = "Item" if kind == "PutRequest" else "Key"
                    inner[field] = to_client(inner[field])
        except (ValueError, TypeError) as exc:  # moto's parser refuses it: SerializationException
            raise NotInLane(f"binary value: {exc}") from exc
    try:
        validate.check_request("BatchWriteItem", body, backend)
    except Exception as exc:
        raise NotInLane(f"refused: {exc}") from exc
    normalise_request(body)
    ops = []
    for name, requests in body["RequestItems"].items():
        table = backend.tables[name]
        feed = getattr(table, "_dynadex_feed", None)
        if feed is None:
            raise NotInLane(f"table {name!r} has no change feed")
        for request in requests:
            ((kind, inner),) = request.items()
            attrs = inner["Item"] if kind == "PutRequest" else inner["Key"]
            try:
                hash_value = DynamoType(attrs[table.hash_key_attr])
                range_value = DynamoType(attrs[table.range_key_attr]) if table.range_key_attr else None
                if kind == "PutRequest":
                    # moto's key sizes; its _validate_item_types is not repeated: what it refuses (S or N not a
                    # string, N not a number, NULL false) check_json_shapes and validate refused above
                    table._validate_key_sizes(attrs)
                    item = Item(hash_value, range_value, attrs)
                    new_img = canonical_item(from_client(attrs) if binary else attrs)
                else:
                    item = new_img = None
                key, keys = key_of(table, from_client(attrs) if binary else attrs)
            except Exception as exc:
                raise NotInLane(f"moto's checks: {exc}") from exc
            ops.append(Op(feed, table, hash_value, range_value, item, key, keys, new_img))
    return ops


def _current(table, hash_value, range_value):
    if range_value is not None:
        return table.items.get(hash_value, {}).get(range_value)
    return table.items.get(hash_value)


def apply(ops: list[Op]) -> None:
    """Change moto's items in request order, then record each change in its feed (history and stream)."""
    from dynadex.local_aws.feed import image_of

    done = []
    try:
        for op in ops:
            table, hk, rk = op.table, op.hash_value, op.range_value
            op.before = _current(table, hk, rk)
            if op.item is not None:
                if rk is not None:
                    table.items[hk][rk] = op.item
                else:
                    table.items[hk] = op.item
            elif op.before is not None:
                if rk is not None:
                    table.items[hk].pop(rk)
                else:
                    table.items.pop(hk)
            done.append(op)
    except BaseException:
        for op in reversed(done):
            table, hk, rk = op.table, op.hash_value, op.range_value
            if op.before is None:
                if rk is not None:
                    table.items.get(hk, {}).pop(rk, None)
                else:
                    table.items.pop(hk, None)
            elif rk is not None:
                table.items[hk][rk] = op.before
            else:
                table.items[hk] = op.before
        raise
    for op in ops:
        if op.before is None:
            old_img = None
        else:
            old_img = op.feed.current_image(op.key)
            if old_img is None:  # an item the history never saw written (a restored table)
                old_img = image_of(op.before)
        if op.new_img == old_img:
            continue  # a write that changed nothing (or a delete of a missing item): nothing recorded
        op.feed.record(op.key, op.keys, old_img, op.new_img, False)


def answer_body(body: dict) -> bytes:
    """moto's answer to a BatchWriteItem that wrote everything."""
    return json.dumps({"UnprocessedItems": {}, "ItemCollectionMetrics": {}, "ConsumedCapacity": [
        {"TableName": name, "CapacityUnits": 1.0, "Table": {"CapacityUnits": 1.0}} for name in body["RequestItems"]]}
    ).encode()


def _headers(text: bytes) -> list[tuple[str, str]]:
    return [("Content-Type", "application/x-amz-json-1.0"), ("server", "amazon.com"),
            ("x-amzn-requestid", uuid.uuid4().hex + uuid.uuid4().hex[:20]),
            ("x-amz-crc32", str(zlib.crc32(text))), ("Content-Length", str(len(text))),
            ("Access-Control-Allow-Origin", "*")]


def write_bulk(backend, bodies) -> dict:
    """Each BatchWriteItem body in order, as if sent alone; stops at the first that moto's path must answer.

    ``bodies``: (body, has binary values) pairs; ``backend()`` is called under the lock, as moto's path
    finds its backend under it."""
    written = 0
    for n, (body, binary) in enumerate(bodies):
        with LOCK, quiet():
            try:
                ops = prepare(backend(), body, binary)
            except NotInLane as exc:
                return {"applied": n, "written": written, "refused": n, "reason": str(exc)}
            apply(ops)
        written += len(ops)
    return {"applied": len(bodies), "written": written}


class WritesLane:
    """WSGI middleware: BatchWriteItem (and ``BULK_PATH``) answered by the lane; anything else passed to ``app``."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        bulk = environ.get("PATH_INFO") == BULK_PATH and environ.get("REQUEST_METHOD") == "POST"
        if not bulk and environ.get("HTTP_X_AMZ_TARGET") != TARGET:
            return self.app(environ, start_response)
        raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        if bulk:
            return self._bulk(environ, raw, start_response)
        from werkzeug.wrappers import Request

        try:
            body = json.loads(raw or b"{}")
            with LOCK, quiet():
                ops = prepare(backend_for(Request(environ)), body, binary=b'"B' in raw)
                apply(ops)
        except (NotInLane, ValueError):
            environ["wsgi.input"] = io.BytesIO(raw)
            return self.app(environ, start_response)
        text = answer_body(body)
        start_response("200 OK", _headers(text))
        return [text]

    def _bulk(self, environ, raw: bytes, start_response):
        from werkzeug.wrappers import Request

        try:
            lines = [line for line in raw.splitlines() if line.strip()]
            bodies = [(json.loads(line), b'"B' in line) for line in lines]
            request = Request(environ)
            out, status = write_bulk(lambda: backend_for(request), bodies), 200
            if "refused" in out:
                status = 400
        except (NotInLane, ValueError) as exc:
            out, status = {"error": f"{exc} (send one BatchWriteItem body per line, AWS4-signed headers)"}, 400
        text = json.dumps(out).encode()
        start_response(status_line(status), [("Content-Type", "application/json"), ("Content-Length", str(len(text)))])
        return [text]
