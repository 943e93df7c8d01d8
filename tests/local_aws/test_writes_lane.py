"""BatchWriteItem through the emulator's writes lane (decision 0038): a batch writes the table and the stream
exactly as its single calls would; the lane answers what moto's path answers, refusals included; the bulk
path applies many batches in one request, each as if sent alone."""

from __future__ import annotations

import http.client
import json
import random
import re
from urllib.parse import urlparse

import pytest
from botocore.exceptions import ClientError

from dynadex.local_aws.writes_lane import BULK_PATH
from tests.support.emulator import make_table
from tests.support.records import key_of, rand_image

pytestmark = [pytest.mark.emulator(stream_shards=2, rollover_records=9)]

AUTH = "AWS4-HMAC-SHA256 Credential=local/20261207/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=x"


def stream_records(aws, table: str) -> list[dict]:
    """Every record of the table's stream, shard after shard (parents first), each shard in its order."""
    ddb, st = aws.client("dynamodb"), aws.client("dynamodbstreams")
    arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shards, start = [], None
    while True:
        d = st.describe_stream(StreamArn=arn, **({"ExclusiveStartShardId": start} if start else {}))
        shards += d["StreamDescription"]["Shards"]
        start = d["StreamDescription"].get("LastEvaluatedShardId")
        if not start:
            break
    out = []
    for shard in shards:
        it = st.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                   ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        records = []
        while it:
            page = st.get_records(ShardIterator=it, Limit=1000)
            records += page["Records"]
            it = page.get("NextShardIterator") if page["Records"] else None
        seqs = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
        assert seqs == sorted(set(seqs)), f"sequence numbers of {shard['ShardId']} not increasing"
        if seqs:
            rng = shard["SequenceNumberRange"]
            assert int(rng["StartingSequenceNumber"]) <= seqs[0]
            assert "EndingSequenceNumber" not in rng or seqs[-1] <= int(rng["EndingSequenceNumber"])
        out += [{**r, "shard": shard["ShardId"], "parent": shard.get("ParentShardId")} for r in records]
    return out


def per_key(records: list[dict]) -> dict[str, list[dict]]:
    """Each key's records in stream order, stripped of what differs between two tables (ids, numbers, times)."""
    out: dict[str, list[dict]] = {}
    for r in sorted(records, key=lambda r: int(r["dynamodb"]["SequenceNumber"])):
        d = r["dynamodb"]
        assert d["ApproximateCreationDateTime"] is not None and r["eventID"]
        kept = {k: v for k, v in d.items() if k not in ("SequenceNumber", "ApproximateCreationDateTime")}
        out.setdefault(repr(sorted(d["Keys"].items())), []).append({"eventName": r["eventName"], **kept})
    return out


def scan(ddb, table: str) -> list[dict]:
    items, start = [], None
    while True:
        page = ddb.scan(TableName=table, **({"ExclusiveStartKey": start} if start else {}))
        items += page["Items"]
        start = page.get("LastEvaluatedKey")
        if not start:
            return sorted(items, key=lambda i: repr(sorted((k, i[k]) for k in ("pk", "sk") if k in i)))


def rounds(rnd: random.Random, composite: bool, seeded: dict[int, dict]) -> list[list[dict]]:
    """Batches of 25 distinct keys: new items, changed items, unchanged items, deletes of items and of missing
    keys. ``seeded`` (key number -> item) is what the tables hold; it is updated as the batches write."""
    out = []
    for n in range(4):
        reqs = []
        for k in rnd.sample(range(60), 25):
            keys = key_of(k, composite)
            roll = rnd.random()
            if roll < 0.25:
                reqs.append({"DeleteRequest": {"Key": keys}})
                seeded.pop(k, None)
            elif roll < 0.35 and k in seeded:
                reqs.append({"PutRequest": {"Item": seeded[k]}})  # the same image again: nothing recorded
            else:
                seeded[k] = rand_image(rnd, keys, first_batch=n == 0)
                reqs.append({"PutRequest": {"Item": seeded[k]}})
        out.append(reqs)
    return out


@pytest.mark.parametrize("composite,view", [(False, "NEW_AND_OLD_IMAGES"), (True, "NEW_AND_OLD_IMAGES"),
                                            (False, "KEYS_ONLY"), (True, "NEW_IMAGE"), (False, "OLD_IMAGE")])
