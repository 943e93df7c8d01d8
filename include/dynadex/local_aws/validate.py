"""DynamoDB's write rules, checked by the emulator before anything is stored or streamed.

Two checks, as DynamoDB makes them:

* ``check_request(action, body, backend)`` looks at every attribute value a
  write request carries (items, keys, ExpressionAttributeValues,
  AttributeUpdates, Expected values) before moto sees the request;
* ``check_image(image, table, update=...)`` looks at an item as it would be
  stored (after an update expression ran): its size counted as DynamoDB
  counts it, its nesting depth and its numbers (``ADD`` can overflow).

Invariant: each rule raises ``ValidationException`` (HTTP 400) with the text
DynamoDB answers; the messages and where they were recorded are listed in
docs/decisions/0010-strict-emulator.md.
"""

from __future__ import annotations

import base64
import binascii
import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from dynadex.limits import MAX_DEPTH, MAX_ITEM_BYTES, MAX_NAME_BYTES, item_size
from dynadex.local_aws.errors import ValidationException

HASH_KEY_MAX = 2048
RANGE_KEY_MAX = 1024
TAGS = ("S", "N", "B", "SS", "NS", "BS", "M", "L", "NULL", "BOOL")
# at most 36 significant digits, magnitude 1E-18 .. 1E+18: always within DynamoDB's limits
_SMALL_NUMBER = re.compile(r"-?\d{1,18}(?:\.\d{1,18})?")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")

INVALID = "One or more parameter values were invalid: "
PRECISION = "Attempting to store more than 38 significant digits in a Number"
OVERFLOW = "Number overflow. Attempting to store a number with magnitude larger than supported range"
UNDERFLOW = "Number underflow. Attempting to store a number with magnitude smaller than supported range"
NOT_A_NUMBER = "The parameter cannot be converted to a numeric value"
NESTING = ("Nesting Levels have exceeded supported limits: "
           "Attributes in the item have nested levels beyond supported limit")
ITEM_TOO_LARGE = "Item size has exceeded the maximum allowed size"
UPDATE_TOO_LARGE = "Item size to update has exceeded the maximum allowed size"
EMPTY_VALUE = "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes"
TOO_MANY_WRITES = "Too many items requested for the BatchWriteItem call"
DUPLICATE_KEYS = "Provided list of item keys contains duplicates"
BATCH_WRITE_MAX = 25
MANY_TYPES = "Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes"


def fail(message: str):
    raise ValidationException(message)


# ------------------------------------------------------------------ numbers


def number(text) -> Decimal:
    """A request's N text -> its exact value, or DynamoDB's refusal."""
    if not isinstance(text, str) or not _NUMBER.fullmatch(text):
        fail(f"{NOT_A_NUMBER}: {text}" if text not in ("", None) else NOT_A_NUMBER)
    value = Decimal(text)
    if value.is_zero():
        return Decimal(0)
    sign, digits, exponent = value.as_tuple()
    end = len(digits)
    while digits[end - 1] == 0:
        end -= 1
    exponent += len(digits) - end
    digits = digits[:end]
    start = 0
    while digits[start] == 0:
        start += 1
    digits = digits[start:]
    if len(digits) > 38:
        fail(PRECISION)
    adjusted = exponent + len(digits) - 1
    if adjusted > 125:
        fail(OVERFLOW)
    if adjusted < -130:
        fail(UNDERFLOW)
    return Decimal((sign, digits, exponent))


def normal_number(text: str) -> str:
    """A number's text as DynamoDB answers it (cached: the same texts recur)."""
    return _normal_number(text) if type(text) is str else _normal_number.__wrapped__(text)


@lru_cache(maxsize=1 << 16)
def _normal_number(text: str) -> str:
    """A number's text as DynamoDB answers it: ``3.14000`` -> ``3.14``, ``1E+2`` -> ``100``, ``-0`` -> ``0``."""
    try:
        value = Decimal(text)
    except (InvalidOperation, TypeError):
        return text
    if not value.is_finite():
        return text
    if value.is_zero():
        return "0"
    sign, digits, exponent = value.as_tuple()
    end = len(digits)
    while end > 1 and digits[end - 1] == 0:
        end -= 1
    value = Decimal((sign, digits[:end], exponent + len(digits) - end))
    return format(value, "f")


# ------------------------------------------------------------------- values


def _raw_binary(v) -> bytes:
    if isinstance(v, (bytes, bytearray)):
        return bytes(v)
    if isinstance(v, str):
        try:
            return base64.b64decode(v, validate=True)
        except (binascii.Error, ValueError):
            return v.encode()
    fail(f"{INVALID}Binary value is not valid")


