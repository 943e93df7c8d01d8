"""SIGKILL of the stream sync as Airflow runs it: ``airflow dags test dynamodb_stream_sync`` in its own process.

The DAG's mapped ``sync`` task commits batches (25 records each) while a writer keeps changing the
table; the whole Airflow process group is killed with SIGKILL between and during those commits, then
the DAG is run again the same way, catches up, and the index equals the table: no change lost, none
applied twice (one row per key), the checkpoints where the last committed batch left them.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from dynadex import bootstrap
from dynadex.store import Store
from dynadex.stream.verify import verify
from tests.support import airflow as af
from tests.support.emulator import BUCKET
from tests.support.poll import wait_until
from tests.support.sync import Writer, filled, no_duplicates

DAG_FILE = af.ROOT / "dags" / "dynamodb_stream_sync.py"

pytestmark = pytest.mark.emulator(bucket=BUCKET, airflow=True, export_seconds=0.3, export_files=2, stream_shards=2,
                                  rollover_records=80)


def dag_test(table: str, store: str, run_seconds: float, batch_records: int) -> subprocess.Popen:
    conf = json.dumps({"table_name": table, "store": store, "run_seconds": run_seconds})
    env = {**os.environ, "DYNADEX_BATCH_RECORDS": str(batch_records), "DYNADEX_BATCH_SECONDS": "0.05"}
    return subprocess.Popen([sys.executable, "-m", "airflow", "dags", "test", "-f", str(DAG_FILE),
                             "dynamodb_stream_sync", "-c", conf],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)  # its own process group: the kill takes all of it


def committed(store: str, table: str) -> tuple:
    """(batches the sync committed, checkpoints): readable while the DAG's task writes."""
    try:
        with Store(store) as st:
            cps = st.checkpoints(table)
            return sum(1 for c in cps.values() if c.sequence_number), tuple(sorted(
                (s, c.sequence_number or "") for s, c in cps.items()))
    except Exception:
        return 0, ()


def test_sigkill_of_the_dag_sync_task_mid_batch_loses_and_duplicates_nothing(aws, tmp_path):
    table = "DagKilled"
    ddb = filled(aws, table, items=80)
    store = str(tmp_path / "store")
    bootstrap.run(ddb, table, bucket=BUCKET, store=store, poll_seconds=0.1)
    kills = 0
    rnd = random.Random(20261202)
    with Writer(ddb, table, seed=17, keys=120) as writer:
        for _ in range(1):  # each `airflow dags test` costs 10-30 s of start-up on a loaded 2-core box
            proc = dag_test(table, store, run_seconds=120, batch_records=25)
            try:
                start = committed(store, table)[1]
                # batches commit from inside the Airflow task: kill once two more have landed, mid-stream
                seen: list = []

                def moved() -> bool:
                    now = committed(store, table)[1]
                    if now != start and (not seen or seen[-1] != now):
                        seen.append(now)
                    return len(seen) >= 2

                t = time.monotonic()
                wait_until(moved, "batches committed by the DAG's sync task", timeout=180, every=0.05, proc=proc)
                time.sleep(rnd.uniform(0, 0.3))  # 25-record batches commit back to back: land inside one
                print(f"dags test: batches committed {time.monotonic() - t:.1f}s after start; SIGKILL")
                os.killpg(proc.pid, signal.SIGKILL)
                kills += 1
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            assert proc.returncode == -signal.SIGKILL
    assert kills == 1 and writer.count > 50
    no_duplicates(store, table)
    # the same DAG again, run to its end: it resumes from the checkpoints and catches up
    for _ in range(3):
        t = time.monotonic()
        proc = dag_test(table, store, run_seconds=3, batch_records=10000)
        out, _ = proc.communicate(timeout=300)
        print(f"dags test (3 s run) took {time.monotonic() - t:.1f}s")
        assert proc.returncode == 0, out[-3000:]
        with Store(store) as st:
            report = verify(st, table, ddb)
        if report.ok:
            break
    assert report.ok, (report.missing[:2], report.extra[:2], report.different[:2])
    no_duplicates(store, table)
