"""This checkout against another (the release before), in one run: the bulk load and the stream apply.

A refactor must not slow anything down; the box's speed drifts by the hour, so the two trees are measured
in the same run, alternately, each in a fresh process whose ``PYTHONPATH`` is that tree's ``include/``:

  (bulk)  ``ingest_export`` of one generated export (default 300 000 items in 8 files, 2 workers): items/s;
  (apply) on the store that load made, 10 batches of 10 000 stream records (a third each inserts, updates
          and deletes), converted (``record_changes``) and applied with their checkpoints (``Store.apply``):
          records/s.

Usage (the release before in a worktree beside this checkout)::

    git worktree add /tmp/dynadex-base <rev>
    .venv/bin/python bench/bench_release.py --base /tmp/dynadex-base [--items 300000] [--rounds 3]

Prints each round, then the medians and the ratio this checkout / base (1.00: no change).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

TABLE, KEY = "Bench", "pk:S,sk:N"
BATCHES, BATCH = 10, 10_000


def _records(items: int, seed: int = 7) -> list[list[dict]]:
    """Stream pages over the generated export's keys: inserts of new keys, updates and deletes of old ones."""
    from gen_export import item

    rnd = random.Random(seed)
    now = time.time()
    pages, seq = [], 10**20
    for b in range(BATCHES):
        page = []
        for r in range(BATCH):
            kind = r % 3
            i = items + b * BATCH + r if kind == 0 else rnd.randrange(items)
            new = item(i, rnd)
            keys = {"pk": new["pk"], "sk": new["sk"]}
            seq += 1
            dyn = {"Keys": keys, "ApproximateCreationDateTime": now, "SequenceNumber": str(seq),
                   "StreamViewType": "NEW_AND_OLD_IMAGES"}
            if kind == 2:
                page.append({"eventName": "REMOVE", "dynamodb": dyn})
            else:
                new["status"] = {"S": f"v{b}"}
                page.append({"eventName": "INSERT" if kind == 0 else "MODIFY", "dynamodb": {**dyn, "NewImage": new}})
        pages.append(page)
    return pages


def worker_bulk(summary: str, store: str) -> dict:
    from dynadex.ingest import ingest_export

    started = time.perf_counter()
    result = ingest_export(summary, TABLE, KEY, store=store, workers=2)
    seconds = time.perf_counter() - started
    return {"items": result["items"], "seconds": seconds, "rate": result["items"] / seconds}


def worker_apply(store: str, pages_file: str) -> dict:
    from dynadex.store import Checkpoint, Store
    from dynadex.stream.sync import record_changes

    pages = json.loads(Path(pages_file).read_text())
    n = 0
    with Store(store, read_only=False) as st:
        started = time.perf_counter()
        for page in pages:
            changes = [c for c, _ in record_changes(page, "shard-1")]
            st.apply(TABLE, changes, [Checkpoint("shard-1", page[-1]["dynamodb"]["SequenceNumber"])])
            n += len(page)
        seconds = time.perf_counter() - started
    return {"records": n, "seconds": seconds, "rate": n / seconds}


def _run(tree: Path, *args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree / "include")}
    out = subprocess.run([sys.executable, __file__, "--worker", *args], env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"worker {args[0]} in {tree} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", help="the other checkout (its include/ is imported)")
    ap.add_argument("--items", type=int, default=300_000)
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workdir")
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        kind, *rest = a.worker
        print(json.dumps(worker_bulk(*rest) if kind == "bulk" else worker_apply(*rest)))
        return
    if not a.base:
        ap.error("--base is required")
    from gen_export import generate

    work = Path(a.workdir or tempfile.mkdtemp(prefix="dynadex-release-"))
    summary = str(generate(work / "export", a.items, a.files))
    pages = work / "pages.json"
    pages.write_text(json.dumps(_records(a.items)))
    trees = {"base": Path(a.base).resolve(), "this": HERE.parent}
    got: dict[str, dict[str, list[float]]] = {name: {"bulk": [], "apply": []} for name in trees}
    for r in range(1, a.rounds + 1):
        for name, tree in (trees.items() if r % 2 else reversed(trees.items())):
            store = work / f"store-{name}-{r}"
            bulk = _run(tree, "bulk", summary, str(store))
            apply = _run(tree, "apply", str(store), str(pages))
            got[name]["bulk"].append(bulk["rate"])
            got[name]["apply"].append(apply["rate"])
            print(f"round {r} {name:4s}: bulk {bulk['rate']:9,.0f} items/s ({bulk['seconds']:.1f} s), "
                  f"apply {apply['rate']:7,.0f} records/s ({apply['seconds']:.1f} s)", flush=True)
            shutil.rmtree(store, ignore_errors=True)
    print(f"\nmedians of {a.rounds} rounds, {a.items:,} items in {a.files} files; "
          f"{BATCHES} batches of {BATCH:,} records:")
    for what, unit in (("bulk", "items/s"), ("apply", "records/s")):
        base, this = (statistics.median(got[n][what]) for n in ("base", "this"))
        print(f"  {what:5s}: base {base:9,.0f}  this {this:9,.0f} {unit}   ratio this/base {this / base:.3f}")
    if not a.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
