"""The emulator refuses what DynamoDB refuses and answers as DynamoDB answers (issue 13).

Everything goes through boto3 (or raw JSON over HTTP, where botocore itself
would refuse to send the request) to ``dynadex local-aws`` in a child process.

Where each expected answer comes from is said next to the case, by source:

* [DG-limits]  AWS DynamoDB Developer Guide, "Quotas / Limits" and "Naming
  rules and data types" (38 digits, 1E-130 .. 9.99E+125, 400 KB items,
  32 nesting levels, key value sizes, sets unique and non-empty).
* [DG-size]    Developer Guide, "Item sizes and formats" (names + values,
  UTF-8; numbers ~1 byte per 2 significant digits + 1).
* [API-Update] DynamoDB API Reference, UpdateItem / TransactWriteItems
  errors: "Item size to update has exceeded ...", "Number overflow ...".
* [dynalite]   mhart/dynalite's test suite, whose messages were recorded
  against DynamoDB (test/putItem.js, test/updateItem.js, validation tests).
* [LS-snap]    LocalStack's AWS-validated snapshot tests
  (tests/aws/services/dynamodb/test_dynamodb.py, test name given).
* [CLI-ex]     AWS CLI examples (awscli/examples/dynamodb*/*.rst), the same
  ones copied under ../shared/fixtures/aws/streams-cli-2019.
* [botocore]   the botocore 1.43 service model (limits, enums, members).

Where no recording was found, the case says "wording ours"; the rule is
still DynamoDB's.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re

import pytest
import requests
from botocore.exceptions import ClientError

from dynadex.aws import to_client
from dynadex.demo import SAMPLES
from dynadex.types import canonical_item, canonical_json
from tests.support.emulator import make_table, wait_export

FIXTURES_CLI = SAMPLES / "streams-cli-2019"  # the AWS CLI examples, as in ../shared/fixtures/aws


pytestmark = pytest.mark.emulator(bucket="conf", export_seconds=0.2, export_files=2, stream_shards=2, rollover_records=0,
                                  min_incremental_seconds=1)


def shard_records(st, arn, shard_id, **iterator):
    """A shard's records from the given iterator position to its tip."""
    out = []
    it = st.get_shard_iterator(StreamArn=arn, ShardId=shard_id, **iterator)["ShardIterator"]
    while it:
        r = st.get_records(ShardIterator=it)
        out += r["Records"]
        if not r["Records"]:
            break
        it = r.get("NextShardIterator")
    return out


def stream_records(aws, arn):
    st = aws.client("dynamodbstreams")
    out, start = [], None
    while True:
        kw = {"ExclusiveStartShardId": start} if start else {}
        d = st.describe_stream(StreamArn=arn, **kw)["StreamDescription"]
        for shard in d["Shards"]:
            out += shard_records(st, arn, shard["ShardId"], ShardIteratorType="TRIM_HORIZON")
        start = d.get("LastEvaluatedShardId")
        if not start:
            return out


def export_items(aws, table) -> list[str]:
    ddb, s3 = aws.client("dynamodb"), aws.client("s3")
    d = ddb.export_table_to_point_in_time(TableArn=table["TableArn"], S3Bucket="conf", S3Prefix=table["TableName"])
    d = wait_export(ddb, d["ExportDescription"]["ExportArn"])
    assert d["ExportStatus"] == "COMPLETED", d
    summary = json.loads(s3.get_object(Bucket="conf", Key=d["ExportManifest"])["Body"].read())
    out = []
    for line in s3.get_object(Bucket="conf", Key=summary["manifestFilesS3Key"])["Body"].read().splitlines():
        body = s3.get_object(Bucket="conf", Key=json.loads(line)["dataFileS3Key"])["Body"].read()
        out += [canonical_json(json.loads(x)["Item"]) for x in gzip.decompress(body).decode().splitlines()]
    return sorted(out)


def scan(aws, name) -> list[str]:
    from dynadex.aws import from_client

    items = aws.client("dynamodb").scan(TableName=name, ConsistentRead=True)["Items"]
    return sorted(canonical_json(canonical_item(from_client(i))) for i in items)


def state(aws, table):
    """What a refused write must leave unchanged: Scan, the stream, and a following export."""
    recs = [(r["eventName"], r["dynamodb"]["SequenceNumber"]) for r in stream_records(aws, table["LatestStreamArn"])]
    return scan(aws, table["TableName"]), sorted(recs), export_items(aws, table)


