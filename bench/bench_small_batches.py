"""Small stream batches over a long run: does a batch's commit time grow with the batches before it?

A quiet table's sync commits many small batches (here 20 changes each, with their checkpoint) for as long
as a run lasts (an hour by default, decision 0020). Two stores holding the same 50 000 published items
take the same batches, alternating batch by batch in one process: ``files`` writes every batch's rows as
Parquet files (an inlining limit of 10 rows, below the batch: what stores before decision 0021 did), ``inlined`` is the store as
``DYNADEX_INLINE_ROWS=1000`` sets it up (inserts of up to 1000 rows inlined in the catalog) and flushes the
inlined rows every ``--flush-every`` batches, as the sync does. Prints the mean batch time per window.

    .venv/bin/python bench/bench_small_batches.py --batches 600
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_stream import apply_store, page_record  # noqa: E402

from dynadex.store import Checkpoint, Store  # noqa: E402
from dynadex.stream.sync import record_changes  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=600)
    ap.add_argument("--changes", type=int, default=20, help="changes per batch")
    ap.add_argument("--items", type=int, default=50_000)
    ap.add_argument("--flush-every", type=int, default=100)
    ap.add_argument("--window", type=int, default=100, help="batches per printed mean")
    ap.add_argument("--json-out")
    a = ap.parse_args()
    rnd = random.Random(7)
    records = [page_record(i, rnd.randrange(a.items), rnd) for i in range(a.batches * a.changes)]
    dirs = {"files": apply_store(a.items), "inlined": apply_store(a.items)}
    times = {n: [] for n in dirs}
    flushes = []
    with Store(dirs["files"], read_only=False, threads=1) as files, Store(dirs["inlined"], read_only=False, threads=1) as inl:
        # the old setup: a 20-change batch's rows go to files (stores made before decision 0021 inlined none)
        files.lake.con.execute("CALL lake.set_option('data_inlining_row_limit', 10)")
        inl.lake.con.execute("CALL lake.set_option('data_inlining_row_limit', 1000)")  # DYNADEX_INLINE_ROWS=1000
        stores = {"files": files, "inlined": inl}
        for b in range(a.batches):
            batch = records[b * a.changes:(b + 1) * a.changes]
            changes = [c for c, _ in record_changes(batch, "shard-1")]
            cps = [Checkpoint("shard-1", batch[-1]["dynamodb"]["SequenceNumber"])]
            for n in (("files", "inlined") if b % 2 == 0 else ("inlined", "files")):
                t = time.perf_counter()
                stores[n].apply("S", changes, cps)
                times[n].append(time.perf_counter() - t)
            if a.flush_every and (b + 1) % a.flush_every == 0:
                t = time.perf_counter()
                inl.flush_inlined()
                flushes.append(time.perf_counter() - t)
            if (b + 1) % a.window == 0:
                print(f"batches {b + 1 - a.window + 1:5d}-{b + 1:5d}: " + ", ".join(
                    f"{n} {1000 * sum(times[n][-a.window:]) / a.window:6.0f} ms" for n in dirs), flush=True)
        same = sorted(files.dump("S")) == sorted(inl.dump("S"))
    for d in dirs.values():
        shutil.rmtree(d, ignore_errors=True)
    w = a.window
    result = {n: {"first_window_ms": 1000 * sum(t[:w]) / w, "last_window_ms": 1000 * sum(t[-w:]) / w} for n, t in times.items()}
    result["flush_seconds_mean"] = sum(flushes) / len(flushes) if flushes else None
    result["same_answers"] = same
    print(f"{a.batches} batches of {a.changes} changes onto {a.items:,} items: files {result['files']['first_window_ms']:.0f} -> "
          f"{result['files']['last_window_ms']:.0f} ms per batch; inlined + flush every {a.flush_every}: "
          f"{result['inlined']['first_window_ms']:.0f} -> {result['inlined']['last_window_ms']:.0f} ms "
          f"(flush {result['flush_seconds_mean'] or 0:.2f} s); last window files/inlined "
          f"{result['files']['last_window_ms'] / result['inlined']['last_window_ms']:.2f}x; same answers: {same}")
    if a.json_out:
        Path(a.json_out).write_text(json.dumps({"args": vars(a), **result}, indent=1))


if __name__ == "__main__":
    main()
