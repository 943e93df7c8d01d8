"""The emulator refuses what DynamoDB refuses and answers as DynamoDB answers.

Hooks on moto's ``DynamoHandler`` (one wrapper per action, installed by
``server.install``):

* writes (PutItem, UpdateItem, DeleteItem, BatchWriteItem,
  TransactWriteItems): ``validate.check_request`` before moto runs; then
  moto runs with the ``ChangeFeed`` holding its writes back
  (``feed.begin``); each final image passes ``validate.check_image``
  before anything is recorded. A refusal, or any failure, puts moto's items
  back and records nothing;
* reads (GetItem, BatchGetItem, Query, Scan, TransactGetItems) and the
  ``Attributes`` a write returns: numbers as DynamoDB writes them
  (``3.14000`` -> ``3.14``, ``1E+2`` -> ``100``, ``-0`` -> ``0``);
* CreateTable answers CREATING (the next DescribeTable says ACTIVE);
  DescribeTable carries a TableId.

Invariant: no bad input gets HTTP 500. A moto crash inside a DynamoDB
request is rolled back and answered 400 ``ValidationException`` naming
the crash (so clients do not retry a request that can never succeed).
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import functools
import json
import sys
import traceback
import uuid
from decimal import Decimal

from moto.core.exceptions import JsonRESTError
from werkzeug.exceptions import HTTPException

from dynadex.gcpause import quiet
from dynadex.local_aws import feed as feedmod
from dynadex.local_aws import validate
from dynadex.local_aws.errors import ValidationException
from dynadex.local_aws.lock import LOCK

WRITES = {
    "put_item": "PutItem",
    "update_item": "UpdateItem",
    "delete_item": "DeleteItem",
    "batch_write_item": "BatchWriteItem",
    "transact_write_items": "TransactWriteItems",
}
READS = {"get_item": "GetItem", "batch_get_item": "BatchGetItem", "query": "Query", "scan": "Scan",
         "transact_get_items": "TransactGetItems"}


# ------------------------------------------------------------------ numbers


def normal_value(av):
    """``av`` with its numbers as DynamoDB stores them; ``av`` itself when they already are (no copy)."""
    if not isinstance(av, dict) or len(av) != 1:
        return av
    ((tag, v),) = av.items()
    if tag == "N" and isinstance(v, str):
        n = validate.normal_number(v)
        return av if n == v else {"N": n}
    if tag == "NS" and isinstance(v, list):
        ns = [validate.normal_number(m) for m in v]
        return av if ns == v else {"NS": ns}
    if tag == "M" and isinstance(v, dict):
        m = normal_item(v)
        return av if m is v else {"M": m}
    if tag == "L" and isinstance(v, list):
        items = [normal_value(x) for x in v]
        return av if all(a is b for a, b in zip(items, v)) else {"L": items}
    return av


def normal_item(item):
    """An attribute map with its numbers as DynamoDB stores them; ``item`` itself when they already are."""
    if not isinstance(item, dict):
        return item
    out = None
    for k, v in item.items():
        n = normal_value(v)
        if n is not v:
            if out is None:
                out = dict(item)
            out[k] = n
    return item if out is None else out


def normalise_result(body) -> None:
    """Numbers in the items of a response, in place."""
    if not isinstance(body, dict):
        return
    for name in ("Item", "Attributes", "LastEvaluatedKey"):
        if isinstance(body.get(name), dict):
            body[name] = normal_item(body[name])
    if isinstance(body.get("Items"), list):
        body["Items"] = [normal_item(i) for i in body["Items"]]
    responses = body.get("Responses")
    if isinstance(responses, dict):  # BatchGetItem
        for table, items in responses.items():
            responses[table] = [normal_item(i) for i in items]
    elif isinstance(responses, list):  # TransactGetItems
        for r in responses:
            if isinstance(r, dict) and isinstance(r.get("Item"), dict):
                r["Item"] = normal_item(r["Item"])


_VALUE_MAPS = ("Item", "Key", "ExpressionAttributeValues")


def normalise_request(body) -> None:
    """Numbers of a (validated) write request as DynamoDB stores them, in place.

    DynamoDB keeps a number's value, not its text: ``-0`` and ``0E+10`` are the same key, ``3.140`` is
    stored as ``3.14``. Rewriting the request's numbers once lets moto compare and store them as such.
    """
    if isinstance(body, list):
        for x in body:
            normalise_request(x)
        return
    if not isinstance(body, dict):
        return
    for name, value in list(body.items()):
        if name in _VALUE_MAPS and isinstance(value, dict):
            body[name] = normal_item(value)
        elif name == "AttributeUpdates" and isinstance(value, dict):
            for update in value.values():
                if isinstance(update, dict) and isinstance(update.get("Value"), dict):
                    update["Value"] = normal_value(update["Value"])
        elif name == "Expected" and isinstance(value, dict):
            for cond in value.values():
                if isinstance(cond, dict):
                    if isinstance(cond.get("Value"), dict):
                        cond["Value"] = normal_value(cond["Value"])
                    if isinstance(cond.get("AttributeValueList"), list):
                        cond["AttributeValueList"] = [normal_value(v) for v in cond["AttributeValueList"]]
        elif isinstance(value, (dict, list)):
            normalise_request(value)


# -------------------------------------------------------------- JSON shapes

_SCALAR_KINDS = {"S": str, "N": str, "B": str, "BOOL": bool, "NULL": bool}
_LIST_KINDS = {"SS", "NS", "BS"}


def _shape_error(path: str, want: str) -> str:
    return f"Unexpected value type in payload: {path} must be {want}"  # wording ours; AWS: SerializationException


def _check_av_json(av, path: str) -> str | None:
    if not isinstance(av, dict):
        return _shape_error(path, "an AttributeValue object")
    for tag, v in av.items():
        where = f"{path}.{tag}"
        if tag in _SCALAR_KINDS and v is not None and not isinstance(v, _SCALAR_KINDS[tag]):
            return _shape_error(where, _SCALAR_KINDS[tag].__name__)
        if tag in _LIST_KINDS and v is not None and not (isinstance(v, list) and all(isinstance(m, str) for m in v)):
            return _shape_error(where, "a list of strings")
        if tag == "L" and v is not None:
            if not isinstance(v, list):
                return _shape_error(where, "a list")
            for i, x in enumerate(v):
                if err := _check_av_json(x, f"{where}[{i}]"):
                    return err
        if tag == "M" and v is not None:
            if not isinstance(v, dict):
                return _shape_error(where, "an object")
            for k, x in v.items():
                if err := _check_av_json(x, f"{where}.{k}"):
                    return err
    return None


def check_json_shapes(body, path: str = "") -> str | None:
    """JSON types of a request's attribute values, as botocore's model declares them (None when right)."""
    if isinstance(body, list):
        for i, x in enumerate(body):
            if err := check_json_shapes(x, f"{path}[{i}]"):
                return err
        return None
    if not isinstance(body, dict):
        return None
    for name, value in body.items():
        where = f"{path}.{name}" if path else name
        if name in ("Tags", "TagKeys"):
            continue
        if name in _VALUE_MAPS or name == "ExclusiveStartKey":
            if not isinstance(value, dict):
                return _shape_error(where, "an object")
            for k, av in value.items():
                if err := _check_av_json(av, f"{where}.{k}"):
                    return err
        elif name in ("Value",) and isinstance(value, dict):
            if err := _check_av_json(value, where):
                return err
        elif isinstance(value, (dict, list)):
            if err := check_json_shapes(value, where):
                return err
    return None


def _serialization_error(message: str):
    body = json.dumps({"__type": "com.amazon.coral.service#SerializationException", "message": message})
    return 400, {"Content-Type": "application/x-amz-json-1.0", "status": 400}, body


# ------------------------------------------------------------------- writes


def _restore(backend, table_name, key, before) -> None:
    """Put one item back as it was (UpdateItem may change moto's item in place and then fail)."""
    try:
        table = backend.get_table(table_name)
        hash_value, range_value = backend.get_keys_value(table, key)
    except Exception:
        return
    if before is None:
        if range_value is not None:
            table.items.get(hash_value, {}).pop(range_value, None)
        else:
            table.items.pop(hash_value, None)
    elif range_value is not None:
        table.items[hash_value][range_value] = before
    else:
        table.items[hash_value] = before


def _reattach_feeds(backend) -> None:
    """After moto swapped a table for its backup copy, the table's feed must point at the live table."""
    for table in backend.tables.values():
        feed = getattr(table, "_dynadex_feed", None)
        if feed is not None and feed.table is not table:
            feed.table = table
            if feed.stream is not None:
                feed.stream.table = table


def _matches(op_kind: str, op, entry) -> bool:
    """Is this TransactItem the one that wrote ``entry``'s item?"""
    from dynadex.aws import from_client
    from dynadex.local_aws.feed import key_of

    if not isinstance(op, dict) or op.get("TableName") != entry.feed.table.name:
        return False
    try:
        return key_of(entry.feed.table, from_client(op.get("Item") if op_kind == "Put" else op.get("Key")))[0] == entry.key
    except Exception:
        return False


def _is_update(action: str, body: dict, entry) -> bool:
    if action == "UpdateItem":
        return True
    if action == "TransactWriteItems":
        return any(kind == "Update" and _matches(kind, op, entry)
                   for e in body.get("TransactItems") or [] for kind, op in e.items())
    return False


def _cancelled(body: dict, refused, exc):
    """AWS refuses a transaction whose item fails a check as TransactionCanceledException, one reason per
    TransactItem (ValidationError for the refused one, None for the others)."""
    from moto.dynamodb.exceptions import TransactionCanceledException

    message = getattr(exc, "message", str(exc))
    errors = []
    for entry in body.get("TransactItems") or []:
        ((kind, op),) = entry.items()
        errors.append(("ValidationError", message, None) if _matches(kind, op, refused) else (None, None, None))
    return TransactionCanceledException(errors)


def _write(method, action: str):
    @functools.wraps(method)
    def wrapper(self):
        with LOCK, quiet():  # no collection walking the emulator's history and streams inside a write
            backend = self.dynamodb_backend
            validate.check_request(action, self.body, backend)
            normalise_request(self.body)
            before = None
            if action == "UpdateItem":
                try:
                    before = copy.deepcopy(backend.get_item(self.body["TableName"], self.body["Key"]))
                except Exception:
                    before = None
            request = feedmod.begin(action)
            try:
                result = method(self)
                request.commit(lambda raw, entry: validate.check_image(
                    raw, update=_is_update(action, self.body, entry)))
            except BaseException as exc:
                refused = getattr(exc, "dynadex_entry", None)
                request.rollback()
                if action == "UpdateItem":
                    _restore(backend, self.body.get("TableName"), self.body.get("Key") or {}, before)
                _reattach_feeds(backend)
                if refused is not None and action == "TransactWriteItems":
                    raise _cancelled(self.body, refused, exc) from exc
                if isinstance(exc, (JsonRESTError, HTTPException)) or not isinstance(exc, Exception):
                    raise
                traceback.print_exc(file=sys.stderr)
                raise ValidationException(
                    f"The emulator could not run this request ({type(exc).__name__}: {exc}); nothing was written"
                ) from exc
            finally:
                feedmod.end()
            normalise_result(getattr(result, "result", None))
            return result

    return wrapper


def _read(method, action: str):
    @functools.wraps(method)
    def wrapper(self):
        validate.check_read_request(action, self.body, self.dynamodb_backend)
        normalise_request(self.body)  # keys and values compared by value, as stored
        try:
            result = method(self)
        except Exception as exc:
            if isinstance(exc, (JsonRESTError, HTTPException)):
                raise
            traceback.print_exc(file=sys.stderr)
            raise ValidationException(
                f"The emulator could not run this request ({type(exc).__name__}: {exc})") from exc
        normalise_result(getattr(result, "result", None))
        return _as_json(result)

    return wrapper


def _json_default(value):
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, Decimal):
        return float(value) if value != value.to_integral_value() else int(value)
    if isinstance(value, (dt.datetime,)):
        return value.timestamp()
    raise TypeError(f"cannot answer a {type(value).__name__} as JSON")


