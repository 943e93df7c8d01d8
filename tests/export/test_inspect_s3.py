"""`inspect-export s3://...` over real HTTP against a moto S3 server."""

from __future__ import annotations

import os
import subprocess
import sys

import boto3
import pytest
from moto.server import ThreadedMotoServer

from tests.support.exports import GENUINE_DIR_KEY, GENUINE_ROOT


@pytest.fixture(scope="module")
def s3_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def _env(endpoint: str) -> dict:
    return {**os.environ, "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1"}


def test_inspect_export_from_s3(s3_endpoint):
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                      aws_access_key_id="test", aws_secret_access_key="test")
    s3.create_bucket(Bucket="exports")
    for path in GENUINE_ROOT.rglob("*"):
        if path.is_file():
            s3.put_object(Bucket="exports", Key=str(path.relative_to(GENUINE_ROOT)), Body=path.read_bytes())
    url = f"s3://exports/{GENUINE_DIR_KEY}/manifest-summary.json"
    done = subprocess.run([sys.executable, "-m", "dynadex.cli", "inspect-export", url],
                          capture_output=True, text=True, env=_env(s3_endpoint))
    assert done.returncode == 0, done.stderr
    assert "items       3" in done.stdout and "OK" in done.stdout

    data_key = f"{GENUINE_DIR_KEY}/data/uimbi7eofu2b5kzkxe63gsvb6i.json.gz"
    s3.delete_object(Bucket="exports", Key=data_key)
    done = subprocess.run([sys.executable, "-m", "dynadex.cli", "inspect-export", url],
                          capture_output=True, text=True, env=_env(s3_endpoint))
    assert done.returncode == 1
    assert f"s3://exports/{data_key}: object not found" in done.stderr

    done = subprocess.run([sys.executable, "-m", "dynadex.cli", "inspect-export", "s3://no-such-bucket/x/manifest-summary.json"],
                          capture_output=True, text=True, env=_env(s3_endpoint))
    assert done.returncode == 1 and "no-such-bucket" in done.stderr
