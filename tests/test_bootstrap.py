"""Which bootstrap errors are deterministic (fail the task at once) and which are transient (retried)."""

from __future__ import annotations


def test_a_throttled_export_request_is_not_a_refusal():
    """start_export turns AWS refusals into BootstrapError (no retry) but lets throttling through (retried)."""
    import pytest
    from botocore.exceptions import ClientError

    from dynadex import bootstrap
    from dynadex.errors import BootstrapError

    info = bootstrap.TableInfo("T", "arn:aws:dynamodb:us-east-1:1:table/T", ("pk",), ("S",), "arn:s", "NEW_IMAGE", 0)

    class Ddb:
        def __init__(self, code, status):
            self.code, self.status = code, status

        def export_table_to_point_in_time(self, **kw):
            raise ClientError({"Error": {"Code": self.code, "Message": "m"},
                               "ResponseMetadata": {"HTTPStatusCode": self.status}}, "ExportTableToPointInTime")

    kw = dict(bucket="b12", prefix="p", export_format="DYNAMODB_JSON", export_time=1.0, token="t")
    with pytest.raises(BootstrapError, match="refused by AWS: PointInTimeRecoveryUnavailableException"):
        bootstrap.start_export(Ddb("PointInTimeRecoveryUnavailableException", 400), info, **kw)
    for code, status in (("LimitExceededException", 400), ("InternalServerError", 500)):
        with pytest.raises(ClientError):
            bootstrap.start_export(Ddb(code, status), info, **kw)


def test_service_faults_keep_the_task_retries_and_bad_input_does_not():
    """What is left of S3 5xx/throttling, an unreachable endpoint and a full disk after their retries is
    transient (Airflow retries the task); a missing object is not. Each message names what failed."""
    import pickle

    from dynadex.errors import AwsUnreachable, MissingFileError, S3Unavailable
    from dynadex.store.catalog.disk_full import is_no_space
    from dynadex.store.errors import StoreFull
    from dynadex_airflow.failures import deterministic

    slow = S3Unavailable("s3://b/AWSDynamoDB/x/data/a.json.gz", "S3 answered SlowDown (HTTP 503) 9 times: m")
    gone = AwsUnreachable("http://127.0.0.1:1/", "EndpointConnectionError while syncing T")
    full = StoreFull("T: batch of 3 changes: no space left on the store's disk")
    for exc in (slow, gone, full):
        assert not deterministic(exc)
        again = pickle.loads(pickle.dumps(exc))  # errors of builder processes reach the parent whole
        assert str(again) == str(exc) and type(again) is type(exc)
    assert deterministic(MissingFileError("s3://b/k", "object not found"))
    assert str(slow).startswith("s3://b/AWSDynamoDB/x/data/a.json.gz: ") and "http://127.0.0.1:1/" in str(gone)
    import errno

    import duckdb

    assert is_no_space(OSError(errno.ENOSPC, "No space left on device"))
    assert is_no_space(duckdb.IOException('Could not write file "x": No space left on device'))
    assert not is_no_space(duckdb.IOException("Could not read file"))


def test_airflow_clients_get_the_same_retry_budget_as_the_cli(monkeypatch):
    """Decision 0017's budget holds on the DAG path too (the provider's hook alone gives botocore's legacy
    mode, 5 attempts); a connection's own retries setting still wins."""
    import json

    from dynadex import aws
    from dynadex_airflow.hooks import client

    monkeypatch.setenv("AIRFLOW_CONN_AWS_PLAIN", json.dumps({"conn_type": "aws", "login": "a", "password": "b",
                                                             "extra": {"region_name": "us-east-1"}}))
    monkeypatch.setenv("AIRFLOW_CONN_AWS_OWN", json.dumps({"conn_type": "aws", "login": "a", "password": "b", "extra": {
        "region_name": "us-east-1", "config_kwargs": {"retries": {"mode": "legacy", "total_max_attempts": 3}}}}))
    for made in (client("dynamodbstreams", "aws_plain"), aws.client("dynamodbstreams")):
        assert made.meta.config.retries == {"mode": "standard", "total_max_attempts": aws.MAX_ATTEMPTS}
    assert client("s3", "aws_own").meta.config.retries == {"mode": "legacy", "total_max_attempts": 3}
