"""Many tables, few slots: 50 tables at 1 write/s each, followed as the stream DAG's sync groups follow them.

The tables are published empty into one store (each with a stream, as an ingest leaves them), grouped by
``dynadex_airflow.sync_groups.pack`` (the DAG's own planning: quiet tables share a task), and each group is
followed by a child process running ``dynadex.stream.fleet.follow``, exactly what one ``sync`` task runs.
When a group is all quiet its process ends, and this process probes its tables (``stream.probe``, what the
trigger runs in the triggerer) until one has news, then starts the group's process again (the resumed task).
Airflow's own resume latency (scheduler, executor, task start) is not in these figures.

First ``--idle-seconds`` with no writes (slots held should drop to 0), then ``--seconds`` of ``--rate``
writes a second to every table. Printed: the most slots (group processes alive at once) held in each phase,
the most total RSS of those processes, and the lag of every write: sent -> applied (its row's write id,
taken by the batch just before its commit), p50/p99/max, and p50/p99 of the writes sent 10 s or more into
the busy phase ("steady": the group's process is up by then; the first writes wait for it to start, as a
resumed task's would); writes never applied are counted.

    .venv/bin/python bench/bench_quiet_tables.py --tables 50 --rate 1 --seconds 60
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "include", ROOT / "plugins"):
    sys.path.insert(0, str(p))


def child(store: str, tables: list[str], until: float) -> None:
    """One group's task: follow its tables until all are quiet (or ``until``); print the figures."""
    from dynadex.aws import client
    from dynadex.stream import fleet

    ddb, streams, s3 = client("dynamodb"), client("dynamodbstreams"), client("s3")
    keys = [(store, t) for t in tables]
    quiet = fleet.quiet_tables(keys, lambda s: s, streams, 300.0)
    settings = fleet.FleetSettings(group_commit=os.environ.get("BENCH_GROUP_COMMIT", "1") != "0")
    group = fleet.Fleet(quiet, lambda s: s, ddb, streams, s3, settings)  # what fleet.follow runs
    try:
        result = group.follow(until)
        shared = list(group.stores.values())  # how many tables' batches a commit carried
    finally:
        group.close()
    print(json.dumps({"applied": sum(s.get("applied", 0) for s in result.stats.values()),
                      "syncs": sum(s.get("syncs", 0) for s in result.stats.values()),
                      "commits": sum(s.commits for s in shared), "batches": sum(s.batches for s in shared)}))


def write_timeline(path: str, sent: dict, store: str, names: list[str], busy_start: float) -> None:
    """Each second of the busy phase: the most and the mean lag of the writes sent in it, and how many landed."""
    from dynadex.store import Store

    seconds: dict[int, list] = {int(t0 - busy_start): [] for t0 in sent.values()}
    with Store(store) as st:
        for n in names:
            got = dict(st.query(f'SELECT pk, write_id FROM row_index."{n}"')[1])
            for (table, k), t0 in sent.items():
                if table == n and k in got:
                    seconds[int(t0 - busy_start)].append(got[k] / 1e9 - t0)
    with open(path, "w") as f:
        f.write("second,most_lag_s,mean_lag_s,writes_applied\n")
        for sec, xs in sorted(seconds.items()):
            f.write(f"{sec},{max(xs, default=0):.3f},{sum(xs) / len(xs) if xs else 0:.3f},{len(xs)}\n")


