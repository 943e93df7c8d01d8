"""The whole bulk load, phase by phase, against the naive loader and DuckDB read_json, in one run.

For a generated export of ITEMS items in CHUNKS files (one chunk per file), prints:
  - (a) naive: gzip + json + boto3 TypeDeserializer, one process, and (b) DuckDB read_json (parse only, all
    cores), measured in this run on the first --baseline-files files and given per item;
  - dynadex ingest-export (default workers: one per core): plan / build / checks / publish seconds,
    end-to-end items/s, the ratios to (a) and (b), and publish's share of the wall time;
  - with --publish-scaling: the same CHUNKS files holding a tenth of the items, ingested in the same run,
    and publish(ITEMS) / publish(ITEMS/10): publish grows with files, not items;
  - with --baseline-code DIR: the same ingest by another checkout's code (``git worktree add DIR <commit>``),
    in the same run, and both stores' point reads (`get` p50/p99, `find`) with their data file counts;
  - --reads: the point reads of the store this run's ingest built;
  - --ion: the same items as an ION export (same seed), ingested in the same run: items/s and build CPU
    seconds against the JSON ingest (with --baseline-code, the other code's ION ingest too); with
    --ion-python-items N, also N of them as ION through the exact Python path (``DYNADEX_BUILD=python``: how
    every ION export was built before it took the DuckDB path);
  - --ion --ion-rounds: only the ION target, robust to the box's drift: each of --rounds rounds ingests the
    JSON export and the ION export (with --baseline-code, with both codes), the order reversed every other
    round, and the ION / JSON ratio of build CPU seconds is taken within each round; prints each round's
    figures, the ratios' median and their spread.

    .venv/bin/python bench/bench_ingest.py --items 1000000 --chunks 16 --publish-scaling
    .venv/bin/python bench/bench_ingest.py --items 10000000 --chunks 64 --baseline-files 4
    .venv/bin/python bench/bench_ingest.py --items 1000000 --chunks 16 --baseline-files 2 --ion --ion-python-items 100000
    .venv/bin/python bench/bench_ingest.py --items 1000000 --chunks 16 --baseline-code BASE --rounds 3 [--default-chunks]
    .venv/bin/python bench/bench_ingest.py --items 1000000 --chunks 16 --ion --ion-rounds --rounds 5 --baseline-code BASE
"""

from __future__ import annotations

import argparse
import json
import os
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


def export_at(work: Path, items: int, files: int, output_format: str = "DYNAMODB_JSON") -> Path:
    summary = work / "bench" / "AWSDynamoDB" / EXPORT_ID / "manifest-summary.json"
    if summary.exists():
        doc = json.loads(summary.read_text())
        lines = (summary.parent / "manifest-files.json").read_text().splitlines()
        if doc["itemCount"] == items and len(lines) == files and doc["outputFormat"] == output_format:
            return summary
    shutil.rmtree(work / "bench", ignore_errors=True)
    t = time.time()
    generate(work, items, files, output_format=output_format)
    print(f"generated {items} items in {files} files ({output_format}) in {time.time() - t:.0f}s", flush=True)
    return summary


def ingest(summary: Path, store: Path, chunks: int | None, code: str | None = None, build: str | None = None) -> dict:
    """`dynadex ingest-export` in a new process; ``code``: another checkout's root whose include/ it runs;
    ``build``: DYNADEX_BUILD for it; ``chunks``: one per file when it equals the file count (None: the
    ingest's own default chunk size)."""
    shutil.rmtree(store, ignore_errors=True)
    env = dict(os.environ)
    if build:
        env["DYNADEX_BUILD"] = build
    if code:
        env["PYTHONPATH"] = str(Path(code) / "include")
    from dynadex.export import read_export

    gz = sum(f.size for f in read_export(str(summary)).files)
    size = [] if chunks is None else ["--chunk-target-mb", f"{gz / 1e6 / chunks * 0.999:.6f}"]  # one per (even) file
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "dynadex.cli", "ingest-export", str(summary), "--table", "Bench",
                          "--key", "pk:S,sk:N", *size, "--store", str(store), "--json"],
                         capture_output=True, text=True, env=env)
    if out.returncode:
        sys.exit(f"ingest-export failed ({out.returncode}):\n{out.stderr[-4000:]}")
    doc = json.loads(out.stdout)
    doc["wall"] = time.perf_counter() - t
    return doc


