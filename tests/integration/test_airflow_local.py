"""`make airflow` (dynadex.airflow_local): airflow standalone starts with our DAGs, serves the UI, stops on Ctrl-C.

Slow (airflow standalone migrates a fresh metadata DB and starts four processes): `make test-slow`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.integration.conftest import free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def get(url, token=None):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, json.loads(resp.read())


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, json.loads(resp.read())


def test_make_airflow_serves_the_ui_with_our_dags_then_stops_cleanly_on_ctrl_c(tmp_path):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "include"), str(ROOT / "plugins")])}
    proc = subprocess.Popen([sys.executable, "-m", "dynadex.airflow_local", "--home", str(tmp_path / "home"),
                             "--port", str(port), "--items", "50", "--no-writes"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    ready = threading.Event()

    def read():
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("stop "):
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    standalone = None
    try:
        assert ready.wait(600) and proc.poll() is None, "\n".join(lines[-30:])
        text = "\n".join(lines)
        standalone = int(next(l for l in lines if l.startswith("airflow standalone pid ")).split()[-1])
        url = next(l.split()[-1] for l in lines if l.startswith("Airflow UI"))
        user, password = next(l for l in lines if l.startswith("login")).split()[1::2]
        assert url == f"http://127.0.0.1:{port}" and user == "admin", text
        code, health = get(f"{url}/api/v2/monitor/health")
        assert code == 200 and health["metadatabase"]["status"] == "healthy", health
        code, doc = post(f"{url}/auth/token", {"username": user, "password": password})  # the printed login works
        token = doc["access_token"]
        code, pool = get(f"{url}/api/v2/pools/dynadex_chunks", token)
        assert pool["slots"] == 16
        deadline = time.time() + 180  # the DAG processor parses our DAGs: wait until all three are there
        while True:
            dags = {d["dag_id"]: d for d in get(f"{url}/api/v2/dags?tags=dynadex", token)[1]["dags"]}
            if len(dags) == 3 or time.time() > deadline:
                break
            time.sleep(2)
        assert set(dags) == {"dynamodb_ingest", "dynamodb_stream_sync", "dynadex_maintenance"}, dags
        assert dags["dynamodb_stream_sync"]["is_paused"] and not dags["dynamodb_ingest"]["is_paused"]
    finally:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        try:
            code = proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0, "\n".join(lines[-30:])
    assert lines[-1] == "stopped"
    if standalone:
        with pytest.raises(ProcessLookupError):  # nothing of Airflow's process group is left
            os.killpg(standalone, 0)