def pct(xs: list[float], q: float) -> float:
    return xs[min(len(xs) - 1, int(len(xs) * q))] if xs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tables", type=int, default=50)
    ap.add_argument("--rate", type=float, default=1.0, help="writes a second to each table")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--idle-seconds", type=float, default=20.0)
    ap.add_argument("--workdir")
    ap.add_argument("--store", help="the store (default WORKDIR/store); a Postgres catalog URI takes its data "
                                    "path from DYNADEX_DATA_PATH (default WORKDIR/data)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--timeline", help="also write, for each second of sending, its writes' most and mean lag to "
                                       "this CSV file (a stall shows as a run of seconds whose writes all wait)")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--child", nargs=3, metavar=("STORE", "TABLES", "UNTIL"))
    args = ap.parse_args()
    if args.child:
        store, tables, until = args.child
        return child(store, tables.split(","), float(until))

    import psutil

    from dynadex.local_aws import running
    from dynadex.store import Store
    from dynadex.stream import fleet
    from dynadex.stream.probe import TableProbe
    from dynadex_airflow.sync_groups import pack
    from dynadex_airflow.sync_tasks import SyncTarget
    from tests.support.many_tables import published_empty

    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr, flush=True))
    work = Path(args.workdir or tempfile.mkdtemp(prefix="dynadex-quiet-"))
    store = args.store or str(work / "store")
    if store.startswith(("postgres:", "postgresql:")):
        os.environ.setdefault("DYNADEX_DATA_PATH", str(work / "data"))
    names = [f"Quiet{i:02d}" for i in range(args.tables)]
    with running(stream_shards=1) as aws:
        env = {**os.environ, **aws.env(), "PYTHONPATH": os.pathsep.join([str(ROOT / "include"), str(ROOT)])}
        os.environ.update(aws.env())
        t = time.time()
        published_empty(aws, store, names)
        say(f"published {len(names)} empty tables in {time.time() - t:.0f}s")
        groups = pack([SyncTarget(store, n) for n in names], busy=set())
        members = [[t.table for t in g.targets] for g in groups]
        say(f"{len(groups)} sync group(s): {[len(m) for m in members]}")
        from dynadex.aws import client

        streams = client("dynamodbstreams")
        procs: dict[int, subprocess.Popen] = {}
        reports: list[str] = []  # what each group's process printed (its applied, syncs, commits, batches)
        probes: dict[int, list] = {}
        samples = {"idle": {"slots": 0, "rss": 0}, "busy": {"slots": 0, "rss": 0}}
        starts = {"n": 0}
        phase = {"name": "idle"}
        end = time.time() + args.idle_seconds + args.seconds + 5  # the groups outlive the writes by 5 s
        stop = threading.Event()

        def start(g: int) -> None:
            starts["n"] += 1
            procs[g] = subprocess.Popen([sys.executable, __file__, "--child", store, ",".join(members[g]), str(end)],
                                        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            probes.pop(g, None)

        def supervise() -> None:  # the scheduler and the triggerer, in one loop
            while not stop.is_set():
                for g in range(len(groups)):
                    p = procs.get(g)
                    if p is not None and p.poll() is None:
                        continue
                    if p is not None:
                        procs.pop(g)
                        reports.append(p.communicate()[0])
                        probes[g] = [TableProbe(q, streams) for q in
                                     fleet.quiet_tables([(store, n) for n in members[g]], lambda s: s, streams, 300.0)]
                    if g not in probes:
                        start(g)
                    elif any(pr.news() for pr in probes[g]) and time.time() < end:
                        start(g)
                alive = [p for p in procs.values() if p.poll() is None]
                rss = 0
                for p in alive:
                    try:
                        rss += psutil.Process(p.pid).memory_info().rss
                    except psutil.NoSuchProcess:
                        pass
                s = samples[phase["name"]]
                s["slots"], s["rss"] = max(s["slots"], len(alive)), max(s["rss"], rss)
                stop.wait(0.5)

        sup = threading.Thread(target=supervise, daemon=True)
        sup.start()
        time.sleep(args.idle_seconds)  # noqa: the idle phase: nothing written
        idle_slots_at_end = sum(1 for p in procs.values() if p.poll() is None)
        phase["name"] = "busy"
        say(f"idle phase: {idle_slots_at_end} slot(s) held at its end; writing {args.rate:g}/s to each table")
        ddb = aws.client("dynamodb")
        sent: dict = {}
        busy_end = time.time() + args.seconds
        i = 0
        while time.time() < busy_end:
            tick = time.time()
            for n in names:
                k = f"w{i}"
                now = time.time()
                ddb.put_item(TableName=n, Item={"pk": {"S": k}, "t": {"N": repr(now)}})
                sent[(n, k)] = now
            i += 1
            time.sleep(max(0.0, 1.0 / args.rate - (time.time() - tick)))
        time.sleep(5)  # noqa: let the last writes be applied before the groups end
        stop.set()
        sup.join()
        for p in procs.values():  # each group's process ends at ``end``, its syncs at a batch boundary
            try:
                reports.append(p.communicate(timeout=60)[0])
            except subprocess.TimeoutExpired:
                p.terminate()
                reports.append(p.communicate()[0])
        told = [json.loads(line) for r in reports for line in (r or "").splitlines() if line.startswith("{")]
        commits, batches = sum(t.get("commits", 0) for t in told), sum(t.get("batches", 0) for t in told)
        lags, missing, steady, last = [], 0, [], []  # steady: writes sent 10 s or more into the busy phase
        windows: dict[int, list] = {}  # 10 s of the busy phase -> lags of the writes sent in it (None: missing)
        busy_start = busy_end - args.seconds
        with Store(store) as st:
            for n in names:
                rows = st.query(f'SELECT pk, write_id FROM row_index."{n}"')[1]
                got = {pk: wid for pk, wid in rows}
                for (table, k), t0 in sent.items():
                    if table != n:
                        continue
                    windows.setdefault(int((t0 - busy_start) // 10), []).append(
                        got[k] / 1e9 - t0 if k in got else None)
                    if k in got:
                        lags.append(got[k] / 1e9 - t0)
                        if t0 >= busy_start + 10:
                            steady.append(lags[-1])
                        if t0 >= busy_end - 60:
                            last.append(lags[-1])
                    else:
                        missing += 1
        lags.sort()
        steady.sort()
        last.sort()
        out = {"tables": len(names), "rate_per_table": args.rate, "seconds": args.seconds, "groups": len(groups),
               "idle_slots_max": samples["idle"]["slots"], "idle_slots_at_end": idle_slots_at_end,
               "busy_slots_max": samples["busy"]["slots"], "busy_rss_max_mb": round(samples["busy"]["rss"] / 2**20),
               "writes": len(sent), "missing": missing, "task_starts": starts["n"],
               "commits": commits, "batches_per_commit": round(batches / commits, 1) if commits else None,
               "lag_p50_s": round(pct(lags, 0.5), 3), "lag_p99_s": round(pct(lags, 0.99), 3),
               "lag_max_s": round(lags[-1], 3) if lags else None,
               "steady_lag_p50_s": round(pct(steady, 0.5), 3), "steady_lag_p99_s": round(pct(steady, 0.99), 3),
               "last_60s_lag_p50_s": round(pct(last, 0.5), 3), "last_60s_lag_p99_s": round(pct(last, 0.99), 3),
               "last_60s_writes": len([1 for (n, k), t0 in sent.items() if t0 >= busy_end - 60]),
               # per 10 s of sending: p99 of the applied writes' lag, and how many were never applied
               "p99_by_10s": [round(pct(sorted(x for x in w if x is not None), 0.99), 1)
                              for _, w in sorted(windows.items())],
               "missing_by_10s": [sum(x is None for x in w) for _, w in sorted(windows.items())]}
        if args.timeline:
            write_timeline(args.timeline, sent, store, names, busy_start)
        print(json.dumps(out))


if __name__ == "__main__":
    main()