def raw(aws, action: str, body: dict) -> tuple[int, dict]:
    """One DynamoDB request as JSON over HTTP, bypassing botocore's own parameter checks."""
    headers = {"X-Amz-Target": f"DynamoDB_20120810.{action}", "Content-Type": "application/x-amz-json-1.0",
               "Authorization": "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, "
                                "SignedHeaders=host, Signature=0"}
    r = requests.post(aws.endpoint, data=json.dumps(body), headers=headers, timeout=30)
    try:
        return r.status_code, (r.json() if r.content else {})
    except ValueError:
        return r.status_code, {"body": r.text[:500]}


# ------------------------------------------------------------------ refused writes

BIG = "x" * 409_600
DEEP = {"S": "leaf"}
for _ in range(33):
    DEEP = {"M": {"d": DEEP}}
NOT_TOO_DEEP = {"S": "leaf"}
for _ in range(32):
    NOT_TOO_DEEP = {"M": {"d": NOT_TOO_DEEP}}

INVALID = "One or more parameter values were invalid: "

# (id, action, request (TableName added), message). Sources in the comment of each line.
REFUSED = [
    # duplicates by value in a number set: [DG-limits] "values within a set must be unique"; wording [dynalite]
    ("ns-dup-exponent", "PutItem", {"Item": {"pk": {"S": "a"}, "ns": {"NS": ["100", "1E+2"]}}},
     INVALID + "Input collection [100, 1E+2] contains duplicates."),
    ("ns-dup-trailing-zeros", "PutItem", {"Item": {"pk": {"S": "a"}, "ns": {"NS": ["1", "1.000"]}}},
     INVALID + "Input collection [1, 1.000] contains duplicates."),
    # [dynalite] putItem "duplicate string in set"
    ("ss-dup", "PutItem", {"Item": {"pk": {"S": "a"}, "ss": {"SS": ["a", "a"]}}},
     INVALID + "Input collection [a, a] contains duplicates."),
    # [dynalite] putItem "duplicate binary in set" (AWS's missing space before "of" included)
    ("bs-dup", "PutItem", {"Item": {"pk": {"S": "a"}, "bs": {"BS": ["Yg==", "Yg=="]}}},
     INVALID + "Input collection [Yg==, Yg==]of type BS contains duplicates."),
    # 38 digits of precision [DG-limits]; wording [dynalite] number validation list
    ("n-39-digits", "PutItem", {"Item": {"pk": {"S": "a"}, "n": {"N": "1" * 39}}},
     "Attempting to store more than 38 significant digits in a Number"),
    ("n-39-digits-decimal", "PutItem", {"Item": {"pk": {"S": "a"}, "n": {"N": "-1.23456789012345678901234567890123456789"}}},
     "Attempting to store more than 38 significant digits in a Number"),
    # magnitude [DG-limits]; wording [API-Update] and [dynalite]
    ("n-overflow", "PutItem", {"Item": {"pk": {"S": "a"}, "n": {"N": "1E+126"}}},
     "Number overflow. Attempting to store a number with magnitude larger than supported range"),
    ("n-overflow-negative", "PutItem", {"Item": {"pk": {"S": "a"}, "n": {"N": "-1e126"}}},
     "Number overflow. Attempting to store a number with magnitude larger than supported range"),
    ("n-underflow", "PutItem", {"Item": {"pk": {"S": "a"}, "n": {"N": "1E-131"}}},
     "Number underflow. Attempting to store a number with magnitude smaller than supported range"),
    ("ns-member-overflow", "PutItem", {"Item": {"pk": {"S": "a"}, "ns": {"NS": ["1", "1E+126"]}}},
     "Number overflow. Attempting to store a number with magnitude larger than supported range"),
    # [dynalite] putItem "incorrect numeric type"
    ("n-not-a-number", "PutItem", {"Item": {"pk": {"S": "a"}, "n": {"N": "b"}}},
     "The parameter cannot be converted to a numeric value: b"),
    # empty sets [DG-limits]; wording [dynalite] (AWS's doubled space included)
    ("ss-empty", "PutItem", {"Item": {"pk": {"S": "a"}, "s": {"SS": []}}}, INVALID + "An string set  may not be empty"),
    ("ns-empty", "PutItem", {"Item": {"pk": {"S": "a"}, "s": {"NS": []}}}, INVALID + "An number set  may not be empty"),
    ("bs-empty", "PutItem", {"Item": {"pk": {"S": "a"}, "s": {"BS": []}}}, INVALID + "Binary sets should not be empty"),
    ("bs-empty-member", "PutItem", {"Item": {"pk": {"S": "a"}, "s": {"BS": ["YQ==", ""]}}},
     INVALID + "Binary sets may not contain null or empty values"),
    # empty key values (empty non-key strings are fine since 2020) [DG-limits]; wording as moto's AWS-derived text
    ("key-empty-string", "PutItem", {"Item": {"pk": {"S": ""}, "v": {"S": "x"}}},
     "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty "
     "string value. Key: pk"),
    ("delete-key-empty-string", "DeleteItem", {"Key": {"pk": {"S": ""}}},
     "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty "
     "string value. Key: pk"),
    # key types [dynalite] putItem "key is incorrect numeric / string set type"
    ("key-type-n", "PutItem", {"Item": {"pk": {"N": "1"}}}, INVALID + "Type mismatch for key pk expected: S actual: N"),
    ("key-type-ss", "PutItem", {"Item": {"pk": {"SS": ["a"]}}}, INVALID + "Type mismatch for key pk expected: S actual: SS"),
    ("key-missing", "PutItem", {"Item": {"v": {"S": "a"}}}, INVALID + "Missing the key pk in the item"),
    # partition key value at most 2048 bytes [DG-limits]; wording as moto's (AWS's missing space included)
    ("hash-key-2049", "PutItem", {"Item": {"pk": {"S": "k" * 2049}}},
     INVALID + "Size of hashkey has exceeded the maximum size limit of2048 bytes"),
    # 400 KB [DG-limits], counted by [DG-size]; wording [API-Update] / moto
    ("item-over-400kb", "PutItem", {"Item": {"pk": {"S": "a"}, "d": {"S": BIG}}},
     "Item size has exceeded the maximum allowed size"),
    # 32 levels [DG-limits]; wording recorded by third-party AWS conformance suites
    ("nesting-33", "PutItem", {"Item": {"pk": {"S": "a"}, "deep": DEEP}},
     "Nesting Levels have exceeded supported limits: Attributes in the item have nested levels beyond supported limit"),
    # [dynalite] putItem "NULL: no"
    ("null-false", "PutItem", {"Item": {"pk": {"S": "a"}, "z": {"NULL": False}}},
     INVALID + "Null attribute value types must have the value of true"),
    # attribute names 1 byte to 64 KB [DG-limits]; wording ours
    ("name-over-64kb", "PutItem", {"Item": {"pk": {"S": "a"}, "n" * 65536: {"S": "x"}}},
     INVALID + "Attribute name exceeds the maximum length of 65535 bytes"),
    # attribute names are at least 1 byte [DG-limits] (inside a map "" is accepted, see below); wording ours
    ("name-empty", "PutItem", {"Item": {"pk": {"S": "a"}, "": {"S": "x"}}}, INVALID + "An attribute name may not be empty"),
    # [dynalite] putItem "multiple types", "empty key type" (botocore would refuse to send these)
    ("two-types", "PutItem", {"Item": {"pk": {"S": "a"}, "v": {"S": "a", "N": "1"}}},
     "Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes"),
    ("no-type", "PutItem", {"Item": {"pk": {"S": "a"}, "v": {}}},
     "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes"),
    # the UpdateItem: ADD must not happen when SET is refused [API-Update]; wording [dynalite]
    ("update-add-then-bad-set", "UpdateItem",
     {"Key": {"pk": {"S": "seed"}}, "UpdateExpression": "ADD cnt :one SET ns = :bad",
      "ExpressionAttributeValues": {":one": {"N": "1"}, ":bad": {"NS": ["1", "1.000"]}}},
     INVALID + "Input collection [1, 1.000] contains duplicates."),
    # the item as updated is over 400 KB [API-Update]
    ("update-over-400kb", "UpdateItem",
     {"Key": {"pk": {"S": "seed"}}, "UpdateExpression": "SET d = :d", "ExpressionAttributeValues": {":d": {"S": BIG}}},
     "Item size to update has exceeded the maximum allowed size"),
    # ADD overflowing the range [API-Update] "Number overflow ..."
    ("update-add-overflow", "UpdateItem",
     {"Key": {"pk": {"S": "seed"}}, "UpdateExpression": "ADD huge :h", "ExpressionAttributeValues": {":h": {"N": "9E+125"}}},
     "Number overflow. Attempting to store a number with magnitude larger than supported range"),
    # a batch with one bad put writes nothing (validation precedes the writes) [dynalite] batchWriteItem
    ("batch-one-bad", "BatchWriteItem",
     {"RequestItems": {"Refuse": [{"PutRequest": {"Item": {"pk": {"S": "good"}}}},
                                  {"PutRequest": {"Item": {"pk": {"S": "bad"}, "ns": {"NS": ["2", "2.0"]}}}}]}},
     INVALID + "Input collection [2, 2.0] contains duplicates."),
    # a transaction with one bad update writes nothing (all or nothing) [API TransactWriteItems]
    ("transact-one-bad", "TransactWriteItems",
     {"TransactItems": [{"Put": {"TableName": "Refuse", "Item": {"pk": {"S": "good"}}}},
                        {"Update": {"TableName": "Refuse", "Key": {"pk": {"S": "seed"}}, "UpdateExpression": "SET n = :n",
                                    "ExpressionAttributeValues": {":n": {"N": "1" * 40}}}}]},
     "Attempting to store more than 38 significant digits in a Number"),
]


