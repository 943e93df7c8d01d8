"""The seeded soak (bench/soak.py), short: random writes, SIGKILLed syncs, rollovers, TTL, then 0 differences."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def run_bench(script: str, *args: str, tmp_path: Path, timeout: float = 900) -> dict:
    done = subprocess.run([sys.executable, str(BENCH / script), *args, "--json", "--quiet", "--workdir", str(tmp_path)],
                          capture_output=True, text=True, timeout=timeout)
    assert done.stdout.strip(), done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]) | {"returncode": done.returncode}


def test_seeded_soak_with_kills_and_rollovers_ends_with_no_difference(tmp_path):
    """25 s of kills (about 40 s in all): the sync is SIGKILLed at seeded random moments while puts, updates,
    deletes, TTL puts and hot-key writes go on and shards roll over every 50 records; it catches up, the
    index equals a Scan, no key is duplicated and no checkpoint ever went back."""
    s = run_bench("soak.py", "--seed", "20261202", "--seconds", "25", tmp_path=tmp_path)
    assert s["differences"] == 0, s["examples"]
    assert s["duplicate_keys"] == 0 and s["checkpoint_regressions"] == [], s
    assert s["writer_errors"] == [] and s["unexpected_exits"] == [], s
    assert s["ok"] and s["returncode"] == 0
    # the faults really happened: kills, rollovers, TTL deletes, every kind of write, the export's handover
    assert s["kills"] >= 5 and s["runs"] >= s["kills"], s
    assert s["rollovers"]["closed"] >= 5 and s["rollovers"]["children"] >= 5, s["rollovers"]
    assert s["ttl_deletes_applied"] > 0, s
    assert all(n > 0 for n in s["operations"].values()), s["operations"]
    assert s["bootstrap_items"] >= 200 and s["table_items"] > 0
    assert s["checkpoint_looks"] >= s["kills"]