def reads(store: Path, items: int) -> str:
    """Point reads over the store (opened once), and how many data files each index has."""
    from bench_store import point_reads

    from dynadex.store import Store

    with Store(str(store)) as st:
        files = {schema: st.lake.con.execute("SELECT count(*) FROM ducklake_list_files('lake', 'Bench', schema => ?)",
                                             [schema]).fetchone()[0] for schema in ("row_index", "inverted_index")}
        r = point_reads(st, "Bench", items)
    return (f"  reads: get p50 {r['get_p50_ms']:.1f} ms, p99 {r['get_p99_ms']:.1f} ms; find {r['find_ms']:.1f} ms "
            f"(over {files['row_index']} row files, {files['inverted_index']} inverted files)")


def report(name: str, doc: dict, base: float, duck: float) -> None:
    ph, wall = doc["phases"], doc["wall"]
    rate = doc["items"] / wall
    print(f"{name}: {doc['items']:,} items, {doc['chunks']} chunks, {doc['workers']} workers, "
          f"{doc['publish']['files']} files registered")
    print(f"  plan {ph['plan']:.2f} s | build {ph['build']:.2f} s | checks {ph['prepare'] + ph['checks']:.2f} s "
          f"({doc['jobs']['key_ranges']} key ranges, {doc['jobs'].get('entry_ranges', 0)} entry ranges, "
          f"{doc['jobs'].get('cast_chunks', doc['jobs'].get('conformed_chunks', 0))} chunks cast) | "
          f"publish {ph['publish']:.2f} s | wall {wall:.2f} s (process start included)")
    print(f"  end to end {rate:,.0f} items/s = {rate / base:.2f}x (a), {rate / duck:.2f}x (b); "
          f"publish is {100 * ph['publish'] / wall:.2f}% of the wall time")
    cpu = doc.get("cpu_seconds")
    if cpu:  # CPU seconds hold better than wall time when something else loads the box
        start = f" | workers' start {cpu['workers_start']:.1f}" if "workers_start" in cpu else ""
        print(f"  CPU seconds: build {cpu['build']:.1f} | checks and merges {cpu['prepare'] + cpu['checks']:.1f} "
              f"({100 * (cpu['prepare'] + cpu['checks']) / cpu['build']:.0f}% of the build's) | "
              f"publish {cpu['publish']:.1f}{start} | all {sum(cpu.values()):.1f}")