@pytest.fixture(scope="module")
def refuse_table(aws):
    t = make_table(aws, "Refuse")
    ddb = aws.client("dynamodb")
    ddb.put_item(TableName="Refuse", Item={"pk": {"S": "seed"}, "cnt": {"N": "1"}, "huge": {"N": "9E+125"},
                                           "ns": {"NS": ["1", "2"]}})
    return t


@pytest.mark.parametrize("case", REFUSED, ids=[c[0] for c in REFUSED])
def test_refused_write_changes_nothing(aws, refuse_table, case):
    _, action, request, message = case
    before = state(aws, refuse_table)
    body = dict(request)
    if action not in ("BatchWriteItem", "TransactWriteItems"):
        body["TableName"] = "Refuse"
    for attempt in range(3):  # a retrying client (the CLI retries 500s) gets the same answer, and still nothing is written
        status, answer = raw(aws, action, body)
        assert status == 400, answer
        assert answer["__type"].endswith("ValidationException"), answer
        assert answer.get("message", answer.get("Message")) == message
    assert state(aws, refuse_table) == before


def test_refused_write_through_boto3_is_not_retried_and_says_why(aws, refuse_table):
    """The same refusal seen by boto3: a ClientError with AWS's code and message, no retries (4xx)."""
    ddb = aws.client("dynamodb")
    with pytest.raises(ClientError) as info:
        ddb.update_item(TableName="Refuse", Key={"pk": {"S": "seed"}}, UpdateExpression="ADD cnt :one SET ns = :bad",
                        ExpressionAttributeValues={":one": {"N": "1"}, ":bad": {"NS": ["100", "1E+2"]}})
    err = info.value.response
    assert err["Error"]["Code"] == "ValidationException" and err["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert err["ResponseMetadata"]["RetryAttempts"] == 0
    assert ddb.get_item(TableName="Refuse", Key={"pk": {"S": "seed"}})["Item"]["cnt"] == {"N": "1"}


def test_transaction_whose_update_grows_too_large_is_cancelled(aws, refuse_table):
    """A transaction item that fails once applied (here: over 400 KB) cancels the whole transaction with
    one reason per item, ValidationError for that item [API TransactWriteItems, CancellationReasons]."""
    before = state(aws, refuse_table)
    ddb = aws.client("dynamodb")
    with pytest.raises(ClientError) as info:
        ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": "Refuse", "Item": {"pk": {"S": "fresh"}}}},
            {"Update": {"TableName": "Refuse", "Key": {"pk": {"S": "seed"}}, "UpdateExpression": "SET d = :d",
                        "ExpressionAttributeValues": {":d": {"S": BIG}}}}])
    err = info.value.response
    assert err["Error"]["Code"] == "TransactionCanceledException"
    assert [r["Code"] for r in err["CancellationReasons"]] == ["None", "ValidationError"]
    assert err["CancellationReasons"][1]["Message"] == "Item size to update has exceeded the maximum allowed size"
    assert state(aws, refuse_table) == before


