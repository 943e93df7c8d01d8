"""Two writers on one catalog (bench/bench_two_writers.py, short): a running sync beside looping maintenance."""

from __future__ import annotations

from tests.support.bench import run_bench


def test_sync_and_looping_maintenance_both_commit_and_lose_nothing(tmp_path):
    """At least 10 s, and on until they have taken turns (at most 180 s): a `dynadex sync` follows continuous
    writes while maintenance (prune, compact, expire) runs back to back in another process. Both commit all
    along (they alternate), the sync meets the maintenance writer's lock, and nothing is lost: checkpoints
    never go back, every shard is checkpointed and every closed one ended, the index equals a Scan. Before
    the fresh-connection fix the sync died within seconds ("Failed to read inlined data ... does not exist").
    A fixed 20 s window counted turns that a loaded box's 16 s maintenance runs left no room for."""
    r = run_bench("bench_two_writers.py", "--seconds", "10", "--until-overlap", "--max-seconds", "180",
                  tmp_path=tmp_path)
    assert r["differences"] == 0 and r["duplicate_keys"] == 0, r["examples"]
    assert r["checkpoint_regressions"] == [] and r["writer_errors"] == [], r
    assert r["coverage"]["without_checkpoint"] == [] and r["coverage"]["closed_not_ended"] == [], r["coverage"]
    assert r["ok"] and r["returncode"] == 0
    # both writers really committed during the overlap, taking turns (the bench ran until it saw them, or
    # its bound: then these fail)
    assert r["batches"] >= 3 and r["applied"] > 0, r
    assert r["maintenance_runs_during_sync"] >= 1, r
    assert r["checkpoint_advances"] >= 3 and r["alternations"] >= 2, r  # batches before and after maintenance
    assert r["sync_writes"]["lock_waits"] >= 1, r["sync_writes"]  # the sync met the maintenance writer
