"""`dynadex serve` over real HTTP beside the stream sync: `get`, `find` and an aggregate at 1 and 16 clients,
requests/s, and write-to-visible through the API.

The run, all on this box:
  1. a generated export of ITEMS items (``gen_export``), bulk-loaded once into a store that is kept (under
     --workdir) and copied for each run (data files hard-linked, the catalog copied);
  2. the emulator (``dynadex.local_aws``) with a table ``Bench`` (NEW_IMAGE stream, 2 shards); a bootstrap of
     it into a scratch store gives the stream's ARN, start and checkpoints, which the copy takes over (the
     statements a publish writes), so `dynadex sync` follows the emulator's stream into the ITEMS-item index;
  3. `dynadex sync Bench` (with --sync-env: by default the batch window and idle pause of bench_stream's
     freshness bench, 0.1 s and 0.2 s) and `dynadex serve` (default settings) as processes;
  4. a writer puts items into the emulator at --write-rate a second throughout (half updates of loaded keys,
     half new keys), so batches are applied (and flushed, folded) while the clients read;
  5. for 1 and for 16 clients (threads, one keep-alive HTTP connection each), --seconds of each of: `get`
     of a random loaded key, `find email=<one item's>` and `SELECT city, count(*), avg(total) ... GROUP BY
     city`: p50/p99 latency and requests/s;
  6. write-to-visible: for --probes writes, the time from the emulator's acknowledgement of the put to the
     first `get` through the API that returns the item with that write's value (polled every 10 ms).

With --get-baseline a second server, started with DYNADEX_POINT_READS=0 (every get through DuckLake, as before
decision 0040), answers the same `get` figures right before the first one's, so both come from the same run.
With --baseline-code DIR a second server runs the code of DIR (a checkout of another commit, e.g. made with
``git archive COMMIT | tar -x -C DIR``) against the same store, sync and writes, and its `get` figures are
measured right before this code's (``get-before``).

Server-side time per phase comes from the server's ``Server-Timing`` header (key check, snapshot read, work,
row check, answer): the medians are printed next to each figure.

    PYTHONPATH=$PWD/include .venv/bin/python bench/bench_serve.py --items 100000          # about a minute
    flock /work/plan/bench.lock .venv/bin/python bench/bench_serve.py --items 10000000 --workdir DIR
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_ingest import export_at  # noqa: E402
from bench_stream import process_cpu, streamed_table  # noqa: E402

TABLE = "Bench"
ROOT = Path(__file__).resolve().parent.parent
AGGREGATE = f'SELECT city, count(*) AS n, avg(total) AS avg_total FROM "{TABLE}" GROUP BY city ORDER BY city'


def base_store(work: Path, items: int, files: int, chunks: int) -> Path:
    """The bulk-loaded store of ``items`` generated items (key pk) in ``chunks`` chunks, built once per work
    folder."""
    store = work / f"store-{items}-{chunks}"
    if (store / "loaded").exists():
        return store
    from dynadex.export import read_export
    from dynadex.ingest import ingest_export

    summary = export_at(work, items, files)
    shutil.rmtree(store, ignore_errors=True)
    gz = sum(f.size for f in read_export(str(summary)).files)
    t = time.time()
    out = ingest_export(str(summary), TABLE, "pk:S", store=str(store), workers=2,
                        chunk_target_mb=gz / 1e6 / chunks * (0.999 if files == chunks else 1.02))
    print(f"bulk-loaded {items:,} items in {out['chunks']} chunks in {time.time() - t:.0f} s", flush=True)
    (store / "loaded").write_text(json.dumps({"items": items, "seconds": time.time() - t}))
    return store


def copy_store(base: Path, dest: Path) -> None:
    """A copy to run against: Parquet files are never rewritten in place, so they are hard-linked; the catalog
    (and anything else) is copied."""
    shutil.rmtree(dest, ignore_errors=True)
    for src in base.rglob("*"):
        rel = src.relative_to(base)
        if src.is_dir():
            (dest / rel).mkdir(parents=True, exist_ok=True)
        elif src.suffix == ".parquet":
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            os.link(src, dest / rel)
        else:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    # the catalog names its data folder and the bulk load's files by absolute path: point them at the copy's
    # (before any DuckDB opens it; the only time this SQLite library touches a catalog)
    import sqlite3

    old, new = str(base / "data") + "/", str(dest / "data") + "/"
    con = sqlite3.connect(dest / "catalog.sqlite")
    with con:
        con.execute("UPDATE ducklake_metadata SET value = ? WHERE key = 'data_path'", [new])
        for table in ("ducklake_data_file", "ducklake_delete_file"):
            con.execute(f"UPDATE {table} SET path = ? || substr(path, ?) WHERE path_is_relative = 0 AND "
                        "substr(path, 1, ?) = ?", [new, len(old) + 1, len(old), old])
    con.close()


def follow_stream(store: Path, scratch: Path, ddb) -> None:
    """Bootstrap the emulator's table into ``scratch``, then point ``store``'s table at that stream: the same
    stream ARN, start, export time and shard checkpoints a publish of that bootstrap wrote (bench only: the
    loaded items are not in the emulator's table, as in bench_stream's preload)."""
    from dynadex import bootstrap
    from dynadex.store import Store
    from dynadex.store.catalog import state

    bootstrap.run(ddb, TABLE, bucket="dynadex-exports", store=str(scratch), poll_seconds=0.2)
    with Store(str(scratch)) as st:
        s, cps = st.table_state(TABLE), st.checkpoints(TABLE)
    with Store(str(store), read_only=False) as st:
        def rebind():
            with st.lake.transaction() as con:
                con.execute(f"UPDATE {state.TABLES} SET stream_arn = ?, stream_start_micros = ?, export_time = ?, "
                            "export_time_micros = ?, last_change_micros = ? WHERE table_name = ?",
                            [s.stream_arn, s.stream_start_micros, s.export_time, s.export_time_micros,
                             s.last_change_micros, TABLE])
                state.replace_checkpoints(con, TABLE, [dataclasses.replace(c, ended=False) for c in cps.values()])
        st.lake.retrying("bench rebind", rebind)


class Server:
    """`dynadex serve` on a free port, and a key for it."""

    def __init__(self, store: Path, env: dict):
        self.proc = subprocess.Popen([sys.executable, "-m", "dynadex.cli", "serve", "--store", str(store), "--port", "0"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline()
        if not line.startswith("listening on http://"):
            self.proc.kill()
            sys.exit(f"dynadex serve did not start: {line}{self.proc.stderr.read()[-3000:]}")
        url = urllib.parse.urlparse(line.split()[-1])
        self.host, self.port = url.hostname, url.port
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()
        from dynadex.serve.keys import KeyRing
        from dynadex.serve.state import StateFile, state_path
        from dynadex.store.catalog.location import resolve

        ring = KeyRing(StateFile(state_path(resolve(str(store)))))
        self.key = ring.create(f"bench{os.getpid()}-{self.port}")
        ring.state.close()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Client:
    """One keep-alive HTTP connection."""

    def __init__(self, server: Server):
        self.server = server
        self.con = http.client.HTTPConnection(server.host, server.port, timeout=120)
        self.auth = {"Authorization": f"ApiKey {server.key}"}

    def call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes, str | None]:
        headers = dict(self.auth)
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            self.con.request(method, path, body=body, headers=headers)
            r = self.con.getresponse()
        except (ConnectionError, http.client.HTTPException):
            self.con.close()
            self.con = http.client.HTTPConnection(self.server.host, self.server.port, timeout=120)
            self.con.request(method, path, body=body, headers=headers)
            r = self.con.getresponse()
        return r.status, r.read(), r.getheader("Server-Timing")


def get_path(key: str) -> str:
    return f"/v1/dynadex/tables/{TABLE}/item?key=" + urllib.parse.quote(json.dumps({"pk": {"S": key}}))


def loaded_key(i: int) -> str:
    return f"customer#{i:09d}"  # gen_export's keys


def operations(items: int):
    def get(rnd):
        return "GET", get_path(loaded_key(rnd.randrange(items))), None

    def find(rnd):
        value = f"user{rnd.randrange(items)}@example.com"
        return "GET", f"/v1/dynadex/tables/{TABLE}/find?path=email&value=" + urllib.parse.quote(value), None

    def aggregate(rnd):
        return "POST", "/v1/dynadex/query", json.dumps({"sql": AGGREGATE}).encode()

    return {"get": get, "find": find, "aggregate": aggregate}


def timing_phases(header: str | None) -> dict[str, float]:
    """``Server-Timing: key;dur=0.1, begin;dur=1.2, ...`` as {phase: ms}."""
    out = {}
    for part in (header or "").split(","):
        name, _, rest = part.strip().partition(";dur=")
        if rest:
            out[name] = float(rest)
    return out


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p))]


def load(server: Server, op, clients: int, seconds: float, expect: int = 200) -> dict:
    """``clients`` threads each calling ``op`` in a loop for ``seconds``: latencies (ms), errors, requests/s."""
    lat: list[float] = []
    phases: list[dict] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def run(i: int):
        c, rnd = Client(server), random.Random(i)
        mine, mine_phases = [], []
        start.wait()
        while time.perf_counter() < stop_at[0]:
            method, path, body = op(rnd)
            t = time.perf_counter()
            status, data, timing = c.call(method, path, body)
            mine.append((time.perf_counter() - t) * 1000)
            mine_phases.append(timing_phases(timing))
            if status != expect:
                with lock:
                    errors.append(f"{status} {data[:200]!r}")
        with lock:
            lat.extend(mine)
            phases.extend(mine_phases)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    stop_at[0] = time.perf_counter() + seconds
    t0 = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    span = time.perf_counter() - t0
    names = sorted({n for p in phases for n in p})
    cut = pct(lat, 0.99)
    tail = [p for ms, p in zip(lat, phases) if ms >= cut]  # where the slowest 1% spent their time
    return {"requests": len(lat), "per_second": len(lat) / span, "p50": pct(lat, 0.5), "p99": pct(lat, 0.99),
            "max": max(lat), "errors": len(errors), "first_errors": errors[:3],
            "server_ms_p50": {n: round(statistics.median(p.get(n, 0.0) for p in phases), 2) for n in names},
            "tail_ms": {"client": round(statistics.median(ms for ms in lat if ms >= cut), 2),
                        **{n: round(statistics.median(p.get(n, 0.0) for p in tail), 2) for n in names}}}


class Writer:
    """Puts items into the emulator's table at ``rate`` a second, alternating an update of a loaded key and a
    new key; each item's ``w`` is its write's number. ``acked[n]`` = (key, time the put was acknowledged)."""

    def __init__(self, ddb, items: int, rate: float):
        self.ddb, self.items, self.rate = ddb, items, rate
        self.acked: dict[int, tuple[str, float]] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        rnd, n, t0 = random.Random(7), 0, time.time()
        while not self.stop.is_set():
            n += 1
            key = loaded_key(rnd.randrange(self.items)) if n % 2 else f"new#{n:09d}"
            self.ddb.put_item(TableName=TABLE, Item={"pk": {"S": key}, "w": {"N": str(n)},
                                                     "city": {"S": "Lima"}, "email": {"S": f"w{n}@example.com"}})
            self.acked[n] = (key, time.time())
            pause = t0 + n / self.rate - time.time()
            if pause > 0:
                self.stop.wait(pause)


def write_to_visible(server: Server, writer: Writer, probes: int, timeout: float = 60) -> dict:
    """From the acknowledgement of each of ``probes`` writes to the first `get` through the API that returns it
    with that write's value, polled every 10 ms (one poller thread per outstanding write)."""
    lags: list[float] = []
    missing: list[int] = []
    lock = threading.Lock()

    def probe(n: int):
        key, acked = writer.acked[n]
        c = Client(server)
        path = get_path(key)
        while time.time() < acked + timeout:
            status, data, _ = c.call("GET", path)
            if status == 200 and json.loads(data)["item"].get("w", {}).get("N") == str(n):
                with lock:
                    lags.append(time.time() - acked)
                return
            time.sleep(0.01)
        with lock:
            missing.append(n)

    threads = []
    seen = max(writer.acked) if writer.acked else 0
    while len(threads) < probes:
        newest = max(writer.acked) if writer.acked else 0
        if newest > seen:
            seen = newest
            threads.append(threading.Thread(target=probe, args=(newest,)))
            threads[-1].start()
        time.sleep(0.005)
    for t in threads:
        t.join()
    return {"probes": probes, "seen": len(lags), "missing": len(missing), "p50": pct(lags, 0.5) if lags else None,
            "p99": pct(lags, 0.99) if lags else None, "max": max(lags) if lags else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--chunks", type=int, default=None, help="chunks of the bulk load (default: 1 per 625 000 "
                                                             "items, at least 2, at most 16)")
    ap.add_argument("--files", type=int, default=None, help="files of the generated export (default: --chunks)")
    ap.add_argument("--workdir", default=None, help="keeps the export and the loaded store between runs")
    ap.add_argument("--seconds", type=float, default=None, help="per measurement (default 5; 2 under 1 M items)")
    ap.add_argument("--clients", default="1,16")
    ap.add_argument("--write-rate", type=float, default=10.0, help="emulator writes a second throughout")
    ap.add_argument("--probes", type=int, default=100, help="writes whose write-to-visible is measured")
    ap.add_argument("--sync-env", nargs="*", default=["DYNADEX_BATCH_SECONDS=0.1", "DYNADEX_IDLE_MAX_SECONDS=0.2"],
                    help="settings of the sync process (default: bench_stream's freshness bench's)")
    ap.add_argument("--get-baseline", action="store_true", help="also measure `get` on a second server with "
                                                                    "DYNADEX_POINT_READS=0 (through DuckLake)")
    ap.add_argument("--baseline-code", default=None, help="also measure `get` on a second server running the code "
                                                              "of this folder (a checkout of another commit)")
    ap.add_argument("--rounds", type=int, default=1, help="measure every figure this many times, the servers "
                                                           "taking turns (then the medians are printed too)")
    ap.add_argument("--ops", default="get,find,aggregate", help="which reads to measure")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    ap.add_argument("--build-only", action="store_true", help="only generate and load the store (kept in --workdir)")
    a = ap.parse_args()
    chunks = a.chunks or min(16, max(2, a.items // 625_000))
    files = a.files or chunks
    seconds = a.seconds or (5.0 if a.items >= 1_000_000 else 2.0)
    work = Path(a.workdir or tempfile.mkdtemp(prefix="dynadex-bench-serve-")).resolve()
    base = base_store(work, a.items, files, chunks)
    if a.build_only:
        return
    run = Path(tempfile.mkdtemp(prefix="run-", dir=work))
    from dynadex.local_aws import running

    procs = []
    try:
        with running(export_seconds=1, stream_shards=2) as aws:
            ddb = streamed_table(aws, TABLE)
            copy_store(base, run / "store")
            follow_stream(run / "store", run / "scratch", ddb)
            env = {**os.environ, **aws.env(), "PYTHONPATH": f"{ROOT / 'include'}:{ROOT / 'plugins'}"}
            sync_env = {**env, **dict(v.split("=", 1) for v in a.sync_env)}
            sync = subprocess.Popen([sys.executable, "-m", "dynadex.cli", "sync", TABLE, "--for", "36000",
                                     "--store", str(run / "store")], env=sync_env, stdout=subprocess.DEVNULL,
                                    stderr=open(run / "sync.log", "w"))
            procs.append(sync)
            server = Server(run / "store", env)
            procs.append(server.proc)
            baseline = None
            if a.get_baseline:
                baseline = Server(run / "store", {**env, "DYNADEX_POINT_READS": "0"})
                procs.append(baseline.proc)
            before = None
            if a.baseline_code:
                code = Path(a.baseline_code).resolve()
                before = Server(run / "store", {**env, "PYTHONPATH": f"{code / 'include'}:{code / 'plugins'}"})
                procs.append(before.proc)
            writer = Writer(ddb, a.items, a.write_rate)
            writer.thread.start()
            first = write_to_visible(server, writer, 3)  # the sync follows the stream before the clock starts
            print(f"`dynadex serve` on {a.items:,} items, the sync following the emulator's stream, "
                  f"{a.write_rate:g} writes/s into the emulator; {seconds:g} s per measurement; first writes "
                  f"visible after {first['max']:.2f} s", flush=True)
            results: dict = {"items": a.items, "chunks": chunks, "write_rate": a.write_rate, "seconds": seconds,
                             "sync_env": a.sync_env,
                             "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                             "load_before": os.getloadavg(), "reads": []}
            cpu0 = {"sync": process_cpu(sync.pid), "serve": process_cpu(server.proc.pid),
                    "baseline": process_cpu(baseline.proc.pid) if baseline is not None else 0.0,
                    "before": process_cpu(before.proc.pid) if before is not None else 0.0,
                    "emulator": process_cpu(aws.process.pid), "bench": time.process_time(), "t": time.time()}
            ops = {k: v for k, v in operations(a.items).items() if k in a.ops.split(",")}
            for rnd, clients in [(r, int(c)) for r in range(a.rounds) for c in a.clients.split(",")]:
                runs = [(name, op, server) for name, op in ops.items()]
                if before is not None and "get" in ops:
                    runs.insert(0, ("get-before", ops["get"], before))
                if baseline is not None and "get" in ops:
                    runs.insert(0, ("get-ducklake", ops["get"], baseline))
                for name, op, srv in runs:
                    cpu = process_cpu(srv.proc.pid)
                    r = load(srv, op, clients, seconds)
                    r.update(op=name, clients=clients, round=rnd,
                             server_cpu_ms=(process_cpu(srv.proc.pid) - cpu) * 1000 / max(1, r["requests"]))
                    results["reads"].append(r)
                    print(f"  {name:9} {clients:2} client{'s' if clients > 1 else ' '}: p50 {r['p50']:7.1f} ms  "
                          f"p99 {r['p99']:7.1f} ms  {r['per_second']:7.1f} req/s  ({r['requests']} requests, "
                          f"{r['errors']} errors)  server CPU {r['server_cpu_ms']:.1f} ms/request; server p50 ms: "
                          + " ".join(f"{k} {v:g}" for k, v in r["server_ms_p50"].items())
                          + "; slowest 1%, median ms: " + " ".join(f"{k} {v:g}" for k, v in r["tail_ms"].items()),
                          flush=True)
                    if r["errors"]:
                        print("    errors:", r["first_errors"])
            if a.rounds > 1:
                for key in sorted({(r["op"], r["clients"]) for r in results["reads"]}, key=lambda k: (k[1], k[0])):
                    rs = [r for r in results["reads"] if (r["op"], r["clients"]) == key]
                    med = {m: statistics.median(r[m] for r in rs) for m in ("p50", "p99", "per_second", "server_cpu_ms")}
                    results.setdefault("medians", []).append({"op": key[0], "clients": key[1], **med})
                    print(f"  median of {len(rs)}: {key[0]:10} {key[1]:2} clients: p50 {med['p50']:6.1f} ms  p99 "
                          f"{med['p99']:6.1f} ms  {med['per_second']:6.1f} req/s  server CPU "
                          f"{med['server_cpu_ms']:.2f} ms/request", flush=True)
            status, body, _ = Client(server).call("GET", "/metrics")
            results["point_reads"] = {line.split('"')[1]: float(line.split()[-1]) for line in body.decode().splitlines()
                                      if line.startswith("dynadex_serve_point_reads_total{")}
            print(f"  point reads: {results['point_reads']}", flush=True)
            vis = write_to_visible(server, writer, a.probes)
            results["write_to_visible"] = vis
            span = time.time() - cpu0["t"]
            results["cores"] = {"sync": (process_cpu(sync.pid) - cpu0["sync"]) / span,
                                "serve": (process_cpu(server.proc.pid) - cpu0["serve"]) / span,
                                **({"serve (DuckLake gets)": (process_cpu(baseline.proc.pid) - cpu0["baseline"]) / span}
                                   if baseline is not None else {}),
                                **({"serve (code before)": (process_cpu(before.proc.pid) - cpu0["before"]) / span}
                                   if before is not None else {}),
                                "emulator": (process_cpu(aws.process.pid) - cpu0["emulator"]) / span,
                                "bench clients": (time.process_time() - cpu0["bench"]) / span}
            writer.stop.set()
            writer.thread.join()
            results["writes"] = len(writer.acked)
            results["load_after"] = os.getloadavg()
            print(f"  write-to-visible ({vis['seen']} of {vis['probes']} writes, {vis['missing']} not seen in 60 s): "
                  f"p50 {vis['p50']:.2f} s  p99 {vis['p99']:.2f} s  max {vis['max']:.2f} s", flush=True)
            print("  cores busy: " + ", ".join(f"{k} {v:.2f}" for k, v in results["cores"].items())
                  + f"; load {results['load_before'][0]:.1f} before, {results['load_after'][0]:.1f} after", flush=True)
            if a.json:
                Path(a.json).write_text(json.dumps(results, indent=1))
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(run, ignore_errors=True)


if __name__ == "__main__":
    main()
