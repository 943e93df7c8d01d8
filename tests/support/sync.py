"""The stream sync against the emulator: clients, converging a store on a table, and the writes tests make."""

from __future__ import annotations

import random
import threading
import time

from dynadex.aws import client
from dynadex.store import Store
from dynadex.stream import sync_table
from dynadex.stream.verify import verify
from tests.support.emulator import make_table


def clients():
    """DynamoDB, DynamoDB Streams and S3 clients as dynadex makes them (from the environment: ``env=True``)."""
    return client("dynamodb"), client("dynamodbstreams"), client("s3")


def converge(store, table, settings=None, rounds=8):
    """Sync ``table`` into ``store`` until the index equals a Scan (at most ``rounds`` passes): summed stats and
    the last ``verify`` report."""
    ddb, streams, s3 = clients()
    total: dict = {}
    for _ in range(rounds):
        with Store(store, read_only=False) as st:
            stats = sync_table(st, table, ddb, streams, s3, seconds=0, settings=settings)
        for k, v in stats.items():
            if isinstance(v, (int, float)):
                total[k] = total.get(k, 0) + v
        with Store(store) as st:
            report = verify(st, table, ddb)
        if report.ok:
            break
    return total, report


def no_duplicates(store: str, table: str) -> None:
    """No key twice in the row index, and the table's view has as many rows."""
    with Store(store) as st:
        assert st.query(f"SELECT count(*) = count(DISTINCT key) FROM row_index.{table}")[1] == [(True,)]
        assert st.query(f"SELECT count(*) FROM {table}")[1] == st.query(f"SELECT count(*) FROM row_index.{table}")[1]


class Writer:
    """Puts, updates, deletes (and TTL-expiring puts) against a table in a background thread."""

    def __init__(self, ddb, table, seed=1, keys=300):
        self.ddb, self.table, self.rnd, self.keys = ddb, table, random.Random(seed), keys
        self.stop = threading.Event()
        self.count = 0
        self.thread = threading.Thread(target=self.run)

    def one(self):
        k = f"k{self.rnd.randrange(self.keys)}"
        op = self.rnd.random()
        if op < 0.5:
            self.ddb.put_item(TableName=self.table, Item={"pk": {"S": k}, "n": {"N": str(self.count)},
                                                          "s": {"SS": ["a", f"v{self.count % 7}"]}, "b": {"B": bytes([self.count % 256])}})
        elif op < 0.75:
            self.ddb.update_item(TableName=self.table, Key={"pk": {"S": k}}, UpdateExpression="SET m = :m, n2 = :n",
                                 ExpressionAttributeValues={":m": {"M": {"c": {"N": f"{self.count}.5"}}}, ":n": {"N": "-1E+20"}})
        elif op < 0.9:
            self.ddb.delete_item(TableName=self.table, Key={"pk": {"S": k}})
        else:
            self.ddb.put_item(TableName=self.table, Item={"pk": {"S": k}, "expires": {"N": str(int(time.time()) - 5)}})
        self.count += 1

    def run(self):
        while not self.stop.is_set():
            self.one()
            time.sleep(0.002)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def filled(aws, name: str, items: int = 60):
    """A new table (``make_table``'s defaults) holding ``items`` items; returns a DynamoDB client."""
    make_table(aws, name)
    ddb = aws.client("dynamodb")
    for i in range(items):
        ddb.put_item(TableName=name, Item={"pk": {"S": f"k{i}"}, "n": {"N": str(i)}, "tags": {"SS": ["a", f"t{i % 4}"]}})
    return ddb


def churn(ddb, name: str, start: int, count: int) -> None:
    """``count`` writes to a ``filled`` table: puts and updates, every fifth one a delete."""
    for i in range(start, start + count):
        if i % 5 == 0:
            ddb.delete_item(TableName=name, Key={"pk": {"S": f"k{i % 60}"}})
        else:
            ddb.put_item(TableName=name, Item={"pk": {"S": f"k{i % 90}"}, "n": {"N": str(i)}, "m": {"M": {"x": {"N": f"{i}.5"}}}})


def rich_item(i: int) -> dict:
    """An item with every DynamoDB type (boto3 client shapes: B as bytes)."""
    return {
        "pk": {"S": f"user#{i % 997}"}, "sk": {"N": str(i)},
        "name": {"S": f"naïve {i} ☃"}, "price": {"N": f"{i}.{i % 100:02d}"}, "big": {"N": "1" + "0" * (i % 40)},
        "ok": {"BOOL": i % 2 == 0}, "nothing": {"NULL": True}, "blob": {"B": bytes([i % 256, 0, 255])},
        "tags": {"SS": [f"t{i % 5}", f"t{(i + 1) % 5}"]}, "nums": {"NS": [str(i), str(-i - 1)]},
        "bins": {"BS": [b"\x00", bytes([i % 200 + 1])]},
        "list": {"L": [{"S": "x"}, {"N": "1.50"}, {"M": {"deep": {"BOOL": True}}}]},
        "map": {"M": {"city": {"S": ["Paris", "Rome", "Oslo"][i % 3]}, "zip": {"N": str(10000 + i)}}},
    }


def fill(ddb, table, n):
    """``n`` ``rich_item``s written in batches of 25 (a table keyed pk S + sk N)."""
    for start in range(0, n, 25):
        ddb.batch_write_item(RequestItems={table: [{"PutRequest": {"Item": rich_item(i)}} for i in range(start, min(n, start + 25))]})