def ion_rounds(a) -> None:
    """--ion --ion-rounds: per round, this code's JSON ingest and each code's ION ingest of the same items, in an
    order that alternates between rounds; the ION/JSON ratio of build CPU seconds within each round, so every
    ratio compares ingests run minutes apart, then the median and the spread over the rounds."""
    import statistics

    work = Path(a.workdir or tempfile.mkdtemp(prefix="dynadex-bench-"))
    summary = export_at(work, a.items, a.chunks)
    ion_summary = export_at(work / "ion", a.items, a.chunks, "ION")
    runs = [("JSON", summary, work / "store-json", None)]
    if a.baseline_code:
        runs.append(("ION, baseline code", ion_summary, work / "store-ion-baseline", a.baseline_code))
    runs.append(("ION, this code", ion_summary, work / "store-ion", None))
    cpu: dict[str, list[float]] = {name: [] for name, *_ in runs}
    for r in range(a.rounds):
        for name, s, store, code in (runs if r % 2 == 0 else list(reversed(runs))):
            doc = ingest(s, store, a.chunks, code)
            cpu[name].append(doc["cpu_seconds"]["build"])
            print(f"round {r + 1} {name}: build CPU {cpu[name][-1]:.1f} s, wall {doc['wall']:.1f} s "
                  f"({os.getloadavg()[0]:.1f} load)", flush=True)
    for name in cpu:
        f = cpu[name]
        print(f"{name}: build CPU s {', '.join(f'{x:.1f}' for x in f)}; median {statistics.median(f):.1f}")
    for name in list(cpu)[1:]:
        ratios = [j / i for j, i in zip(cpu["JSON"], cpu[name])]
        print(f"{name} / JSON, items per build CPU second, per round: {', '.join(f'{x:.2f}' for x in ratios)}; "
              f"median {statistics.median(ratios):.2f}x, {min(ratios):.2f}-{max(ratios):.2f}x")
    if a.baseline_code:
        ratios = [b / t for b, t in zip(cpu["ION, baseline code"], cpu["ION, this code"])]
        print(f"ION build CPU, baseline / this code, per round: {', '.join(f'{x:.2f}' for x in ratios)}; "
              f"median {statistics.median(ratios):.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--chunks", type=int, default=16)
    ap.add_argument("--baseline-files", type=int, default=None, help="files the baselines read (default: all)")
    ap.add_argument("--publish-scaling", action="store_true")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--baseline-code", default=None, help="another checkout's root: its ingest, in the same run")
    ap.add_argument("--reads", action="store_true", help="point reads of the built store(s)")
    ap.add_argument("--ion", action="store_true", help="the same items as ION, ingested in the same run")
    ap.add_argument("--ion-python-items", type=int, default=0, help="with --ion: this many as ION, Python path")
    ap.add_argument("--default-chunks", action="store_true",
                    help="the ingest's own chunk size (two chunks per core) rather than one chunk per file")
    ap.add_argument("--rounds", type=int, default=1, help="ingests of each code, alternately (the best is shown)")
    ap.add_argument("--ion-rounds", action="store_true",
                    help="with --ion: only the ION target, each round a JSON ingest and the ION ingest of each code "
                         "(order alternating), ratios of build CPU seconds per round, their median and spread")
    a = ap.parse_args()
    if a.ion and a.ion_rounds:
        return ion_rounds(a)
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
    chunks = None if a.default_chunks else a.chunks
    olds, bigs = [], []
    for _ in range(a.rounds):  # alternately: the box's drift hits both alike
        if a.baseline_code:
            olds.append(ingest(summary, work / "store-baseline", chunks, a.baseline_code))
        bigs.append(ingest(summary, work / "store-ingest", chunks))
    if a.baseline_code:
        for doc in olds:
            report(f"baseline code ({a.baseline_code}) ingest-export, {a.items:,} items", doc, base, duck)
        old = min(olds, key=lambda d: d["wall"])
    for doc in bigs:
        report(f"dynadex ingest-export, {a.items:,} items", doc, base, duck)
    big = min(bigs, key=lambda d: d["wall"])
    if a.baseline_code:
        print(f"  wall: {old['wall'] / big['wall']:.2f}x the baseline code's speed "
              f"(baseline {old['wall']:.1f} s, this code {big['wall']:.1f} s)")
    if a.baseline_code or a.reads:
        for name, store in ((("baseline code", work / "store-baseline"),) if a.baseline_code else ()) + \
                (("this code", work / "store-ingest"),):
            print(f"{name}:")
            print(reads(store, a.items))
    if a.ion:
        ion_summary = export_at(work / "ion", a.items, a.chunks, "ION")
        ion_olds, ion_docs = [], []
        for _ in range(a.rounds):  # with --baseline-code, its ION ingest too, alternately
            if a.baseline_code:
                ion_olds.append(ingest(ion_summary, work / "store-ion-baseline", a.chunks, a.baseline_code))
            ion_docs.append(ingest(ion_summary, work / "store-ion", a.chunks))
        json_cpu = min(d["cpu_seconds"]["build"] for d in bigs)
        for name, docs in ((f"baseline code ({a.baseline_code})", ion_olds), ("this code", ion_docs)):
            for doc in docs:
                report(f"{name} ingest-export, the same {a.items:,} items as ION", doc, base, duck)
            if docs:
                cpu = min(d["cpu_seconds"]["build"] for d in docs)
                print(f"  {name}, ION / JSON: {min(d['wall'] for d in bigs) / min(d['wall'] for d in docs):.2f}x "
                      f"the items/s (wall); build CPU seconds {cpu:.1f} (best) vs the JSON build's {json_cpu:.1f} "
                      f"(best, this code) = {json_cpu / cpu:.2f}x the JSON build's items per CPU second")
        ion_doc = min(ion_docs, key=lambda d: d["wall"])
        ion_rate = a.items / ion_doc["wall"]
        if a.ion_python_items:
            n = a.ion_python_items
            py = ingest(export_at(work / "ion-python", n, a.chunks, "ION"), work / "store-ion-python", a.chunks,
                        build="python")
            report(f"ION through the exact Python path (the release before), {n:,} items", py, base, duck)
            print(f"  DuckDB-path ION / Python-path ION: {ion_rate / (n / py['wall']):.2f}x the items/s (wall); "
                  f"{(py['cpu_seconds']['build'] / n) / (ion_doc['cpu_seconds']['build'] / a.items):.2f}x "
                  "the items per build CPU second")
    if a.publish_scaling:
        small_work = work / "small"
        small = ingest(export_at(small_work, a.items // 10, a.chunks), small_work / "store", a.chunks)
        report(f"dynadex ingest-export, {a.items // 10:,} items (same file count)", small, base, duck)
        print(f"publish({a.items:,}) / publish({a.items // 10:,}) = "
              f"{big['phases']['publish'] / small['phases']['publish']:.2f}x for 10x the items, same files")


if __name__ == "__main__":
    main()