def test_a_batch_writes_the_table_and_stream_its_single_calls_write(aws, composite, view):
    ddb = aws.client("dynamodb")
    rnd = random.Random(f"{composite}-{view}")
    sort = ("sk", "B") if composite else None
    key = ("pk", "N") if composite else ("pk", "S")
    name = f"{'C' if composite else 'S'}{view.replace('_', '')}"
    for table in (f"Batch{name}", f"Single{name}"):
        make_table(aws, table, key=key, sort=sort, stream=view)
    seeded: dict[int, dict] = {}
    for k in range(0, 60, 2):
        seeded[k] = rand_image(rnd, key_of(k, composite), first_batch=True)
        for table in (f"Batch{name}", f"Single{name}"):
            ddb.put_item(TableName=table, Item=seeded[k])
    for reqs in rounds(rnd, composite, seeded):
        answer = ddb.batch_write_item(RequestItems={f"Batch{name}": reqs})
        assert answer["UnprocessedItems"] == {}
        for r in reqs:
            if "PutRequest" in r:
                ddb.put_item(TableName=f"Single{name}", Item=r["PutRequest"]["Item"])
            else:
                ddb.delete_item(TableName=f"Single{name}", Key=r["DeleteRequest"]["Key"])
    assert scan(ddb, f"Batch{name}") == scan(ddb, f"Single{name}")
    batch, single = stream_records(aws, f"Batch{name}"), stream_records(aws, f"Single{name}")
    assert per_key(batch) == per_key(single)
    assert {r["eventName"] for r in batch} == {"INSERT", "MODIFY", "REMOVE"}
    assert any(r["parent"] for r in batch), "the shards rolled over (rollover_records=9)"
    assert len(batch) == len(single) < 30 + 4 * 25  # unchanged puts and deletes of missing keys record nothing


