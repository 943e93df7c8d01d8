"""Random DynamoDB values, items and stream records in boto3's GetRecords shape (raw bytes for B, datetimes):
every type, nested maps and lists, sets, numbers at DynamoDB's limits and in non-canonical spellings, deletes,
TTL removes, stale records, the same key several times in one batch, columns that must overflow."""

from __future__ import annotations

import datetime as dt
import random
import string

from dynadex.types import AttributeValueError, canonical_item

TEXT = string.ascii_letters + string.digits + " .[]\\\"'\n\t\x00\x1f\x7fé☃日本\U0001F600\u2028"


def rand_text(rnd: random.Random, n: int = 8) -> str:
    return "".join(rnd.choice(TEXT) for _ in range(rnd.randrange(n)))


def rand_number(rnd: random.Random, ints_only: bool = False) -> str:
    if ints_only:
        return str(rnd.randrange(-10**6, 10**6))
    return rnd.choice([
        lambda: str(rnd.randrange(-10**12, 10**12)),
        lambda: f"{rnd.randrange(-10**6, 10**6)}.{rnd.randrange(1, 10**4)}",
        lambda: str(rnd.randrange(10**37, 10**38)),  # 38 digits
        lambda: "-" + str(rnd.randrange(10**37, 10**38)) + "." + "5",  # 39 digits: not a valid... kept below
        lambda: "1E-130", lambda: "9.9999999999999999999999999999999999999E+125", lambda: "0.000001",
        lambda: "1.500", lambda: "007", lambda: "+5", lambda: "-0", lambda: "1e3", lambda: ".5", lambda: "0",
    ])()


def valid_number(rnd: random.Random, ints_only: bool = False) -> str:
    while True:
        text = rand_number(rnd, ints_only)
        try:
            canonical_item({"n": {"N": text}})
            return text
        except AttributeValueError:
            continue


def rand_value(rnd: random.Random, depth: int = 0, ints_only: bool = False) -> dict:
    kinds = ["S", "N", "B", "BOOL", "NULL", "SS", "NS", "BS"] + (["M", "L"] if depth < 3 else [])
    kind = rnd.choice(kinds)
    if kind == "S":
        return {"S": rand_text(rnd)}
    if kind == "N":
        return {"N": valid_number(rnd, ints_only)}
    if kind == "B":
        return {"B": rnd.randbytes(rnd.randrange(0, 9))}
    if kind == "BOOL":
        return {"BOOL": rnd.random() < 0.5}
    if kind == "NULL":
        return {"NULL": True}
    if kind == "SS":
        return {"SS": list({rand_text(rnd) + str(i): None for i in range(rnd.randrange(1, 5))})}
    if kind == "NS":
        members = {}
        for _ in range(rnd.randrange(1, 5)):
            text = valid_number(rnd)
            members.setdefault(canonical_item({"n": {"N": text}})["n"]["N"], text)  # distinct by value
        return {"NS": list(members.values())}
    if kind == "BS":
        return {"BS": list({rnd.randbytes(rnd.randrange(1, 6)): None for _ in range(rnd.randrange(1, 4))})}
    if kind == "M":
        return {"M": {rand_text(rnd, 4): rand_value(rnd, depth + 1) for _ in range(rnd.randrange(0, 4))}}
    return {"L": [rand_value(rnd, depth + 1) for _ in range(rnd.randrange(0, 4))]}


def key_of(k: int, composite: bool) -> dict:
    if composite:  # pk N + sk B
        return {"pk": {"N": str(k % 7)}, "sk": {"B": k.to_bytes(2, "big") + b"\xff"}}
    return {"pk": {"S": f"k{k:04d}"}}


def rand_key(rnd: random.Random, composite: bool, pool: int) -> dict:
    return key_of(rnd.randrange(pool), composite)


def rand_image(rnd: random.Random, keys: dict, first_batch: bool) -> dict:
    image = dict(keys)
    # a path that holds small integers in the first batch and anything later: its BIGINT column overflows
    image["count"] = {"N": valid_number(rnd, ints_only=first_batch)}
    image["city"] = {"S": rnd.choice(["Paris", "Rome", "Oslo", "Zürich"])}
    for _ in range(rnd.randrange(0, 6)):
        image[rnd.choice(["a", "b", "c.d", "e[0]", "Upper", "upper", "_key", "日本", rand_text(rnd, 3) or "z"])] = (
            rand_value(rnd, ints_only=first_batch))
    return image


def rand_records(rnd: random.Random, n: int, batch: int, composite: bool, pool: int) -> list[dict]:
    out = []
    for i in range(n):
        keys = rand_key(rnd, composite, pool)
        roll = rnd.random()
        # mostly forward in time; now and then a record from long before (stale against what is stored)
        second = 1_800_000_000 + batch * 100 + i // 10 - (1000 if roll > 0.95 else 0)
        dyn = {"ApproximateCreationDateTime": dt.datetime.fromtimestamp(second, dt.timezone.utc),
               "Keys": keys, "SequenceNumber": f"{batch:04d}{i:08d}", "SizeBytes": 100, "StreamViewType": "NEW_IMAGE"}
        record = {"eventID": f"{batch}-{i}", "eventVersion": "1.1", "eventSource": "aws:dynamodb", "dynamodb": dyn}
        if roll < 0.15:
            record["eventName"] = "REMOVE"
            if roll < 0.05:  # a TTL delete
                record["userIdentity"] = {"PrincipalId": "dynamodb.amazonaws.com", "Type": "Service"}
        else:
            record["eventName"] = rnd.choice(["INSERT", "MODIFY"])
            dyn["NewImage"] = rand_image(rnd, keys, batch == 0)
        out.append(record)
    return out


def wire_page(records: list[dict], *, ascii_only: bool = False) -> bytes:
    """``records`` (boto3's GetRecords shapes: datetimes, raw bytes) as the JSON a GetRecords answer carries:
    creation times in epoch seconds, binaries in base64, compact and UTF-8 as DynamoDB Streams writes it
    (``ascii_only``: every non-ASCII character escaped, as some emulators write)."""
    import json

    from dynadex.aws import from_client

    out = []
    for record in records:
        dyn = dict(record["dynamodb"])
        when = dyn["ApproximateCreationDateTime"]
        dyn["ApproximateCreationDateTime"] = when.timestamp() if hasattr(when, "timestamp") else when
        for part in ("Keys", "NewImage", "OldImage"):
            if part in dyn:
                dyn[part] = from_client(dyn[part])
        out.append({**record, "dynamodb": dyn})
    return json.dumps({"Records": out}, separators=(",", ":"), ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
