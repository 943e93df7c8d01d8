"""The seeded soak (bench/soak.py), short: random writes, SIGKILLed syncs, rollovers, TTL, then 0 differences."""

from __future__ import annotations

from tests.support.bench import run_bench


def test_seeded_soak_with_kills_and_rollovers_ends_with_no_difference(tmp_path):
    """20 s of kills (and at least 4: longer on a box too loaded for them; about 35 s in all): the sync is
    SIGKILLed at seeded random moments (while it starts, and while it reads, applies or commits a batch)
    while puts, updates, deletes, TTL puts and hot-key writes go on and shards roll over every 50 records;
    it catches up, the index equals a Scan, no key is duplicated and no checkpoint ever went back."""
    s = run_bench("soak.py", "--seed", "20261203", "--seconds", "20", "--min-kills", "4", tmp_path=tmp_path)
    assert s["differences"] == 0, s["examples"]
    assert s["duplicate_keys"] == 0 and s["checkpoint_regressions"] == [], s
    assert s["writer_errors"] == [] and s["unexpected_exits"] == [], s
    assert s["ok"] and s["returncode"] == 0
    # the faults really happened: kills, rollovers, TTL deletes, every kind of write, the export's handover
    assert s["kills"] >= 4 and s["runs"] >= s["kills"], s
    # this seed's first four kills: after 4 batches, after 1, while starting, after 1 (KillPlan)
    assert s["kills_by_batches"].get("0", 0) >= 1 and s["runs_with_progress"] >= 3, s
    assert s["batches_before_kills"] >= 6, s
    assert s["rollovers"]["closed"] >= 5 and s["rollovers"]["children"] >= 5, s["rollovers"]
    assert s["ttl_deletes_applied"] > 0, s
    assert all(n > 0 for n in s["operations"].values()), s["operations"]
    assert s["bootstrap_items"] >= 200 and s["table_items"] > 0
    assert s["checkpoint_looks"] >= s["kills"]
    assert s["coverage"]["without_checkpoint"] == [] and s["coverage"]["closed_not_ended"] == [], s["coverage"]
