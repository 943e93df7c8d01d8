"""A seeded random write workload against one DynamoDB table: puts, updates, deletes, TTL puts, hot keys.

Invariant: the sequence of operations (kind, key, values) is a pure function
of the seed; only how many of them run before ``stop`` depends on time. Every
operation is one DynamoDB call that DynamoDB accepts (numbers within 38
digits, non-empty sets), so a refused write never hides a difference. Items
that expire carry ``expires`` at most ``TTL_AHEAD`` seconds ahead: once the
writer stops, every TTL item is gone after a few sweeps of the emulator.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

TTL_AHEAD = 2  # seconds: TTL items expire between 3 s ago and this far ahead
KINDS = ("put", "update", "delete", "ttl_put", "hot")


@dataclass(frozen=True)
class Mix:
    """Shares of each kind of operation (they need not add up to 1: they are weights)."""

    put: float = 0.35
    update: float = 0.2
    delete: float = 0.12
    ttl_put: float = 0.08
    hot: float = 0.25
    """Writes to one of ``hot_keys`` keys: the same few items rewritten all the time."""
    keys: int = 400
    hot_keys: int = 3


@dataclass
class SeededWriter:
    """Runs the workload in a background thread until ``stop()``; ``ops`` counts what ran, by kind."""

    ddb: object
    table: str
    seed: int
    mix: Mix = field(default_factory=Mix)
    pause_seconds: float = 0.004
    ops: Counter = field(default_factory=Counter)
    errors: list = field(default_factory=list)

    def __post_init__(self):
        self.rnd = random.Random(self.seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="seeded-writer", daemon=True)
        self._weights = [getattr(self.mix, k) for k in KINDS]

    def one(self) -> str:
        rnd, n = self.rnd, sum(self.ops.values())
        kind = rnd.choices(KINDS, self._weights)[0]
        table = self.table
        if kind == "hot":
            key = {"pk": {"S": f"hot{rnd.randrange(self.mix.hot_keys)}"}}
            if rnd.random() < 0.7:
                self.ddb.update_item(TableName=table, Key=key, UpdateExpression="ADD hits :one SET seen = :n",
                                     ExpressionAttributeValues={":one": {"N": "1"}, ":n": {"N": str(n)}})
            else:
                self.ddb.put_item(TableName=table, Item={**key, "n": {"N": str(n)}, "v": {"S": f"hot-{n}"}})
        else:
            key = {"pk": {"S": f"k{rnd.randrange(self.mix.keys):04d}"}}
            if kind == "put":
                self.ddb.put_item(TableName=table, Item={
                    **key, "n": {"N": str(n)}, "exact": {"N": f"{rnd.randrange(10**30)}.{rnd.randrange(10**7):07d}"},
                    "tags": {"SS": sorted({"a", f"t{rnd.randrange(9)}"})}, "b": {"B": rnd.randbytes(4)},
                    "m": {"M": {"city": {"S": rnd.choice(["Oslo", "Paris", "Rome"])}, "x": {"N": f"{n}.5"}}}})
            elif kind == "update":
                self.ddb.update_item(TableName=table, Key=key,
                                     UpdateExpression="SET u = :u, l = list_append(if_not_exists(l, :e), :x)",
                                     ExpressionAttributeValues={":u": {"N": f"-{n + 1}E+20"}, ":e": {"L": []},
                                                                ":x": {"L": [{"N": str(n % 5)}]}})
            elif kind == "delete":
                self.ddb.delete_item(TableName=table, Key=key)
            else:  # ttl_put: expired already or about to be; the emulator's sweeper deletes it (a TTL REMOVE)
                expires = int(time.time()) + rnd.randint(-3, TTL_AHEAD)
                self.ddb.put_item(TableName=table, Item={**key, "n": {"N": str(n)}, "expires": {"N": str(expires)}})
        self.ops[kind] += 1
        return kind

    def _run(self):
        while not self._stop.is_set():
            try:
                self.one()
            except Exception as exc:  # kept: a refused write is a bench failure, reported
                self.errors.append(repr(exc)[:300])
                if len(self.errors) > 20:
                    return
            time.sleep(self.pause_seconds)

    def start(self) -> "SeededWriter":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def total(self) -> int:
        return sum(self.ops.values())
