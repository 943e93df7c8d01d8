"""Plots for the README, from benchmark results kept in bench/results/ (make plots).

* ``docs/ingest-throughput.svg``: bulk-load items/s against the naive loader
  and DuckDB's bare ``read_json`` of the same files (bench_ingest.py).
* ``docs/freshness.svg``: the lag of every write in a freshness run, write
  acknowledged -> visible to a query, over the run (bench_stream.py
  ``--samples-out``).

Invariant: a plot only ever shows figures a benchmark printed and saved;
nothing here measures.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def ingest_plot(results: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    doc = json.loads(results.read_text())
    runs = doc["runs"]
    labels = [r["export"] for r in runs]
    series = [
        ("naive one-process loader", [r["dynadex"] / r["vs_naive"] for r in runs], "#9e9e9e"),
        ("dynadex ingest-export (defaults)", [r["dynadex"] for r in runs], "#1f77b4"),
        ("DuckDB read_json, parse only", [r["dynadex"] / r["vs_read_json"] for r in runs], "#ff7f0e"),
    ]
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    width = 0.26
    for k, (name, values, color) in enumerate(series):
        xs = [i + (k - 1) * width for i in range(len(runs))]
        bars = ax.bar(xs, [v / 1000 for v in values], width, label=name, color=color)
        ax.bar_label(bars, labels=[f"{v / 1000:.0f}k" for v in values], fontsize=8, padding=2)
    ax.set_xticks(range(len(runs)), labels)
    ax.set_ylabel("items/s (thousands)")
    ax.set_title(f"Bulk load on 2 cores, end to end ({doc.get('date', '2026-12-01')})", fontsize=10)
    ax.legend(fontsize=8, frameon=False, loc="upper left")
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    fig.savefig(out, format="svg")
    plt.close(fig)


def freshness_plot(samples: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    doc = json.loads(samples.read_text())
    t = [s[0] for s in doc["samples"]]
    lag = [s[1] for s in doc["samples"]]
    ordered = sorted(lag)
    p50, p99 = ordered[len(ordered) // 2], ordered[int(len(ordered) * 0.99)]
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    ax.scatter(t, lag, s=6, color="#1f77b4", label="one write")
    for value, name, style in ((p50, "p50", "--"), (p99, "p99", ":")):
        ax.axhline(value, color="#555555", linestyle=style, linewidth=1)
        ax.text(t[-1], value, f" {name} {value:.2f} s", va="bottom", ha="right", fontsize=8)
    ax.set_xlabel("seconds into the run")
    ax.set_ylabel("write acked -> visible (s)")
    ax.set_title(f"Freshness: {len(lag)} writes at {doc['rate']:g}/s through DynamoDB Streams ({doc['date']})",
                 fontsize=10)
    ax.set_ylim(bottom=0)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    fig.savefig(out, format="svg")
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ingest", default=str(ROOT / "bench/results/2026-12-02-ingest.json"))
    ap.add_argument("--freshness", default=str(ROOT / "bench/results/freshness.json"))
    ap.add_argument("--out", default=str(ROOT / "docs"))
    a = ap.parse_args()
    out = Path(a.out)
    ingest_plot(Path(a.ingest), out / "ingest-throughput.svg")
    print(f"wrote {out / 'ingest-throughput.svg'}")
    if Path(a.freshness).exists():
        freshness_plot(Path(a.freshness), out / "freshness.svg")
        print(f"wrote {out / 'freshness.svg'}")


if __name__ == "__main__":
    main()
