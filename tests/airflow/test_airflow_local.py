"""`make airflow` (dynadex.airflow_local): airflow standalone starts with our DAGs, serves the UI, stops on Ctrl-C.

Slow (airflow standalone migrates a fresh metadata DB and starts four processes): `make test-slow`.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.support.airflow import MakeAirflow, get, post
from tests.support.paths import REPO
from tests.support.poll import wait_until
from tests.support.servers import free_port

pytestmark = pytest.mark.slow
ROOT = REPO


def test_make_airflow_serves_the_ui_with_our_dags_then_stops_cleanly_on_ctrl_c(tmp_path):
    stack = MakeAirflow(tmp_path / "home", free_port())
    try:
        stack.start()
        text = "\n".join(stack.lines)
        url, user, password = stack.url, stack.user, stack.password
        assert url == f"http://127.0.0.1:{stack.port}" and user == "admin", text
        code, health = get(f"{url}/api/v2/monitor/health")
        assert code == 200 and health["metadatabase"]["status"] == "healthy", health
        code, doc = post(f"{url}/auth/token", {"username": user, "password": password})  # the printed login works
        token = doc["access_token"]
        code, pool = get(f"{url}/api/v2/pools/dynadex_chunks", token)
        assert pool["slots"] == 16
        def our_dags():  # the DAG processor parses our DAGs: wait until all three are there
            dags = {d["dag_id"]: d for d in get(f"{url}/api/v2/dags?tags=dynadex", token)[1]["dags"]}
            return dags if len(dags) == 3 else None

        dags = wait_until(our_dags, "the three DAGs", timeout=180, every=2)
        assert dags["dynamodb_stream_sync"]["is_paused"] and not dags["dynamodb_ingest"]["is_paused"]
        runs = f"{url}/api/v2/dags/dynamodb_ingest/dagRuns"
        # the server refuses a bad param before any run exists
        code, doc = post(runs, {"logical_date": None, "conf": {"table_name": "bad table!"}}, token)
        assert code == 400 and "table_name" in json.dumps(doc), (code, doc)
        # a real ingest through the REST API: it succeeds, and its handover unpauses the stream sync
        code, run = post(runs, {"logical_date": None, "conf": {"table_name": "Orders", "chunk_target_mb": 0.005}},
                         token)
        assert code == 200, run
        state = wait_until(lambda: get(f"{runs}/{run['dag_run_id']}", token)[1]["state"]
                           if get(f"{runs}/{run['dag_run_id']}", token)[1]["state"] in ("success", "failed") else None,
                           "the ingest to finish", timeout=300, every=2)
        assert state == "success"
        assert get(f"{url}/api/v2/dags/dynamodb_stream_sync", token)[1]["is_paused"] is False
        sync_runs = f"{url}/api/v2/dags/dynamodb_stream_sync/dagRuns"
        done = wait_until(lambda: [r for r in get(sync_runs, token)[1]["dag_runs"] if r["state"] == "success"],
                          "a successful stream sync run", timeout=300, every=2)
        entry = get(f"{sync_runs}/{done[0]['dag_run_id']}/taskInstances/sync/xcomEntries/health?deserialize=true",
                    token)[1]
        health = entry["value"]
        assert health and health[0]["table"] == "Orders" and health[0]["lag_seconds"] is not None, health
    finally:
        code = stack.stop()
    lines = stack.lines
    assert code == 0, stack.output()
    assert lines[-1] == "stopped"
    if stack.standalone_pid:
        with pytest.raises(ProcessLookupError):  # nothing of Airflow's process group is left
            os.killpg(stack.standalone_pid, 0)
