"""`make demo`: the main job, end to end, on the embedded default.

1. start the bundled AWS emulator (a child process, real HTTP);
2. create a DynamoDB table ``Orders`` (PITR and a stream on) holding generated
   items of every type, with writes going on;
3. Airflow runs ``dynamodb_ingest`` (``airflow dags test``): export at T0,
   deferred wait, balanced mapped chunks, atomic publish into a local DuckLake
   store (``.demo/store``);
4. more writes (puts, updates, deletes); Airflow runs ``dynamodb_stream_sync``
   until the index has caught up;
5. queries through the CLI, then ``dynadex verify``: the index equals a Scan
   of the table, item for item.

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
from pathlib import Path

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
        rnd = random.Random(7)
        n = 5000
        for start in range(0, n, 25):
            ddb.batch_write_item(RequestItems={TABLE: [{"PutRequest": {"Item": item(i, rnd)}} for i in range(start, start + 25)]})
        print(f"table {TABLE}: {n} items written")

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
            run([sys.executable, "-m", "airflow", "dags", "test", "dynamodb_ingest", "--conf",
                 json.dumps({"table_name": TABLE, "store": store, "chunk_target_mb": 0.1})], env)
        finally:
            stop.set()
            th.join()
        print(f"bootstrap done in {time.time() - t:.1f}s")
        print(dynadex("status", TABLE, env=env))

        say("more changes, then Airflow runs dynamodb_stream_sync until the index has caught up")
        ddb.update_item(TableName=TABLE, Key={"pk": {"S": "customer#0001"}, "sk": {"N": "1"}},
                        UpdateExpression="SET city = :c, vip = :v", ExpressionAttributeValues={":c": {"S": "Reykjavik"}, ":v": {"BOOL": True}})
        ddb.delete_item(TableName=TABLE, Key={"pk": {"S": "customer#0002"}, "sk": {"N": "2"}})
        verdict = ""
        for attempt in range(6):
            run([sys.executable, "-m", "airflow", "dags", "test", "dynamodb_stream_sync", "--conf",
                 json.dumps({"table_name": TABLE, "store": store, "run_seconds": 15})], env)
            done = subprocess.run([sys.executable, "-m", "dynadex.cli", "verify", TABLE], env=env, capture_output=True, text=True)
            verdict = done.stdout.strip().splitlines()[-1]
            if done.returncode == 0:
                break
        print(dynadex("status", TABLE, env=env))

        say("querying the index")
        print("$ dynadex query 'SELECT city, count(*) AS orders, sum(total) AS revenue FROM Orders GROUP BY city ORDER BY revenue DESC'")
        print(dynadex("query", "SELECT city, count(*) AS orders, sum(total) AS revenue FROM Orders GROUP BY city ORDER BY revenue DESC", env=env))
        print("$ dynadex find Orders city=Reykjavik")
        print(dynadex("find", TABLE, "city=Reykjavik", env=env))
        print("$ dynadex get Orders '{\"pk\":{\"S\":\"customer#0001\"},\"sk\":{\"N\":\"1\"}}'")
        print(dynadex("get", TABLE, '{"pk":{"S":"customer#0001"},"sk":{"N":"1"}}', env=env))
        say(f"dynadex verify {TABLE}: {verdict}")
        if "OK" not in verdict:
            return 1
    print(f"\nThe store stays in {store}: try  .venv/bin/dynadex query 'SELECT * FROM Orders LIMIT 5' --store {store}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
