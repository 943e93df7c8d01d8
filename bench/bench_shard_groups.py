"""Shard groups: one table's backlog applied by one process, then by two (``--group 0/2`` and ``1/2``) at once,
on replayed stream pages (no emulator: the sync's own loop over an in-memory Streams endpoint holding every
shard of a backlog across rollovers), each process on one DuckDB thread.

    PYTHONPATH=include:plugins:. .venv/bin/python bench/bench_shard_groups.py [--records N] [--items K]
        [--roots R] [--generations G] [--rounds N] [--json]

Prints, per run: records/s of the one process and of the two; the speedup; and the SERIALIZED share of a
record's cost, measured two ways:
  held   the time each process held the store's writer lock (its commits: what two writers cannot overlap)
         over its wall time, in the two-process run (``contention.lock_held_seconds``);
  amdahl from the speedup on two processes: s = 2 / speedup - 1 (meaningful only while 2 processes have 2
         free cores; the box has exactly 2).
and the projection of N workers from the held share: 1 / (s + (1 - s) / N).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.fake_streams import ARN, ChainStream, Table  # noqa: E402 - the repository's root, just added


def records_for(shard: int, generation: int, per_shard: int, keys: int, seed: int) -> list[dict]:
    """One shard's records: mixed inserts, updates and deletes of ``keys`` keys, images as boto3 hands them."""
    rnd = random.Random(seed * 1_000_003 + shard * 1_009 + generation)
    out = []
    for i in range(per_shard):
        k = rnd.randrange(keys)
        key = {"pk": {"S": f"k{k:08d}"}}
        seq = f"{generation:04d}{shard:05d}{i:012d}"
        when = dt.datetime.fromtimestamp(1_900_000_000 + generation * 10 + i // 10_000, dt.timezone.utc)
        dyn = {"ApproximateCreationDateTime": when, "Keys": key, "SequenceNumber": seq, "SizeBytes": 120,
               "StreamViewType": "NEW_AND_OLD_IMAGES"}
        if rnd.random() < 0.1:
            out.append({"eventName": "REMOVE", "dynamodb": dyn})
            continue
        dyn["NewImage"] = {**key, "n": {"N": str(i)}, "city": {"S": rnd.choice(["Paris", "Rome", "Oslo", "Lima"])},
                           "tags": {"SS": ["a", f"t{i % 9}"]}, "m": {"M": {"x": {"N": f"{i}.25"}}},
                           "b": {"B": rnd.randbytes(6)}}
        out.append({"eventName": "MODIFY" if rnd.random() < 0.6 else "INSERT", "dynamodb": dyn})
    return out


def backlog(roots: int, generations: int, per_shard: int, keys: int, seed: int):
    """An in-memory Streams endpoint whose ``roots`` lineages each rolled over ``generations`` times, every
    shard listed (a backlog: the rollovers happened before the sync started), records from ``records_for``."""
    return ChainStream(roots, generations, per_shard, filters=True, listed=True,
                       records=lambda r, g: records_for(r, g, per_shard, keys, seed),
                       shard_id=lambda r, g: f"shardId-{r:05d}-{g:05d}-{seed:08x}")


def make_store(path: str, items: int) -> None:
    from dynadex.store import PublishSpec, Store
    from dynadex.types import canonical_item

    with Store(path, read_only=False) as st:
        w = st.chunk_writer("T", "b1", "c0", ("pk",), ("S",))
        for k in range(items):
            w.add(canonical_item({"pk": {"S": f"k{k:08d}"}, "n": {"N": str(k)}, "city": {"S": "Oslo"}}), 1, "bulk")
        w.finish()
        st.publish(PublishSpec("T", "b1", ["c0"], ("pk",), ("S",), total_items=items, stream_arn=ARN,
                               stream_start_micros=0))


def run_group(a) -> None:
    """One process: the sync's loop over its group's shards until caught up; prints one JSON line."""
    from dynadex.store import Store
    from dynadex.store.catalog import contention
    from dynadex.stream.shard_groups import ShardGroup
    from dynadex.stream.sync import SyncSettings, TableSync

    streams = backlog(a.roots, a.generations, a.records // (a.roots * a.generations), a.items * 2, a.seed)
    group = ShardGroup.parse(a.group)
    with Store(a.store, read_only=False, threads=1) as st:
        sync = TableSync(st, "T", Table(), streams, None,
                         SyncSettings(overlap_seconds=0, lean_get_records=False, shard_readers=1), group)
        cpu0, started = time.process_time(), time.time()  # from here: the sync's work, not the process's start
        stats = sync.run(until=0, until_caught_up=True)
        ended = time.time()
    print(json.dumps({"group": a.group, "records": stats["records"], "batches": stats["batches"],
                      "started": started, "ended": ended, "wall": ended - started,
                      "cpu": time.process_time() - cpu0, "held": contention.snapshot().lock_held_seconds,
                      "waited": contention.snapshot().lock_wait_seconds}))


def launch(store: str, group: str, a) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "include"), str(ROOT / "plugins"), str(ROOT)])}
    return subprocess.Popen([sys.executable, __file__, "--child", "--store", store, "--group", group,
                             "--records", str(a.records), "--items", str(a.items), "--roots", str(a.roots),
                             "--generations", str(a.generations), "--seed", str(a.seed)],
                            stdout=subprocess.PIPE, env=env, text=True)


def one_round(work: Path, a) -> dict:
    out = {}
    for label, groups in (("one", ["0/1"]), ("two", ["0/2", "1/2"])):
        store = work / label
        shutil.rmtree(store, ignore_errors=True)
        make_store(str(store), a.items)  # a store's data path is absolute: one fresh store per run
        procs = [launch(str(store), g, a) for g in groups]
        results = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
        # the groups' work, from the first start to the last end (each process's own start-up left out)
        wall = max(r["ended"] for r in results) - min(r["started"] for r in results)
        records = sum(r["records"] for r in results)
        out[label] = {"wall": round(wall, 2), "records": records, "records_per_s": round(records / wall),
                      "held_share": round(sum(r["held"] for r in results) / wall, 3),
                      "per_process": results}
    speedup = out["two"]["records_per_s"] / out["one"]["records_per_s"]
    s_held_one = sum(r["held"] for r in out["one"]["per_process"]) / out["one"]["wall"]
    out["speedup"] = round(speedup, 2)
    out["serialized_share_held_one_process"] = round(s_held_one, 3)
    out["serialized_share_amdahl"] = round(2 / speedup - 1, 3)
    out["projection_from_held"] = {n: round(1 / (s_held_one + (1 - s_held_one) / n), 2) for n in (2, 4, 8, 16)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--roots", type=int, default=8)
    ap.add_argument("--generations", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--store", help=argparse.SUPPRESS)
    ap.add_argument("--group", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return run_group(a)
    work = Path(tempfile.mkdtemp(prefix="bench-groups-"))
    try:
        for r in range(a.rounds):
            res = one_round(work, a)
            if a.json:
                print(json.dumps(res))
            else:
                print(f"round {r + 1}: {a.records} records ({a.roots} lineages x {a.generations} generations) onto "
                      f"{a.items} items")
                for label in ("one", "two"):
                    x = res[label]
                    print(f"  {label} process(es): {x['records_per_s']:>7} records/s, wall {x['wall']} s, "
                          f"writer lock held {x['held_share']:.0%} of the wall")
                print(f"  speedup {res['speedup']}x; serialized share: held (one process) "
                      f"{res['serialized_share_held_one_process']:.1%}, from the speedup {res['serialized_share_amdahl']:.1%}")
                print(f"  projected from the held share: {res['projection_from_held']}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