def test_accepted_at_the_limits(aws):
    """The limits themselves are accepted: 38 digits, 9.99..E+125, 1E-130, 32 levels, 400 KB exactly [DG-limits]."""
    t = make_table(aws, "Limits")
    ddb = aws.client("dynamodb")
    ddb.put_item(TableName="Limits", Item={"pk": {"S": "n"}, "a": {"N": "9" * 38}, "b": {"N": "9.9999999999999999999999999999999999999E+125"},
                                           "c": {"N": "-1E-130"}, "deep": NOT_TOO_DEEP, "e": {"S": ""},
                                           "m": {"M": {"": {"S": "empty name inside a map"}}}})
    # 400 KB = 409,600 bytes, names included [DG-size]: "pk"(2) + "x"(1) + "d"(1) + value
    exact = {"pk": {"S": "x"}, "d": {"S": "v" * (409_600 - 4)}}
    ddb.put_item(TableName="Limits", Item=exact)
    with pytest.raises(ClientError) as info:
        ddb.put_item(TableName="Limits", Item={"pk": {"S": "x"}, "d": {"S": "v" * (409_600 - 3)}})
    assert info.value.response["Error"]["Message"] == "Item size has exceeded the maximum allowed size"
    assert len(ddb.get_item(TableName="Limits", Key={"pk": {"S": "x"}})["Item"]["d"]["S"]) == 409_596
    assert {r["dynamodb"]["Keys"]["pk"]["S"] for r in stream_records(aws, t["LatestStreamArn"])} == {"n", "x"}


