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
3. print the URL and the login, then wait; Ctrl-C (SIGINT), SIGTERM or SIGHUP
   stops every process it started, and theirs, within about 5 s, and exits 0
   (``stop_children``).

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
    try:
        print(text, flush=True)
    except OSError:  # stdout is gone (terminal closed, reader exited): the stop goes on all the same
        pass


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


# Seconds the children get to exit on SIGTERM before SIGKILL. Airflow's components finish their shutdown
# within a second here, then linger about 5 s more in the interpreter's exit; the whole stop stays under 10 s.
STOP_GRACE = 5.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # Ctrl-C, kill, the terminal closing


class Stop(BaseException):
    """Raised in the main thread by the first of ``STOP_SIGNALS`` (a BaseException, like KeyboardInterrupt, so
    that no ``except Exception`` on the way swallows it)."""


def _raise_stop(signum, frame) -> None:
    _ignore_signals()  # one Stop only: a second Ctrl-C must not cut the stop short (the stop is bounded)
    raise Stop(signum)


def _ignore_signals() -> None:
    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda *_: None)  # a handler, not SIG_IGN: children started later would inherit that


def adopt_orphans() -> bool:
    """Linux: become a child subreaper, so a descendant whose parent dies (airflow standalone's components when
    standalone goes first, a task runner whose LocalExecutor worker goes first) is re-parented to this process
    rather than to init: ``stop_children`` still sees it, stops it and reaps it."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def stop_children(grace: float = STOP_GRACE, kill_wait: float = 3.0, every: float = 0.1) -> list:
    """Stop every descendant of this process at once, with one deadline; return those still alive (none, normally).

    SIGTERM to each at once (not to airflow standalone alone, which stops its components one after another and
    waits for each); the descendants are looked up again every ``every`` s, so a process forked meanwhile gets it
    too. At ``grace`` s, SIGKILL to each one left and to every process group one of them leads: Airflow's
    LocalExecutor workers ignore SIGINT and SIGTERM, each task runner leads a group of its own, and a process
    forked just before its parent died is still reached through its group where ``adopt_orphans`` is unavailable.
    Zombies count as gone (this process reaps its own). Uses psutil (installed with Airflow).
    """
    import psutil

    me, own_group = os.getpid(), os.getpgid(0)
    known: dict[int, psutil.Process] = {}  # every descendant seen, even after it was orphaned
    gone: set[int] = set()
    groups: set[int] = set()  # process groups led by one of them
    sent: set[tuple[psutil.Process, int]] = set()

    def still_there(proc: psutil.Process) -> bool:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                if os.getpgid(proc.pid) == proc.pid != own_group:
                    groups.add(proc.pid)
                return True
            if proc.ppid() == me:
                os.waitpid(proc.pid, os.WNOHANG)  # reap ours: nothing is left behind, not even a zombie
        except (psutil.Error, OSError):
            pass
        return False

    def living() -> list:
        children: dict[int, list[psutil.Process]] = {}
        for proc in psutil.process_iter(["ppid"]):
            children.setdefault(proc.info["ppid"], []).append(proc)
        todo = [me, *(pid for pid in known if pid not in gone)]
        while todo:
            for proc in children.get(todo.pop(), ()):
                if known.get(proc.pid) != proc:  # new (psutil compares pid and start time: a reused pid is new)
                    known[proc.pid] = proc
                    gone.discard(proc.pid)
                    todo.append(proc.pid)
        alive = []
        for pid, proc in known.items():
            if pid not in gone:
                if still_there(proc):
                    alive.append(proc)
                else:
                    gone.add(pid)
        return alive

    start = time.monotonic()
    for sig, until in ((signal.SIGTERM, grace), (signal.SIGKILL, grace + kill_wait)):
        while True:
            alive = living()
            for proc in alive:
                if (proc, sig) not in sent:
                    sent.add((proc, sig))
                    try:
                        proc.send_signal(sig)
                    except psutil.Error:
                        pass
            if sig == signal.SIGKILL:
                for group in groups:
                    try:
                        os.killpg(group, sig)
                    except OSError:
                        pass
            if not alive:
                return []
            if time.monotonic() - start >= until:
                break
            time.sleep(every)
    return alive


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

    home = Path(args.home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    port = args.port or free_port()
    if not port_free(port):
        say(f"make airflow: port {port} is in use; free it or run: make airflow DYNADEX_AIRFLOW_PORT=8081")
        return 1
    shutil.rmtree(home / "store", ignore_errors=True)  # the emulator's tables are new each start: so is the index
    password = password_for(home)
    for sig in STOP_SIGNALS:
        signal.signal(sig, _raise_stop)
    adopt_orphans()
    try:
        return serve(args, home, port, password)
    except Stop:
        return 0


def serve(args, home: Path, port: int, password: str) -> int:
    """The emulator, the demo table and airflow standalone, until ``Stop`` (or a failure): then every child goes."""
    from dynadex.local_aws import running

    stop_writes = threading.Event()
    say("starting the bundled AWS emulator ...")
    try:
        with running(export_seconds=3, export_files=8, stream_shards=4) as aws:
            try:
                demo_table(aws, args.items)
                say(f"emulator at {aws.endpoint}: bucket dynadex-exports, table {TABLE} with {args.items} items")
                if not args.no_writes:
                    threading.Thread(target=writer, args=(aws, args.items, stop_writes), daemon=True).start()
                return run_airflow(args, home, port, aws, password)
            finally:  # before the emulator's own exit, which would stop it alone first
                stop_all(stop_writes)
    finally:  # a Stop during the emulator's start: nothing is left either way
        stop_all(stop_writes, quiet=True)


def stop_all(stop_writes: threading.Event, quiet: bool = False) -> None:
    """``stop_children`` with the stop signals ignored; a Stop raised just before that starts it over."""
    for _ in range(2):  # _raise_stop raises once at most
        try:
            _ignore_signals()
            stop_writes.set()
            if not quiet:
                say("stopping Airflow and the emulator ...")
            left = stop_children()
            if not quiet:
                say("stopped" if not left else f"stopped, but still running: {[p.pid for p in left]}")
            return
        except Stop:
            continue


def reap_adopted(keep: set[int]) -> None:
    """Reap the exited processes ``adopt_orphans`` gave this one (``keep``: the children waited for elsewhere)."""
    import psutil

    for child in psutil.Process().children():
        try:
            if child.pid not in keep and child.status() == psutil.STATUS_ZOMBIE:
                os.waitpid(child.pid, os.WNOHANG)
        except (psutil.Error, OSError):
            pass


def run_airflow(args, home: Path, port: int, aws, password: str) -> int:
    url = f"http://127.0.0.1:{port}"
    env = airflow_env(home, port, aws.endpoint, password)
    log_path = home / "standalone.log"
    say(f"starting airflow standalone (log: {log_path}); the first start migrates its database ...")
    with open(log_path, "a") as log:
        # a session of its own: a Ctrl-C in the terminal reaches this process only, which stops them all at once
        proc = subprocess.Popen([sys.executable, "-m", "airflow", "standalone"], env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    say(f"airflow standalone pid {proc.pid}")
    deadline = time.time() + args.startup_timeout
    while not healthy(url):
        if proc.poll() is not None:
            say(f"make airflow: airflow standalone exited ({proc.returncode}); see {log_path}")
            return 1
        if time.time() > deadline:
            say(f"make airflow: the UI did not answer within {args.startup_timeout:g}s; see {log_path}")
            return 1
        time.sleep(1)
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
    say("")
    while proc.poll() is None:  # until Stop
        reap_adopted({proc.pid, aws.process.pid})
        time.sleep(1)
    say(f"make airflow: airflow standalone exited ({proc.returncode}); see {log_path}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
