"""A chunk build's fixed seconds against its seconds per MB, for this checkout and, in the same run, another.

Each measurement is one fresh process (as a worker is), one DuckDB thread, building in one new store first a
warm-up chunk (the export's last file: the chunk a worker built before) and then the measured chunk of the
export's first N files (N from --files). It reports the measured chunk's CPU and wall seconds, and each of
its steps (the build's own log: md5, read, sample, parse+check, …). The fit over the sizes gives, per code:

  CPU seconds of a chunk = fixed + per_MB x MB of DynamoDB JSON (least squares; the same for every step),

and the chunk size at which the fixed seconds are 10% of the chunk (fixed = 0.1 x total: MB = 9 x fixed /
per_MB), in MB of JSON and of gzip. It also prints what a worker pays once: its process start and imports,
and a DuckDB connection as a build opens it.

    PYTHONPATH=$PWD/include .venv/bin/python bench/bench_chunk_fixed.py SUMMARY --files 1 2 4 6 --rounds 2 \
        --baseline-code BASE     # BASE: `git worktree add BASE <the release before>`

With --sample-rows R [R ...] it instead builds the first file with each size of structure sample (the
unseeded reservoir; the measurement of 2026-12-07 that chose to keep 20 000).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_START_CPU = time.process_time()


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# ------------------------------------------------------------------ the child: one worker-like process


def child(args: dict) -> None:
    """Build args['chunks'] (lists of file indexes) in order into one store; print one JSON line per chunk."""
    import logging

    from dynadex.export import read_export
    from dynadex.store import resolve
    from dynadex.store.bulk.build import build_chunk
    from dynadex.store.bulk.plan import plan_chunks

    started = {"imports_cpu": round(time.process_time() - _START_CPU, 3)}
    steps: list[str] = []

    class Grab(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            m = re.match(r"\S+: (.+) done in ([0-9.]+)s$", record.getMessage())
            if m:
                steps.append(f"{m.group(1)}={m.group(2)}")

    log = logging.getLogger("dynadex.build")
    log.setLevel(logging.INFO)
    log.addHandler(Grab())
    export = read_export(args["summary"])
    location = resolve(args["store"])
    names, types = zip(*(k.split(":") for k in args["key"].split(",")))
    from dynadex.store.catalog.extensions import connect

    c = cpu()
    for _ in range(10):
        con = connect(threads=1, memory_limit="1100MB")
        con.execute("SELECT json_valid('1')").fetchall()
        con.close()
    started["connect_cpu"] = round((cpu() - c) / 10, 4)
    print(json.dumps(started), flush=True)
    for n, indexes in enumerate(args["chunks"]):
        [spec] = plan_chunks([export.files[i] for i in indexes], 10**15)
        spec.chunk_id = f"c{n:05d}"
        steps.clear()
        c, t = cpu(), time.perf_counter()
        r = build_chunk(export, spec, location, "Bench", "b1", tuple(names), tuple(types), 5, threads=1)
        print(json.dumps({"files": len(indexes), "cpu": cpu() - c, "wall": time.perf_counter() - t, "items": r.items,
                          "json_mb": r.json_bytes / 1e6, "gzip_mb": r.gzip_bytes / 1e6, "engine": r.engine,
                          "steps": list(steps)}), flush=True)


def run_child(code: Path, summary: str, key: str, chunks: list[list[int]], work: Path) -> list[dict]:
    store = work / "store"
    shutil.rmtree(store, ignore_errors=True)
    env = dict(os.environ, PYTHONPATH=str(code / "include"))
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(
        {"summary": summary, "key": key, "chunks": chunks, "store": str(store)})],
        capture_output=True, text=True, env=env)
    if out.returncode:
        sys.exit(f"child failed:\n{out.stderr[-3000:]}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


# ------------------------------------------------------------------ the fit


def fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least squares y = a + b x; (a, b)."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    b = sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0
    return my - b * mx, b


def step_seconds(steps: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for s in steps:
        name, _, sec = s.rpartition("=")
        name = re.sub(r" \(.*\)$", "", name)  # "sample (seeded)" -> "sample"
        out[name] = out.get(name, 0.0) + float(sec)
    return out


def report(label: str, runs: dict[int, list[dict]], imports: list[float], connects: list[float]) -> dict:
    """Per code: each size's best build; the fixed seconds (the line through the two smallest sizes, where the
    cost is still linear), the marginal seconds per MB from each size to the next (a chunk's cost grows
    faster than linearly once DuckDB's memory limit makes it spill), the chunk size at which the fixed
    seconds are 10%, and the same split per step."""
    best = {n: min(rs, key=lambda r: r["cpu"]) for n, rs in sorted(runs.items())}
    sizes = list(best.values())
    a, b = fit([(r["json_mb"], r["cpu"]) for r in sizes[:2]])
    gz_per_json = sum(r["gzip_mb"] for r in sizes) / sum(r["json_mb"] for r in sizes)
    ten = 9 * a / b if b > 0 else float("nan")
    print(f"{label}:")
    for i, r in enumerate(sizes):
        marginal = ""
        if i:
            p = sizes[i - 1]
            marginal = f", {1000 * (r['cpu'] - p['cpu']) / (r['json_mb'] - p['json_mb']):5.1f} ms/MB from the last size"
        print(f"  {r['files']:>2} files, {r['items']:>9,} items, {r['json_mb']:7.1f} MB JSON, {r['gzip_mb']:5.1f} MB gzip: "
              f"CPU {r['cpu']:6.2f} s ({1000 * r['cpu'] / r['json_mb']:5.1f} ms/MB; fixed {100 * a / r['cpu']:4.1f}%), "
              f"wall {r['wall']:6.2f} s{marginal}")
    print(f"  CPU s per chunk = {a:.3f} fixed + {b * 1000:.1f} ms per MB of JSON (two smallest sizes); fixed under 10% "
          f"from {ten:,.1f} MB of JSON ({ten * gz_per_json:,.2f} MB of gzip) a chunk")
    parts = []
    for name in sorted({k for r in sizes for k in step_seconds(r["steps"])}):
        sa, sb = fit([(r["json_mb"], step_seconds(r["steps"]).get(name, 0.0)) for r in sizes[:2]])
        parts.append(f"{name} {sa:.3f} + {sb * 1000:.2f}")
    print("  per step (wall s: fixed + ms per MB, two smallest sizes): " + "; ".join(parts))
    print(f"  a worker's process start and imports: {min(imports):.2f} s CPU (once per process); "
          f"a DuckDB connection as a build opens it: {1000 * min(connects):.0f} ms CPU")
    return {"fixed_cpu_s": a, "cpu_s_per_mb": b, "mb_json_for_10pct": ten, "mb_gzip_for_10pct": ten * gz_per_json,
            "runs": best, "imports_cpu_s": min(imports), "connect_cpu_s": min(connects),
            "imports": imports, "connects": connects, "all_runs": runs}


def sample_sizes(summary: str, key: str, rows_list: list[int]) -> None:
    from dynadex.export import read_export
    from dynadex.store import resolve
    from dynadex.store.bulk import fast_structure
    from dynadex.store.bulk.fastbuild import build_chunk_fast
    from dynadex.store.bulk.plan import plan_chunks

    names, types = zip(*(k.split(":") for k in key.split(",")))
    export = read_export(summary)
    [spec] = plan_chunks(export.files[:1], 10**15)
    work = tempfile.mkdtemp(prefix="dynadex-chunk-fixed-")
    try:
        for rows in rows_list * 2:
            fast_structure.SAMPLE_ROWS = rows
            shutil.rmtree(f"{work}/store", ignore_errors=True)
            c, t = cpu(), time.time()
            m = build_chunk_fast(export, spec, resolve(f"{work}/store"), "Bench", "b1", names, types, 5, "o",
                                 threads=1)
            print(f"sample {rows:>6} rows: {m.items} items, CPU {cpu() - c:.2f} s, wall {time.time() - t:.2f} s, "
                  f"lines left to Python {m.python_lines}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(json.loads(sys.argv[2]))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("summary")
    ap.add_argument("--files", type=int, nargs="+", default=[1, 2, 4, 6])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--baseline-code", default=None, help="another checkout's root, measured alternately")
    ap.add_argument("--key", default="pk:S,sk:N")
    ap.add_argument("--sample-rows", type=int, nargs="+", default=None)
    ap.add_argument("--json", default=None, help="write the figures here")
    ap.add_argument("--report", default=None, help="print the figures a run saved with --json, measure nothing")
    a = ap.parse_args()
    if a.report:
        saved = json.loads(Path(a.report).read_text())
        for label, doc in saved.items():
            runs = {int(n): rs for n, rs in doc["all_runs"].items()}
            report(label, runs, doc["imports"], doc["connects"])
        return
    if a.sample_rows:
        sample_sizes(a.summary, a.key, a.sample_rows)
        return
    from dynadex.export import read_export

    count = len(read_export(a.summary).files)
    if max(a.files) >= count:
        sys.exit(f"the export has {count} files: the largest chunk must leave the last one for the warm-up")
    codes = [("this checkout", Path(__file__).resolve().parent.parent)]
    if a.baseline_code:
        codes.insert(0, (f"baseline code ({a.baseline_code})", Path(a.baseline_code).resolve()))
    runs: dict[str, dict[int, list[dict]]] = {label: {} for label, _ in codes}
    imports: dict[str, list[float]] = {label: [] for label, _ in codes}
    connects: dict[str, list[float]] = {label: [] for label, _ in codes}
    work = Path(tempfile.mkdtemp(prefix="dynadex-chunk-fixed-"))
    try:
        for _ in range(a.rounds):
            for n in a.files:
                for label, code in codes:  # alternately: the box's drift hits both alike
                    started, warm, measured = run_child(code, a.summary, a.key, [[count - 1], list(range(n))], work)
                    imports[label].append(started["imports_cpu"])
                    connects[label].append(started["connect_cpu"])
                    runs[label].setdefault(n, []).append(measured)
                    print(f"  {label}: {n} files: CPU {measured['cpu']:.2f} s (warm-up chunk {warm['cpu']:.2f} s)",
                          flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = {label: report(label, runs[label], imports[label], connects[label]) for label, _ in codes}
    if a.baseline_code:
        base, this = (out[label] for label, _ in codes)
        print(f"fixed CPU s per chunk: {this['fixed_cpu_s']:.3f} against {base['fixed_cpu_s']:.3f} "
              f"({this['fixed_cpu_s'] - base['fixed_cpu_s']:+.3f} s); per MB: {this['cpu_s_per_mb'] * 1000:.1f} against "
              f"{base['cpu_s_per_mb'] * 1000:.1f} ms")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
