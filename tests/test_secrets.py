"""No credential leaves the Airflow connection that holds it.

A planted secret key and session token go into ``aws_default`` only (the
process environment has no AWS credentials), the store's data path is on S3
(so DuckDB and pyarrow must be handed the credentials), and a real ingest and
a stream sync run through Airflow; one more ingest fails on purpose. Then
everything a user or an attacker could read is scanned for the planted
values: every log record and console line, the Airflow home (metadata DB with XCom and
rendered fields, log files), the store's catalog and its data objects on S3,
``dynadex status`` output, the failure's message, and ``os.environ``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dynadex.credentials import AwsCredentials
from dynadex.store import Store
from dynadex.stream.verify import verify
from tests.support import airflow as af
from tests.support.emulator import DAG_KNOBS, make_table
from tests.support.sync import fill

pytestmark = pytest.mark.emulator(**DAG_KNOBS)

SECRET = "PLANTED-SECRET-9f3c2e7a-wJalrXUtnFEMI"
TOKEN = "PLANTED-TOKEN-5d1b8c44-FwoGZXIvYXdz"
ACCESS_KEY = "AKIAPLANTEDEXAMPLE"


class Everything(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        try:
            self.lines.append(self.format(record))
        except Exception:  # a record that cannot format is still scanned by its parts
            self.lines.append(f"{record.msg!r} {record.args!r}")


@pytest.fixture
def planted(aws, tmp_path, monkeypatch):
    """aws_default holds the planted credentials; the environment holds none (nor the endpoint)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
                 "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({
        "conn_type": "aws", "login": ACCESS_KEY, "password": SECRET,
        "extra": {"endpoint_url": aws.endpoint, "region_name": "us-east-1", "aws_session_token": TOKEN}}))
    aws.client("s3").create_bucket(Bucket="dynadex-data")
    monkeypatch.setenv("DYNADEX_DATA_PATH", "s3://dynadex-data/secret-test/")
    handler = Everything()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def _s3_objects(aws, bucket: str) -> list[tuple[str, bytes]]:
    s3 = aws.client("s3")
    out = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            out.append((obj["Key"], s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()))
    return out


def _files(root: Path):
    for path in root.rglob("*"):
        if path.is_file():
            yield path, path.read_bytes()


def test_no_secret_in_logs_xcom_airflow_db_store_status_or_errors(aws, planted, tmp_path, capfd):
    make_table(aws, "Secretive", sort=("sk", "N"))
    ddb = aws.client("dynamodb")
    fill(ddb, "Secretive", 120)
    store = str(tmp_path / "store")
    run = af.dag("dynamodb_ingest").test(run_conf={"table_name": "Secretive", "store": store})
    assert run.state == "success", af.states(run)
    ddb.put_item(TableName="Secretive", Item={"pk": {"S": "after"}, "sk": {"N": "1"}, "v": {"S": "late"}})
    sync = af.dag("dynamodb_stream_sync").test(run_conf={"store": store, "table_name": "Secretive", "run_seconds": 5})
    assert sync.state == "success", af.states(sync)
    creds = AwsCredentials(ACCESS_KEY, SECRET, TOKEN, endpoint_url=aws.endpoint)
    with Store(store, credentials=creds) as st:
        assert st.location.data_path.startswith("s3://dynadex-data/")
        assert verify(st, "Secretive", ddb).ok  # the credentials reached DuckDB and pyarrow: data is on S3

    # a run that fails: its data path is a bucket that does not exist
    os.environ["DYNADEX_DATA_PATH"] = "s3://no-such-bucket-for-dynadex/x/"
    failed = af.dag("dynamodb_ingest").test(run_conf={"table_name": "Secretive", "store": str(tmp_path / "other")})
    assert failed.state == "failed"

    out, err = capfd.readouterr()  # what the task logs printed (Airflow's structlog writes to the console)
    logged = planted.lines + (out + err).splitlines()
    planted_values = (SECRET.encode(), TOKEN.encode())
    found = []
    for line in logged:
        if SECRET in line or TOKEN in line:
            found.append(("log record", line[:200]))
    for path, data in _files(Path(os.environ["AIRFLOW_HOME"])):
        if any(v in data for v in planted_values):
            found.append(("airflow home", str(path)))
    for path, data in _files(tmp_path):
        if any(v in data for v in planted_values):
            found.append(("store", str(path)))
    for key, data in _s3_objects(aws, "dynadex-data"):
        if any(v in data for v in planted_values):
            found.append(("s3 data", key))
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW_CONN_AWS_DEFAULT"}
    found += [("environment", k) for k, v in env.items() if SECRET in v or TOKEN in v]
    for args in (["status"], ["status", "--json"]):
        done = subprocess.run([sys.executable, "-m", "dynadex.cli", *args, "--store", store],
                              capture_output=True, text=True, env={**env, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                                                                   "AWS_SECRET_ACCESS_KEY": SECRET,
                                                                   "AWS_SESSION_TOKEN": TOKEN,
                                                                   "AWS_ENDPOINT_URL": aws.endpoint,
                                                                   "DYNADEX_DATA_PATH": "s3://dynadex-data/secret-test/"})
        assert done.returncode == 0, done.stderr
        if SECRET in done.stdout + done.stderr or TOKEN in done.stdout + done.stderr:
            found.append(("status", " ".join(args)))
    assert any("no-such-bucket-for-dynadex" in line for line in logged), "the failure was not logged"
    assert found == []
