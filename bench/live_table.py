"""A live table for the reliability benches: the emulator, a table with a stream and TTL, its bootstrap into
a store, real ``dynadex`` processes following it, and a watch on the store's checkpoints.

Invariants:

* Every ``dynadex`` process started here runs this checkout's code (its
  ``include`` first on PYTHONPATH) against the emulator started here.
* ``CheckpointWatch.look()`` records a regression only when it persists: a
  shard checkpoint whose sequence number went down, an ended shard that is
  open again, or a shard that vanished, still seen so on a second read.
  (A read while maintenance flushes inlined rows can miss rows for a moment,
  duckdb/ducklake#1413; those reads are counted apart as ``transient``.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "dynadex-exports"


def child_env(**extra: str) -> dict:
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "include"), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


def new_table(ddb, name: str) -> None:
    ddb.create_table(TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
                     StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    ddb.update_continuous_backups(TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
    ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"})


def bootstrap(ddb, table: str, store: str) -> dict:
    """Export + ingest, as ``dynadex bootstrap`` does (writes may go on meanwhile: the handover is tested)."""
    from dynadex import bootstrap as steps

    result = steps.run(ddb, table, bucket=BUCKET, store=store, poll_seconds=0.1)
    if not result["publish"]["published"]:
        raise RuntimeError(f"bootstrap of {table} did not publish: {result['publish']}")
    return result


def dynadex(*args: str, env: dict, log: Path | None = None, capture: bool = False) -> subprocess.Popen:
    out = subprocess.PIPE if capture else (open(log, "ab") if log else subprocess.DEVNULL)
    return subprocess.Popen([sys.executable, "-m", "dynadex.cli", *args], env=env, stdout=out,
                            stderr=subprocess.STDOUT if log else (subprocess.PIPE if capture else subprocess.DEVNULL),
                            text=capture)


def last_json(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError(f"no JSON line in: {text[-500:]}")


def item_count_with(ddb, table: str, attribute: str) -> int:
    """Items that still carry ``attribute`` (a consistent Scan)."""
    n, kwargs = 0, {"TableName": table, "ConsistentRead": True, "ProjectionExpression": "pk, #a",
                    "ExpressionAttributeNames": {"#a": attribute}}
    while True:
        page = ddb.scan(**kwargs)
        n += sum(1 for item in page.get("Items", []) if attribute in item)
        if "LastEvaluatedKey" not in page:
            return n
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def wait_until(condition, what: str, deadline: float) -> float:
    """Poll ``condition`` until true; seconds it took. Raises TimeoutError past ``deadline`` seconds."""
    t = time.monotonic()
    while not condition():
        if time.monotonic() - t > deadline:
            raise TimeoutError(f"gave up after {deadline:g}s waiting for {what}")
        time.sleep(0.1)
    return time.monotonic() - t


def rollovers(streams, ddb, table: str) -> dict:
    """Shards of the table's stream: how many, how many closed (rolled over), how many are children."""
    from dynadex.stream.shards import describe_all

    arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    _, shards = describe_all(streams, arn)
    return {"shards": len(shards), "closed": sum(1 for s in shards if s.closed),
            "children": sum(1 for s in shards if s.parent_id)}


@dataclass
class CheckpointWatch:
    store: str
    table: str
    seen: dict = field(default_factory=dict)  # shard -> (sequence number or -1, ended)
    looks: int = 0
    advances: list = field(default_factory=list)  # monotonic times of looks that found a checkpoint moved on
    regressions: list = field(default_factory=list)
    transient: int = 0

    def _read(self) -> dict:
        from dynadex.store import Store

        with Store(self.store) as st:
            return {s: (int(c.sequence_number) if c.sequence_number else -1, c.ended)
                    for s, c in st.checkpoints(self.table).items()}

    @staticmethod
    def _problems(before: dict, now: dict) -> list[str]:
        out = []
        for shard, (seq, ended) in before.items():
            if shard not in now:
                out.append(f"{shard} vanished (was {seq})")
                continue
            seq2, ended2 = now[shard]
            if seq2 < seq:
                out.append(f"{shard} went back from {seq} to {seq2}")
            if ended and not ended2:
                out.append(f"{shard} reopened")
        return out

    def look(self) -> None:
        now = self._read()
        self.looks += 1
        if self._problems(self.seen, now):
            again = self._read()  # a real regression is stored: it is still there
            if self._problems(self.seen, again):
                self.regressions += self._problems(self.seen, again)
            else:
                self.transient += 1
            now = again
        if any(now.get(s) != v for s, v in self.seen.items()) or set(now) - set(self.seen):
            self.advances.append(time.monotonic())
        # keep the furthest seen, so a regression is reported once and judged against the best known point
        for shard, (seq, ended) in now.items():
            old = self.seen.get(shard, (-1, False))
            self.seen[shard] = (max(seq, old[0]), ended or old[1])


def checkpoint_coverage(streams, ddb, store: str, table: str) -> dict:
    """Every shard of the stream against the store's checkpoints: a shard with no checkpoint, or closed but
    not marked ended, after a catch-up means a batch's checkpoints were lost."""
    from dynadex.store import Store
    from dynadex.stream.shards import describe_all

    arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    _, shards = describe_all(streams, arn)
    with Store(store) as st:
        cps = st.checkpoints(table)
    return {"shards": len(shards), "without_checkpoint": sorted(s.shard_id for s in shards if s.shard_id not in cps),
            "closed_not_ended": sorted(s.shard_id for s in shards
                                       if s.closed and not (s.shard_id in cps and cps[s.shard_id].ended))}
