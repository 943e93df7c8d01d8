"""The bundled emulator behaves like AWS: every behaviour through boto3 over real HTTP to a child process.

Time passes on the emulator's clock, which tests move forward (``test_clock=1``, ``aws.clock.advance``)
instead of sleeping: so every instant a test sends the emulator is read from that clock (``aws.clock.now()``),
never from ``time.time()``, which the clock is ahead of once a test moved it.
"""

from __future__ import annotations

import gzip
import json
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
from botocore.exceptions import ClientError

from dynadex.aws import from_client, to_client
from dynadex.export import iter_records, read_export
from dynadex.types import canonical_item, canonical_json
from tests.support.emulator import make_table, wait_export
from tests.support.exports import GENUINE_DIR_KEY, GENUINE_ROOT
from tests.support.poll import wait_until

pytestmark = pytest.mark.emulator(bucket="exports", test_clock=1, export_seconds=0.4, export_files=4,
                                  min_incremental_seconds=1, stream_shards=3, rollover_records=4, retention_seconds=4,
                                  iterator_seconds=2, ttl_interval_seconds=0.3)


def code(exc: ClientError) -> str:
    return exc.response["Error"]["Code"]


# ------------------------------------------------------------------ exports


def test_export_errors_like_aws(aws):
    ddb = aws.client("dynamodb")
    no_pitr = make_table(aws, "NoPitr", pitr=False)
    with pytest.raises(ClientError) as info:
        ddb.export_table_to_point_in_time(TableArn=no_pitr["TableArn"], S3Bucket="exports")
    assert code(info.value) == "PointInTimeRecoveryUnavailableException"
    t = make_table(aws, "Errs")
    with pytest.raises(ClientError) as info:
        ddb.export_table_to_point_in_time(TableArn=t["TableArn"], S3Bucket="exports", ExportTime=aws.clock.now() + 3600)
    assert code(info.value) == "InvalidExportTimeException"
    with pytest.raises(ClientError) as info:
        ddb.export_table_to_point_in_time(TableArn=t["TableArn"], S3Bucket="exports", ExportTime=aws.clock.now() - 86400)
    assert code(info.value) == "InvalidExportTimeException"  # before PITR was enabled
    first = ddb.export_table_to_point_in_time(TableArn=t["TableArn"], S3Bucket="exports", S3Prefix="p", ClientToken="tok-1")
    again = ddb.export_table_to_point_in_time(TableArn=t["TableArn"], S3Bucket="exports", S3Prefix="p", ClientToken="tok-1")
    assert first["ExportDescription"]["ExportArn"] == again["ExportDescription"]["ExportArn"]
    with pytest.raises(ClientError) as info:
        ddb.export_table_to_point_in_time(TableArn=t["TableArn"], S3Bucket="exports", S3Prefix="q", ClientToken="tok-1")
    assert code(info.value) == "ImportConflictException"
    missing = ddb.export_table_to_point_in_time(TableArn=t["TableArn"], S3Bucket="no-such-bucket")["ExportDescription"]
    assert missing["ExportStatus"] == "IN_PROGRESS"
    done = wait_export(ddb, missing["ExportArn"])
    assert done["ExportStatus"] == "FAILED" and done["FailureCode"] == "S3NoSuchBucket" and done["FailureMessage"]
    arns = {e["ExportArn"] for e in ddb.list_exports(TableArn=t["TableArn"])["ExportSummaries"]}
    assert {first["ExportDescription"]["ExportArn"], missing["ExportArn"]} <= arns


