"""One data line of an export -> one record.

Invariant: a full-export line yields the item (canonical DynamoDB JSON) and
nothing else; an incremental line yields its keys, its new image (``None``
for a delete) and its write time in microseconds. DYNAMODB_JSON and ION lines
of the same item yield equal records. A line that is not a valid record
raises ``MalformedLine`` naming the file, the line number and, for a bad
attribute, its path. So does an item DynamoDB could not hold (over 400 KB,
deeper than 32 levels, a name over 64 KB: ``dynadex.limits``), checked
exactly only for lines long or nested enough to hold one (``_within_limits``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal

from dynadex.errors import AttributeValueError, MalformedLine
from dynadex.limits import MAX_DEPTH, MAX_ITEM_BYTES, MAX_NAME_BYTES, check_item
from dynadex.types import canonical_item, item_from_ion


@dataclass(frozen=True)
class Record:
    item: dict | None  # canonical new image / item; None for a delete
    keys: dict | None = None  # incremental exports only
    write_micros: int | None = None  # incremental exports only
    old_image: dict | None = None


def _write_micros(meta: object, where: str, line: int) -> int:
    if not isinstance(meta, dict) or "WriteTimestampMicros" not in meta:
        raise MalformedLine(where, "Metadata.WriteTimestampMicros is missing", line)
    value = meta["WriteTimestampMicros"]
    if isinstance(value, dict) and set(value) == {"N"}:
        value = value["N"]
    try:
        if isinstance(value, bool):
            raise ValueError
        micros = int(Decimal(str(value)))
    except Exception as exc:
        raise MalformedLine(where, f"WriteTimestampMicros {value!r} is not a number", line) from exc
    return micros


def _from_obj(obj: object, where: str, line: int, ion: bool = False) -> Record:
    convert = (lambda v: item_from_ion(v)) if ion else canonical_item
    if not isinstance(obj, dict):
        raise MalformedLine(where, "a line must hold one object", line)
    try:
        if "Item" in obj:
            if len(obj) != 1:
                extra = sorted(k for k in obj if k != "Item")
                raise MalformedLine(where, f"unexpected field(s) {extra} beside Item", line)
            return Record(item=convert(obj["Item"]))
        if "Keys" in obj:
            micros = _write_micros(obj.get("Metadata"), where, line)
            new = obj.get("NewImage")
            old = obj.get("OldImage")
            return Record(
                item=convert(new) if new is not None else None,
                keys=convert(obj["Keys"]),
                write_micros=micros,
                old_image=convert(old) if old is not None else None,
            )
    except AttributeValueError as exc:
        raise MalformedLine(where, str(exc), line) from exc
    raise MalformedLine(where, f"expected 'Item' or 'Keys', got fields {sorted(obj)}", line)


def _within_limits(record: Record, text: str | bytes, ion: bool, where: str, line: int) -> Record:
    """Check the record's images against DynamoDB's limits where the line could break them: a line's
    bytes bound its item's size (twice them for Ion, whose numbers may be shorter than DynamoDB counts
    them), an item nested deeper than 32 levels opens more than 32 braces and brackets in Ion, more
    than 64 in DynamoDB JSON (two per map or list value: the value's and the map's or list's own), and
    a name over 64 KB needs a line over 64 KB."""
    raw = text.encode() if isinstance(text, str) else text
    size = len(raw) * (2 if ion else 1) > MAX_ITEM_BYTES
    nesting = raw.count(b"{") + raw.count(b"[") > MAX_DEPTH * (1 if ion else 2)
    names = len(raw) > MAX_NAME_BYTES
    if size or nesting or names:
        for image in (record.item, record.old_image):
            if image is not None:
                try:
                    check_item(image, size=size, nesting=nesting, names=names)
                except AttributeValueError as exc:
                    raise MalformedLine(where, str(exc), line) from exc
    return record


def parse_json_line(text: str | bytes, where: str, line: int) -> Record:
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "msg", str(exc))
        raise MalformedLine(where, f"not valid JSON: {reason}", line) from exc
    record = _from_obj(obj, where, line)
    return _within_limits(record, text, False, where, line)


# amazon-ion's C reader refuses a text value (string, symbol, blob) longer than its default buffer (about
# 16 KB: IERR_BUFFER_TOO_SMALL, IERR_TOKEN_TOO_LONG, IERR_LOOKAHEAD_OVERFLOW), while DynamoDB allows 400 KB
# strings and 64 KB names. No value of a line is longer than the line, so a line past the default gets a
# buffer of its own length; shorter lines keep the default (a larger buffer costs every call an allocation).
ION_DEFAULT_BUFFER = 16_000


def _ion_buffer(text: str | bytes) -> int | None:
    return len(text) * (4 if isinstance(text, str) else 1) if len(text) > ION_DEFAULT_BUFFER else None


def parse_ion_line(text: str | bytes, where: str, line: int) -> Record:
    from amazon.ion import simpleion

    try:
        obj = simpleion.loads(text, single_value=True, text_buffer_size_limit=_ion_buffer(text))
    except Exception as exc:  # amazon-ion raises several unrelated types
        raise MalformedLine(where, f"not valid Ion: {exc}", line) from exc
    record = _from_obj(_ion_fields(obj, where, line), where, line, ion=True)
    return _within_limits(record, text, True, where, line)


def _ion_fields(obj: object, where: str, line: int) -> dict:
    from amazon.ion.core import IonType

    if getattr(obj, "ion_type", None) is not IonType.STRUCT:
        raise MalformedLine(where, "a line must hold one Ion struct", line)
    out = {}
    for k, v in obj.items():
        if k == "Metadata":
            meta = {mk: (str(mv) if getattr(mv, "ion_type", None) is not None else mv) for mk, mv in v.items()}
            out[k] = meta
        else:
            out[k] = v
    return out


def parser_for(output_format: str):
    return parse_ion_line if output_format == "ION" else parse_json_line
