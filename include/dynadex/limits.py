"""DynamoDB's item limits, counted as DynamoDB counts them: size and nesting depth.

Invariants:

* ``item_size`` is DynamoDB's size of an item (Developer Guide, "Item sizes
  and formats"): every attribute name's UTF-8 length plus its value's size;
  a string is its UTF-8 length, a number about one byte per two significant
  digits plus one, a binary its raw length, a map or list 3 bytes plus one
  per element. Binary values may be raw bytes (boto3's shape) or base64 text.
* Nesting counts maps and lists: a top-level map or list is level 1;
  DynamoDB refuses an item with more than ``MAX_DEPTH`` (32) levels.
* ``check_item`` raises ``AttributeValueError`` naming the attribute path for
  an item DynamoDB could not hold (over 400 KB, deeper than 32 levels, a
  name over 64 KB). The
  emulator (``local_aws.validate``) counts with the same functions.
"""

from __future__ import annotations

import base64
import binascii
import re
from decimal import Decimal, InvalidOperation

from dynadex.errors import AttributeValueError
from dynadex.types import child_path

MAX_ITEM_BYTES = 400 * 1024  # "400 KB": names and values included
MAX_DEPTH = 32  # nested levels of maps and lists
MAX_NAME_BYTES = 65535  # attribute names are 1 byte to 64 KB
_TAGS = ("S", "N", "B", "SS", "NS", "BS", "M", "L", "NULL", "BOOL")
_PLAIN_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")  # no exponent: its significant digits are its digits


def _binary_size(v) -> int:
    if isinstance(v, (bytes, bytearray)):
        return len(v)
    try:
        return len(base64.b64decode(v, validate=True))
    except (binascii.Error, ValueError, TypeError):
        return len(str(v).encode())


def _number_size(text) -> int:
    if type(text) is str and _PLAIN_NUMBER.fullmatch(text):  # the common case, without a Decimal
        digits = text.lstrip("-").replace(".", "").strip("0") or "0"
        return (len(digits) + 1) // 2 + 1
    try:
        value = Decimal(str(text))
    except InvalidOperation:
        value = None
    if value is not None and value.is_finite():
        digits = "".join(map(str, value.as_tuple().digits)).strip("0") or "0"
    else:
        digits = str(text).lstrip("-").replace(".", "").strip("0") or "0"
    return (len(digits) + 1) // 2 + 1


def value_size(av: dict) -> int:
    """DynamoDB's size of one attribute value."""
    if len(av) == 1:  # the common case: one tag, read without a generator
        for tag, v in av.items():
            pass
    else:
        ((tag, v),) = ((t, x) for t, x in av.items() if t in _TAGS and x is not None)
    if tag == "S":
        return len(v) if v.isascii() else len(v.encode())
    if tag == "N":
        return _number_size(v)
    if tag == "M":
        total = 3
        for k, x in v.items():
            total += (len(k) if k.isascii() else len(k.encode())) + value_size(x) + 1
        return total
    if tag == "L":
        total = 3
        for x in v:
            total += value_size(x) + 1
        return total
    if tag == "B":
        return _binary_size(v)
    if tag in ("BOOL", "NULL"):
        return 1
    if tag == "SS":
        return sum(len(m.encode()) for m in v)
    if tag == "NS":
        return sum(_number_size(m) for m in v)
    return sum(_binary_size(m) for m in v)  # BS


def item_size(image: dict) -> int:
    """Bytes DynamoDB counts for an item: every attribute name (UTF-8) plus its value."""
    total = 0
    for k, v in image.items():
        total += (len(k) if k.isascii() else len(k.encode())) + value_size(v)
    return total


def _too_deep(av: dict, level: int) -> list | None:
    """The path (innermost first) to the first map or list at a level past MAX_DEPTH below the map or list
    ``av`` at ``level``, else None. Scalars are never entered: the walk costs one test per value."""
    if level > MAX_DEPTH:
        return []
    if "M" in av:
        children = av["M"].items() if type(av["M"]) is dict else ()
    else:
        children = enumerate(av["L"]) if type(av.get("L")) is list else ()
    for name, x in children:
        if type(x) is dict and ("M" in x or "L" in x):
            found = _too_deep(x, level + 1)
            if found is not None:
                found.append(name)
                return found
    return None


def _path(parts: list) -> str:
    path = ""
    for p in reversed(parts):
        path = f"{path}[{p}]" if isinstance(p, int) else child_path(path, p)
    return path


def _long_name(attrs: dict, path: str) -> str | None:
    """The path of the first attribute or map field name longer than MAX_NAME_BYTES, else None."""
    for name, av in attrs.items():
        if len(name) > MAX_NAME_BYTES // 4 and len(name.encode()) > MAX_NAME_BYTES:
            return child_path(path, name[:20] + "...")
        if type(av) is not dict:
            continue
        if type(av.get("M")) is dict:
            found = _long_name(av["M"], child_path(path, name))
        elif type(av.get("L")) is list:
            found = next((f for i, x in enumerate(av["L"]) if (f := _long_name({f"[{i}]": x}, "")) is not None), None)
            found = None if found is None else child_path(path, name) + found
        else:
            found = None
        if found is not None:
            return found
    return None


def check_item(item: dict, *, size: bool = True, nesting: bool = True, names: bool = True) -> None:
    """Refuse an item (canonical DynamoDB JSON) that DynamoDB could not hold (any check may be skipped by a
    caller that knows it passes)."""
    if names:
        found = _long_name(item, "")
        if found is not None:
            raise AttributeValueError(found, f"attribute name longer than DynamoDB's {MAX_NAME_BYTES} bytes")
    for name, av in item.items():
        if nesting and type(av) is dict and ("M" in av or "L" in av):
            found = _too_deep(av, 1)
            if found is not None:
                raise AttributeValueError(_path(found + [name]),
                                          f"nesting deeper than DynamoDB's {MAX_DEPTH} levels of maps and lists")
    total = item_size(item) if size else 0
    if total > MAX_ITEM_BYTES:
        raise AttributeValueError("", f"item is {total} bytes; DynamoDB's maximum item size is {MAX_ITEM_BYTES} "
                                      "bytes (400 KB, names and values)")