def test_empty_binary_key_refused(aws):
    """An empty B key is refused like an empty S key [DG-limits]; wording as for strings (wording ours)."""
    t = make_table(aws, "BinKey", key=("pk", "B"))
    before = state(aws, t)
    with pytest.raises(ClientError) as info:
        aws.client("dynamodb").put_item(TableName="BinKey", Item={"pk": {"B": b""}})
    assert info.value.response["Error"]["Message"] == (
        "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty "
        "binary value. Key: pk")
    assert state(aws, t) == before


MALFORMED = [
    ("PutItem", {"TableName": "Refuse", "Item": "not a map"}),
    ("PutItem", {"TableName": "Refuse", "Item": {"pk": {"S": "a"}, "v": {"NS": [1, 2]}}}),
    ("PutItem", {"TableName": "Refuse", "Item": {"pk": {"S": "a"}, "v": {"L": "x"}}}),
    ("PutItem", {"TableName": "Refuse", "Item": {"pk": {"S": "a"}, "v": {"M": ["x"]}}}),
    ("UpdateItem", {"TableName": "Refuse", "Key": {"pk": {"S": "seed"}}, "UpdateExpression": "SET a = :a"}),
    ("UpdateItem", {"TableName": "Refuse", "Key": {"pk": {"S": "seed"}, "zz": {"S": "x"}}, "UpdateExpression": "SET a = :a",
                    "ExpressionAttributeValues": {":a": {"S": "x"}}}),
    ("DeleteItem", {"TableName": "Refuse", "Key": {}}),
    ("BatchWriteItem", {"RequestItems": {"Refuse": [{"PutRequest": {"Item": {"pk": {"N": "x"}}}}]}}),
    ("TransactWriteItems", {"TransactItems": [{"Put": {"TableName": "Refuse", "Item": {"pk": {"S": "a"}, "v": {"SS": "x"}}}}]}),
    ("GetItem", {"TableName": "Refuse", "Key": {"pk": {"N": "1"}}}),
    ("GetItem", {"TableName": "Refuse", "Key": {"pk": {"S": "a"}, "zz": {"S": "b"}}}),
    ("Query", {"TableName": "Refuse", "KeyConditionExpression": "pk = :p"}),
    ("Query", {"TableName": "Refuse", "KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "x"}},
               "ExclusiveStartKey": {"pk": {"NS": []}}}),
    ("Scan", {"TableName": "Refuse", "ExclusiveStartKey": {"zz": {"S": "a"}}}),
    ("BatchGetItem", {"RequestItems": {"Refuse": {"Keys": [{"pk": {"S": "a"}, "extra": {"N": "1"}}]}}}),
]


@pytest.mark.parametrize("action,body", MALFORMED, ids=[f"{a}-{i}" for i, (a, _) in enumerate(MALFORMED)])
def test_bad_input_never_answers_500(aws, refuse_table, action, body):
    before = scan(aws, "Refuse")
    status, answer = raw(aws, action, body)
    assert 400 <= status < 500, answer
    assert scan(aws, "Refuse") == before


# ------------------------------------------------------------------ numbers on reads


