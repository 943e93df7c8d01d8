"""Small stream batches over a long run: does a batch's commit time grow with the batches before it?

A quiet table's sync commits many small batches (here 20 changes each, with their checkpoint) for as long
as a run lasts (an hour by default, decision 0020). Two stores holding the same 50 000 published items
take the same batches, alternating batch by batch in one process: ``files`` writes every batch's rows as
Parquet files (an inlining limit of 10 rows, below the batch: what stores before decision 0021 did), ``inlined`` is the store as
``DYNADEX_INLINE_ROWS=1000`` sets it up (inserts of up to 1000 rows inlined in the catalog) and flushes the
inlined rows every ``--flush-every`` batches, as the sync does. ``inlined-old`` is that store with a
batch's statements as they were before decision 0021's update of 2026-12-02 (the column registry loaded
every batch, the snapshot read again after the commit, checkpoints through a registered Arrow table): the
ratio inlined-old/inlined is what those statements cost. Prints the mean batch time per window.

    .venv/bin/python bench/bench_small_batches.py --batches 600
    .venv/bin/python bench/bench_small_batches.py --batches 300 --window 50 --paths inlined-old,inlined
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

from dynadex.store import Checkpoint, Store
from dynadex.store.apply import changes as store_changes  # noqa: E402
from dynadex.store.catalog import state as store_state  # noqa: E402
from dynadex.stream.sync import record_changes  # noqa: E402

PATHS = ("files", "inlined-old", "inlined")


def apply_old_statements(st: Store, table: str, changes: list, cps: list) -> dict:
    """``Store.apply`` with a batch's statements as before: no cached registry, no known snapshot, Arrow
    checkpoints (same rows, same transaction)."""
    saved = store_state.CHECKPOINT_LITERALS
    store_state.CHECKPOINT_LITERALS = 0
    try:
        def work():
            st.lake.registries.clear()
            return store_changes.apply_changes(st.lake, table, changes, cps)

        return st.lake.retrying(f"{table}: batch of {len(changes)} changes", work)
    finally:
        store_state.CHECKPOINT_LITERALS = saved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=600)
    ap.add_argument("--changes", type=int, default=20, help="changes per batch")
    ap.add_argument("--items", type=int, default=50_000)
    ap.add_argument("--flush-every", type=int, default=100)
    ap.add_argument("--window", type=int, default=100, help="batches per printed mean")
    ap.add_argument("--paths", default=",".join(PATHS), help=f"comma-separated, of {', '.join(PATHS)}")
    ap.add_argument("--json-out")
    a = ap.parse_args()
    names = [n for n in PATHS if n in a.paths.split(",")]
    rnd = random.Random(7)
    records = [page_record(i, rnd.randrange(a.items), rnd) for i in range(a.batches * a.changes)]
    dirs = {n: apply_store(a.items) for n in names}
    times = {n: [] for n in dirs}
    flushes = []
    stores = {n: Store(d, read_only=False, threads=1) for n, d in dirs.items()}
    try:
        for n, st in stores.items():
            # files: the old setup, a 20-change batch's rows go to files (stores made before decision 0021
            # inlined none); the others as DYNADEX_INLINE_ROWS=1000 (the default) sets them up
            st.lake.con.execute(f"CALL lake.set_option('data_inlining_row_limit', {10 if n == 'files' else 1000})")
        for b in range(a.batches):
            batch = records[b * a.changes:(b + 1) * a.changes]
            changes = [c for c, _ in record_changes(batch, "shard-1")]
            cps = [Checkpoint("shard-1", batch[-1]["dynamodb"]["SequenceNumber"])]
            shift = b % len(names)  # each path first in turn: load from other processes falls on all alike
            for n in names[shift:] + names[:shift]:
                t = time.perf_counter()
                if n == "inlined-old":
                    apply_old_statements(stores[n], "S", changes, cps)
                else:
                    stores[n].apply("S", changes, cps)
                times[n].append(time.perf_counter() - t)
            if a.flush_every and (b + 1) % a.flush_every == 0:
                for n in names:
                    if n != "files":
                        t = time.perf_counter()
                        stores[n].flush_inlined()
                        flushes.append(time.perf_counter() - t)
            if (b + 1) % a.window == 0:
                print(f"batches {b + 1 - a.window + 1:5d}-{b + 1:5d}: " + ", ".join(
                    f"{n} {1000 * sum(times[n][-a.window:]) / a.window:6.0f} ms" for n in dirs), flush=True)
        dumps = [sorted(st.dump("S")) for st in stores.values()]
        same = all(d == dumps[0] for d in dumps)
    finally:
        for st in stores.values():
            st.close()
    for d in dirs.values():
        shutil.rmtree(d, ignore_errors=True)
    w = a.window
    result = {n: {"first_window_ms": 1000 * sum(t[:w]) / w, "last_window_ms": 1000 * sum(t[-w:]) / w,
                  "mean_ms": 1000 * sum(t) / len(t)} for n, t in times.items()}
    result["flush_seconds_mean"] = sum(flushes) / len(flushes) if flushes else None
    result["same_answers"] = same
    print(f"{a.batches} batches of {a.changes} changes onto {a.items:,} items (flush every {a.flush_every}, "
          f"{result['flush_seconds_mean'] or 0:.2f} s): " + "; ".join(
              f"{n} {result[n]['first_window_ms']:.0f} -> {result[n]['last_window_ms']:.0f} ms per batch, "
              f"mean {result[n]['mean_ms']:.0f}" for n in names) + f"; same answers: {same}")
    for old in ("files", "inlined-old"):
        if old in result and "inlined" in result:
            print(f"{old}/inlined: mean {result[old]['mean_ms'] / result['inlined']['mean_ms']:.2f}x, last window "
                  f"{result[old]['last_window_ms'] / result['inlined']['last_window_ms']:.2f}x")
    if a.json_out:
        Path(a.json_out).write_text(json.dumps({"args": vars(a), **result}, indent=1))


if __name__ == "__main__":
    main()
