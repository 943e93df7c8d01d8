"""The emulator's HTTP side against what it replaced: the streams lane answers what moto's dispatch answered,
and connections stay open between requests without an unread body leaking into the next (decision 0024)."""

from __future__ import annotations

import http.client
import json
import re
import socket
from urllib.parse import urlparse

import boto3
import pytest

from dynadex.local_aws.faults import Fault

AUTH = b"AWS4-HMAC-SHA256 Credential=local/20261203/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=x"
ITEMS = [
    {"pk": {"S": "plain"}, "n": {"N": "1"}},
    {"pk": {"S": "bin"}, "b": {"B": b"\x00\xffraw"}, "bs": {"BS": [b"z", b"\x01"]}},
    {"pk": {"S": "nested"}, "m": {"M": {"a": {"L": [{"N": "1.50"}, {"S": "x"}, {"NULL": True}]}}}, "ok": {"BOOL": False}},
]


pytestmark = [pytest.mark.emulator(stream_shards=2), pytest.mark.usefixtures("no_faults_left")]


def _calls(endpoint: str) -> list[tuple[str, int, str]]:
    """A script of stream calls, good and bad, and what each answered (ids and times masked)."""
    ddb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="local",
                       aws_secret_access_key="local")
    ddb.create_table(TableName="Script", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
                     StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    for item in ITEMS:
        ddb.put_item(TableName="Script", Item=item)
    arn = ddb.describe_table(TableName="Script")["Table"]["LatestStreamArn"]
    host = urlparse(endpoint)
    conn = http.client.HTTPConnection(host.hostname, host.port)
    out = []
    compacts = _calls.compact = []  # per answer: was it compact JSON (None: not JSON)

    def call(op: str, body) -> dict:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        conn.request("POST", "/", raw, {"Content-Type": "application/x-amz-json-1.0",
                                        "X-Amz-Target": f"DynamoDBStreams_20120810.{op}",
                                        "Authorization": AUTH.decode()})
        resp = conn.getresponse()
        text = resp.read().decode()
        compact = None
        try:  # the lane writes compact JSON as AWS does, moto's dispatch with spaces: compared as values
            doc = json.loads(text)
            compact = json.dumps(doc, separators=(",", ":"), ensure_ascii=False) == text
            text = json.dumps(doc)
        except ValueError:
            pass
        masked = re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+|\|1\|[0-9a-f]+|\d{10}\.\d+|\"eventID\": \"[0-9a-f]+\"|"
                        r"\"SequenceNumber\": \"\d+\"|shardId-[\w-]+|\"(Starting|Ending)SequenceNumber\": \"\d+\"",
                        "*", text)
        out.append((op, resp.status, masked, resp.getheader("Content-Type"), resp.getheader("X-Amzn-ErrorType")))
        compacts.append(compact)
        try:
            return json.loads(text)
        except ValueError:
            return {}

    shards = call("DescribeStream", {"StreamArn": arn})["StreamDescription"]["Shards"]
    call("DescribeStream", {"StreamArn": arn + "x"})
    call("DescribeStream", {"StreamArn": arn, "Limit": 0})
    call("DescribeStream", {"StreamArn": arn, "ShardFilter": {"Type": "CHILD_SHARDS", "ShardId": shards[0]["ShardId"]}})
    call("GetShardIterator", {"StreamArn": arn, "ShardId": "nope", "ShardIteratorType": "TRIM_HORIZON"})
    call("GetShardIterator", {"StreamArn": arn, "ShardId": shards[0]["ShardId"], "ShardIteratorType": "BOGUS"})
    call("GetRecords", {"ShardIterator": "zzz"})
    call("GetRecords", {})
    call("GetRecords", b"not json")
    for s in sorted(shards, key=lambda s: s["SequenceNumberRange"]["StartingSequenceNumber"]):
        it = call("GetShardIterator", {"StreamArn": arn, "ShardId": s["ShardId"],
                                       "ShardIteratorType": "TRIM_HORIZON"})["ShardIterator"]
        call("GetRecords", {"ShardIterator": it, "Limit": 0})
        call("GetRecords", {"ShardIterator": it, "Limit": 1000})
    conn.close()
    return out


def test_streams_lane_answers_what_moto_dispatch_answers(emulator):
    lane = _calls(emulator(stream_shards=2, streams_lane=1).endpoint)
    compact = _calls.compact
    moto = _calls(emulator(stream_shards=2, streams_lane=0).endpoint)
    # the lane's answers are compact JSON, as DynamoDB Streams writes them (the sync shapes images from these
    # bytes); its errors are moto's own
    assert all(c for c, (_op, status, *_rest) in zip(compact, lane) if status == 200)
    assert len(lane) == len(moto) == 15
    for (op, status, body, ctype, etype), theirs in zip(lane, moto):
        assert (op, status, body, etype) == theirs[:3] + theirs[4:], (op, body, theirs)
        # moto answered GetRecords as text/html; the lane answers what AWS does
        assert ctype == (theirs[3] if status != 200 or op != "GetRecords" else "application/x-amz-json-1.0")


def _raw(sock: socket.socket, request: bytes) -> bytes:
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the emulator closed the connection before answering {request[:60]!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the emulator closed the connection mid-answer"
        body += chunk
    assert len(body) == length  # nothing of a next answer was sent
    return head + b"\r\n\r\n" + body


def test_connections_are_kept_alive_and_unread_bodies_never_leak_into_the_next_request(aws):
    host = urlparse(aws.endpoint)
    with socket.create_connection((host.hostname, host.port)) as sock:
        answers = []
        # a request whose body the application never reads (S3's ListBuckets), a body that looks like requests
        body = b"DELETE /bucket HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" * 3
        answers.append(_raw(sock, b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)))
        # one answered by an injected fault
        aws.faults.inject(Fault("PutObject", code="SlowDown", count=1))
        answers.append(_raw(sock, b"PUT /bucket/key HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)))
        for _ in range(3):  # then ordinary requests, all on the same connection
            req = json.dumps({}).encode()
            answers.append(_raw(sock, b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: DynamoDB_20120810.ListTables\r\n"
                                      b"Authorization: " + AUTH + b"\r\n"
                                      b"Content-Type: application/x-amz-json-1.0\r\nContent-Length: %d\r\n\r\n%s"
                                % (len(req), req)))
    assert answers[0].startswith(b"HTTP/1.1 200") and b"ListAllMyBucketsResult" in answers[0]
    assert answers[1].startswith(b"HTTP/1.1 503") and b"SlowDown" in answers[1]
    assert all(a.startswith(b"HTTP/1.1 200") and b"TableNames" in a for a in answers[2:])
    assert not any(b"Connection: close" in a for a in answers)
    # a client that asks to close gets its answer and the close
    with socket.create_connection((host.hostname, host.port)) as sock:
        sock.sendall(b"GET /_dynadex/faults HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200") and b"Connection: close" in data


def test_moto_modules_are_listed_once(monkeypatch):
    import os

    from moto import backends

    from dynadex.local_aws import patches

    patches.apply_all()
    listed = backends.list_of_moto_modules()
    assert tuple(listed) == tuple(backends.list_of_moto_modules.original()) and "dynamodb" in listed
    calls = []
    monkeypatch.setattr(os, "listdir", lambda *a: calls.append(a) or [])
    assert backends.list_of_moto_modules() == listed and calls == []  # no listing after the first