def check_value(av, depth: int = 0) -> None:
    """One attribute value (any depth): its type tag, its contents, DynamoDB's limits."""
    if not isinstance(av, dict):
        fail(EMPTY_VALUE)
    tags = [t for t in av if t in TAGS and av[t] is not None]
    if not tags:
        fail(EMPTY_VALUE)
    if len(tags) > 1:
        fail(MANY_TYPES)
    tag = tags[0]
    v = av[tag]
    if tag == "N":
        if type(v) is not str or not _SMALL_NUMBER.fullmatch(v):
            number(v)
    elif tag == "S":
        if not isinstance(v, str):
            fail(f"{INVALID}A value provided for S is not a string")
    elif tag == "B":
        _raw_binary(v)
    elif tag == "BOOL":
        if not isinstance(v, bool):
            fail(f"{INVALID}A value provided for BOOL is not a boolean")
    elif tag == "NULL":
        if v is not True:
            fail(f"{INVALID}Null attribute value types must have the value of true")
    elif tag == "SS":
        if not isinstance(v, list) or not v:
            fail(f"{INVALID}An string set  may not be empty")
        if len(set(v)) != len(v):
            fail(f"{INVALID}Input collection [{', '.join(map(str, v))}] contains duplicates.")
    elif tag == "NS":
        if not isinstance(v, list) or not v:
            fail(f"{INVALID}An number set  may not be empty")
        values = [number(m) for m in v]
        if len(set(values)) != len(values):
            fail(f"{INVALID}Input collection [{', '.join(map(str, v))}] contains duplicates.")
    elif tag == "BS":
        if not isinstance(v, list) or not v:
            fail(f"{INVALID}Binary sets should not be empty")
        raws = [_raw_binary(m) for m in v]
        if any(not r for r in raws):
            fail(f"{INVALID}Binary sets may not contain null or empty values")
        if len(set(raws)) != len(raws):
            shown = [base64.b64encode(r).decode() for r in raws]
            fail(f"{INVALID}Input collection [{', '.join(shown)}]of type BS contains duplicates.")
    elif tag in ("M", "L"):
        if depth + 1 > MAX_DEPTH:
            fail(NESTING)
        children = v.values() if tag == "M" and isinstance(v, dict) else v if isinstance(v, list) else None
        if children is None:
            fail(EMPTY_VALUE)
        if tag == "M":
            for name in v:
                if len(name.encode()) > MAX_NAME_BYTES:
                    fail(f"{INVALID}Attribute name exceeds the maximum length of {MAX_NAME_BYTES} bytes")
        for child in children:
            check_value(child, depth + 1)


def check_attributes(attrs, where: str = "item") -> None:
    """A map of attribute name -> value (an item, a key, ExpressionAttributeValues)."""
    if not isinstance(attrs, dict):
        return
    for name, av in attrs.items():
        if where != "values":
            if name == "":
                fail(f"{INVALID}An attribute name may not be empty")
            if len(name.encode()) > MAX_NAME_BYTES:
                fail(f"{INVALID}Attribute name exceeds the maximum length of {MAX_NAME_BYTES} bytes")
        check_value(av)


def _key_size(av: dict) -> int:
    ((tag, v),) = av.items()
    if tag == "B":
        return len(_raw_binary(v))
    return len(str(v).encode())


def check_key(attrs: dict, table, *, item: bool) -> None:
    """The table's key attributes in an item (``item=True``) or a Key: present, of the right type, not empty."""
    names = [(table.hash_key_attr, table.hash_key_type, HASH_KEY_MAX)]
    if table.range_key_attr:
        names.append((table.range_key_attr, table.range_key_type, RANGE_KEY_MAX))
    if not item:
        if set(attrs) != {n for n, _, _ in names}:
            fail("The provided key element does not match the schema")
    for name, expected, limit in names:
        if name not in attrs:
            fail(f"{INVALID}Missing the key {name} in the item")
        av = attrs[name]
        tag = next(iter(av)) if isinstance(av, dict) and len(av) == 1 else None
        if tag != expected:
            if not item:
                fail("The provided key element does not match the schema")
            fail(f"{INVALID}Type mismatch for key {name} expected: {expected} actual: {tag}")
        value = av[tag]
        if tag in ("S", "B") and (value == "" or value == b""):
            kind = "string" if tag == "S" else "binary"
            fail("One or more parameter values are not valid. The AttributeValue for a key attribute cannot "
                 f"contain an empty {kind} value. Key: {name}")
        if _key_size(av) > limit:
            if limit == HASH_KEY_MAX:
                fail(f"{INVALID}Size of hashkey has exceeded the maximum size limit of{HASH_KEY_MAX} bytes")
            fail(f"{INVALID}Aggregated size of all range keys has exceeded the size limit of {RANGE_KEY_MAX} bytes")


# --------------------------------------------------------------------- sizes
# counted by dynadex.limits (shared with the export reader): item_size, value_size