def test_full_export_layout_and_checksums(aws, tmp_path, monkeypatch):
    ddb, s3 = aws.client("dynamodb"), aws.client("s3")
    t = make_table(aws, "Layout")
    for i in range(2):  # two items over four files: at least two empty partitions
        ddb.put_item(TableName="Layout", Item={"pk": {"S": f"k{i}"}, "n": {"N": "01.50"}, "s": {"SS": ["b", "a"]}})
    d = ddb.export_table_to_point_in_time(TableArn=t["TableArn"], S3Bucket="exports", S3Prefix="lay/out")["ExportDescription"]
    export_id = d["ExportArn"].rsplit("/", 1)[1]
    assert re.fullmatch(r"\d{14}-[0-9a-f]{8}", export_id)
    assert d["ExportStatus"] == "IN_PROGRESS"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="exports", Prefix=f"lay/out/AWSDynamoDB/{export_id}/").get("Contents", [])]
    assert keys == [f"lay/out/AWSDynamoDB/{export_id}/_started"]  # only _started while in progress
    d = wait_export(ddb, d["ExportArn"])
    assert d["ExportStatus"] == "COMPLETED" and d["ItemCount"] == 2
    folder = f"lay/out/AWSDynamoDB/{export_id}"
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="exports", Prefix=folder)["Contents"])
    data = [k for k in keys if "/data/" in k]
    assert len(data) == 4 and all(re.fullmatch(rf"{folder}/data/[a-z2-7]{{26}}\.json\.gz", k) for k in data)
    assert set(keys) - set(data) == {f"{folder}/{n}" for n in
                                     ("_started", "manifest-files.json", "manifest-files.md5", "manifest-summary.json", "manifest-summary.md5")}
    assert d["ExportManifest"] == f"{folder}/manifest-summary.json"
    files = [json.loads(l) for l in s3.get_object(Bucket="exports", Key=f"{folder}/manifest-files.json")["Body"].read().splitlines()]
    assert sorted(f["itemCount"] for f in files) == [0, 0, 1, 1] or sorted(f["itemCount"] for f in files)[-1] == 2
    empty = [f for f in files if f["itemCount"] == 0]
    assert empty and all(len(s3.get_object(Bucket="exports", Key=f["dataFileS3Key"])["Body"].read()) == 20 for f in empty)
    # our own reader verifies every checksum, count and item over real HTTP
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.endpoint)
    for k, v in aws.env().items():
        monkeypatch.setenv(k, v)
    export = read_export(f"s3://exports/{folder}/manifest-summary.json")
    assert export.summary.export_type == "FULL_EXPORT" and export.summary.item_count == 2
    items = sorted(canonical_json(r.item) for f in export.files for r in iter_records(export, f))
    assert items == [f'{{"n":{{"N":"1.5"}},"pk":{{"S":"k{i}"}},"s":{{"SS":["a","b"]}}}}' for i in range(2)]
    done = subprocess.run([sys.executable, "-m", "dynadex.cli", "inspect-export", f"s3://exports/{folder}/manifest-summary.json"],
                          capture_output=True, text=True, env={**__import__("os").environ, **aws.env()})
    assert done.returncode == 0 and "OK" in done.stdout, done.stderr


