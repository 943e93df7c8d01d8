"""The whole bulk load, phase by phase, against the naive loader and DuckDB read_json, in one run.

For a generated export of ITEMS items in CHUNKS files (one chunk per file), prints:
  - (a) naive: gzip + json + boto3 TypeDeserializer, one process, and (b) DuckDB read_json (parse only, all
    cores), measured in this run on the first --baseline-files files and given per item;
  - dynadex ingest-export (default workers: one per core): plan / build / checks / publish seconds,
    end-to-end items/s, the ratios to (a) and (b), and publish's share of the wall time;
  - with --publish-scaling: the same CHUNKS files holding a tenth of the items, ingested in the same run,
    and publish(ITEMS) / publish(ITEMS/10): publish grows with files, not items.

    .venv/bin/python bench/bench_ingest.py --items 1000000 --chunks 16 --publish-scaling
    .venv/bin/python bench/bench_ingest.py --items 10000000 --chunks 64 --baseline-files 4
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_build import duckdb_parse, naive  # noqa: E402
from gen_export import EXPORT_ID, generate  # noqa: E402


class Subset:
    """An export's first few files, for the baselines."""

    def __init__(self, export, n: int):
        self.source = export.source
        self.files = export.files[:n]


def export_at(work: Path, items: int, files: int) -> Path:
    summary = work / "bench" / "AWSDynamoDB" / EXPORT_ID / "manifest-summary.json"
    if summary.exists():
        doc = json.loads(summary.read_text())
        lines = (summary.parent / "manifest-files.json").read_text().splitlines()
        if doc["itemCount"] == items and len(lines) == files:
            return summary
    shutil.rmtree(work / "bench", ignore_errors=True)
    t = time.time()
    generate(work, items, files)
    print(f"generated {items} items in {files} files in {time.time() - t:.0f}s", flush=True)
    return summary


def ingest(summary: Path, store: Path, chunks: int) -> dict:
    shutil.rmtree(store, ignore_errors=True)
    from dynadex.export import read_export

    gz = sum(f.size for f in read_export(str(summary)).files)
    target = gz / 1e6 / chunks * 0.999  # one chunk per (even) file
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "dynadex.cli", "ingest-export", str(summary), "--table", "Bench",
                          "--key", "pk:S,sk:N", "--chunk-target-mb", f"{target:.6f}", "--store", str(store), "--json"],
                         check=True, capture_output=True, text=True)
    doc = json.loads(out.stdout)
    doc["wall"] = time.perf_counter() - t
    return doc


def report(name: str, doc: dict, base: float, duck: float) -> None:
    ph, wall = doc["phases"], doc["wall"]
    rate = doc["items"] / wall
    print(f"{name}: {doc['items']:,} items, {doc['chunks']} chunks, {doc['workers']} workers, "
          f"{doc['publish']['files']} files registered")
    print(f"  plan {ph['plan']:.2f} s | build {ph['build']:.2f} s | checks {ph['prepare'] + ph['checks']:.2f} s "
          f"({doc['jobs']['key_ranges']} key ranges, {doc['jobs']['conformed_chunks']} conformed) | "
          f"publish {ph['publish']:.2f} s | wall {wall:.2f} s (process start included)")
    print(f"  end to end {rate:,.0f} items/s = {rate / base:.2f}x (a), {rate / duck:.2f}x (b); "
          f"publish is {100 * ph['publish'] / wall:.2f}% of the wall time")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--chunks", type=int, default=16)
    ap.add_argument("--baseline-files", type=int, default=None, help="files the baselines read (default: all)")
    ap.add_argument("--publish-scaling", action="store_true")
    ap.add_argument("--workdir", default=None)
    a = ap.parse_args()
    work = Path(a.workdir or tempfile.mkdtemp(prefix="dynadex-bench-"))
    from dynadex.export import read_export

    summary = export_at(work, a.items, a.chunks)
    export = read_export(str(summary))
    sub = Subset(export, a.baseline_files or len(export.files))
    n, s = naive(sub)
    base = n / s
    n, s = duckdb_parse(sub)
    duck = n / s
    print(f"(a) naive loader: {base:,.0f} items/s; (b) DuckDB read_json: {duck:,.0f} items/s "
          f"(on {len(sub.files)} of {len(export.files)} files)")
    big = ingest(summary, work / "store-ingest", a.chunks)
    report(f"dynadex ingest-export, {a.items:,} items", big, base, duck)
    if a.publish_scaling:
        small_work = work / "small"
        small = ingest(export_at(small_work, a.items // 10, a.chunks), small_work / "store", a.chunks)
        report(f"dynadex ingest-export, {a.items // 10:,} items (same file count)", small, base, duck)
        print(f"publish({a.items:,}) / publish({a.items // 10:,}) = "
              f"{big['phases']['publish'] / small['phases']['publish']:.2f}x for 10x the items, same files")


if __name__ == "__main__":
    main()
