"""Freshness through Airflow's scheduler, run boundaries included (`make airflow`'s stack, LocalExecutor).

It starts `python -m dynadex.airflow_local` (the emulator, a demo table, airflow standalone) with
DYNADEX_SYNC_RUN_SECONDS=--run-seconds, triggers dynamodb_ingest through the REST API, lets its handover
unpause dynamodb_stream_sync, then writes --rate items a second for --seconds and polls the store as a
reader would. It prints the lag (write acked -> visible to a query) overall, for writes made while a sync
task was running and for writes made between two runs' sync tasks, and the gaps between runs (one sync
task's end to the next one's start), read from Airflow's REST API.

    .venv/bin/python bench/bench_airflow_freshness.py --seconds 180 --run-seconds 30
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import threading
import time
from pathlib import Path
import tempfile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.support.airflow import MakeAirflow  # noqa: E402

from dynadex.airflow_local import _request, free_port, token  # noqa: E402


def wait_for(what, probe, timeout=600, every=1.0):
    deadline = time.time() + timeout
    while True:
        try:
            value = probe()
        except OSError:  # the REST API too busy to answer in time: ask again
            value = None
        if value:
            return value
        if time.time() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(every)


def parse(ts: str | None) -> float | None:
    return dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() if ts else None


def pct(xs: list[float], q: float) -> float:
    return xs[min(len(xs) - 1, int(len(xs) * q))] if xs else float("nan")


def api_get(url: str, auth: str) -> dict:
    """GET from Airflow's REST API, patient: on 2 busy cores its server can take over 10 s to answer."""
    for attempt in range(5):
        try:
            code, doc = _request(url, token=auth, timeout=60)
            if code == 200:
                return doc
        except OSError as exc:  # a timeout, a reset
            print(f"REST API: {exc}; asking again", flush=True)
        time.sleep(2 * (attempt + 1))
    raise SystemExit(f"no answer from {url}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=180)
    ap.add_argument("--run-seconds", type=float, default=30)
    ap.add_argument("--rate", type=float, default=20)
    ap.add_argument("--out", help="write the figures here (JSON)")
    a = ap.parse_args()

    import os

    import boto3

    from dynadex.store import Store

    os.environ["DYNADEX_SYNC_RUN_SECONDS"] = str(a.run_seconds)
    home = Path(tempfile.mkdtemp(prefix="dynadex-af-fresh-"))
    stack = MakeAirflow(home, free_port(), items=50)
    t0 = time.time()
    stack.start()
    print(f"airflow standalone up in {time.time() - t0:.0f}s", flush=True)
    try:
        endpoint = next(l.split()[2].rstrip(":") for l in stack.lines if l.startswith("emulator at "))
        auth = token(stack.url, stack.user, stack.password)
        api = f"{stack.url}/api/v2"
        wait_for("the three DAGs", lambda: len(_request(f"{api}/dags?tags=dynadex", token=auth)[1].get("dags", [])) == 3)
        code, run = _request(f"{api}/dags/dynamodb_ingest/dagRuns", {"logical_date": None,
                             "conf": {"table_name": "Orders", "chunk_target_mb": 0.005}}, "POST", auth)
        assert code == 200, run
        state = wait_for("the ingest", lambda: (lambda s: s if s in ("success", "failed") else None)(
            _request(f"{api}/dags/dynamodb_ingest/dagRuns/{run['dag_run_id']}", token=auth)[1].get("state")))
        assert state == "success", state
        print(f"ingested at +{time.time() - t0:.0f}s; the stream sync is unpaused", flush=True)
        store = str(home / "store")
        ddb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id="local", aws_secret_access_key="local")

        def top(reader) -> int:
            try:
                return int(reader.query('SELECT max(w) FROM "Orders"')[1][0][0] or 0)
            except Exception:  # noqa: BLE001 - no w column before the first batch lands
                return 0

        acked: dict[int, float] = {}
        stop = threading.Event()

        def writer():
            i, start = 0, time.time()
            while not stop.is_set():
                i += 1
                ddb.put_item(TableName="Orders", Item={"pk": {"S": f"fresh#{i}"}, "sk": {"N": "0"}, "w": {"N": str(i)}})
                acked[i] = time.time()
                pause = start + i / a.rate - time.time()
                if pause > 0:
                    time.sleep(pause)

        seen: dict[int, float] = {}
        th = threading.Thread(target=writer, daemon=True)
        with Store(store) as reader:
            start = time.time()
            th.start()
            while True:
                n, now = top(reader), time.time()
                for i in range(len(seen) + 1, n + 1):
                    seen.setdefault(i, now)
                if now > start + a.seconds:
                    stop.set()
                    if (len(seen) >= len(acked) and not th.is_alive()) or now > start + a.seconds + 300:
                        break
                time.sleep(0.05)
        end = time.time()
        lags = sorted(seen[i] - acked[i] for i in seen if i in acked)
        print(f"{len(lags)} writes seen: lag p50 {pct(lags, 0.5):.2f} s, p99 {pct(lags, 0.99):.2f} s", flush=True)
        # the sync tasks' intervals, from the REST API
        runs = api_get(f"{api}/dags/dynamodb_stream_sync/dagRuns?limit=100&order_by=start_date", auth)["dag_runs"]
        spans = []
        for r in runs:
            tis = api_get(f"{api}/dags/dynamodb_stream_sync/dagRuns/{r['dag_run_id']}/taskInstances?limit=100",
                          auth)["task_instances"]
            for ti in tis:
                if ti["task_id"] == "sync" and ti.get("start_date"):
                    spans.append((parse(ti["start_date"]), parse(ti.get("end_date")) or end))
        spans.sort()
        gaps = [(b[0] - a_[1]) for a_, b in zip(spans, spans[1:]) if start - 60 < b[0] < end]
        in_span = lambda t: any(s <= t <= e for s, e in spans)  # noqa: E731
        running = sorted(seen[i] - acked[i] for i in seen if i in acked and in_span(acked[i]))
        between = sorted(seen[i] - acked[i] for i in seen if i in acked and not in_span(acked[i]))
        figures = {
            "date": time.strftime("%Y-%m-%d"), "seconds": a.seconds, "run_seconds": a.run_seconds, "rate": a.rate,
            "writes": len(acked), "seen": len(lags), "boundaries": len(gaps),
            "gap_seconds": {"min": min(gaps, default=None), "mean": sum(gaps) / len(gaps) if gaps else None,
                            "max": max(gaps, default=None)},
            "lag": {"p50": pct(lags, 0.5), "p99": pct(lags, 0.99), "max": lags[-1] if lags else None},
            "lag_while_a_sync_task_runs": {"writes": len(running), "p50": pct(running, 0.5), "p99": pct(running, 0.99)},
            "lag_between_runs": {"writes": len(between), "p50": pct(between, 0.5),
                                 "max": between[-1] if between else None},
        }
        print(json.dumps(figures, indent=1))
        if a.out:
            Path(a.out).write_text(json.dumps(figures, indent=1))
    finally:
        stack.stop(fast=True)


if __name__ == "__main__":
    main()