def test_numbers_are_normalised_on_every_read(aws):
    """DynamoDB stores a number's value: reads answer 3.14 for 3.14000, 100 for 1E+2, 0 for -0 / 0E+10.

    Source: [DG-limits] "leading and trailing zeroes are trimmed"; the emulator's own streams and exports
    (like AWS's, see ../shared/fixtures/aws) already answered the normalised text.
    """
    make_table(aws, "Nums", sort=("sk", "N"))
    ddb = aws.client("dynamodb")
    item = {"pk": {"S": "a"}, "sk": {"N": "-0"}, "x": {"N": "3.14000"}, "ns": {"NS": ["1E+2", "3.140"]},
            "m": {"M": {"y": {"N": "0E+10"}, "l": {"L": [{"N": "007.50"}]}}}}
    want = {"pk": {"S": "a"}, "sk": {"N": "0"}, "x": {"N": "3.14"}, "ns": {"NS": ["100", "3.14"]},
            "m": {"M": {"y": {"N": "0"}, "l": {"L": [{"N": "7.5"}]}}}}
    assert ddb.put_item(TableName="Nums", Item=item, ReturnValues="ALL_OLD").get("Attributes") is None
    key = {"pk": {"S": "a"}, "sk": {"N": "0E+10"}}  # the same key as -0
    assert ddb.get_item(TableName="Nums", Key=key)["Item"] == want
    assert ddb.scan(TableName="Nums")["Items"] == [want]
    assert ddb.query(TableName="Nums", KeyConditionExpression="pk = :p AND sk = :s",
                     ExpressionAttributeValues={":p": {"S": "a"}, ":s": {"N": "-0.0"}})["Items"] == [want]
    assert ddb.batch_get_item(RequestItems={"Nums": {"Keys": [key]}})["Responses"]["Nums"] == [want]
    assert ddb.transact_get_items(TransactItems=[{"Get": {"TableName": "Nums", "Key": key}}])["Responses"][0]["Item"] == want
    old = ddb.put_item(TableName="Nums", Item={**item, "x": {"N": "1.0E+1"}}, ReturnValues="ALL_OLD")["Attributes"]
    assert old == want
    new = ddb.update_item(TableName="Nums", Key=key, UpdateExpression="SET x = x + :d",
                          ExpressionAttributeValues={":d": {"N": "0.50"}}, ReturnValues="ALL_NEW")["Attributes"]
    assert new["x"] == {"N": "10.5"}
    assert len(ddb.scan(TableName="Nums")["Items"]) == 1  # -0, 0E+10 and -0.0 are one key


def test_empty_key_in_a_map_reads_back(aws):
    """An empty name inside a map is answered as stored (moto's serializer folded it into the parent and
    botocore crashed): fixed by patches.serialize_empty_map_keys."""
    make_table(aws, "EmptyName")
    ddb = aws.client("dynamodb")
    item = {"pk": {"S": "a"}, "m": {"M": {"": {"S": "e"}, "k": {"M": {"": {"N": "1"}}}}}}
    ddb.put_item(TableName="EmptyName", Item=item)
    assert ddb.scan(TableName="EmptyName")["Items"] == [item]
    assert ddb.get_item(TableName="EmptyName", Key={"pk": {"S": "a"}})["Item"] == item


# ------------------------------------------------------------------ streams


def test_no_op_writes_emit_no_stream_record(aws):
    """[LS-snap] TestDynamoDB::test_batch_write_items_streaming: put Fred; batch (Fred again, NewKey);
    batch (delete NewKey, Fred with a name) -> 4 records; overwriting Fred with the same value gives none."""
    t = make_table(aws, "NoOp")
    ddb = aws.client("dynamodb")
    ddb.put_item(TableName="NoOp", Item={"pk": {"S": "Fred"}})
    ddb.batch_write_item(RequestItems={"NoOp": [{"PutRequest": {"Item": {"pk": {"S": "Fred"}}}},
                                                {"PutRequest": {"Item": {"pk": {"S": "NewKey"}}}}]})
    ddb.batch_write_item(RequestItems={"NoOp": [{"DeleteRequest": {"Key": {"pk": {"S": "NewKey"}}}},
                                                {"PutRequest": {"Item": {"pk": {"S": "Fred"}, "name": {"S": "Fred"}}}}]})
    # a number written with other text but the same value is no change either
    ddb.put_item(TableName="NoOp", Item={"pk": {"S": "Fred"}, "name": {"S": "Fred"}})
    ddb.update_item(TableName="NoOp", Key={"pk": {"S": "Fred"}}, UpdateExpression="SET #n = :n",
                    ExpressionAttributeNames={"#n": "name"}, ExpressionAttributeValues={":n": {"S": "Fred"}})
    recs = sorted((r["dynamodb"]["Keys"]["pk"]["S"], r["dynamodb"]["SequenceNumber"].zfill(40), r["eventName"])
                  for r in stream_records(aws, t["LatestStreamArn"]))
    assert [(k, e) for k, _, e in recs] == [("Fred", "INSERT"), ("Fred", "MODIFY"), ("NewKey", "INSERT"), ("NewKey", "REMOVE")]


