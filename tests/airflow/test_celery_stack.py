"""docker-compose.yaml's configuration, without Docker: Airflow 3 on the CeleryExecutor with
PostgreSQL (metadata DB and DuckLake catalog), Redis (broker), the emulator, and S3 data files.

Real processes, as the compose file runs them: api-server, scheduler, dag-processor, triggerer
and two Celery workers. The test triggers `dynamodb_ingest` through the Airflow CLI and waits for the
scheduler to run it to the end; the export wait is deferred to the triggerer, the chunk builds are
shared by both workers, and the stream sync that the ingest hands over to runs as mapped tasks on
them and applies a later write. Five more tables, bootstrapped into the same store meanwhile, are
followed by the same runs: six sync tasks of one run, side by side (their intervals overlap), so no
table waits for another's. Part of `make test` (about 4 minutes on 2 cores); CI installs
PostgreSQL and Redis from Debian's packages.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from dynadex.local_aws import running
from dynadex.store import Store
from dynadex.stream.verify import verify
from tests.support.paths import REPO
from tests.support.poll import wait_until
from tests.support.servers import free_port, listening

ROOT = REPO


@pytest.fixture(scope="module")
def redis_url():
    binary = shutil.which("redis-server")
    if not binary:
        pytest.skip("redis-server not installed (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: listening(port), "redis-server to listen", timeout=30, every=0.02, proc=proc)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(10)


def airflow(*args: str, env: dict, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "airflow", *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode:
        raise AssertionError(f"airflow {' '.join(args)}: {done.stderr[-3000:]}")
    return done


SIDE_TABLES = [f"Side{i}" for i in range(1, 6)]
AWS_VARS = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")


def hash_table(ddb, name: str, items: int) -> None:
    ddb.create_table(TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
                     StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    ddb.update_continuous_backups(TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
    for i in range(0, items, 25):
        ddb.batch_write_item(RequestItems={name: [{"PutRequest": {"Item": {"pk": {"S": f"k{j}"}, "n": {"N": str(j)}}}}
                                                  for j in range(i, min(items, i + 25))]})


def test_ingest_runs_on_celery_with_postgres_redis_and_s3(postgres_server, redis_url):
    home = Path(tempfile.mkdtemp(prefix="dynadex-celery-"))
    meta = postgres_server.database("celery_airflow")
    store = postgres_server.database("celery_dynadex")
    api_port = free_port()
    with running(export_seconds=120, export_files=4) as aws:  # long enough that wait_export defers
        ddb = aws.client("dynamodb")
        for bucket in ("dynadex-exports", "dynadex-lake"):
            aws.client("s3").create_bucket(Bucket=bucket)
        hash_table(ddb, "Orders", 1000)
        for name in SIDE_TABLES:
            hash_table(ddb, name, 40)
        # the five side tables are bootstrapped in this process meanwhile, all at once (their exports take as
        # long as Orders'), into the same store: their publishes meet on one Postgres catalog and take turns
        # through the store's retries
        os.environ.update({"AWS_ENDPOINT_URL": aws.endpoint, "AWS_ACCESS_KEY_ID": "local",
                           "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1"})
        from concurrent.futures import ThreadPoolExecutor

        from dynadex import bootstrap

        with Store(store, data_path="s3://dynadex-lake/data/", read_only=False):
            pass  # the catalog exists before five writers meet it (Postgres refuses two CREATEs of it at once)
        side_pool = ThreadPoolExecutor(len(SIDE_TABLES))
        sides = [side_pool.submit(bootstrap.run, aws.client("dynamodb"), name, bucket="dynadex-exports", store=store,
                                  data_path="s3://dynadex-lake/data/", poll_seconds=2, workers=1)
                 for name in SIDE_TABLES]
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_"))},
            # what docker-compose.yaml sets (x-airflow-common), with this machine's addresses
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": meta.replace("postgresql://", "postgresql+psycopg2://"),
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + meta,
            "AIRFLOW__CELERY__BROKER_URL": redis_url,
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "false",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "PYTHONPATH": str(ROOT / "plugins"),
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps({"conn_type": "aws", "login": "local", "password": "local",
                                                    "extra": {"endpoint_url": aws.endpoint, "region_name": "us-east-1"}}),
            "DYNADEX_STORE": store,
            "DYNADEX_DATA_PATH": "s3://dynadex-lake/data/",
            "DYNADEX_EXPORT_POLL_SECONDS": "2",
            "DYNADEX_TASK_RETRIES": "0",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "4",  # 8 slots: six sync tasks at once, plus list_tables
            "DYNADEX_SYNC_RUN_SECONDS": "8",
            # one task per table, reading all run (decision 0037 would share one deferred task among these six
            # quiet tables; tests/airflow/test_quiet_tables.py covers that)
            "DYNADEX_SYNC_GROUP_TABLES": "1",
            "DYNADEX_QUIET_AFTER_SECONDS": "3600",
            "DYNADEX_BUILD_THREADS": "2",
        }
        airflow("db", "migrate", env=env, timeout=300)
        airflow("pools", "set", "dynadex_chunks", "16", "dynadex chunk builds", env=env)  # as docker-compose does
        logs = home / "proc-logs"
        logs.mkdir()
        procs = []
        for name, args in [("api-server", ["api-server", "--port", str(api_port)]), ("scheduler", ["scheduler"]),
                           ("dag-processor", ["dag-processor"]), ("triggerer", ["triggerer"]),
                           ("worker-1", ["celery", "worker", "--celery-hostname", "w1@%h"]),
                           ("worker-2", ["celery", "worker", "--celery-hostname", "w2@%h"])]:
            out = open(logs / f"{name}.log", "w")
            procs.append(subprocess.Popen([sys.executable, "-m", "airflow", *args], env=env, stdout=out, stderr=subprocess.STDOUT))
        try:
            deadline = time.time() + 180
            while "dynamodb_ingest" not in airflow("dags", "list", "-o", "plain", env=env, check=False).stdout:
                assert time.time() < deadline, "the dag-processor did not parse the DAGs"
                time.sleep(3)
            conf = {"table_name": "Orders", "chunk_target_mb": 0.005}
            airflow("dags", "trigger", "dynamodb_ingest", "--conf", json.dumps(conf), env=env)
            deadline = time.time() + 300
            state = None
            while time.time() < deadline:
                out = airflow("dags", "list-runs", "dynamodb_ingest", "-o", "json", env=env).stdout
                runs = json.loads(next((l for l in out.splitlines() if l.startswith("[")), "[]"))
                state = runs[0]["state"] if runs else None
                if state in ("success", "failed"):
                    break
                time.sleep(3)
            details = {p.name: p.read_text()[-1500:] for p in logs.iterdir()} if state != "success" else {}
            assert state == "success", details
            runs_started = dt.datetime.now(dt.timezone.utc).isoformat()
            task_logs = [p for p in (home / "logs").rglob("*") if p.is_file() and "task_id=wait_export" in str(p)]
            text = "\n".join(p.read_text(errors="replace") for p in task_logs)
            # the wait was deferred: the worker slot was freed and the triggerer fired the event
            assert "Pausing task as DEFERRED" in text and "Trigger fired event" in text, text[-3000:]
            # both workers built chunks (each logs the workloads Celery hands it)
            ran = {w: (logs / f"{w}.log").read_text(errors="replace") for w in ("worker-1", "worker-2")}
            for w, text in ran.items():
                assert "task_id='build_chunk'" in text, (w, text[-2000:])
            # the handed-over stream sync (paused on creation, as it is; unpaused as the README says):
            # mapped tasks on the workers apply a write made after the ingest
            assert all(f.result(timeout=300)["publish"]["published"] for f in sides)
            airflow("dags", "unpause", "dynamodb_stream_sync", env=env)
            runs_started = dt.datetime.now(dt.timezone.utc).isoformat()
            for name in ["Orders", *SIDE_TABLES]:
                ddb.put_item(TableName=name, Item={"pk": {"S": "after"}, "n": {"N": "-1"}})
            deadline = time.time() + 240
            while time.time() < deadline:
                out = airflow("dags", "list-runs", "dynamodb_stream_sync", "-o", "json", env=env, check=False).stdout
                runs = json.loads(next((l for l in out.splitlines() if l.startswith("[")), "[]"))
                done = [r for r in runs if r["state"] == "success" and r["start_date"] and r["start_date"] > runs_started]
                if done:
                    break
                time.sleep(3)
            else:
                raise AssertionError(f"no stream sync run succeeded after the write: {runs}")
            ran = "".join((logs / f"{w}.log").read_text(errors="replace") for w in ("worker-1", "worker-2"))
            assert "task_id='sync'" in ran
            # one run, six sync tasks (one per table), all running at the same time
            out = airflow("tasks", "states-for-dag-run", "dynamodb_stream_sync", done[0]["run_id"], "-o", "json",
                          env=env).stdout
            tis = [t for t in json.loads(next(l for l in out.splitlines() if l.startswith("["))) if t["task_id"] == "sync"]
            assert len(tis) == 6 and all(t["state"] == "success" for t in tis), tis
            starts, ends = [t["start_date"] for t in tis], [t["end_date"] for t in tis]
            assert max(starts) < min(ends), tis  # every table's task ran while every other's did
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
            side_pool.shutdown(wait=True, cancel_futures=True)
        try:
            with Store(store, data_path="s3://dynadex-lake/data/") as st:
                report = verify(st, "Orders", ddb)
                assert report.ok and report.table_items == 1001
                assert st.query("SELECT count(*) FROM dynadex.chunks WHERE table_name = 'Orders'")[1][0][0] >= 2
                for name in SIDE_TABLES:
                    report = verify(st, name, ddb)
                    assert report.ok and report.table_items == 41, (name, report.missing[:3])
        finally:
            for k in AWS_VARS:
                os.environ.pop(k, None)
