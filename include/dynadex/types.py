"""DynamoDB attribute values <-> Python values, exact and lossless.

Invariants:

* ``decode(encode(v)) == v`` for every Python value DynamoDB can hold, and
  ``encode(decode(av)) == canonical(av)`` for every valid attribute value.
* Numbers never pass through ``float``: ``N`` is an exact ``Decimal`` with at
  most 38 significant digits and a magnitude between 1E-130 and
  9.9999999999999999999999999999999999999E+125 (or zero).
* ``canonical(av)`` is the one form used for storage and comparison: numbers
  written the way DynamoDB returns them (plain notation, no leading or
  trailing zeros, no ``-0``), set members sorted (strings by code point,
  numbers by value, binaries by bytes), base64 in its standard padded form.
  ``canonical_json`` adds sorted map keys and compact separators, so two items
  are equal exactly when their canonical JSON texts are equal.
* Anything that is not a valid attribute value raises ``AttributeValueError``
  (a ``ValueError``) whose message names the attribute path.

Python model: S -> str, N -> Decimal, B -> bytes, BOOL -> bool, NULL -> None,
M -> dict, L -> list, SS/NS/BS -> set of str/Decimal/bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from dynadex.errors import AttributeValueError

__all__ = [
    "TYPE_TAGS",
    "parse_number",
    "format_number",
    "canonical_number",
    "decode",
    "decode_item",
    "encode",
    "encode_item",
    "canonical",
    "canonical_item",
    "canonical_json",
    "child_path",
    "item_from_ion",
]

TYPE_TAGS = ("S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS")
MAX_DIGITS = 38
MIN_EXPONENT = -130  # adjusted exponent of the smallest magnitude, 1E-130
MAX_EXPONENT = 125  # adjusted exponent of the largest magnitude, 9.99..E+125

_NUMBER_TEXT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
# Already canonical numbers need no Decimal work: the common case in exports (DynamoDB writes them so).
# Integers up to 38 digits, and decimals with at most 38 significant digits, no trailing zero and a
# magnitude well inside the range (at most 38 integer digits; at least 1E-92 as a fraction).
PLAIN_INT = re.compile(r"-?[1-9]\d{0,37}|0")
PLAIN_DEC = re.compile(r"-?(?:[1-9]\d{0,36}\.\d{0,36}[1-9]|0\.0{0,90}[1-9](?:\d{0,35}[1-9])?)")


def child_path(path: str, key: str) -> str:
    """The path of map entry ``key`` below ``path``."""
    return f"{path}.{key}" if path else key


def _describe(value: Any) -> str:
    text = json.dumps(value, default=repr, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


# --------------------------------------------------------------------- numbers


def parse_number(text: Any, path: str = "") -> Decimal:
    """Parse a DynamoDB number (a string, or a Decimal from Ion) exactly.

    Returns the normalised Decimal (no trailing zeros, zero without sign).
    """
    if isinstance(text, Decimal):
        value = text
        if not value.is_finite():
            raise AttributeValueError(path, f"number {text} is not finite")
    else:
        if type(text) is not str:
            raise AttributeValueError(path, f"N must be a string, got {_describe(text)}")
        if not _NUMBER_TEXT.fullmatch(text):
            raise AttributeValueError(path, f"N {_describe(text)} is not a number")
        try:
            value = Decimal(text)
        except InvalidOperation as exc:  # pragma: no cover - the regex admits only numbers
            raise AttributeValueError(path, f"N {_describe(text)} is not a number") from exc
    if value.is_zero():
        return Decimal(0)
    sign, digits, exponent = value.as_tuple()
    # Strip trailing zeros into the exponent (Decimal keeps them significant).
    end = len(digits)
    while digits[end - 1] == 0:
        end -= 1
    exponent += len(digits) - end
    digits = digits[:end]
    if len(digits) > MAX_DIGITS:
        raise AttributeValueError(
            path, f"number {_short(text)} has {len(digits)} significant digits; DynamoDB allows {MAX_DIGITS}"
        )
    adjusted = exponent + len(digits) - 1
    if adjusted < MIN_EXPONENT or adjusted > MAX_EXPONENT:
        raise AttributeValueError(
            path, f"number {_short(text)} is out of DynamoDB's range (magnitude 1E-130 to 9.99...E+125)"
        )
    return Decimal((sign, digits, exponent))


def _short(text: Any) -> str:
    text = str(text)
    return text if len(text) <= 50 else text[:47] + "..."


def format_number(value: Decimal) -> str:
    """The text DynamoDB returns for a normalised number: plain notation."""
    return format(value, "f")


def canonical_number(text: Any, path: str = "") -> str:
    """Validate a DynamoDB number and return its canonical text."""
    if type(text) is str and (PLAIN_INT.fullmatch(text) or (PLAIN_DEC.fullmatch(text) and digits_ok(text))):
        return text
    return format(parse_number(text, path), "f")


def digits_ok(text: str) -> bool:
    """At most 38 significant digits (the regex bounds the parts, not their sum)."""
    body = text.lstrip("-").replace(".", "").lstrip("0")
    return len(body) <= MAX_DIGITS


# ---------------------------------------------------------------------- binary


def _b64decode(text: Any, path: str) -> bytes:
    if type(text) is not str:
        raise AttributeValueError(path, f"B must be a base64 string, got {_describe(text)}")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AttributeValueError(path, f"B {_describe(text)} is not valid base64") from exc


def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


# ---------------------------------------------------------------------- decode


def _one_tag(av: Any, path: str) -> tuple[str, Any]:
    if type(av) is not dict or len(av) != 1:
        raise AttributeValueError(
            path, f"expected an attribute value with exactly one type tag, got {_describe(av)}"
        )
    ((tag, value),) = av.items()
    return tag, value


def _check_bool(value: Any, path: str) -> None:
    if type(value) is not bool:
        raise AttributeValueError(path, f"BOOL must be true or false, got {_describe(value)}")


def _check_null(value: Any, path: str) -> None:
    if value is not True:
        raise AttributeValueError(path, f"NULL must be true, got {_describe(value)}")


def _set_members(value: Any, tag: str, path: str) -> list:
    if type(value) is not list:
        raise AttributeValueError(path, f"{tag} must be a list, got {_describe(value)}")
    if not value:
        raise AttributeValueError(path, f"{tag} must not be empty (DynamoDB has no empty sets)")
    return value


def decode(av: Any, path: str = "") -> Any:
    """One attribute value in DynamoDB JSON -> its Python value."""
    tag, value = _one_tag(av, path)
    if tag == "S":
        if type(value) is not str:
            raise AttributeValueError(path, f"S must be a string, got {_describe(value)}")
        return value
    if tag == "N":
        return parse_number(value, path)
    if tag == "M":
        if type(value) is not dict:
            raise AttributeValueError(path, f"M must be an object, got {_describe(value)}")
        return {k: decode(v, child_path(path, k)) for k, v in value.items()}
    if tag == "L":
        if type(value) is not list:
            raise AttributeValueError(path, f"L must be a list, got {_describe(value)}")
        return [decode(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if tag == "BOOL":
        _check_bool(value, path)
        return value
    if tag == "NULL":
        _check_null(value, path)
        return None
    if tag == "B":
        return _b64decode(value, path)
    if tag == "SS":
        members = _set_members(value, tag, path)
        for m in members:
            if type(m) is not str:
                raise AttributeValueError(path, f"SS member {_describe(m)} is not a string")
        return _unique(members, members, tag, path)
    if tag == "NS":
        members = _set_members(value, tag, path)
        return _unique([parse_number(m, path) for m in members], members, tag, path)
    if tag == "BS":
        members = _set_members(value, tag, path)
        return _unique([_b64decode(m, path) for m in members], members, tag, path)
    raise AttributeValueError(path, f"unknown type tag {tag!r} (expected one of {', '.join(TYPE_TAGS)})")


def _unique(values: list, raw: list, tag: str, path: str) -> set:
    result = set(values)
    if len(result) != len(values):
        raise AttributeValueError(path, f"{tag} {_describe(raw)} holds duplicate members")
    return result


def decode_item(item: Any) -> dict:
    """A whole item (attribute name -> attribute value) -> dict of Python values."""
    if type(item) is not dict:
        raise AttributeValueError("", f"an item must be an object, got {_describe(item)}")
    return {name: decode(av, name) for name, av in item.items()}


# ---------------------------------------------------------------------- encode


def encode(value: Any, path: str = "") -> dict:
    """A Python value -> its canonical attribute value in DynamoDB JSON."""
    if value is None:
        return {"NULL": True}
    if value is True or value is False:
        return {"BOOL": value}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, (int, Decimal)):
        return {"N": format_number(parse_number(Decimal(value), path))}
    if isinstance(value, float):
        raise AttributeValueError(path, f"float {value!r} is not exact: use Decimal or int")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"B": _b64encode(bytes(value))}
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise AttributeValueError(path, f"map key {k!r} is not a string")
            out[k] = encode(v, child_path(path, k))
        return {"M": out}
    if isinstance(value, (list, tuple)):
        return {"L": [encode(v, f"{path}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, (set, frozenset)):
        return _encode_set(value, path)
    raise AttributeValueError(path, f"{type(value).__name__} {value!r} has no DynamoDB type")


def _encode_set(value: set | frozenset, path: str) -> dict:
    if not value:
        raise AttributeValueError(path, "empty set: DynamoDB has no empty sets")
    if all(isinstance(m, str) for m in value):
        return {"SS": sorted(value)}
    if all(isinstance(m, (int, Decimal)) and not isinstance(m, bool) for m in value):
        numbers = sorted(parse_number(Decimal(m), path) for m in value)
        if len(set(numbers)) != len(numbers):
            raise AttributeValueError(path, "number set holds equal members")
        return {"NS": [format_number(n) for n in numbers]}
    if all(isinstance(m, (bytes, bytearray)) for m in value):
        return {"BS": [_b64encode(bytes(m)) for m in sorted(bytes(m) for m in value)]}
    raise AttributeValueError(path, "a set must hold only strings, only numbers or only binaries")


def encode_item(item: dict) -> dict:
    """A dict of Python values -> an item in canonical DynamoDB JSON."""
    if not isinstance(item, dict):
        raise AttributeValueError("", f"an item must be a dict, got {type(item).__name__}")
    return {name: encode(v, name) for name, v in item.items()}


# ------------------------------------------------------------------- canonical


def _join(key: str, sub: str) -> str:
    """``key`` followed by the path below it, as ``child_path`` would have built it."""
    if not sub:
        return key
    return f"{key}{sub}" if sub.startswith("[") else f"{key}.{sub}"


def _suffix(sub: str) -> str:
    if not sub:
        return ""
    return sub if sub.startswith("[") else f".{sub}"


def canonical(av: Any, path: str = "") -> dict:
    """Validate one attribute value and return its canonical form.

    B and BS values may also be raw bytes (boto3's client shape); the result is always DynamoDB JSON.
    Values already canonical are returned as they are (the common case costs one type test).
    """
    if type(av) is not dict or len(av) != 1:
        _one_tag(av, path)  # raises
    for tag, value in av.items():
        pass
    if tag == "S":
        if type(value) is not str:
            raise AttributeValueError(path, f"S must be a string, got {_describe(value)}")
        return av
    if tag == "N":
        if type(value) is str and (PLAIN_INT.fullmatch(value) or (PLAIN_DEC.fullmatch(value) and digits_ok(value))):
            return av
        return {"N": canonical_number(value, path)}
    if tag == "M":
        if type(value) is not dict:
            raise AttributeValueError(path, f"M must be an object, got {_describe(value)}")
        out = {}
        try:
            for k, v in value.items():
                out[k] = canonical(v)
        except AttributeValueError as exc:  # name the full path; computed only when something is wrong
            # the same error, its path one level longer: chained from what the innermost one was chained from
            # (the base64 or Decimal error), not from each shorter-path copy of itself, one per level
            raise AttributeValueError(child_path(path, _join(k, exc.path)), exc.reason) from exc.__cause__
        return {"M": out}
    if tag == "L":
        if type(value) is not list:
            raise AttributeValueError(path, f"L must be a list, got {_describe(value)}")
        out_list = []
        try:
            for v in value:
                out_list.append(canonical(v))
        except AttributeValueError as exc:  # the same error one level up, chained as in M above
            raise AttributeValueError(f"{path}[{len(out_list)}]" + _suffix(exc.path), exc.reason) from exc.__cause__
        return {"L": out_list}
    if tag == "SS":
        members = _set_members(value, tag, path)
        for m in members:
            if type(m) is not str:
                raise AttributeValueError(path, f"SS member {_describe(m)} is not a string")
        ordered = sorted(members)
        for a, b in zip(ordered, ordered[1:]):
            if a == b:
                raise AttributeValueError(path, f"SS {_describe(members)} holds duplicate members")
        return {"SS": ordered}
    if tag == "NS":
        members = _set_members(value, tag, path)
        texts = [canonical_number(m, path) for m in members]
        ordered = sorted(texts, key=Decimal)
        for a, b in zip(ordered, ordered[1:]):
            if a == b:
                raise AttributeValueError(path, f"NS {_describe(members)} holds duplicate members")
        return {"NS": ordered}
    if tag == "B":
        if isinstance(value, (bytes, bytearray)):  # boto3 client shape: raw bytes
            return {"B": _b64encode(bytes(value))}
        raw = _b64decode(value, path)
        return av if len(value) % 4 == 0 and base64.b64encode(raw).decode("ascii") == value else {"B": _b64encode(raw)}
    if tag == "BOOL":
        _check_bool(value, path)
        return av
    if tag == "NULL":
        _check_null(value, path)
        return av
    if tag == "BS":
        if type(value) is list and any(isinstance(m, (bytes, bytearray)) for m in value):  # boto3 client shape
            value = [_b64encode(bytes(m)) if isinstance(m, (bytes, bytearray)) else m for m in value]
        return encode(decode({"BS": value}, path), path)
    raise AttributeValueError(path, f"unknown type tag {tag!r} (expected one of {', '.join(TYPE_TAGS)})")


def canonical_item(item: Any) -> dict:
    """Validate an item and return it in canonical form."""
    if type(item) is not dict:
        raise AttributeValueError("", f"an item must be an object, got {_describe(item)}")
    if "" in item:
        raise AttributeValueError("", "an attribute name may not be empty (DynamoDB refuses it; map keys may be)")
    return {name: canonical(av, name) for name, av in item.items()}


def canonical_json(item: dict, *, validated: bool = False) -> str:
    """The canonical DynamoDB JSON text of an item (sorted keys, compact)."""
    if not validated:
        item = canonical_item(item)
    return _CANONICAL_ENCODE(item)


# json.dumps with options builds a new encoder per call; one shared encoder does the same work
_CANONICAL_ENCODE = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


# ------------------------------------------------------------------------- ION

_ION_SET_TAGS = {"$dynamodb_SS": "SS", "$dynamodb_NS": "NS", "$dynamodb_BS": "BS"}


def _from_ion(value: Any, path: str) -> dict:
    from amazon.ion.core import IonType
    from amazon.ion.simple_types import IonPyNull

    ion_type = getattr(value, "ion_type", None)
    # a typed null (null.string) is an IonPyNull whose ion_type is the type's: NULL too, not the text "<IonPyNull…>"
    if value is None or ion_type is IonType.NULL or isinstance(value, IonPyNull):
        return {"NULL": True}
    if ion_type is IonType.BOOL or isinstance(value, bool):
        return {"BOOL": bool(value)}
    if ion_type in (IonType.DECIMAL, IonType.INT):
        return {"N": format_number(parse_number(Decimal(value), path))}
    if ion_type in (IonType.STRING, IonType.SYMBOL):
        return {"S": str(value)}
    if ion_type in (IonType.BLOB, IonType.CLOB):
        return {"B": _b64encode(bytes(value))}
    if ion_type is IonType.STRUCT:
        out = {}
        for k, v in value.items():
            if k in out:
                raise AttributeValueError(path, f"map key {k!r} appears twice")
            out[k] = _from_ion(v, child_path(path, k))
        return {"M": out}
    if ion_type is IonType.LIST:
        annotations = [str(a.text if hasattr(a, "text") else a) for a in getattr(value, "ion_annotations", ())]
        set_tags = [_ION_SET_TAGS[a] for a in annotations if a in _ION_SET_TAGS]
        if set_tags:
            tag = set_tags[0]
            members = [_from_ion(m, f"{path}[{i}]") for i, m in enumerate(value)]
            inner = {"SS": "S", "NS": "N", "BS": "B"}[tag]
            raw = []
            for m in members:
                (mtag, mval), = m.items()
                if mtag != inner:
                    raise AttributeValueError(path, f"{tag} member of type {mtag}, expected {inner}")
                raw.append(mval)
            return encode(decode({tag: raw}, path), path)
        return {"L": [_from_ion(m, f"{path}[{i}]") for i, m in enumerate(value)]}
    if ion_type is IonType.FLOAT:
        raise AttributeValueError(path, f"Ion float {value!r} is not exact; DynamoDB writes numbers as decimals")
    raise AttributeValueError(path, f"Ion type {ion_type} has no DynamoDB type")


def item_from_ion(value: Any, path: str = "") -> dict:
    """An Ion struct (one item, already parsed) -> the item in canonical DynamoDB JSON."""
    from amazon.ion.core import IonType

    if getattr(value, "ion_type", None) is not IonType.STRUCT:
        raise AttributeValueError(path, "an Ion item must be a struct")
    av = _from_ion(value, path)
    return av["M"]