def _as_json(result):
    """A read's answer as JSON text: moto's model-driven serializer walks every attribute value of every item
    in Python (about 100 items/s for a Scan of rich items); the result is already in DynamoDB's wire shape."""
    body = getattr(result, "result", None)
    if not isinstance(body, dict):
        return result
    try:
        return json.dumps(body, default=_json_default)
    except TypeError:
        return result  # something only moto's serializer knows how to shape


def install() -> None:
    from moto.dynamodb.responses import DynamoHandler

    for name, action in WRITES.items():
        setattr(DynamoHandler, name, _write(getattr(DynamoHandler, name), action))
    for name, action in READS.items():
        setattr(DynamoHandler, name, _read(getattr(DynamoHandler, name), action))

    original_create = DynamoHandler.create_table
    original_describe = DynamoHandler.describe_table

    def create_table(self):
        result = original_create(self)
        d = result.result.get("TableDescription", {})
        d["TableStatus"] = "CREATING"  # AWS answers CREATING; the table is ACTIVE on the next describe
        arn = d.get("TableArn")
        if arn:
            d["TableId"] = str(uuid.uuid5(uuid.NAMESPACE_URL, arn))
        return result

    def describe_table(self):
        result = original_describe(self)
        d = result.result.get("Table", {})
        if d.get("TableArn"):
            d["TableId"] = str(uuid.uuid5(uuid.NAMESPACE_URL, d["TableArn"]))
        return result

    DynamoHandler.create_table = create_table
    DynamoHandler.describe_table = describe_table

    original_parse = DynamoHandler.parse_parameters
    original_call = DynamoHandler.call_action

    def parse_parameters(self, request):
        # A body whose JSON types do not fit the model made moto's parser crash (HTTP 500) or, worse,
        # read a string as a list of characters: refuse it, as AWS does, with SerializationException.
        self._dynadex_bad_request = None
        try:
            raw_body = json.loads(request.data or b"{}")
        except ValueError:
            self._dynadex_bad_request = "Unexpected value type in payload: the body is not JSON"
            self.params = {}
            return
        error = check_json_shapes(raw_body)
        if error is None:
            try:
                return original_parse(self, request)
            except Exception as exc:  # noqa: BLE001 - any parser failure is the request's fault
                error = f"Unexpected value type in payload ({type(exc).__name__}: {exc})"
        self._dynadex_bad_request = error
        self.params = {}

    def call_action(self):
        error = getattr(self, "_dynadex_bad_request", None)
        if error:
            return _serialization_error(error)
        return original_call(self)

    DynamoHandler.parse_parameters = parse_parameters
    DynamoHandler.call_action = call_action
