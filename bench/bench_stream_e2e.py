"""End to end against the emulator: a table bootstrapped, its stream filled over HTTP with N mixed writes, then
`dynadex sync` to the tip; the emulator's write rate, the sync's records/s and each process's CPU, apart.

writes:  (--compare-writes N, default 20 000) the same N mixed writes on a fresh emulator by each write path,
         side by side in this run: BatchWriteItem of 25 by the release before (--baseline-tree, optional),
         through moto's dispatch (writes_lane=0), through the writes lane (decision 0038), and the bulk path
         (many BatchWriteItem bodies per HTTP request, /_dynadex/batch-writes). BatchWriteItem is sent by boto3
         from this process (one thread; parameter validation off, as a loader would); each figure has the
         emulator's CPU per item.
sync:    a table of --seed-items items is bootstrapped (export + ingest), then --records writes (default
         200 000; 2 000 000 for the big run) go in by --writer (bulk or batch): 50% inserts, 35% updates of live
         items (PutRequest over them: MODIFY), 15% deletes; then `dynadex sync TABLE` (until caught up) runs in
         its own process: wall time, records/s, its CPU (rusage) and the emulator's CPU meanwhile (psutil).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).parent))

from live_table import BUCKET, child_env  # noqa: E402

AUTH = "AWS4-HMAC-SHA256 Credential=local/20261207/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=x"
BULK_PER_REQUEST = 400  # BatchWriteItem bodies per bulk HTTP request (10 000 items)


def process_cpu(pid: int) -> float:
    import psutil

    used = psutil.Process(pid).cpu_times()
    return used.user + used.system


class Writes:
    """Mixed writes in BatchWriteItem bodies of 25 distinct keys: inserts, updates of live items, deletes."""

    def __init__(self, table: str, seed: int = 7):
        self.table, self.rnd = table, random.Random(seed)
        self.live: list[int] = []
        self.where: dict[int, int] = {}
        self.next_key = 0
        self.counts = {"insert": 0, "update": 0, "delete": 0}

    def item(self, k: int) -> dict:
        r = self.rnd
        return {"pk": {"S": f"k{k:09d}"}, "n": {"N": str(r.randrange(10**6))},
                "city": {"S": r.choice(["Paris", "Rome", "Oslo"])},
                "score": {"N": f"{r.randrange(1000)}.{r.randrange(100):02d}"}, "tags": {"SS": ["a", f"t{k % 9}"]},
                "m": {"M": {"x": {"N": str(k)}, "ok": {"BOOL": r.random() < 0.5}}}}

    def _add(self, k: int) -> None:
        self.where[k] = len(self.live)
        self.live.append(k)

    def _remove(self, k: int) -> None:
        i = self.where.pop(k)
        last = self.live.pop()
        if last != k:
            self.live[i] = last
            self.where[last] = i

    def seed(self, n: int):
        for start in range(0, n, 25):
            reqs = []
            for _ in range(min(25, n - start)):
                self._add(self.next_key)
                reqs.append({"PutRequest": {"Item": self.item(self.next_key)}})
                self.next_key += 1
            yield {"RequestItems": {self.table: reqs}}

    def mixed(self, n: int):
        for start in range(0, n, 25):
            reqs, used = [], set()
            for _ in range(min(25, n - start)):
                roll = self.rnd.random()
                k = self.live[self.rnd.randrange(len(self.live))] if self.live and roll >= 0.5 else None
                if k is None or k in used:
                    k = self.next_key
                    self.next_key += 1
                    self._add(k)
                    self.counts["insert"] += 1
                    reqs.append({"PutRequest": {"Item": self.item(k)}})
                elif roll < 0.85:
                    self.counts["update"] += 1
                    reqs.append({"PutRequest": {"Item": self.item(k)}})
                else:
                    self._remove(k)
                    self.counts["delete"] += 1
                    reqs.append({"DeleteRequest": {"Key": {"pk": {"S": f"k{k:09d}"}}}})
                used.add(k)
            yield {"RequestItems": {self.table: reqs}}


def bulk_requests(bodies) -> list[bytes]:
    """The bodies as bulk HTTP request bodies (NDJSON, BULK_PER_REQUEST lines each): small, made before timing."""
    out, chunk = [], []
    for body in bodies:
        chunk.append(json.dumps(body).encode())
        if len(chunk) == BULK_PER_REQUEST:
            out.append(b"\n".join(chunk))
            chunk = []
    if chunk:
        out.append(b"\n".join(chunk))
    return out


def send_bulk(endpoint: str, bodies=None, requests: list[bytes] | None = None) -> int:
    """Every body through the bulk path, BULK_PER_REQUEST per HTTP request, on one kept-alive connection."""
    host = urlparse(endpoint)
    conn = http.client.HTTPConnection(host.hostname, host.port, timeout=600)
    written = 0
    for data in requests if requests is not None else bulk_requests(bodies):
        conn.request("POST", "/_dynadex/batch-writes", data,
                     {"Authorization": AUTH, "Content-Type": "application/x-ndjson"})
        resp = conn.getresponse()
        out = json.loads(resp.read())
        if resp.status != 200:
            raise RuntimeError(f"bulk write refused: {out}")
        written += out["written"]
    conn.close()
    return written


def send_batches(aws, bodies) -> int:
    """Every body as one boto3 BatchWriteItem (parameter validation off, as a bulk loader would run it)."""
    import boto3
    from botocore.config import Config

    ddb = boto3.client("dynamodb", endpoint_url=aws.endpoint, region_name="us-east-1", aws_access_key_id="local",
                       aws_secret_access_key="local", config=Config(parameter_validation=False))
    written = 0
    for body in bodies:
        todo = body["RequestItems"]
        while todo:
            todo = ddb.batch_write_item(RequestItems=todo).get("UnprocessedItems") or {}
        written += sum(len(v) for v in body["RequestItems"].values())
    return written


def timed_writes(aws, bodies, writer: str) -> dict:
    # generated before the clock starts; the bulk path's as encoded requests (2 M bodies as dicts took 5 GB)
    bodies = bulk_requests(bodies) if writer == "bulk" else list(bodies)
    cpu0, own0, t0 = process_cpu(aws.process.pid), time.process_time(), time.perf_counter()
    n = send_bulk(aws.endpoint, requests=bodies) if writer == "bulk" else send_batches(aws, bodies)
    wall = time.perf_counter() - t0
    emu = process_cpu(aws.process.pid) - cpu0
    return {"items": n, "seconds": wall, "per_second": n / wall, "emulator_cpu_s": emu,
            "emulator_us_per_item": emu / n * 1e6, "client_cpu_s": time.process_time() - own0}


def new_table(aws, name: str) -> None:
    ddb = aws.client("dynamodb")
    ddb.create_table(TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST",
                     StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    ddb.update_continuous_backups(TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})


PATHS = [("BatchWriteItem, moto's dispatch (writes_lane=0)", 0, "batch"), ("BatchWriteItem, writes lane", 1, "batch"),
         ("bulk path", 1, "bulk")]


@contextlib.contextmanager
def emulator_of(tree: str, shards: int):
    """The emulator of another checkout's ``include`` (the release before), on a free port: its own flags only."""
    from dynadex.local_aws import LocalAWS
    from dynadex.local_aws.fixture import AWS_ENV

    env = {**os.environ, **AWS_ENV, "PYTHONPATH": str(Path(tree) / "include")}
    proc = subprocess.Popen([sys.executable, "-m", "dynadex.cli", "local-aws", "--port", "0", "--stream-shards",
                             str(shards)], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        if not line.startswith("ready "):
            raise RuntimeError(f"the emulator of {tree} did not start: {line!r}")
        yield LocalAWS(line.split(" ", 1)[1].strip(), proc, None)
    finally:
        proc.terminate()
        proc.wait()


def compare_writes(n: int, shards: int, baseline: str | None = None) -> list[dict]:
    from dynadex.local_aws import running

    rows = []
    paths = ([("BatchWriteItem, the release before (" + baseline + ")", None, "batch")] if baseline else []) + PATHS
    for label, lane, writer in paths:
        start = emulator_of(baseline, shards) if lane is None else running(stream_shards=shards, writes_lane=lane)
        with start as aws:
            new_table(aws, "W")
            w = Writes("W")
            send_bulk(aws.endpoint, w.seed(5_000)) if lane else send_batches(aws, w.seed(5_000))
            row = {"path": label, **timed_writes(aws, w.mixed(n), writer)}
            rows.append(row)
            print(f"writes: {label}: {row['items']:,} items in {row['seconds']:.1f} s = {row['per_second']:,.0f}/s; "
                  f"emulator CPU {row['emulator_us_per_item']:.0f} us/item, client CPU {row['client_cpu_s']:.1f} s "
                  f"(x{row['per_second'] / rows[0]['per_second']:.1f} the first)", flush=True)
    return rows


def parse_variants(text: str) -> list[tuple[str, dict]]:
    """'LABEL:VAR=V,VAR=V;LABEL:' -> [(label, {VAR: V})]."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        label, _, assigns = part.partition(":")
        out.append((label, dict(a.split("=", 1) for a in assigns.split(",") if a)))
    return out


def run_sync(aws, store: str, env: dict, label: str) -> dict:
    """``dynadex sync E2E`` (until caught up) in its own process with ``env``: its wall time, records/s and CPU
    (rusage), and the emulator's CPU meanwhile (psutil)."""
    emu0, t0 = process_cpu(aws.process.pid), time.perf_counter()
    wrap = os.environ.get("BENCH_SYNC_WRAP", "").split()  # e.g. a profiler: "py-spy record -o F --"
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([*wrap, sys.executable, "-m", "dynadex.cli", "sync", "E2E", "--store", store],
                                env=env, stdout=subprocess.PIPE, stderr=err)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        err.seek(0)
        errors = err.read()[-3000:]
    returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    emu = process_cpu(aws.process.pid) - emu0
    if returncode:
        raise RuntimeError(f"dynadex sync failed ({returncode}): {out[-2000:]!r} {errors.decode(errors='replace')}")
    stats = json.loads([line for line in out.decode().strip().splitlines() if line.startswith("{")][-1])
    sync_cpu = usage.ru_utime + usage.ru_stime
    row = {"sync_seconds": wall, "sync_records": stats["records"], "sync_applied": stats["applied"],
           "batches": stats["batches"], "records_per_second": stats["records"] / wall, "sync_cpu_s": sync_cpu,
           "sync_cores": sync_cpu / wall, "emulator_cpu_s_during_sync": emu, "emulator_cores_during_sync": emu / wall,
           "sync_us_per_record": 1e6 * sync_cpu / stats["records"],
           "emulator_us_per_record_served": 1e6 * emu / stats["records"]}
    print(f"e2e: dynadex sync ({label}): {stats['records']:,} records in {wall:.1f} s = "
          f"{row['records_per_second']:,.0f} records/s ({stats['batches']} batches); CPU: sync {sync_cpu:.1f} s "
          f"({row['sync_cores']:.2f} cores), emulator {emu:.1f} s ({row['emulator_cores_during_sync']:.2f} cores) "
          "meanwhile", flush=True)
    return row


def e2e(records: int, seed_items: int, shards: int, writer: str, verify: bool,
        variants: list[tuple[str, dict]] = (("now", {}),)) -> dict:
    from dynadex import bootstrap
    from dynadex.local_aws import running

    with running(export_seconds=1, stream_shards=shards) as aws:
        os.environ.update(aws.env())
        aws.client("s3").create_bucket(Bucket=BUCKET)
        new_table(aws, "E2E")
        ddb = aws.client("dynamodb")
        w = Writes("E2E")
        send_bulk(aws.endpoint, w.seed(seed_items))
        stores = {}
        for label, _ in variants:  # one store a variant, each bootstrapped before the writes: the same backlog
            stores[label] = tempfile.mkdtemp(prefix=f"dynadex-e2e-{label}-")
            t = time.perf_counter()
            result = bootstrap.run(ddb, "E2E", bucket=BUCKET, store=stores[label], poll_seconds=0.2)
            assert result["publish"]["published"], result
            boot = time.perf_counter() - t
        write = timed_writes(aws, w.mixed(records), writer)
        print(f"e2e: bootstrap of {seed_items:,} items {boot:.1f} s; {write['items']:,} writes ({w.counts}) by "
              f"{writer} in {write['seconds']:.1f} s = {write['per_second']:,.0f}/s, emulator CPU "
              f"{write['emulator_us_per_item']:.0f} us/item", flush=True)
        env = child_env(**aws.env())
        rows = []
        for label, extra in variants:
            row = {"records_written": write["items"], "writer": writer, "write": write, "variant": label,
                   "variant_env": extra, **run_sync(aws, stores[label], {**env, **extra}, label)}
            if verify:
                check = subprocess.run([sys.executable, "-m", "dynadex.cli", "verify", "E2E", "--store",
                                        stores[label]], env=env, capture_output=True, text=True)
                row["verify"] = check.stdout.strip().splitlines()[-1] if check.stdout.strip() else check.stderr[-500:]
                print(f"e2e: verify ({label}): {row['verify']}", flush=True)
            rows.append(row)
        if len(rows) > 1:
            base = rows[0]["records_per_second"]
            print("e2e: " + ", ".join(f"{r['variant']} {r['records_per_second']:,.0f} records/s "
                                      f"({r['records_per_second'] / base:.2f}x)" for r in rows), flush=True)
        row = rows[-1] if len(rows) == 1 else {"variants": rows}
        return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=200_000, help="mixed writes after the bootstrap (2000000: big run)")
    ap.add_argument("--seed-items", type=int, default=10_000, help="items in the table before the bootstrap")
    ap.add_argument("--shards", type=int, default=4, help="open shards of the emulator's stream")
    ap.add_argument("--writer", choices=("bulk", "batch"), default="bulk",
                    help="how the writes go in: the bulk path, or boto3 BatchWriteItem of 25")
    ap.add_argument("--compare-writes", type=int, default=20_000, help="items per write path compared (0: skip)")
    ap.add_argument("--baseline-tree", help="also the write path of this checkout (e.g. `git archive REV include | "
                    "tar -x -C DIR`: the release before), first in the comparison")
    ap.add_argument("--skip-sync", action="store_true", help="only the write-path comparison")
    ap.add_argument("--verify", action="store_true", help="then `dynadex verify` the table against the index")
    ap.add_argument("--sync-variants", default="now:",
                    help="syncs of the same filled stream, each on its own store bootstrapped before the writes, one after the "
                         "other: 'LABEL:VAR=V,VAR=V;LABEL:...', e.g. 'before:DYNADEX_READ_AHEAD=0,"
                         "DYNADEX_COMMIT_AHEAD=0;now:' (decision 0042); the first is the ratios' baseline")
    ap.add_argument("--out", help="write the figures here (JSON)")
    args = ap.parse_args()
    doc = {"date": time.strftime("%Y-%m-%d %H:%M"), "load": os.getloadavg()}
    print(f"load average before: {doc['load']}", flush=True)
    if args.compare_writes:
        doc["writes"] = compare_writes(args.compare_writes, args.shards, args.baseline_tree)
    if not args.skip_sync:
        doc["e2e"] = e2e(args.records, args.seed_items, args.shards, args.writer, args.verify,
                         parse_variants(args.sync_variants))
    doc["load_after"] = os.getloadavg()
    print(f"load average after: {doc['load_after']}", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