def test_update_creating_an_item_is_one_insert(aws):
    """An UpdateItem on a missing key creates the item: one INSERT record (moto wrote two)."""
    t = make_table(aws, "UpdIns")
    aws.client("dynamodb").update_item(TableName="UpdIns", Key={"pk": {"S": "k"}}, UpdateExpression="SET v = :v",
                                       ExpressionAttributeValues={":v": {"N": "1"}})
    recs = stream_records(aws, t["LatestStreamArn"])
    assert [r["eventName"] for r in recs] == ["INSERT"]
    assert recs[0]["dynamodb"]["NewImage"] == {"pk": {"S": "k"}, "v": {"N": "1"}}


def test_stream_size_bytes_label_and_table_answers_match_aws(aws):
    """Replays the AWS CLI GetRecords example [CLI-ex] (the Music table): same SizeBytes (119, 100, 170),
    a millisecond StreamLabel (describe-stream example), CreateTable answering CREATING and a TableId
    (create-table / describe-table examples)."""
    ddb = aws.client("dynamodb")
    created = ddb.create_table(
        TableName="Music", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "Artist", "KeyType": "HASH"}, {"AttributeName": "SongTitle", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "Artist", "AttributeType": "S"}, {"AttributeName": "SongTitle", "AttributeType": "S"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})["TableDescription"]
    assert created["TableStatus"] == "CREATING"
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", created["TableId"])
    described = ddb.describe_table(TableName="Music")["Table"]
    assert described["TableStatus"] == "ACTIVE" and described["TableId"] == created["TableId"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}", described["LatestStreamLabel"])
    assert described["LatestStreamArn"].endswith("/stream/" + described["LatestStreamLabel"])
    with open(f"{FIXTURES_CLI}/get-records.output.json") as f:
        genuine = json.load(f)["Records"]
    for rec in genuine:  # INSERT, INSERT, MODIFY: each a put of the recorded NewImage
        ddb.put_item(TableName="Music", Item=to_client(rec["dynamodb"]["NewImage"]))
    ours = stream_records(aws, described["LatestStreamArn"])
    key = lambda r: json.dumps(r["dynamodb"]["Keys"], sort_keys=True) + r["eventName"]  # noqa: E731
    assert sorted((key(r), r["dynamodb"]["SizeBytes"]) for r in ours) == sorted(
        (key(r), r["dynamodb"]["SizeBytes"]) for r in genuine)
    label = json.load(open(f"{FIXTURES_CLI}/describe-stream.output.json"))["StreamDescription"]["StreamLabel"]
    assert len(label) == len(described["LatestStreamLabel"])


def test_stream_limits_filters_and_timestamps(emulator):
    """[botocore] DescribeStream Limit <= 100, GetRecords Limit <= 1000 (refused above, not clamped);
    ShardFilter CHILD_SHARDS; AT_TIMESTAMP; a sequence number of another shard is refused."""
    small = emulator(stream_shards=2, rollover_records=2, test_clock=1)
    t = make_table(small, "Roll")
    ddb, st = small.client("dynamodb"), small.client("dynamodbstreams")
    arn = t["LatestStreamArn"]
    for i in range(12):
        ddb.put_item(TableName="Roll", Item={"pk": {"S": f"k{i}"}})
    for kw, what in (({"Limit": 101}, "describe"), ({"Limit": 1001}, "records")):
        with pytest.raises(ClientError) as info:
            if what == "describe":
                st.describe_stream(StreamArn=arn, **kw)
            else:
                shard = st.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
                it = st.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
                st.get_records(ShardIterator=it, **kw)
        assert info.value.response["Error"]["Code"] == "ValidationException"
        assert "less than or equal to" in info.value.response["Error"]["Message"]
    shards = st.describe_stream(StreamArn=arn, Limit=100)["StreamDescription"]["Shards"]
    parents = {s["ParentShardId"] for s in shards if "ParentShardId" in s}
    assert parents
    for parent in parents:
        children = st.describe_stream(StreamArn=arn, ShardFilter={"Type": "CHILD_SHARDS", "ShardId": parent})
        got = [s["ShardId"] for s in children["StreamDescription"]["Shards"]]
        assert got == [s["ShardId"] for s in shards if s.get("ParentShardId") == parent] and got
    # another shard's sequence number is refused
    a, b = shards[0], next(s for s in shards if s["ShardId"] != shards[0]["ShardId"])
    seq_b = b["SequenceNumberRange"]["StartingSequenceNumber"]
    with pytest.raises(ClientError) as info:
        st.get_shard_iterator(StreamArn=arn, ShardId=a["ShardId"], ShardIteratorType="AT_SEQUENCE_NUMBER",
                              SequenceNumber=seq_b)
    assert info.value.response["Error"]["Code"] == "ValidationException"
    # AT_TIMESTAMP: the first record written at or after the instant
    ddb.put_item(TableName="Roll", Item={"pk": {"S": "before"}})
    instant = small.clock.advance(0.01)  # after the write above
    small.clock.advance(0.01)  # the next write is strictly after the instant (ms on the wire)
    ddb.put_item(TableName="Roll", Item={"pk": {"S": "before"}, "v": {"S": "after"}})
    seen = []
    for s in st.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        seen += shard_records(st, arn, s["ShardId"], ShardIteratorType="AT_TIMESTAMP", Timestamp=instant)
    assert [(r["eventName"], r["dynamodb"]["NewImage"].get("v")) for r in seen] == [("MODIFY", {"S": "after"})]


