"""The lean GetRecords over real HTTP against botocore's own: the same changes, the same errors, the same
retries (decision 0024)."""

from __future__ import annotations

import base64

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from dynadex.local_aws.faults import Fault
from dynadex.stream.get_records import GetRecords, lean
from dynadex.stream.sync import record_change
from tests.support.emulator import make_table

pytestmark = [pytest.mark.emulator(stream_shards=2), pytest.mark.usefixtures("no_faults_left")]

ITEMS = [
    {"pk": {"S": "plain"}, "n": {"N": "1"}},
    {"pk": {"S": "bin"}, "b": {"B": b"\x00\xffraw"}, "bs": {"BS": [b"z", b"\x01"]}},
    {"pk": {"S": "nested"}, "m": {"M": {"a": {"L": [{"N": "1.50"}, {"S": "x"}, {"NULL": True}]}, "": {"S": "e"}}},
     "ok": {"BOOL": False}, "ss": {"SS": ["b", "a"]}, "ns": {"NS": ["10", "2"]}},
    {"pk": {"S": "big"}, "n": {"N": "-1E+125"}, "t": {"S": "é☃𝄞"}},
]


def _client(aws, service: str, attempts: int = 3):
    return boto3.client(service, endpoint_url=aws.endpoint, region_name="us-east-1", aws_access_key_id="local",
                        aws_secret_access_key="local",
                        config=Config(retries={"mode": "standard", "total_max_attempts": attempts}))


def _table(aws, name: str):
    arn = make_table(aws, name, pitr=False)["LatestStreamArn"]
    return _client(aws, "dynamodb"), arn


def _changes(get_records, streams, arn: str) -> list:
    out = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            page = get_records(ShardIterator=it, Limit=2)
            out += [(r["dynamodb"]["SequenceNumber"], record_change(r, shard["ShardId"])) for r in page["Records"]]
            if not page["Records"]:
                break
            it = page.get("NextShardIterator")
    return out


def test_lean_get_records_gives_the_changes_botocore_gives(aws):
    ddb, arn = _table(aws, "Lean")
    for item in ITEMS:
        ddb.put_item(TableName="Lean", Item=item)
    ddb.delete_item(TableName="Lean", Key={"pk": {"S": "plain"}})
    streams = _client(aws, "dynamodbstreams")
    fast = lean(streams)
    assert isinstance(fast, GetRecords)
    ours, theirs = _changes(fast, streams, arn), _changes(streams.get_records, streams, arn)
    assert len(ours) == len(ITEMS) + 1
    assert ours == theirs
    raw = fast(ShardIterator=streams.get_shard_iterator(
        StreamArn=arn, ShardId=streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"],
        ShardIteratorType="TRIM_HORIZON")["ShardIterator"])
    # the wire's forms: epoch seconds, binaries as base64 text
    assert all(isinstance(r["dynamodb"]["ApproximateCreationDateTime"], float) for r in raw["Records"])
    binaries = [r["dynamodb"]["NewImage"]["b"]["B"] for r in raw["Records"] if "b" in r["dynamodb"].get("NewImage", {})]
    assert binaries in ([], [base64.b64encode(b"\x00\xffraw").decode()])


def test_errors_are_botocores_and_throttling_is_retried_like_botocore(aws):
    _, arn = _table(aws, "LeanErrors")
    streams = _client(aws, "dynamodbstreams", attempts=3)
    fast = lean(streams)
    with pytest.raises(ClientError) as ours:
        fast(ShardIterator="not-an-iterator")
    with pytest.raises(ClientError) as theirs:
        streams.get_records(ShardIterator="not-an-iterator")
    assert ours.value.response["Error"] == theirs.value.response["Error"]
    assert str(ours.value) == str(theirs.value)
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="LATEST")["ShardIterator"]

    # two throttles and a 500: within 3 attempts? no: 3 faults need 4 attempts -> raised after exactly 3
    aws.faults.inject(Fault("GetRecords", code="LimitExceededException", count=2),
                      Fault("GetRecords", code="InternalServerError", count=1))
    with pytest.raises(ClientError) as info:
        fast(ShardIterator=it, Limit=10)
    assert info.value.response["Error"]["Code"] == "InternalServerError"
    assert aws.faults.state()["fired"] == {"GetRecords": 3}
    aws.faults.clear()
    aws.faults.inject(Fault("GetRecords", code="LimitExceededException", count=2))
    page = fast(ShardIterator=it, Limit=10)
    assert page["Records"] == [] and page["NextShardIterator"]
    assert aws.faults.state()["fired"] == {"GetRecords": 2}


def test_lean_is_only_for_plain_streams_clients(aws):
    class Wrapper:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

    streams = _client(aws, "dynamodbstreams")
    assert lean(Wrapper(streams)) is None
    assert lean(_client(aws, "dynamodb")) is None
    assert lean(object()) is None


def test_a_botocore_without_the_attributes_lean_reads_falls_back_to_the_clients_own_method(aws, monkeypatch):
    """Fault: a botocore release without the private attributes the lean reader uses (the client's signer, its
    endpoint). ``lean`` then gives nothing, and the sync's real constructor takes the client's own
    ``get_records``, which reads the same changes over HTTP (the attribute is back for that call: a real
    renamed release would have it under its new name)."""
    from dynadex.stream import SyncSettings
    from dynadex.stream.sync import TableSync

    ddb, arn = _table(aws, "LeanFallback")
    ddb.put_item(TableName="LeanFallback", Item={"pk": {"S": "a"}})
    for attribute in ("_request_signer", "_endpoint"):
        streams = _client(aws, "dynamodbstreams")
        assert isinstance(TableSync(None, "T", None, streams, None, SyncSettings()).get_records, GetRecords)
        monkeypatch.delattr(streams, attribute)
        assert lean(streams) is None
        chosen = TableSync(None, "T", None, streams, None, SyncSettings()).get_records
        assert chosen == streams.get_records
        monkeypatch.undo()
        assert [c.keys for _, (c, _) in _changes(chosen, streams, arn)] == [{"pk": {"S": "a"}}]
