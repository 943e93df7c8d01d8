"""``dynadex serve`` announces where it listens, answers /health without a key, and stops cleanly on SIGTERM
and SIGINT."""

from __future__ import annotations

import signal

import pytest

from tests.support.serve import Served, make_store


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_it_stops_cleanly_on_a_signal(tmp_path, sig):
    server = Served(make_store(tmp_path / "store"))
    health = server.call("GET", "/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert server.call("GET", "/nowhere").json()["type"] == "NOTFOUND"
    code, seconds = server.stop(sig)
    assert code == 0 and seconds < 10, server.proc.stderr.read()


def test_metrics_count_requests_rows_and_lag(served, reader):
    served.query(reader, "SELECT pk FROM Orders LIMIT 4")
    text = served.call("GET", "/metrics").text
    assert 'dynadex_serve_requests_total{route="/v1/orgs/self/queries",method="POST",status="200"}' in text
    assert "dynadex_serve_rows_total" in text and "dynadex_serve_request_seconds_bucket" in text
    assert 'dynadex_table_lag_seconds{table="Orders"} NaN' in text  # no stream sync has run on this store