def _script(endpoint: str) -> tuple[list[tuple], list, list]:
    """BatchWriteItem calls, good and bad, over raw HTTP; what each answered, then the tables and streams."""
    import boto3

    ddb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="local",
                       aws_secret_access_key="local")
    for name in ("Lane", "Other"):
        ddb.create_table(TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                         BillingMode="PAY_PER_REQUEST",
                         StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    ddb.create_table(TableName="Indexed", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                           {"AttributeName": "g", "AttributeType": "N"}],
                     GlobalSecondaryIndexes=[{"IndexName": "byG",
                                              "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                                              "Projection": {"ProjectionType": "ALL"}}],
                     BillingMode="PAY_PER_REQUEST")
    host = urlparse(endpoint)
    conn = http.client.HTTPConnection(host.hostname, host.port)
    answers = []

    def call(body) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        conn.request("POST", "/", raw, {"Content-Type": "application/x-amz-json-1.0", "Authorization": AUTH,
                                        "X-Amz-Target": "DynamoDB_20120810.BatchWriteItem"})
        resp = conn.getresponse()
        answers.append((resp.status, resp.read().decode(), resp.getheader("Content-Type"),
                        resp.getheader("x-amz-crc32") is not None))

    def put(k, **attrs):
        return {"PutRequest": {"Item": {"pk": {"S": k}, **attrs}}}

    def delete(k):
        return {"DeleteRequest": {"Key": {"pk": {"S": k}}}}

    call({"RequestItems": {"Lane": [put(f"a{i}", n={"N": f"{i}.50"}, s={"SS": ["y", "x"]}) for i in range(25)]}})
    call({"RequestItems": {"Lane": [put("a1", n={"N": "1.5"}, s={"SS": ["x", "y"]}), delete("a2"), delete("zz"),
                                    put("b", bin={"B": "AP8="}, bs={"BS": ["AQ==", "AA=="]},
                                        m={"M": {"": {"N": "1E+2"}}})],
                           "Other": [put("o", l={"L": [{"NULL": True}, {"BOOL": False}]})]},
          "ReturnConsumedCapacity": "TOTAL"})
    call({"RequestItems": {"Lane": [put("c", n={"N": "-0"}), put("d", n={"N": "123456789012345678901234567890.5"})]},
          "ReturnItemCollectionMetrics": "SIZE"})
    call({"RequestItems": {"Indexed": [put("g1", g={"N": "1"}), put("g2", g={"S": "wrong type"})]}})
    call({"RequestItems": {"Indexed": [put("g3", g={"N": "3"})]}})
    call({"RequestItems": {"Lane": [put(f"x{i}") for i in range(26)]}})  # too many
    call({"RequestItems": {"Lane": [put(f"x{i}") for i in range(13)], "Other": [put(f"x{i}") for i in range(13)]}})
    call({"RequestItems": {"Lane": [put("dup", a={"S": "1"}), put("dup", a={"S": "2"})]}})
    call({"RequestItems": {"Lane": [put("dup"), delete("dup")]}})
    call({"RequestItems": {"Lane": [put("q", n={"N": "1"}), put("r", n={"N": "abc"})]}})
    call({"RequestItems": {"Lane": [put("q", s={"SS": []})]}})
    call({"RequestItems": {"Lane": [{"PutRequest": {"Item": {"other": {"S": "no key"}}}}]}})
    call({"RequestItems": {"Lane": [{"PutRequest": {"Item": {"pk": {"N": "1"}}}}]}})
    call({"RequestItems": {"Lane": [put("big", blob={"S": "x" * 409_600})]}})
    call({"RequestItems": {"Lane": [put("shape", n={"S": 5})]}})
    call({"RequestItems": {"Nope": [put("a")]}})
    call({"RequestItems": {"Lane": [{}]}})
    call({"RequestItems": {"Lane": [{**put("both"), **delete("both")}]}})
    call({"RequestItems": {}})
    call(b"not json")
    call({"RequestItems": {"Lane": [put("after", n={"N": "7"})]}, "Unexpected": 1})
    conn.close()
    tables = [scan(ddb, t) for t in ("Lane", "Other", "Indexed")]

    class Client:
        def __init__(self):
            self.endpoint = endpoint

        def client(self, service):
            return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                                aws_access_key_id="local", aws_secret_access_key="local")

    streams = [per_key(stream_records(Client(), t)) for t in ("Lane", "Other")]
    masked = [(status, re.sub(r"[0-9a-f]{20,}", "*", body), ctype, crc) for status, body, ctype, crc in answers]
    return masked, tables, streams


def test_the_lane_answers_and_writes_what_motos_path_does(emulator):
    lane, moto = (_script(emulator(stream_shards=2, writes_lane=on).endpoint) for on in (1, 0))
    assert lane[0] == moto[0]
    assert lane[1] == moto[1]
    assert lane[2] == moto[2]
    answers = lane[0]
    assert [status for status, *_ in answers[:5]] == [200] * 5  # (moto takes a GSI key of the wrong type)
    # refused, but for three moto lets through as it always did (the lane hands them to moto): an entry
    # holding a put and a delete (moto runs the first), an empty RequestItems and a field the API does not have
    assert [status for status, *_ in answers[5:]] == [400] * 12 + [200, 200, 400, 200], answers[5:]
    refused = {body for status, body, *_ in answers[5:] if status == 400}
    assert any("Too many items requested for the BatchWriteItem call" in b for b in refused)
    assert any("Provided list of item keys contains duplicates" in b for b in refused)
    assert sum("Provided list of item keys contains duplicates" in b for _, b, *_ in answers) == 2
    # two batches of 13 (26 across tables) refused too, as AWS counts the whole request
    assert answers[6][0] == 400 and "Too many items" in answers[6][1]


def _bulk(endpoint: str, lines: list[dict]) -> tuple[int, dict]:
    host = urlparse(endpoint)
    conn = http.client.HTTPConnection(host.hostname, host.port)
    conn.request("POST", BULK_PATH, b"\n".join(json.dumps(line).encode() for line in lines),
                 {"Authorization": AUTH, "Content-Type": "application/x-ndjson"})
    resp = conn.getresponse()
    out = resp.status, json.loads(resp.read())
    conn.close()
    return out


def test_the_bulk_path_applies_each_batch_as_if_sent_alone_and_stops_at_a_refusal(aws):
    ddb = aws.client("dynamodb")
    make_table(aws, "Bulk")
    make_table(aws, "BulkSingles")
    lines = [{"RequestItems": {"Bulk": [{"PutRequest": {"Item": {"pk": {"S": f"k{b}-{i}"}, "n": {"N": str(i)}}}}
                                        for i in range(25)]}} for b in range(4)]
    lines[2]["RequestItems"]["Bulk"][3] = {"DeleteRequest": {"Key": {"pk": {"S": "k0-0"}}}}
    status, out = _bulk(aws.endpoint, lines)
    assert (status, out) == (200, {"applied": 4, "written": 100})
    for line in lines:
        ddb.batch_write_item(RequestItems={"BulkSingles": line["RequestItems"]["Bulk"]})
    assert [i for i in scan(ddb, "Bulk")] == scan(ddb, "BulkSingles")
    assert per_key(stream_records(aws, "Bulk")) == per_key(stream_records(aws, "BulkSingles"))

    refused = [{"RequestItems": {"Bulk": [{"PutRequest": {"Item": {"pk": {"S": "later"}}}}]}},
               {"RequestItems": {"Bulk": [{"PutRequest": {"Item": {"pk": {"S": "dup"}}}}] * 2}},
               {"RequestItems": {"Bulk": [{"PutRequest": {"Item": {"pk": {"S": "never"}}}}]}}]
    status, out = _bulk(aws.endpoint, refused)
    assert status == 400 and out["applied"] == 1 and out["refused"] == 1
    assert "Provided list of item keys contains duplicates" in out["reason"]
    got = {i["pk"]["S"] for i in scan(ddb, "Bulk")}
    assert "later" in got and "dup" not in got and "never" not in got
    with pytest.raises(ClientError, match="duplicates"):  # the same body sent alone: the same refusal
        ddb.batch_write_item(RequestItems=refused[1]["RequestItems"])
