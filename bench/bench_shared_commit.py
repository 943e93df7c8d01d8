"""One shared commit of many quiet tables' batches: its time, and the DuckLake catalog queries it makes.

What a group of quiet tables pays per round (decisions 0039, 0046): every table's batch of one change in ONE
transaction (``Store.apply_many``, as ``stream.shared_store`` commits them). Tables are published with a few
items each into a store (a folder: a SQLite catalog; or ``--store postgresql://…`` with ``--data-path``),
then ``--rounds`` rounds of one new key per table are committed. Printed per round: wall and CPU seconds;
then, for the last round, DuckLake's own catalog queries (its ``DuckLakeMetadata`` log) grouped by kind, with
their count and milliseconds: what a commit costs per DuckLake table written.

    PYTHONPATH=include:plugins:. .venv/bin/python bench/bench_shared_commit.py --tables 50 --rounds 6
    ... --store postgresql://postgres@127.0.0.1:5432/quiet --data-path /tmp/quiet-data
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include"), str(ROOT)]


def kinds(messages: list[str], most: int = 8) -> list[dict]:
    """DuckLake's metadata log messages grouped by query shape (numbers taken out): count and ms, largest first."""
    out: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for m in messages:
        found = re.search(r"'query': '(.*)', 'elapsed_ms': (\d+)", m, re.S)
        if not found:
            continue
        shape = re.sub(r"\d+", "N", " ".join(found.group(1).split()))[:110]
        out[shape][0] += 1
        out[shape][1] += int(found.group(2))
    ranked = sorted(out.items(), key=lambda kv: -kv[1][1])
    return [{"queries": n, "ms": ms, "query": shape} for shape, (n, ms) in ranked[:most]]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tables", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--store", help="a store folder (default: a new temporary one) or a Postgres catalog URI")
    ap.add_argument("--data-path", help="the data path of a Postgres catalog's store")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from dynadex.store import Change, Checkpoint, Store, TableBatch
    from dynadex.types import canonical_item
    from tests.support.store import publish_items

    spec = args.store or str(Path(tempfile.mkdtemp(prefix="dynadex-shared-commit-")) / "store")
    names = [f"Quiet{i:02d}" for i in range(args.tables)]
    if args.data_path:
        os.environ["DYNADEX_DATA_PATH"] = args.data_path  # publish_items opens the store by its spec alone
    for n in names:  # a few items each, with the attribute the rounds write (no column added by a round)
        publish_items(spec, n, [{"pk": {"S": f"k{i}"}, "t": {"N": str(i)}} for i in range(5)])
    rounds = []
    with Store(spec, data_path=args.data_path, read_only=False) as st:
        st.warm(names)
        base = int(time.time() * 1e6)
        for r in range(args.rounds):
            last = r == args.rounds - 1
            if last:
                st.lake.con.execute("CALL enable_logging('DuckLakeMetadata')")
            batches = [TableBatch(n, [Change({"pk": {"S": f"x{r}"}}, canonical_item({"pk": {"S": f"x{r}"},
                                                                                      "t": {"N": str(r)}}),
                                              base + r, f"e{r}")],
                                  [Checkpoint(f"{n}-shard", str(base + r), None, False)]) for n in names]
            wall, cpu = time.perf_counter(), time.process_time()
            st.apply_many(batches)
            rounds.append({"round": r, "wall_s": round(time.perf_counter() - wall, 3),
                           "cpu_s": round(time.process_time() - cpu, 3)})
            print(json.dumps(rounds[-1]), file=sys.stderr, flush=True)
        log = [m for (m,) in st.lake.con.execute(
            "SELECT message FROM duckdb_logs WHERE type = 'DuckLakeMetadata'").fetchall()]
    steady = rounds[1:] or rounds
    out = {"tables": args.tables, "catalog": "postgres" if spec.startswith("postgres") else "sqlite",
           "rounds": rounds, "steady_wall_s_median": sorted(x["wall_s"] for x in steady)[len(steady) // 2],
           "last_round_catalog_queries": len(log), "last_round_by_kind": kinds(log)}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{args.tables} tables, {out['catalog']} catalog: a shared commit takes "
              f"{out['steady_wall_s_median']:.2f} s (median of rounds 1-{args.rounds - 1}); its last round made "
              f"{len(log)} catalog queries:")
        for k in out["last_round_by_kind"]:
            print(f"  {k['queries']:5d} {k['ms']:6d} ms  {k['query']}")


if __name__ == "__main__":
    main()
