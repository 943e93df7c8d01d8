"""AWS faults injected into the emulator over real HTTP (local_aws.faults): throttling, 5xx, outages.

Each fault is declared to the running emulator, the run meets it, then the run is repeated (or goes on)
and ``verify`` (or a dump comparison) shows nothing was lost, duplicated or half-published.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time

import boto3
import pytest
from botocore.config import Config

import dynadex.aws
from dynadex import bootstrap
from dynadex.errors import AwsThrottled, S3Unavailable
from dynadex.local_aws.faults import Fault
from dynadex.store import Store
from dynadex.stream import sync_table
from dynadex.stream.verify import verify
from tests.support.emulator import BUCKET, end_outage, make_table
from tests.support.poll import wait_until
from tests.support.sync import churn, clients, converge, filled, no_duplicates

pytestmark = [pytest.mark.emulator(bucket=BUCKET, env=True, export_seconds=0.3, export_files=3, stream_shards=3,
                                   rollover_records=60, min_incremental_seconds=1),
              pytest.mark.usefixtures("no_faults_left")]


def bare(aws, service: str):
    """A client that never retries, to see exactly what the emulator answers."""
    return boto3.client(service, endpoint_url=aws.endpoint, region_name="us-east-1", aws_access_key_id="local",
                        aws_secret_access_key="local", config=Config(retries={"total_max_attempts": 1}))


# ------------------------------------------------------------------------------------------- the facility
def test_faults_answer_in_aws_wire_formats_and_are_counted(aws):
    s3, ddb, streams = bare(aws, "s3"), bare(aws, "dynamodb"), bare(aws, "dynamodbstreams")
    aws.client("s3").put_object(Bucket=BUCKET, Key="probe/a.json.gz", Body=b"x")
    aws.faults.clear()
    aws.faults.inject(Fault("GetObject", code="SlowDown", key="probe/"),
                      Fault("PutObject", code="InternalError"),
                      Fault("HeadObject", code="SlowDown"),
                      Fault("GetRecords", code="LimitExceededException", after=1, count=2),
                      Fault("ListStreams", code="LimitExceededException"),
                      Fault("DescribeExport", code="InternalServerError"),
                      Fault("ListTables", code="ThrottlingException", count=-1))
    with pytest.raises(s3.exceptions.ClientError) as info:
        s3.get_object(Bucket=BUCKET, Key="probe/a.json.gz")
    err = info.value.response
    assert (err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]) == ("SlowDown", 503)
    assert err["Error"]["Message"] == "Please reduce your request rate." and err["Error"]["Key"] == "probe/a.json.gz"
    assert s3.get_object(Bucket=BUCKET, Key="probe/a.json.gz")["Body"].read() == b"x"  # one request only
    with pytest.raises(s3.exceptions.ClientError) as info:
        s3.put_object(Bucket=BUCKET, Key="probe/b", Body=b"y")
    assert info.value.response["Error"]["Code"] == "InternalError"
    assert "probe/b" not in [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="probe/")["Contents"]]
    aws.faults.inject(Fault("PutObject", code="InternalError", key="probe/c", lost_reply=True))
    with pytest.raises(s3.exceptions.ClientError, match="InternalError"):
        s3.put_object(Bucket=BUCKET, Key="probe/c", Body=b"z")
    assert s3.get_object(Bucket=BUCKET, Key="probe/c")["Body"].read() == b"z"  # carried out, reply lost
    with pytest.raises(s3.exceptions.ClientError) as info:
        s3.head_object(Bucket=BUCKET, Key="probe/a.json.gz")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503  # HEAD: no body, as S3 answers
    # DynamoDB and Streams: JSON __type, so botocore raises the modelled exception classes
    with pytest.raises(streams.exceptions.LimitExceededException):
        streams.list_streams()
    with pytest.raises(ddb.exceptions.InternalServerError):
        ddb.describe_export(ExportArn="arn:aws:dynamodb:us-east-1:123456789012:table/T/export/01700000000000-0fa57b1d")
    for _ in range(3):
        with pytest.raises(ddb.exceptions.ClientError, match="ThrottlingException"):
            ddb.list_tables()
    make_table(aws, "Wire")
    aws.client("dynamodb").put_item(TableName="Wire", Item={"pk": {"S": "a"}})
    arn = aws.client("dynamodb").describe_table(TableName="Wire")["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    page = streams.get_records(ShardIterator=it)  # `after=1`: the first one passes
    for _ in range(2):
        with pytest.raises(streams.exceptions.LimitExceededException):
            streams.get_records(ShardIterator=page["NextShardIterator"])
    streams.get_records(ShardIterator=page["NextShardIterator"])  # the faulted calls changed nothing
    state = aws.faults.state()
    assert state["fired"] == {"GetObject": 1, "PutObject": 2, "HeadObject": 1, "ListStreams": 1, "DescribeExport": 1,
                              "ListTables": 3, "GetRecords": 2}
    assert [f["operation"] for f in state["faults"]] == ["ListTables"]  # persistent until cleared
    assert state["seen"]["GetRecords"] == 4 and state["seen"]["GetObject"] == 3


def test_an_outage_refuses_connections_and_the_emulator_comes_back_with_its_state(aws):
    ddb = bare(aws, "dynamodb")
    make_table(aws, "Outage")
    ddb.put_item(TableName="Outage", Item={"pk": {"S": "kept"}})
    aws.faults.outage(30)
    import socket

    from botocore.exceptions import ConnectionClosedError, EndpointConnectionError

    host, port = aws.endpoint.split("//")[1].split(":")

    def refused() -> bool:
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
            return False
        except ConnectionRefusedError:
            return True
        except ConnectionResetError:  # accepted into the closing socket's backlog, then reset: not closed yet
            return False

    # a request that still reaches the server (the socket closes in a moment) gets no answer
    with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
        ddb.list_tables()
    wait_until(refused, "the listening socket to close", every=0.05)
    with pytest.raises(EndpointConnectionError, match=aws.endpoint.split("//")[1]):
        ddb.list_tables()
    end_outage(aws)
    assert ddb.get_item(TableName="Outage", Key={"pk": {"S": "kept"}})["Item"] == {"pk": {"S": "kept"}}
    assert aws.faults.state()["outages"] == 1


# ------------------------------------------------------------------------------------ throttled stream sync
def test_throttled_describe_stream_and_get_records_back_off_and_lose_nothing(aws, tmp_path, monkeypatch, caplog):
    """More faults in a row than one botocore call's attempts: the sync's own backoff (``_call``) takes
    over; every faulted request is retried and the index equals the table."""
    monkeypatch.setattr(dynadex.aws, "MAX_ATTEMPTS", 2)
    ddb = filled(aws, "Throttled")
    store = str(tmp_path / "store")
    bootstrap.run(ddb, "Throttled", bucket=BUCKET, store=store, poll_seconds=0.1)
    churn(ddb, "Throttled", 0, 150)
    aws.faults.clear()
    aws.faults.inject(Fault("DescribeStream", code="LimitExceededException", count=3),
                      Fault("GetRecords", code="LimitExceededException", count=5),
                      Fault("GetRecords", code="InternalServerError", count=2))
    with caplog.at_level(logging.INFO, logger="dynadex.sync"):
        stats, report = converge(store, "Throttled")
    state = aws.faults.state()
    assert state["fired"] == {"DescribeStream": 3, "GetRecords": 7} and state["faults"] == []
    assert state["seen"]["GetRecords"] > 7  # each faulted read was asked again, and reads went on
    sync_retries = [r.getMessage() for r in caplog.records if r.getMessage().startswith("throttled (")]
    # 3 DescribeStream faults in a row outlast botocore's 2 attempts: the sync backed off at least once
    assert any("LimitExceededException" in m for m in sync_retries), sync_retries
    assert report.ok, (report.missing[:2], report.extra[:2], report.different[:2])
    assert stats["records"] >= 150
    no_duplicates(store, "Throttled")


def test_throttling_that_never_ends_fails_within_the_budget_and_commits_nothing(aws, tmp_path, monkeypatch):
    monkeypatch.setattr(dynadex.aws, "MAX_ATTEMPTS", 2)
    ddb = filled(aws, "Choked")
    store = str(tmp_path / "store")
    bootstrap.run(ddb, "Choked", bucket=BUCKET, store=store, poll_seconds=0.1)
    churn(ddb, "Choked", 0, 40)
    with Store(store) as st:
        before = (sorted(st.dump("Choked")), st.checkpoints("Choked"))
    aws.faults.inject(Fault("GetRecords", code="LimitExceededException", count=-1))
    from dynadex.stream import SyncSettings

    settings = SyncSettings(max_backoff_attempts=3)
    started = time.monotonic()
    d, streams, s3 = clients()
    with Store(store, read_only=False) as st:
        with pytest.raises(AwsThrottled) as info:
            sync_table(st, "Choked", d, streams, s3, seconds=0, settings=settings)
    elapsed = time.monotonic() - started
    print(f"persistent GetRecords throttling: failed after {elapsed:.1f}s")
    assert str(info.value).startswith("get_records still answered LimitExceededException after 3 rounds of 2 "
                                      "attempts"), str(info.value)
    assert info.value.transient
    # 3 rounds of the sync's backoff x 2 botocore attempts: at most 3 x 1 s + 0.45 s of waits (botocore's
    # adaptive mode, used before, took 30 s here: its rate limiter stretched every attempt)
    budget = 3 * dynadex.aws.retry_budget_seconds(2) + sum(min(5.0, 0.1 * 2**a) * 1.5 for a in range(2))
    assert elapsed < budget + 10, (elapsed, budget)
    with Store(store) as st:
        assert (sorted(st.dump("Choked")), st.checkpoints("Choked")) == before  # nothing committed
    aws.faults.clear()
    _, report = converge(store, "Choked")
    assert report.ok
    no_duplicates(store, "Choked")


# ------------------------------------------------------------------------------------- S3 faults in ingest
def test_s3_5xx_and_throttling_during_the_export_read_are_retried(aws, tmp_path):
    ddb = filled(aws, "Flaky", items=120)
    store = str(tmp_path / "store")
    aws.faults.clear()
    aws.faults.inject(Fault("GetObject", code="InternalError", key="manifest-summary.json"),
                      Fault("GetObject", code="SlowDown", key="/data/", count=3),
                      Fault("GetObject", code="InternalError", key="/data/", count=1))
    result = bootstrap.run(ddb, "Flaky", bucket=BUCKET, store=store, poll_seconds=0.1, workers=1)
    assert result["publish"]["published"] and result["items"] == 120
    assert aws.faults.state()["fired"] == {"GetObject": 5}
    with Store(store) as st:
        assert verify(st, "Flaky", ddb).ok


def test_s3_throttling_that_persists_names_the_object_and_publishes_nothing(aws, tmp_path, monkeypatch):
    monkeypatch.setattr(dynadex.aws, "MAX_ATTEMPTS", 2)
    ddb = filled(aws, "Stuck")
    store = str(tmp_path / "store")
    first = bootstrap.run(ddb, "Stuck", bucket=BUCKET, store=store, poll_seconds=0.1)
    churn(ddb, "Stuck", 0, 30)
    with Store(store) as st:
        before = sorted(st.dump("Stuck"))
    aws.faults.clear()
    aws.faults.inject(Fault("GetObject", code="SlowDown", key="/data/", count=-1))
    with pytest.raises(S3Unavailable) as info:
        bootstrap.run(ddb, "Stuck", bucket=BUCKET, store=store, poll_seconds=0.1, workers=1)
    # one chunk, one call of 2 attempts: the exact Python path does not read it all again (it did)
    assert aws.faults.state()["fired"] == {"GetObject": 2}
    text = str(info.value)
    assert text.startswith(f"s3://{BUCKET}/") and "/data/" in text and ".json.gz" in text, text
    assert "SlowDown (HTTP 503) 2 times" in text, text
    assert info.value.transient  # Airflow keeps the task's retries for it
    with Store(store) as st:
        assert sorted(st.dump("Stuck")) == before  # the old snapshot, whole
        assert st.status("Stuck")["tables"][0]["build_id"] == first["publish"]["build_id"]
    aws.faults.clear()
    bootstrap.run(ddb, "Stuck", bucket=BUCKET, store=store, poll_seconds=0.1)
    with Store(store) as st:
        assert verify(st, "Stuck", ddb).ok
    no_duplicates(store, "Stuck")


# ------------------------------------------------------------------------------ the emulator goes away
def test_an_outage_mid_ingest_is_retried_and_a_lasting_one_names_endpoint_and_object(aws, tmp_path, monkeypatch):
    ddb = filled(aws, "Gone")
    store = str(tmp_path / "store")
    aws.faults.clear()
    # the first data file's GET drops its connection and the server stops listening for 1 s
    aws.faults.inject(Fault("GetObject", key="/data/", outage_seconds=1.0))
    first = bootstrap.run(ddb, "Gone", bucket=BUCKET, store=store, poll_seconds=0.1, workers=1)
    assert first["publish"]["published"] and aws.faults.state()["outages"] == 1
    with Store(store) as st:
        assert verify(st, "Gone", ddb).ok
        before = sorted(st.dump("Gone"))
    churn(ddb, "Gone", 0, 30)
    monkeypatch.setattr(dynadex.aws, "MAX_ATTEMPTS", 3)
    aws.faults.inject(Fault("GetObject", key="/data/", outage_seconds=600))
    started = time.monotonic()
    with pytest.raises(S3Unavailable) as info:
        bootstrap.run(ddb, "Gone", bucket=BUCKET, store=store, poll_seconds=0.1, workers=1)
    elapsed = time.monotonic() - started
    print(f"lasting outage mid-ingest: S3Unavailable after {elapsed:.1f}s")
    text = str(info.value)
    assert f"s3://{BUCKET}/" in text and aws.endpoint in text, text
    assert elapsed < 30 + dynadex.aws.retry_budget_seconds(3), elapsed
    end_outage(aws)
    with Store(store) as st:
        assert sorted(st.dump("Gone")) == before
        assert st.status("Gone")["tables"][0]["build_id"] == first["publish"]["build_id"]
    bootstrap.run(ddb, "Gone", bucket=BUCKET, store=store, poll_seconds=0.1)
    with Store(store) as st:
        assert verify(st, "Gone", ddb).ok


def test_a_short_outage_mid_sync_is_ridden_out(aws, tmp_path):
    ddb = filled(aws, "Blip")
    store = str(tmp_path / "store")
    bootstrap.run(ddb, "Blip", bucket=BUCKET, store=store, poll_seconds=0.1)
    churn(ddb, "Blip", 0, 60)
    env = {**os.environ, "DYNADEX_BATCH_RECORDS": "10", "DYNADEX_BATCH_SECONDS": "0.05"}
    proc = subprocess.Popen([sys.executable, "-m", "dynadex.cli", "sync", "Blip", "--for", "12", "--store", store],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_until(lambda: _checkpoints(store, "Blip"), "the first batch", every=0.05)
        aws.faults.outage(1.5)
        wait_until(lambda: (_state(aws) or {}).get("outages") == 1, "the outage's end", every=0.05)
        churn(ddb, "Blip", 60, 30)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-2000:]
    _, report = converge(store, "Blip")
    assert report.ok
    no_duplicates(store, "Blip")


def _state(aws) -> dict | None:
    try:
        return aws.faults.state()
    except OSError:  # down: the control endpoint is refused too
        return None


def _checkpoints(store: str, table: str) -> dict:
    try:
        with Store(store) as st:
            return st.checkpoints(table)
    except Exception:
        return {}


def test_a_lasting_outage_mid_sync_ends_the_cli_with_one_line_naming_the_endpoint(aws, tmp_path):
    ddb = filled(aws, "Down")
    store = str(tmp_path / "store")
    bootstrap.run(ddb, "Down", bucket=BUCKET, store=store, poll_seconds=0.1)
    churn(ddb, "Down", 0, 60)
    env = {**os.environ, "DYNADEX_BATCH_RECORDS": "10", "DYNADEX_BATCH_SECONDS": "0.05", "DYNADEX_AWS_MAX_ATTEMPTS": "3"}
    proc = subprocess.Popen([sys.executable, "-m", "dynadex.cli", "sync", "Down", "--for", "60", "--store", store],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_until(lambda: _checkpoints(store, "Down"), "the first batch", every=0.05)
        aws.faults.outage(600)
        started = time.monotonic()
        out, err = proc.communicate(timeout=120)
        elapsed = time.monotonic() - started
    finally:
        proc.kill()
    print(f"lasting outage mid-sync: the CLI exited {proc.returncode} after {elapsed:.1f}s")
    assert proc.returncode == 1, err[-2000:]
    assert "Traceback" not in err, err[-3000:]
    lines = [l for l in err.splitlines() if l.strip() and "WARNING" not in l and "INFO" not in l]
    assert lines[-1].startswith(f"dynadex: error: AWS endpoint {aws.endpoint}"), err[-2000:]
    assert "unreachable" in lines[-1] and "3 attempts" in lines[-1]
    # 3 attempts: waits of at most 1 + 2 s per call, a few calls in flight at once; bounded well below a minute
    assert elapsed < 30, elapsed
    end_outage(aws)
    no_duplicates(store, "Down")
    _, report = converge(store, "Down")
    assert report.ok
    no_duplicates(store, "Down")


def test_throttled_and_lost_export_requests_start_one_export(aws, tmp_path):
    """ExportTableToPointInTime throttled, then carried out with its reply lost (botocore retries with the
    same ClientToken), DescribeExport failing while the bootstrap polls: one export, published, verified."""
    filled(aws, "Exported")
    ddb = dynadex.aws.client("dynamodb")  # dynadex's client (its retry budget), as the CLI and the DAG use
    store = str(tmp_path / "store")
    aws.faults.clear()
    aws.faults.inject(Fault("ExportTableToPointInTime", code="LimitExceededException"),
                      Fault("ExportTableToPointInTime", code="InternalServerError", lost_reply=True),
                      Fault("DescribeExport", code="InternalServerError", count=2),
                      Fault("DescribeExport", code="ThrottlingException", count=1))
    result = bootstrap.run(ddb, "Exported", bucket=BUCKET, store=store, poll_seconds=0.1)
    state = aws.faults.state()
    assert state["fired"] == {"ExportTableToPointInTime": 2, "DescribeExport": 3}, state
    assert state["seen"]["ExportTableToPointInTime"] == 3
    table_arn = ddb.describe_table(TableName="Exported")["Table"]["TableArn"]
    exports = ddb.list_exports(TableArn=table_arn)["ExportSummaries"]
    assert [e["ExportArn"] for e in exports] == [result["export_arn"]]  # the lost reply started no second one
    with Store(store) as st:
        assert verify(st, "Exported", ddb).ok
