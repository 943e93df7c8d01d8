"""`make airflow`: the Airflow UI on this machine, with the DAGs, the emulator and a demo table to index.

1. start the bundled AWS emulator (a child process, real HTTP) and create the
   bucket ``dynadex-exports`` and a table ``Orders`` (PITR and a stream on) of
   generated items of every type; a slow writer keeps changing it (``--no-writes``
   turns that off) so the stream sync has something to follow;
2. run ``airflow standalone`` (LocalExecutor, SQLite; its home is ``.airflow/``)
   with this repository's DAGs and plugins, the connection ``aws_default``
   pointing at the emulator and ``airflow_api`` pointing at the API server (so
   ``start_stream_sync`` can unpause ``dynamodb_stream_sync``), and the pool
   ``dynadex_chunks``;
3. print the URL and the login, then wait; Ctrl-C stops Airflow (its whole
   process group: scheduler, triggerer, DAG processor, API server) and the
   emulator, and exits 0.

The emulator keeps its tables in memory, so every start begins with a new
table and an empty store (``.airflow/store``); the Airflow metadata (past
runs, logs) stays in ``.airflow/``. Nothing here imports Airflow: it runs the
``airflow`` command.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from dynadex import settings

ROOT = Path(__file__).resolve().parents[2]
TABLE = "Orders"
POOL = {"name": "dynadex_chunks", "slots": 16, "description": "dynadex chunk builds (all dynamodb_ingest runs together)"}


def say(text: str) -> None:
    print(text, flush=True)


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url: str, body: dict | None = None, method: str = "GET", token: str | None = None,
             timeout: float = 10) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None, method=method,
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (our own local server)
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, {}


def healthy(url: str) -> bool:
    try:
        code, doc = _request(f"{url}/api/v2/monitor/health", timeout=3)
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return code == 200 and doc.get("metadatabase", {}).get("status") == "healthy"


def token(url: str, user: str, password: str) -> str | None:
    code, doc = _request(f"{url}/auth/token", {"username": user, "password": password}, "POST")
    return doc.get("access_token") if code in (200, 201) else None


def demo_table(aws, items: int) -> None:
    from dynadex.demo import item

    ddb = aws.client("dynamodb")
    aws.client("s3").create_bucket(Bucket="dynadex-exports")
    ddb.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                           {"AttributeName": "sk", "AttributeType": "N"}],
                     StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    ddb.update_continuous_backups(TableName=TABLE, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
    rnd = random.Random(7)
    for start in range(0, items, 25):
        ddb.batch_write_item(RequestItems={TABLE: [{"PutRequest": {"Item": item(i, rnd)}}
                                                   for i in range(start, min(items, start + 25))]})


def writer(aws, items: int, stop: threading.Event, every: float = 1.0) -> None:
    """About one put, update or delete per ``every`` seconds, until ``stop``."""
    from dynadex.demo import item

    ddb, rnd, i = aws.client("dynamodb"), random.Random(11), items
    while not stop.wait(every):
        i += 1
        try:
            if i % 5 == 0:
                ddb.delete_item(TableName=TABLE, Key={"pk": {"S": f"customer#{i % 500:04d}"}, "sk": {"N": str(rnd.randrange(items))}})
            else:
                ddb.put_item(TableName=TABLE, Item=item(i, rnd))
        except Exception:  # the emulator is going away: the demo is stopping
            return


def airflow_env(home: Path, port: int, endpoint: str, password: str) -> dict:
    return {
        **os.environ,
        # airflow standalone starts its components as `airflow ...` from PATH: this venv's first
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",  # the sync and maintenance DAGs stay paused: theirs
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
        "PYTHONPATH": os.pathsep.join(p for p in [str(ROOT / "plugins"), str(ROOT / "include"),
                                                  os.environ.get("PYTHONPATH", "")] if p),
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps({"conn_type": "aws", "login": "local", "password": "local",
                                                "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"}}),
        "AIRFLOW_CONN_AIRFLOW_API": json.dumps({"conn_type": "http", "host": f"http://127.0.0.1:{port}",
                                                "login": "admin", "password": password}),
        "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1",
        "DYNADEX_STORE": str(home / "store"),
        # shorter than the declared defaults, for a demo table; the caller's values win
        "DYNADEX_EXPORT_POLL_SECONDS": str(settings.EXPORT_POLL_SECONDS.read(default=2)),
        "DYNADEX_SYNC_RUN_SECONDS": str(settings.SYNC_RUN_SECONDS.read(default=30)),
    }


def password_for(home: Path) -> str:
    """The admin password: generated once, kept in the home (Airflow's simple auth manager reads the same file)."""
    path = home / "passwords.json"
    try:
        return json.loads(path.read_text())["admin"]
    except (OSError, ValueError, KeyError):
        password = secrets.token_urlsafe(12)
        path.write_text(json.dumps({"admin": password}))
        path.chmod(0o600)
        return password


def stop_group(proc: subprocess.Popen, grace: float = 45) -> None:
    """SIGINT to Airflow's process group (standalone stops its components), then SIGTERM, then SIGKILL."""
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue
        # the leader is gone; stragglers in its group get the same signal until none is left
        deadline = time.time() + wait
        while time.time() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make airflow", description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", default=str(ROOT / ".airflow"), help="AIRFLOW_HOME (default .airflow/)")
    parser.add_argument("--port", type=int, default=settings.AIRFLOW_PORT.read(),
                        help="API server / UI port (default 8080, env DYNADEX_AIRFLOW_PORT; 0 picks a free one)")
    parser.add_argument("--items", type=int, default=settings.DEMO_ITEMS.read(default=5000),
                        help="items in the demo table (default 5000, env DYNADEX_DEMO_ITEMS)")
    parser.add_argument("--no-writes", action="store_true", help="do not keep changing the demo table")
    parser.add_argument("--startup-timeout", type=float, default=600, help="seconds to wait for the UI")
    args = parser.parse_args(argv)

    from dynadex.local_aws import running

    home = Path(args.home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    port = args.port or free_port()
    if not port_free(port):
        say(f"make airflow: port {port} is in use; free it or run: make airflow DYNADEX_AIRFLOW_PORT=8081")
        return 1
    shutil.rmtree(home / "store", ignore_errors=True)  # the emulator's tables are new each start: so is the index
    password = password_for(home)
    url = f"http://127.0.0.1:{port}"
    interrupted = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: interrupted.set())
    signal.signal(signal.SIGTERM, lambda *_: interrupted.set())

    say("starting the bundled AWS emulator ...")
    with running(export_seconds=3, export_files=8, stream_shards=4) as aws:
        demo_table(aws, args.items)
        say(f"emulator at {aws.endpoint}: bucket dynadex-exports, table {TABLE} with {args.items} items")
        stop_writes = threading.Event()
        if not args.no_writes:
            threading.Thread(target=writer, args=(aws, args.items, stop_writes), daemon=True).start()
        env = airflow_env(home, port, aws.endpoint, password)
        log_path = home / "standalone.log"
        say(f"starting airflow standalone (log: {log_path}); the first start migrates its database ...")
        with open(log_path, "a") as log:
            proc = subprocess.Popen([sys.executable, "-m", "airflow", "standalone"], env=env, stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        say(f"airflow standalone pid {proc.pid}")
        try:
            deadline = time.time() + args.startup_timeout
            while not healthy(url):
                if proc.poll() is not None:
                    say(f"make airflow: airflow standalone exited ({proc.returncode}); see {log_path}")
                    return 1
                if interrupted.wait(1) or time.time() > deadline:
                    if not interrupted.is_set():
                        say(f"make airflow: the UI did not answer within {args.startup_timeout:g}s; see {log_path}")
                    return 0 if interrupted.is_set() else 1
            auth = token(url, "admin", password)
            if auth:
                _request(f"{url}/api/v2/pools", POOL, "POST", auth)  # 409 when it exists: fine
            say("")
            say(f"Airflow UI   {url}")
            say(f"login        admin / {password}")
            say(f"try it       trigger dynamodb_ingest with table_name {TABLE} (the defaults fit the emulator);")
            say("             start_stream_sync then unpauses dynamodb_stream_sync, which follows the table")
            say(f"store        {env['DYNADEX_STORE']}  (dynadex status {TABLE} --store {env['DYNADEX_STORE']})")
            say("stop         Ctrl-C")
            say("", )
            while not interrupted.wait(1):
                if proc.poll() is not None:
                    say(f"make airflow: airflow standalone exited ({proc.returncode}); see {log_path}")
                    return 1
            return 0
        finally:
            say("stopping Airflow and the emulator ...")
            stop_writes.set()
            stop_group(proc)
            say("stopped")


if __name__ == "__main__":
    sys.exit(main())