# ------------------------------------------------------------------ exports


def test_list_exports_pages_and_filter_specification_is_refused(aws):
    """[botocore] ListExports MaxResults 1..25 with NextToken; FilterSpecification (botocore 1.43) is refused
    as unsupported rather than ignored."""
    t = make_table(aws, "Pages")
    ddb = aws.client("dynamodb")
    arns = [ddb.export_table_to_point_in_time(TableArn=t["TableArn"], S3Bucket="conf", S3Prefix=f"p{i}")
            ["ExportDescription"]["ExportArn"] for i in range(3)]
    seen, token, pages = [], None, 0
    while True:
        kw = {"NextToken": token} if token else {}
        page = ddb.list_exports(TableArn=t["TableArn"], MaxResults=1, **kw)
        assert len(page["ExportSummaries"]) == 1
        seen += [e["ExportArn"] for e in page["ExportSummaries"]]
        pages += 1
        token = page.get("NextToken")
        if not token:
            break
    assert seen == arns and pages == 3
    with pytest.raises(ClientError) as info:
        ddb.export_table_to_point_in_time(TableArn=t["TableArn"], S3Bucket="conf",
                                          FilterSpecification={"FilterExpression": "attribute_exists(pk)"})
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert "FilterSpecification is not supported" in info.value.response["Error"]["Message"]
    for arn in arns:
        wait_export(ddb, arn)


def test_manifest_sidecars_are_base64_and_dynadex_verifies_them(aws, monkeypatch):
    """Real exports' .md5 sidecars hold base64(MD5), like md5Checksum in manifest-files.json (the genuine
    export in ../shared/fixtures/aws); dynadex reads and verifies them, and refuses a tampered manifest."""
    from dynadex.errors import ChecksumMismatch
    from dynadex.export import read_export

    t = make_table(aws, "Sidecar")
    ddb, s3 = aws.client("dynamodb"), aws.client("s3")
    ddb.put_item(TableName="Sidecar", Item={"pk": {"S": "a"}})
    d = wait_export(ddb, ddb.export_table_to_point_in_time(TableArn=t["TableArn"], S3Bucket="conf", S3Prefix="side")
                    ["ExportDescription"]["ExportArn"])
    folder = d["ExportManifest"].rsplit("/", 1)[0]
    for name in ("manifest-summary", "manifest-files"):
        body = s3.get_object(Bucket="conf", Key=f"{folder}/{name}.json")["Body"].read()
        sidecar = s3.get_object(Bucket="conf", Key=f"{folder}/{name}.md5")["Body"].read().decode()
        assert sidecar == base64.b64encode(hashlib.md5(body).digest()).decode()
    for k, v in aws.env().items():
        monkeypatch.setenv(k, v)
    assert read_export(f"s3://conf/{d['ExportManifest']}").summary.item_count == 1
    summary = s3.get_object(Bucket="conf", Key=d["ExportManifest"])["Body"].read()
    s3.put_object(Bucket="conf", Key=d["ExportManifest"], Body=summary.replace(b'"itemCount":1', b'"itemCount":1 '))
    with pytest.raises(ChecksumMismatch):
        read_export(f"s3://conf/{d['ExportManifest']}")