def test_export_matches_the_genuine_aws_export(aws):
    """Same three items as the genuine export -> same file kinds, same manifest fields in the same order, same lines."""
    ddb, s3 = aws.client("dynamodb"), aws.client("s3")
    ddb.create_table(TableName="S3ExportTest", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
    ddb.update_continuous_backups(TableName="S3ExportTest", PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
    genuine_dir = GENUINE_ROOT / GENUINE_DIR_KEY
    genuine_lines = gzip.decompress(next((genuine_dir / "data").glob("*.gz")).read_bytes()).decode().splitlines()
    for line in genuine_lines:
        ddb.put_item(TableName="S3ExportTest", Item=to_client(json.loads(line)["Item"]))
    arn = ddb.describe_table(TableName="S3ExportTest")["Table"]["TableArn"]
    d = ddb.export_table_to_point_in_time(TableArn=arn, S3Bucket="exports", S3Prefix="dynamodb-export")["ExportDescription"]
    d = wait_export(ddb, d["ExportArn"])
    summary = json.loads(s3.get_object(Bucket="exports", Key=d["ExportManifest"])["Body"].read())
    genuine_summary = json.loads((genuine_dir / "manifest-summary.json").read_text())
    assert list(summary) == list(genuine_summary)  # same fields, same order
    assert summary["itemCount"] == 3 and summary["outputFormat"] == "DYNAMODB_JSON" and "exportType" not in summary
    files = [json.loads(l) for l in s3.get_object(Bucket="exports", Key=summary["manifestFilesS3Key"])["Body"].read().splitlines()]
    genuine_files = [json.loads(l) for l in (genuine_dir / "manifest-files.json").read_text().splitlines()]
    assert all(list(f) == list(genuine_files[0]) for f in files)
    lines = []
    for f in files:
        body = s3.get_object(Bucket="exports", Key=f["dataFileS3Key"])["Body"].read()
        lines += gzip.decompress(body).decode().splitlines()
    canon = lambda ls: sorted(canonical_json(canonical_item(json.loads(l)["Item"])) for l in ls)  # noqa: E731
    assert canon(lines) == canon(genuine_lines)
    assert all(list(json.loads(l)) == ["Item"] for l in lines)


def test_export_at_time_t_while_writes_continue(aws):
    ddb, s3 = aws.client("dynamodb"), aws.client("s3")
    t = make_table(aws, "Busy")
    log: list[tuple[float, float, int]] = []  # (sent, answered, counter)
    stop = threading.Event()

    def writer():
        i = 0
        while not stop.is_set():
            i += 1
            sent = aws.clock.now()
            ddb.put_item(TableName="Busy", Item={"pk": {"S": f"k{i % 7}"}, "v": {"N": str(i)}})
            if i % 5 == 0:
                ddb.delete_item(TableName="Busy", Key={"pk": {"S": f"k{(i + 3) % 7}"}})
            log.append((sent, aws.clock.now(), i))
            if i % 25 == 0:
                time.sleep(0.02)  # leave gaps: instants between two writes

    th = threading.Thread(target=writer)
    th.start()
    try:
        _check_export_at(ddb, s3, t, log, stop, th)
    finally:
        stop.set()
        th.join()


def _check_export_at(ddb, s3, t, log, stop, th):
    def pause_between_writes():
        """T: a moment between two writes (after write i's answer, before write i+1 was sent), past the first 100."""
        snap = list(log)
        for (s1, a1, i1), (s2, a2, i2) in zip(snap[100:], snap[101:]):
            if s2 - a1 > 0.01:
                return (a1 + s2) / 2, i1

    export_time, last = wait_until(pause_between_writes, "a pause of 10 ms between two writes, after 100 of them")
    wait_until(lambda: len(log) > last + 5, "5 writes after T, before the export is asked for")
    d = ddb.export_table_to_point_in_time(TableArn=t["TableArn"], S3Bucket="exports", S3Prefix="busy",
                                          ExportTime=export_time)["ExportDescription"]
    asked = len(log)
    wait_until(lambda: len(log) > asked + 5, "5 writes while the export is in progress")
    stop.set()
    th.join()
    # the table as it was at T: replay writes 1..last
    state: dict[str, int] = {}
    for i in range(1, last + 1):
        state[f"k{i % 7}"] = i
        if i % 5 == 0:
            state.pop(f"k{(i + 3) % 7}", None)
    expected = sorted(canonical_json({"pk": {"S": k}, "v": {"N": str(v)}}) for k, v in state.items())
    d = wait_export(ddb, d["ExportArn"])
    summary = json.loads(s3.get_object(Bucket="exports", Key=d["ExportManifest"])["Body"].read())
    got = []
    for l in s3.get_object(Bucket="exports", Key=summary["manifestFilesS3Key"])["Body"].read().splitlines():
        body = s3.get_object(Bucket="exports", Key=json.loads(l)["dataFileS3Key"])["Body"].read()
        got += [canonical_json(json.loads(x)["Item"]) for x in gzip.decompress(body).decode().splitlines()]
    assert sorted(got) == expected


def test_ion_and_incremental_exports(aws, monkeypatch):
    ddb = aws.client("dynamodb")
    for k, v in aws.env().items():
        monkeypatch.setenv(k, v)
    t = make_table(aws, "Incr", sort=("sk", "N"))
    start = aws.clock.now()
    aws.clock.advance(0.01)  # every write below is after ``start``
    ddb.put_item(TableName="Incr", Item={"pk": {"S": "a"}, "sk": {"N": "1"}, "b": {"B": b"hi"}, "ns": {"NS": ["2", "1.50"]},
                                         "m": {"M": {"bin": {"B": b"\x00\xff"}, "bs": {"BS": [b"x", b"y"]}}}})
    ddb.put_item(TableName="Incr", Item={"pk": {"S": "gone"}, "sk": {"N": "2"}})
    ddb.update_item(TableName="Incr", Key={"pk": {"S": "a"}, "sk": {"N": "1"}}, UpdateExpression="SET x = :x",
                    ExpressionAttributeValues={":x": {"L": [{"NULL": True}, {"BOOL": True}]}})
    ddb.delete_item(TableName="Incr", Key={"pk": {"S": "gone"}, "sk": {"N": "2"}})
    ddb.put_item(TableName="Incr", Item={"pk": {"S": "b"}, "sk": {"N": "-3.25"}})
    end = aws.clock.advance(1.1)  # a window longer than the shortest incremental export (min_incremental_seconds=1)
    # ION full export decodes to the same items as the table holds
    ion = wait_export(ddb, ddb.export_table_to_point_in_time(TableArn=t["TableArn"], S3Bucket="exports", S3Prefix="ion",
                                                             ExportFormat="ION")["ExportDescription"]["ExportArn"])
    e = read_export(f"s3://exports/{ion['ExportManifest']}")
    assert e.summary.output_format == "ION" and all(f.key.endswith(".ion.gz") for f in e.files)
    items = sorted(canonical_json(r.item) for f in e.files for r in iter_records(e, f))
    scan = sorted(canonical_json(canonical_item(from_client(i))) for i in ddb.scan(TableName="Incr")["Items"])
    assert items == scan
    # incremental: one record per changed item, deletes without NewImage, shared data folder
    with pytest.raises(ClientError) as info:
        ddb.export_table_to_point_in_time(TableArn=t["TableArn"], S3Bucket="exports", ExportType="INCREMENTAL_EXPORT",
                                          IncrementalExportSpecification={"ExportFromTime": end - 0.5, "ExportToTime": end})
    assert code(info.value) == "ValidationException" and "at least" in info.value.response["Error"]["Message"]
    inc = wait_export(ddb, ddb.export_table_to_point_in_time(
        TableArn=t["TableArn"], S3Bucket="exports", S3Prefix="inc", ExportType="INCREMENTAL_EXPORT",
        IncrementalExportSpecification={"ExportFromTime": start, "ExportToTime": end, "ExportViewType": "NEW_AND_OLD_IMAGES"},
    )["ExportDescription"]["ExportArn"])
    e = read_export(f"s3://exports/{inc['ExportManifest']}")
    assert e.summary.export_type == "INCREMENTAL_EXPORT" and e.summary.output_view == "NEW_AND_OLD_IMAGES"
    assert all(f.key.startswith("inc/AWSDynamoDB/data/") for f in e.files)
    recs = {canonical_json(r.keys): r for f in e.files for r in iter_records(e, f)}
    assert set(recs) == {'{"pk":{"S":"a"},"sk":{"N":"1"}}', '{"pk":{"S":"b"},"sk":{"N":"-3.25"}}',
                         '{"pk":{"S":"gone"},"sk":{"N":"2"}}'}
    gone = recs['{"pk":{"S":"gone"},"sk":{"N":"2"}}']  # came and went inside the window: a delete, no images
    assert gone.item is None and gone.old_image is None
    a = recs['{"pk":{"S":"a"},"sk":{"N":"1"}}']
    assert a.item["x"] == {"L": [{"NULL": True}, {"BOOL": True}]} and a.item["ns"] == {"NS": ["1.5", "2"]}
    assert a.item["b"] == {"B": "aGk="} and a.item["m"]["M"]["bin"] == {"B": "AP8="}
    assert a.item["m"]["M"]["bs"] == {"BS": ["eA==", "eQ=="]}
    assert start * 1e6 <= a.write_micros < end * 1e6
    # a delete inside a window: the record has Keys and OldImage but no NewImage
    t2 = aws.clock.now()
    ddb.delete_item(TableName="Incr", Key={"pk": {"S": "b"}, "sk": {"N": "-3.25"}})
    t3 = aws.clock.advance(1.05)
    inc2 = wait_export(ddb, ddb.export_table_to_point_in_time(
        TableArn=t["TableArn"], S3Bucket="exports", S3Prefix="inc", ExportType="INCREMENTAL_EXPORT",
        IncrementalExportSpecification={"ExportFromTime": t2, "ExportToTime": t3})["ExportDescription"]["ExportArn"])
    e = read_export(f"s3://exports/{inc2['ExportManifest']}")
    [rec] = [r for f in e.files for r in iter_records(e, f)]
    assert rec.item is None and rec.keys == {"pk": {"S": "b"}, "sk": {"N": "-3.25"}} and rec.old_image is not None


def test_items_at_dynamodbs_limits_export_exactly_in_both_formats(aws, monkeypatch):
    """A 400 KB item, a 64 KB attribute name and 32 levels of nesting, written through the API, come back
    from full exports in both formats and from an ION incremental export exactly as a Scan answers them."""
    ddb = aws.client("dynamodb")
    for k, v in aws.env().items():
        monkeypatch.setenv(k, v)
    t = make_table(aws, "Limits")
    start = aws.clock.now()
    deep: dict = {"S": "bottom"}
    for level in range(31):  # 32 levels with the top map
        deep = {"L": [deep]} if level % 2 else {"M": {"a": deep}}
    items = [
        {"pk": {"S": "big"}, "s": {"S": "é" * ((400 * 1024 - 6) // 2)}},  # exactly 409,600 bytes
        {"pk": {"S": "name"}, "n" * 65535: {"S": "v"}, "m": {"M": {"k" * 65535: {"B": b"\x00" * 200_000}}}},
        {"pk": {"S": "deep"}, "d": {"M": {"a": deep}}},
    ]
    for item in items:
        ddb.put_item(TableName="Limits", Item=item)
    scan = sorted(canonical_json(canonical_item(from_client(i))) for i in ddb.scan(TableName="Limits")["Items"])
    assert len(scan) == 3
    end = aws.clock.advance(1.05)  # the shortest incremental window the knobs allow (min_incremental_seconds=1)
    for fmt in ("DYNAMODB_JSON", "ION"):
        d = wait_export(ddb, ddb.export_table_to_point_in_time(TableArn=t["TableArn"], S3Bucket="exports",
                                                               S3Prefix=f"limits-{fmt}", ExportFormat=fmt)
                        ["ExportDescription"]["ExportArn"])
        e = read_export(f"s3://exports/{d['ExportManifest']}")
        assert sorted(canonical_json(r.item) for f in e.files for r in iter_records(e, f)) == scan, fmt
    inc = wait_export(ddb, ddb.export_table_to_point_in_time(
        TableArn=t["TableArn"], S3Bucket="exports", S3Prefix="limits-inc", ExportType="INCREMENTAL_EXPORT",
        ExportFormat="ION", IncrementalExportSpecification={"ExportFromTime": start, "ExportToTime": end},
    )["ExportDescription"]["ExportArn"])
    e = read_export(f"s3://exports/{inc['ExportManifest']}")
    assert sorted(canonical_json(r.item) for f in e.files for r in iter_records(e, f)) == scan


# ------------------------------------------------------------------ streams


def read_shard(st, arn, shard_id, kind="TRIM_HORIZON", seq=None):
    kw = {"SequenceNumber": seq} if seq else {}
    it = st.get_shard_iterator(StreamArn=arn, ShardId=shard_id, ShardIteratorType=kind, **kw)["ShardIterator"]
    out = []
    while it:
        r = st.get_records(ShardIterator=it, Limit=1000)
        out += r["Records"]
        if not r["Records"]:
            return out, r.get("NextShardIterator")
        it = r.get("NextShardIterator")
    return out, None


def all_shards(st, arn, limit=2):
    shards, start = [], None
    while True:
        kw = {"ExclusiveStartShardId": start} if start else {}
        d = st.describe_stream(StreamArn=arn, Limit=limit, **kw)["StreamDescription"]
        shards += d["Shards"]
        start = d.get("LastEvaluatedShardId")
        if not start:
            return shards


def test_streams_shards_rollover_lineage_and_order(aws):
    ddb, st = aws.client("dynamodb"), aws.client("dynamodbstreams")
    t = make_table(aws, "Streamy")
    for i in range(40):
        ddb.put_item(TableName="Streamy", Item={"pk": {"S": f"k{i % 10}"}, "v": {"N": str(i)}})
    arn = t["LatestStreamArn"]
    shards = all_shards(st, arn, limit=2)  # paginated 2 at a time
    assert len({s["ShardId"] for s in shards}) == len(shards) > 3
    roots = [s for s in shards if "ParentShardId" not in s]
    assert len(roots) == 3  # three lineages
    ids = {s["ShardId"] for s in shards}
    assert all(s["ParentShardId"] in ids for s in shards if "ParentShardId" in s)
    closed = [s for s in shards if "EndingSequenceNumber" in s["SequenceNumberRange"]]
    assert closed  # rollover after 4 records closed shards
    lengths = {len(s["SequenceNumberRange"]["StartingSequenceNumber"]) for s in shards}
    assert len(lengths) >= 2  # sequence numbers of varying length
    seen: dict[str, list[int]] = {}
    for s in shards:
        recs, nxt = read_shard(st, arn, s["ShardId"])
        seqs = [int(r["dynamodb"]["SequenceNumber"]) for r in recs]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        if s in closed:
            assert nxt is None  # closed shard read to its end: no NextShardIterator
            assert int(s["SequenceNumberRange"]["EndingSequenceNumber"]) >= (seqs[-1] if seqs else 0)
        for r in recs:
            seen.setdefault(r["dynamodb"]["Keys"]["pk"]["S"], []).append(int(r["dynamodb"]["NewImage"]["v"]["N"]))
    # per key: every write, in order, across parent -> child shards
    for k in range(10):
        assert sorted(seen[f"k{k}"]) == [i for i in range(40) if i % 10 == k]
    # parents before children: each child's first sequence number is above its parent's last
    by_id = {s["ShardId"]: s for s in shards}
    for s in shards:
        if "ParentShardId" in s:
            parent = by_id[s["ParentShardId"]]
            assert int(s["SequenceNumberRange"]["StartingSequenceNumber"]) > int(parent["SequenceNumberRange"]["EndingSequenceNumber"])


def test_stream_records_look_like_aws(aws):
    ddb, st = aws.client("dynamodb"), aws.client("dynamodbstreams")
    t = make_table(aws, "Shape", stream="NEW_IMAGE")
    ddb.put_item(TableName="Shape", Item={"pk": {"S": "x"}, "n": {"N": "1.0"}})
    ddb.put_item(TableName="Shape", Item={"pk": {"S": "x"}, "n": {"N": "2"}})
    ddb.delete_item(TableName="Shape", Key={"pk": {"S": "x"}})
    recs = [r for s in all_shards(st, t["LatestStreamArn"]) for r in read_shard(st, t["LatestStreamArn"], s["ShardId"])[0]]
    assert [r["eventName"] for r in recs] == ["INSERT", "MODIFY", "REMOVE"]
    assert recs[0]["dynamodb"]["NewImage"] == {"pk": {"S": "x"}, "n": {"N": "1"}}
    assert all("OldImage" not in r["dynamodb"] for r in recs)  # NEW_IMAGE view
    assert "NewImage" not in recs[2]["dynamodb"] and recs[2]["dynamodb"]["Keys"] == {"pk": {"S": "x"}}
    assert all(r["eventSource"] == "aws:dynamodb" and r["dynamodb"]["StreamViewType"] == "NEW_IMAGE" for r in recs)
    desc = st.describe_stream(StreamArn=t["LatestStreamArn"])["StreamDescription"]
    assert desc["StreamViewType"] == "NEW_IMAGE" and desc["TableName"] == "Shape" and desc["StreamStatus"] == "ENABLED"
    assert any(s["StreamArn"] == t["LatestStreamArn"] for s in st.list_streams(TableName="Shape")["Streams"])


def test_iterator_expiry_retention_trim_and_vanishing_shards(aws):
    ddb, st = aws.client("dynamodb"), aws.client("dynamodbstreams")
    t = make_table(aws, "Old")
    arn = t["LatestStreamArn"]
    for i in range(12):
        ddb.put_item(TableName="Old", Item={"pk": {"S": f"k{i}"}})
    shards = all_shards(st, arn)
    first = shards[0]
    recs, _ = read_shard(st, arn, first["ShardId"])
    old_seq = recs[0]["dynamodb"]["SequenceNumber"]
    it = st.get_shard_iterator(StreamArn=arn, ShardId=first["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    assert st.get_records(ShardIterator=it)["Records"]  # fresh: it reads
    it = st.get_shard_iterator(StreamArn=arn, ShardId=first["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    aws.clock.advance(2.2)  # iterator lifetime is 2 s
    with pytest.raises(ClientError) as info:
        st.get_records(ShardIterator=it)
    assert code(info.value) == "ExpiredIteratorException"
    aws.clock.advance(2.2)  # retention is 4 s: the first records are trimmed now
    ddb.put_item(TableName="Old", Item={"pk": {"S": "fresh"}})
    with pytest.raises(ClientError) as info:
        st.get_shard_iterator(StreamArn=arn, ShardId=first["ShardId"], ShardIteratorType="AT_SEQUENCE_NUMBER",
                              SequenceNumber=old_seq)
    assert code(info.value) in ("TrimmedDataAccessException", "ResourceNotFoundException")
    now_ids = {s["ShardId"] for s in all_shards(st, arn)}
    closed_old = [s["ShardId"] for s in shards if "EndingSequenceNumber" in s["SequenceNumberRange"]]
    assert closed_old and not (set(closed_old) & now_ids)  # old closed shards vanished
    fresh = [r for s in all_shards(st, arn) for r in read_shard(st, arn, s["ShardId"])[0]]
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in fresh] == ["fresh"]


def test_ttl_deletes_are_service_removes(aws):
    ddb, st = aws.client("dynamodb"), aws.client("dynamodbstreams")
    t = make_table(aws, "Ttl")
    ddb.update_time_to_live(TableName="Ttl", TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"})
    ddb.put_item(TableName="Ttl", Item={"pk": {"S": "old"}, "expires": {"N": str(int(aws.clock.now()) - 10)}})
    ddb.put_item(TableName="Ttl", Item={"pk": {"S": "keep"}, "expires": {"N": str(int(aws.clock.now()) + 3600)}})
    ddb.put_item(TableName="Ttl", Item={"pk": {"S": "user"}})
    ddb.delete_item(TableName="Ttl", Key={"pk": {"S": "user"}})
    wait_until(lambda: "Item" not in ddb.get_item(TableName="Ttl", Key={"pk": {"S": "old"}}),
               "the TTL sweeper (every 0.3 s) to delete the expired item", timeout=5, every=0.05)
    assert "Item" in ddb.get_item(TableName="Ttl", Key={"pk": {"S": "keep"}})
    recs = [r for s in all_shards(st, t["LatestStreamArn"]) for r in read_shard(st, t["LatestStreamArn"], s["ShardId"])[0]]
    removes = {r["dynamodb"]["Keys"]["pk"]["S"]: r for r in recs if r["eventName"] == "REMOVE"}
    assert removes["old"]["userIdentity"] == {"PrincipalId": "dynamodb.amazonaws.com", "Type": "Service"}
    assert "userIdentity" not in removes["user"]


def test_cli_prints_ready_and_stops_on_sigterm():
    proc = subprocess.Popen([sys.executable, "-m", "dynadex.cli", "local-aws", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert re.fullmatch(r"ready http://127\.0\.0\.1:\d+\n", line)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
