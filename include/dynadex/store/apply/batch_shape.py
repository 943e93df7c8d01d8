"""A batch of upserts shaped for the three indexes in one pass: the stream apply's fast path.

Invariant: ``shape_batch(entries, ...)`` returns a ``Shaped`` equal, field by
field, to the one ``Shaped.add`` builds item by item (``store/layout/shape.py``, the
reference, which the Python chunk build still uses): the same keys, typed
key values, canonical item texts, columns (same (path, kind) entries, same
values, None where absent), number statistics and inverted entries in the
same order. tests/store/apply/test_fast_path.py holds the two equal on
batches with every type.

What makes it faster, all without changing a value:

* one walk per item writes straight into the batch's columns and inverted
  lists (the reference builds a per-item dict and list, then merges them);
* the path tuple and path text of each (parent, name) are computed once per
  batch, not once per value;
* the item text comes from msgspec's encoder with sorted keys, which writes
  the same bytes as ``canonical_json`` (same escapes, keys sorted by code
  point, compact); an item it cannot encode (a lone surrogate) takes the
  reference encoder;
* number statistics are folded per column at the end, over the column's
  values (the same fold the reference does value by value).
"""

from __future__ import annotations

import base64

from dynadex.store.errors import KeyError_
from dynadex.store.layout.names import child_text
from dynadex.store.layout.shape import NUMERIC_KINDS, NumberStats, Shaped, inverted_leaf, key_value, plain_value
from dynadex.types import canonical_json

try:
    import msgspec

    _encode = msgspec.json.Encoder(order="sorted").encode
except ImportError:  # pragma: no cover - msgspec is pinned (requirements.txt); without it, the reference encoder
    _encode = None

_b64decode = base64.b64decode


def item_text(item: dict) -> str:
    """``canonical_json(item, validated=True)``, through msgspec when it can."""
    if _encode is not None:
        try:
            return _encode(item).decode()
        except (UnicodeEncodeError, TypeError, OverflowError):
            pass
    return canonical_json(item, validated=True)


def shape_batch(entries, key_names: tuple[str, ...], key_types: tuple[str, ...] = ()) -> Shaped:
    """``entries``: (key text, canonical item, version, origin) in order -> the batch's ``Shaped``."""
    shaped = Shaped()
    keys, pks, sks, items, versions, origins = (shaped.keys, shaped.pk, shaped.sk, shaped.items, shaped.versions,
                                                shaped.origins)
    inv_path, inv_kind, inv_value, inv_key = shaped.inv_path, shaped.inv_kind, shaped.inv_value, shaped.inv_key
    columns = shaped.columns
    two = len(key_names) > 1
    pk_name = key_names[0]
    pk_type = key_types[0] if key_types else None
    sk_name = key_names[1] if two else None
    sk_type = key_types[1] if len(key_types) > 1 else None
    # (parent path text, name) -> (path tuple, path text, {kind: column list}); the top level by name alone
    slots: dict = {}
    top: dict = {}
    row = 0

    def column(cols: dict, path: tuple, kind: str) -> list:
        """The batch column of (path, kind), padded with None up to this row."""
        col = cols.get(kind)
        if col is None:
            col = columns.get((path, kind))
            if col is None:
                col = columns[(path, kind)] = []
            cols[kind] = col
        if len(col) < row:
            col.extend([None] * (row - len(col)))
        return col

    def put(path: tuple, text: str, cols: dict, av: dict, key: str) -> None:
        for tag, v in av.items():
            pass
        if tag == "S" or tag == "N":
            col = cols.get(tag)
            if col is None or len(col) != row:
                col = column(cols, path, tag)
            col.append(v)
            inv_path.append(text)
            inv_kind.append(tag)
            inv_value.append(v)
            inv_key.append(key)
        elif tag == "M":
            for name, child in v.items():
                slot = slots.get((text, name))
                if slot is None:
                    slot = slots[(text, name)] = (path + (name,), child_text(text, name), {})
                put(slot[0], slot[1], slot[2], child, key)
        elif tag == "BOOL":
            column(cols, path, tag).append(v)
            inv_path.append(text)
            inv_kind.append(tag)
            inv_value.append("true" if v else "false")
            inv_key.append(key)
        elif tag == "B":
            column(cols, path, tag).append(_b64decode(v))
            inv_path.append(text)
            inv_kind.append(tag)
            inv_value.append(v)
            inv_key.append(key)
        elif tag == "NULL":
            inv_path.append(text)
            inv_kind.append(tag)
            inv_value.append(None)
            inv_key.append(key)
        elif tag == "SS" or tag == "NS" or tag == "BS":
            kind = tag[0]
            column(cols, path, tag).append(v if kind != "B" else [_b64decode(m) for m in v])
            n = len(v)
            inv_path.extend([text] * n)
            inv_kind.extend([kind] * n)
            inv_value.extend(v)
            inv_key.extend([key] * n)
        elif tag == "L":
            column(cols, path, tag).append([plain_value(m) for m in v])
            leaves: list = []
            for m in v:
                inverted_leaf(leaves, text, m)
            for p, k, x in leaves:
                inv_path.append(p)
                inv_kind.append(k)
                inv_value.append(x)
            inv_key.extend([key] * len(leaves))

    for key, item, version, origin in entries:
        av = item[pk_name]
        for tag, value in av.items():
            pass
        if tag == "S" and (pk_type is None or pk_type == "S") and type(value) is str and len(av) == 1:
            pk = value
        else:
            pk = key_value(av, pk_name, pk_type)
        if two:
            sk = key_value(item[sk_name], sk_name, sk_type)
        row = len(keys)
        keys.append(key)
        pks.append(pk)
        if two:
            sks.append(sk)
        items.append(item_text(item))
        versions.append(version)
        origins.append(origin)
        for name, av in item.items():
            slot = top.get(name)
            if slot is None:
                slot = top[name] = ((name,), child_text("", name), {})
            for tag, v in av.items():
                pass
            if tag == "S" or tag == "N":  # the common case inline: put() would do exactly this
                col = slot[2].get(tag)
                if col is None or len(col) != row:
                    col = column(slot[2], slot[0], tag)
                col.append(v)
                inv_path.append(slot[1])
                inv_kind.append(tag)
                inv_value.append(v)
                inv_key.append(key)
            else:
                put(slot[0], slot[1], slot[2], av, key)

    stats = shaped.number_stats
    for (path, kind), values in columns.items():
        if kind in NUMERIC_KINDS:
            s = stats[(path, kind)] = NumberStats()
            add = s.add
            if kind == "N":
                for v in values:
                    if v is not None:
                        add(v)
            else:
                for vs in values:
                    if vs is not None:
                        for v in vs:
                            add(v)
    return shaped


def check_keys(item: dict, keys: dict, key_names: tuple[str, ...], key: str) -> None:
    """An upsert's item must carry the key it is filed under."""
    for k in key_names:
        if item.get(k) != keys.get(k):
            raise KeyError_(f"change for key {key} carries an item with another key")