def check_image(image: dict, *, update: bool = False) -> None:
    """An item as it would be stored: values, depth and size within DynamoDB's limits."""
    for av in image.values():
        check_value(av)
    if item_size(image) > MAX_ITEM_BYTES:
        fail(UPDATE_TOO_LARGE if update else ITEM_TOO_LARGE)


# ------------------------------------------------------------------ requests


def _table(backend, name):
    try:
        return backend.get_table(name)
    except Exception:
        return None  # moto answers ResourceNotFoundException itself


def _check_common(body: dict) -> None:
    check_attributes(body.get("ExpressionAttributeValues"), "values")
    for cond in (body.get("Expected") or {}).values():
        if isinstance(cond, dict):
            if "Value" in cond:
                check_value(cond["Value"])
            for av in cond.get("AttributeValueList") or []:
                check_value(av)


def _check_put(body: dict, backend) -> None:
    item = body.get("Item")
    if not isinstance(item, dict):
        return
    check_attributes(item)
    table = _table(backend, body.get("TableName"))
    if table is not None:
        check_key(item, table, item=True)
    if item_size(item) > MAX_ITEM_BYTES:  # check_image, its values already checked by check_attributes
        fail(ITEM_TOO_LARGE)
    _check_common(body)


def _check_keyed(body: dict, backend) -> None:
    key = body.get("Key")
    if not isinstance(key, dict):
        return
    check_attributes(key)
    table = _table(backend, body.get("TableName"))
    if table is not None:
        check_key(key, table, item=False)
    _check_common(body)
    for update in (body.get("AttributeUpdates") or {}).values():
        if isinstance(update, dict) and update.get("Value") is not None:
            check_value(update["Value"])


def _key_value(av: dict):
    ((tag, v),) = av.items()
    return tag, (_raw_binary(v) if tag == "B" else Decimal(v) if tag == "N" else v)


def _check_distinct_keys(requests, table) -> None:
    """A BatchWriteItem may write each item of a table once: two puts, or a put and a delete, of one key are
    refused (compared by value: ``1`` and ``1.0`` are one key)."""
    if table is None or not isinstance(requests, list):
        return
    names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
    seen = set()
    for request in requests:
        if not isinstance(request, dict):
            continue
        inner = (request.get("PutRequest") or {}).get("Item") if "PutRequest" in request else (
            (request.get("DeleteRequest") or {}).get("Key"))
        if not isinstance(inner, dict):
            continue
        key = tuple(_key_value(inner[n]) for n in names)
        if key in seen:
            fail(DUPLICATE_KEYS)
        seen.add(key)


def check_request(action: str, body: dict, backend) -> None:
    """Every attribute value of a write request, before moto runs it."""
    if action == "PutItem":
        _check_put(body, backend)
    elif action in ("UpdateItem", "DeleteItem"):
        _check_keyed(body, backend)
    elif action == "BatchWriteItem":
        batches = body.get("RequestItems") or {}
        if sum(len(r) for r in batches.values() if isinstance(r, list)) > BATCH_WRITE_MAX:
            fail(TOO_MANY_WRITES)
        for table_name, requests in batches.items():
            for request in requests or []:
                if "PutRequest" in request:
                    _check_put({"TableName": table_name, **(request["PutRequest"] or {})}, backend)
                elif "DeleteRequest" in request:
                    _check_keyed({"TableName": table_name, **(request["DeleteRequest"] or {})}, backend)
            _check_distinct_keys(requests, _table(backend, table_name))
    elif action == "TransactWriteItems":
        for entry in body.get("TransactItems") or []:
            for kind, op in entry.items():
                if not isinstance(op, dict):
                    continue
                if kind == "Put":
                    _check_put(op, backend)
                elif kind in ("Update", "Delete", "ConditionCheck"):
                    _check_keyed(op, backend)


def check_read_request(action: str, body: dict, backend) -> None:
    """Keys of GetItem, BatchGetItem and TransactGetItems (the table's key attributes, of its types);
    values of Query and Scan (ExclusiveStartKey, ExpressionAttributeValues)."""
    keys: list[tuple[str, dict]] = []
    if action in ("Query", "Scan"):
        check_attributes(body.get("ExclusiveStartKey"))
        check_attributes(body.get("ExpressionAttributeValues"), "values")
    if action == "GetItem":
        keys.append((body.get("TableName"), body.get("Key")))
    elif action == "BatchGetItem":
        for table_name, request in (body.get("RequestItems") or {}).items():
            keys += [(table_name, k) for k in (request or {}).get("Keys") or []]
    elif action == "TransactGetItems":
        keys += [((e.get("Get") or {}).get("TableName"), (e.get("Get") or {}).get("Key"))
                 for e in body.get("TransactItems") or [] if isinstance(e, dict)]
    for table_name, key in keys:
        if not isinstance(key, dict):
            continue
        check_attributes(key)
        table = _table(backend, table_name)
        if table is not None:
            check_key(key, table, item=False)
