"""Stream images (boto3's GetRecords shape) -> canonical items, on the stream's hot path.

Invariant: ``canonical_image(item)`` returns exactly what
``dynadex.types.canonical_item(item)`` returns, and raises exactly what it
raises, for every input. It only takes the common shapes faster (one loop
with the type tests inlined, no call per scalar): S and N values that are
already canonical, raw-bytes B (boto3 hands binaries as bytes), B text that
is already canonical base64 (the wire's, as the lean GetRecords hands it), BOOL, NULL,
maps and lists of those, string sets of distinct members. Whenever an
attribute holds anything else (a set to sort or check, a number to rewrite,
base64 text, a bad value), that whole top-level attribute goes through
``types.canonical``, which owns every rule and every error message.
"""

from __future__ import annotations

import base64
import binascii

from dynadex.types import PLAIN_DEC, PLAIN_INT, digits_ok, canonical, canonical_item

_b64 = base64.b64encode  # standard, padded: what the reference writes
_a2b = binascii.a2b_base64
_plain_int = PLAIN_INT.fullmatch
_plain_dec = PLAIN_DEC.fullmatch


class _Other(Exception):
    """Raised inside the fast walk: this attribute is not of a common shape; the reference code takes it."""


_OTHER = _Other()
"""One instance for every raise (cheaper than a new one each time). Each raise goes ``with_traceback(None)``:
an exception instance raised again adds its new traceback on top of the one it carries, so the single
instance held every traceback ever raised, and through them every frame and the values it walked (a
10 000-record batch whose binaries came base64 from the wire left ~18 000 frames and their dicts alive for
good; the sync's minute-wise full collection then walked 2 M objects for 8 s)."""
_STR_ONLY = {str}


def _value(av):
    """The canonical form of one attribute value of a common shape; raises ``_Other`` for anything else."""
    if type(av) is not dict or len(av) != 1:
        raise _OTHER.with_traceback(None)
    for tag, value in av.items():
        pass
    if tag == "S":
        if type(value) is str:
            return av
    elif tag == "N":
        if type(value) is str and (_plain_int(value) or (_plain_dec(value) and digits_ok(value))):
            return av
    elif tag == "M":
        if type(value) is dict:
            out = {}
            for k, v in value.items():
                out[k] = _value(v)
            return {"M": out}
    elif tag == "B":
        if type(value) is bytes:
            return {"B": _b64(value).decode("ascii")}
        if type(value) is str:
            # canonical base64 (what it decodes to re-encodes to the same text): the reference returns it as it
            # is; anything else (padding, line breaks, other characters) is the reference's to decide
            try:
                if _b64(_a2b(value)).decode("ascii") == value:
                    return av
            except (binascii.Error, ValueError):
                pass
    elif tag == "L":
        if type(value) is list:
            return {"L": list(map(_value, value))}
    elif tag == "BOOL":
        if value is True or value is False:
            return av
    elif tag == "NULL":
        if value is True:
            return av
    elif tag == "SS":
        # strings only (C-speed tests), distinct: sorted, as the reference sorts them
        if type(value) is list and value and set(map(type, value)) == _STR_ONLY and len(set(value)) == len(value):
            return {"SS": sorted(value)}
    raise _OTHER.with_traceback(None)


def canonical_image(item):
    """``types.canonical_item(item)``, faster on the shapes stream records carry."""
    if type(item) is not dict or "" in item:
        return canonical_item(item)  # raises its error
    out = {}
    for name, av in item.items():
        try:
            out[name] = _value(av)
        except _Other:
            out[name] = canonical(av, name)  # the reference: its form, or its error naming the path
        except RecursionError:  # the fast walk spends more stack per level: the reference decides
            out[name] = canonical(av, name)
    return out
