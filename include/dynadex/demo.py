"""`make demo`: the main job, end to end, on the embedded default.

1. start the bundled AWS emulator (a child process, real HTTP);
2. create a DynamoDB table ``Orders`` (PITR and a stream on) holding 50,000
   generated items of every type (``DYNADEX_DEMO_ITEMS``), with writes going on;
3. Airflow runs ``dynamodb_ingest`` (``airflow dags test``): export at T0,
   deferred wait, balanced mapped chunks, atomic publish into a local DuckLake
   store (``.demo/store``);
4. more writes (puts, updates, deletes); Airflow runs ``dynamodb_stream_sync``
   until the index has caught up;
5. status, three example queries with their timings, then ``dynadex verify``:
   the index equals a Scan of the table, item for item.

Long steps print progress (items written, chunks built, sync runs).

Everything stays under ``.demo/`` (remove it to start over).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dynadex import settings
from dynadex.local_aws import running

SAMPLES = Path(__file__).parent / "samples" / "aws"
SAMPLE_EXPORT = SAMPLES / "export-full-2024" / "dynamodb-export" / "AWSDynamoDB" / "01715685260608-c488b4e1"
ROOT = Path(__file__).resolve().parents[2]
TABLE = "Orders"


def say(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def item(i: int, rnd: random.Random) -> dict:
    return {
        "pk": {"S": f"customer#{i % 500:04d}"}, "sk": {"N": str(i)},
        "city": {"S": rnd.choice(["Paris", "Rome", "Oslo", "Lima", "Kyoto"])},
        "total": {"N": f"{rnd.randint(1, 99999)}.{rnd.randint(0, 99):02d}"},
        "qty": {"N": str(rnd.randint(1, 20))}, "paid": {"BOOL": rnd.random() < 0.8},
        "note": {"NULL": True} if i % 7 == 0 else {"S": f"order {i}"},
        "tags": {"SS": sorted({rnd.choice(["gift", "express", "fragile", "bulk"]) for _ in range(2)})},
        "sizes": {"NS": [str(s) for s in sorted({rnd.randint(36, 46) for _ in range(2)})]},
        "sig": {"B": bytes([i % 256, (i >> 8) % 256])},
        "lines": {"L": [{"M": {"sku": {"S": f"sku-{rnd.randint(1, 50)}"}, "price": {"N": f"{rnd.randint(1, 500)}.5"}}}]},
        "address": {"M": {"street": {"S": f"{i} Main St"}, "zip": {"N": str(10000 + i % 9000)}}},
    }


def load(aws, n: int) -> None:
    """Write ``n`` items with BatchWriteItem from two threads (the emulator serialises them), with progress."""
    import boto3
    from botocore.config import Config

    fast = boto3.client("dynamodb", endpoint_url=aws.endpoint, region_name="us-east-1", aws_access_key_id="local",
                        aws_secret_access_key="local",
                        config=Config(parameter_validation=False, max_pool_connections=4))
    rnd = random.Random(7)
    batches = [[item(i, rnd) for i in range(start, min(n, start + 25))] for start in range(0, n, 25)]
    t, done, lock = time.time(), [0], threading.Lock()

    def put(batch):
        fast.batch_write_item(RequestItems={TABLE: [{"PutRequest": {"Item": it}} for it in batch]})
        with lock:
            done[0] += len(batch)
            if done[0] % 10_000 < len(batch) or done[0] == n:
                print(f"  {done[0]:>6} / {n} items written ({done[0] / (time.time() - t):.0f} items/s)", flush=True)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(put, batches))
    print(f"table {TABLE}: {n} items written in {time.time() - t:.1f}s")


class Ticker:
    """Prints ``line()`` every ``every`` seconds while the block runs."""

    def __init__(self, line, every: float = 10):
        self.line, self.every, self.stop = line, every, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.wait(self.every):
            print(f"  {self.line()}", flush=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def built(store: Path) -> int:
    """Chunk manifests written so far (each build_chunk task writes one when its files are done)."""
    return len(list((store / "staging").glob(f"{TABLE}/*/*/segment.json"))) if (store / "staging").exists() else 0


QUERIES = [
    ("revenue by city (column index)", "query",
     "SELECT city, count(*) AS orders, sum(total) AS revenue FROM Orders GROUP BY city ORDER BY revenue DESC"),
    ("orders shipped to zip 10042 (inverted index, then rows)", "find", "address.zip=10042"),
    ("one order by key (row index)", "get", '{"pk":{"S":"customer#0001"},"sk":{"N":"1"}}'),
]


def lag_seconds(store: str):
    from dynadex.store import Store
    from dynadex.store.reads import lag

    with Store(store) as st:
        return lag(st.table_state(TABLE))["lag_seconds"]


def show_queries(store: str) -> None:
    from dynadex.store import Store

    with Store(store) as st:
        for title, kind, text in QUERIES:
            t = time.perf_counter()
            if kind == "query":
                columns, rows = st.query(text)
                shown = [" | ".join(columns)] + [" | ".join(str(v) for v in r) for r in rows]
            elif kind == "find":
                items = [json.loads(i) for i in st.find(TABLE, text)]
                shown = [f"{len(items)} orders:"] + [f"  {i['pk']['S']} #{i['sk']['N']} {i['city']['S']} "
                                                     f"total {i['total']['N']}" for i in items]
            else:
                shown = [st.get(TABLE, text) or "(absent)"]
            ms = (time.perf_counter() - t) * 1000
            arg = f"'{text}'" if kind != "find" else text
            print(f"\n-- {title}: {ms:.1f} ms\n$ dynadex {kind} {'' if kind == 'query' else TABLE + ' '}{arg}")
            print("\n".join(shown))


def run(cmd: list[str], env: dict, quiet: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, env=env, capture_output=quiet, text=True)
    if done.returncode:
        if quiet:
            print(done.stdout[-4000:], done.stderr[-4000:], file=sys.stderr)
        raise SystemExit(f"demo: {' '.join(cmd[:4])} failed (exit {done.returncode})")
    return done


def dynadex(*args: str, env: dict) -> str:
    done = run([sys.executable, "-m", "dynadex.cli", *args], env, quiet=True)
    return done.stdout


def main() -> int:
    work = ROOT / ".demo"
    shutil.rmtree(work, ignore_errors=True)
    (work / "airflow").mkdir(parents=True)
    store = str(work / "store")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(work / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), os.environ.get("PYTHONPATH", "")]),
        "DYNADEX_EXPORT_POLL_SECONDS": "1",
        "DYNADEX_STORE": store,
    }
    say("inspecting the bundled genuine AWS export (dynadex inspect-export)")
    print(dynadex("inspect-export", str(SAMPLE_EXPORT / "manifest-summary.json"), env=env))

    say("starting the bundled AWS emulator (dynadex local-aws)")
    with running(export_seconds=3, export_files=8, stream_shards=4) as aws:
        env.update(aws.env())
        env["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps({"conn_type": "aws", "login": "local", "password": "local",
                                                     "extra": {"endpoint_url": aws.endpoint, "region_name": "us-east-1"}})
        print(f"emulator at {aws.endpoint}")
        ddb = aws.client("dynamodb")
        aws.client("s3").create_bucket(Bucket="dynadex-exports")
        ddb.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "N"}],
                         StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
        # CreateTable answers CREATING, as AWS does: wait for ACTIVE before configuring the table
        ddb.get_waiter("table_exists").wait(TableName=TABLE, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        ddb.update_continuous_backups(TableName=TABLE, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
        n = settings.DEMO_ITEMS.read()
        load(aws, n)

        stop = threading.Event()

        def writer():
            w = random.Random(11)
            i = n
            while not stop.is_set():
                i += 1
                if i % 5 == 0:
                    ddb.delete_item(TableName=TABLE, Key={"pk": {"S": f"customer#{i % 500:04d}"}, "sk": {"N": str(w.randrange(n))}})
                else:
                    ddb.put_item(TableName=TABLE, Item=item(i, w))
                time.sleep(0.01)

        say("Airflow runs dynamodb_ingest while writes go on (airflow db migrate; airflow dags test)")
        run([sys.executable, "-m", "airflow", "db", "migrate"], env)
        th = threading.Thread(target=writer)
        th.start()
        t = time.time()
        try:
            with Ticker(lambda: f"ingest running for {time.time() - t:.0f}s: {built(work / 'store')} chunk(s) built"):
                run([sys.executable, "-m", "airflow", "dags", "test", "dynamodb_ingest", "--conf",
                     json.dumps({"table_name": TABLE, "store": store})], env)
        finally:
            stop.set()
            th.join()
        print(f"bootstrap done in {time.time() - t:.1f}s ({built(work / 'store')} chunks, built in parallel tasks)")
        print(dynadex("status", TABLE, env=env))

        say("more changes, then Airflow runs dynamodb_stream_sync until the index has caught up")
        ddb.update_item(TableName=TABLE, Key={"pk": {"S": "customer#0001"}, "sk": {"N": "1"}},
                        UpdateExpression="SET city = :c, vip = :v", ExpressionAttributeValues={":c": {"S": "Reykjavik"}, ":v": {"BOOL": True}})
        ddb.delete_item(TableName=TABLE, Key={"pk": {"S": "customer#0002"}, "sk": {"N": "2"}})
        verdict = ""
        for attempt in range(6):
            print(f"stream sync run {attempt + 1} (15 s) ...", flush=True)
            run([sys.executable, "-m", "airflow", "dags", "test", "dynamodb_stream_sync", "--conf",
                 json.dumps({"table_name": TABLE, "store": store, "run_seconds": 15})], env)
            behind = lag_seconds(store)
            print(f"  index {behind:.3f} s behind the table" if behind is not None else "  no lag figure yet", flush=True)
            if behind != 0 and attempt < 5:
                continue  # a Scan of every item is the slow part: verify once the sync saw every shard's tip
            print("verifying: a Scan of the table compared with the index, item by item ...", flush=True)
            done = subprocess.run([sys.executable, "-m", "dynadex.cli", "verify", TABLE], env=env, capture_output=True, text=True)
            verdict = done.stdout.strip().splitlines()[-1]
            if done.returncode == 0:
                break
        print(dynadex("status", TABLE, env=env))

        say("querying the index (timed in this process; the same through the CLI: dynadex query/find/get)")
        show_queries(store)
        say(f"dynadex verify {TABLE}: {verdict}")
        if "OK" not in verdict:
            return 1
    print(f"\nThe store stays in {store}: try  .venv/bin/dynadex query 'SELECT * FROM Orders LIMIT 5' --store {store}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
