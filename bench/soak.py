"""Seeded soak: a random workload against the emulator while a real `dynadex sync` is SIGKILLed and restarted.

    bench/soak.py --seed S --seconds T [--maintain] [--min-kills K] [--json]

What runs, in order:
  1. the emulator (3 shards rolling over every ``--rollover-records`` records, TTL swept every 0.5 s);
     a table with a stream and TTL, 200 items;
  2. the seeded writer starts (bench/seeded_writes.py: puts, updates, deletes, TTL puts, hot keys) and the
     table is bootstrapped while it writes (export + ingest), so the stream's handover from the export is
     part of the soak;
  3. for T seconds: a `dynadex sync` process follows the table and is SIGKILLed at a seeded random moment
     (KillPlan: one run in five while it starts, the others 0-0.6 s after their 1st-4th committed batch,
     so the kill lands while a batch is read, applied or committed), then restarted. After every run the
     store's checkpoints are read: none may go back, reopen or vanish. With --maintain, maintenance
     (prune, compact, expire) runs back to back in another process all along, and is stopped by SIGTERM,
     wherever it is, when the kills end;
  4. the writer stops; once every TTL item has been swept, `dynadex sync --once` catches up and verify
     compares the index with a Scan, item by item. No duplicate keys may be in the row index.

Exit 0 when there is no difference, duplicate, checkpoint regression, shard left without a checkpoint (or
closed and not ended), writer error or sync that ended by itself; 1 otherwise. The seed fixes the operations
and the kill plans (not how many fit in T seconds: --min-kills goes on until K kills, within 10 x T).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from live_table import (BUCKET, CheckpointWatch, bootstrap, checkpoint_coverage, child_env, dynadex,  # noqa: E402
                        item_count_with, last_json, new_table, rollovers, wait_until)
from seeded_writes import KINDS, SeededWriter  # noqa: E402

TABLE = "Soak"


@dataclass
class SoakSummary:
    seed: int
    seconds: float
    runs: int = 0
    kills: int = 0
    runs_with_progress: int = 0
    """Runs after which a checkpoint had moved on: the sync committed at least one batch before its kill."""
    kills_by_batches: dict = field(default_factory=dict)
    """Kills by the number of batches the run had committed first (0: during startup)."""
    batches_before_kills: int = 0
    unexpected_exits: list = field(default_factory=list)
    operations: dict = field(default_factory=dict)
    writer_errors: list = field(default_factory=list)
    bootstrap_items: int = 0
    bootstrap_seconds: float = 0.0
    rollovers: dict = field(default_factory=dict)
    ttl_deletes_applied: int = 0
    ttl_wait_seconds: float = 0.0
    catch_up_seconds: float = 0.0
    catch_up_records: int = 0
    checkpoint_looks: int = 0
    checkpoint_regressions: list = field(default_factory=list)
    transient_reads: int = 0
    coverage: dict = field(default_factory=dict)
    table_items: int = 0
    index_items: int = 0
    missing: int = 0
    extra: int = 0
    different: int = 0
    duplicate_keys: int = 0
    examples: dict = field(default_factory=dict)
    maintenance_runs: int = 0
    """With --maintain: maintenance runs completed beside the killed syncs."""
    kill_phase_seconds: float = 0.0
    wall_seconds: float = 0.0

    @property
    def differences(self) -> int:
        return self.missing + self.extra + self.different

    @property
    def ok(self) -> bool:
        return not (self.differences or self.duplicate_keys or self.checkpoint_regressions or self.writer_errors
                    or self.unexpected_exits or self.coverage.get("without_checkpoint")
                    or self.coverage.get("closed_not_ended"))

    def as_dict(self) -> dict:
        return {**asdict(self), "differences": self.differences, "ok": self.ok}


@dataclass(frozen=True)
class KillPlan:
    """When one sync process dies: ``batches`` committed (0: while it starts, ``delay`` s after its start),
    then ``delay`` s more, so the SIGKILL lands while the next batch is read, applied or committed."""

    batches: int
    delay: float


def kill_plan(rnd: random.Random) -> KillPlan:
    if rnd.random() < 0.2:
        return KillPlan(0, rnd.uniform(0.2, 1.5))  # during startup: opening the store, the first refresh
    return KillPlan(rnd.randint(1, 4), rnd.uniform(0.0, 0.6))  # a batch cycle is ~0.2-0.6 s here


BATCH_LINE = b"batch of "  # the sync's DEBUG line after each commit (stream/sync.py)
PLAN_DEADLINE = 60.0  # a run that has not committed its planned batches by then is killed anyway


def run_until_planned_kill(proc, log: Path, offset: int, plan: KillPlan) -> tuple[int | None, int]:
    """Wait for ``plan`` (reading the run's log from ``offset``); SIGKILL the process. Returns (exit code if it
    ended by itself, else None; batches it committed)."""
    started = time.monotonic()

    def committed() -> int:
        with open(log, "rb") as f:
            f.seek(offset)
            return f.read().count(BATCH_LINE)

    while plan.batches and committed() < plan.batches and time.monotonic() - started < PLAN_DEADLINE:
        if proc.poll() is not None:
            return proc.returncode, committed()
        time.sleep(0.02)
    try:
        return proc.wait(timeout=plan.delay), committed()
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return None, committed()


def soak(seed: int, seconds: float, workdir: Path, *, rollover_records: int = 50, shards: int = 3, min_kills: int = 0,
         maintain: bool = False, say=lambda text: None) -> SoakSummary:
    from dynadex.local_aws import running
    from dynadex.store import Store
    from dynadex.stream.verify import verify

    out = SoakSummary(seed, seconds)
    started = time.monotonic()
    kill_rnd = random.Random(f"kills-{seed}")
    store = str(workdir / "store")
    with running(export_seconds=0.5, export_files=3, stream_shards=shards, rollover_records=rollover_records,
                 ttl_interval_seconds=0.5, min_incremental_seconds=1) as aws:
        os.environ.update(aws.env())
        aws.client("s3").create_bucket(Bucket=BUCKET)
        ddb, streams = aws.client("dynamodb"), aws.client("dynamodbstreams")
        new_table(ddb, TABLE)
        for i in range(200):
            ddb.put_item(TableName=TABLE, Item={"pk": {"S": f"k{i:04d}"}, "n": {"N": str(i)}})
        writer = SeededWriter(aws.client("dynamodb"), TABLE, seed).start()
        t = time.monotonic()
        result = bootstrap(ddb, TABLE, store)
        out.bootstrap_items, out.bootstrap_seconds = result["items"], round(time.monotonic() - t, 2)
        say(f"bootstrapped {out.bootstrap_items} items in {out.bootstrap_seconds:.1f}s "
            f"while {writer.total} writes went on")
        env = child_env(DYNADEX_BATCH_RECORDS="50", DYNADEX_BATCH_SECONDS="0.1", DYNADEX_IDLE_MAX_SECONDS="0.2",
                        DYNADEX_LOG_LEVEL="DEBUG")  # the sync logs each commit: kills are planned by batches
        watch = CheckpointWatch(store, TABLE)
        log = workdir / "sync.log"
        maint = None
        if maintain:  # maintenance back to back beside the killed syncs (bench_two_writers' loop), until the end
            from bench_two_writers import dynadex_maintain_loop

            maint = dynadex_maintain_loop(store, 10 * seconds, 0.0, 10.0, env)
        end = time.monotonic() + seconds
        try:
            # T seconds, and (on a box too loaded for them to fit) until ``min_kills`` kills, within 10 x T
            while time.monotonic() < end or (out.kills < min_kills and time.monotonic() < end + 9 * seconds):
                plan = kill_plan(kill_rnd)
                offset = log.stat().st_size if log.exists() else 0
                proc = dynadex("sync", TABLE, "--for", "3600", "--store", store, env=env, log=log)
                out.runs += 1
                code, batches = run_until_planned_kill(proc, log, offset, plan)
                out.batches_before_kills += batches
                if code is None:
                    out.kills += 1
                    out.kills_by_batches[str(plan.batches)] = out.kills_by_batches.get(str(plan.batches), 0) + 1
                else:
                    out.unexpected_exits.append(code)  # a sync that was to run for an hour ended by itself
                before = len(watch.advances)
                watch.look()
                out.runs_with_progress += len(watch.advances) > before
                say(f"run {out.runs}: killed {plan.delay:.2f}s after {plan.batches} batches ({batches} seen); "
                    f"{writer.total} writes so far; "
                    f"{sum(1 for v in watch.seen.values() if v[1])} shards ended in the checkpoints")
        finally:
            writer.stop()
            if maint is not None:
                maint.terminate()  # between or inside a step: a killed writer, as the syncs are
                m_out, _ = maint.communicate(timeout=120)
                out.maintenance_runs = sum(1 for line in m_out.splitlines() if line.startswith('{"run"'))
        out.kill_phase_seconds = round(time.monotonic() - end + seconds, 1)
        out.operations = {k: writer.ops.get(k, 0) for k in KINDS}
        out.writer_errors = writer.errors[:5]
        out.ttl_wait_seconds = round(wait_until(lambda: item_count_with(ddb, TABLE, "expires") == 0,
                                                "the emulator to sweep every TTL item", 120), 2)
        t = time.monotonic()
        final = dynadex("sync", TABLE, "--once", "--store", store, env=env, capture=True)
        stdout, stderr = final.communicate(timeout=900)
        if final.returncode != 0:
            raise RuntimeError(f"the final sync failed ({final.returncode}): {stderr[-2000:]}")
        out.catch_up_seconds = round(time.monotonic() - t, 2)
        out.catch_up_records = last_json(stdout).get("records", 0)
        watch.look()
        out.checkpoint_looks, out.checkpoint_regressions = watch.looks, watch.regressions[:20]
        out.transient_reads = watch.transient
        out.rollovers = rollovers(streams, ddb, TABLE)
        out.coverage = checkpoint_coverage(streams, ddb, store, TABLE)
        with Store(store) as st:
            report = verify(st, TABLE, ddb, keep=3)
            rows, distinct = st.query(f"SELECT count(*), count(DISTINCT key) FROM row_index.{TABLE}")[1][0]
            details = st.query(f"SELECT detail FROM dynadex.events WHERE table_name = '{TABLE}' "
                               "AND kind = 'ttl_deletes'")[1]
        out.duplicate_keys = rows - distinct
        out.ttl_deletes_applied = sum(json.loads(d[0]).get("count", 0) for d in details)
        out.table_items, out.index_items = report.table_items, report.index_items
        out.missing, out.extra, out.different = report.missing_count, report.extra_count, report.different_count
        if not report.ok:
            out.examples = {"missing": report.missing, "extra": report.extra, "different": report.different}
    out.wall_seconds = round(time.monotonic() - started, 1)
    return out


def text(s: SoakSummary) -> str:
    ops = ", ".join(f"{k} {v:,}" for k, v in s.operations.items())
    r = s.rollovers
    return "\n".join([
        f"soak seed {s.seed}, {s.kill_phase_seconds:g} s of kills ({s.wall_seconds:g} s in all)",
        f"runs        {s.runs} sync processes, {s.kills} SIGKILLed, {len(s.unexpected_exits)} ended by themselves; "
        f"{s.runs_with_progress} committed before their kill ({s.batches_before_kills} batches); kills after N "
        f"batches: {dict(sorted(s.kills_by_batches.items()))}",
        f"operations  {sum(s.operations.values()):,}: {ops}; writer errors {len(s.writer_errors)}",
        *([f"maintenance {s.maintenance_runs} runs back to back beside the syncs"] if s.maintenance_runs else []),
        f"bootstrap   {s.bootstrap_items} items (export + ingest) in {s.bootstrap_seconds:g} s, writes going on",
        f"rollovers   {r.get('closed', 0)} shards closed ({r.get('shards', 0)} shards, "
        f"{r.get('children', 0)} children)",
        f"ttl         {s.ttl_deletes_applied} TTL deletes applied (last TTL item swept {s.ttl_wait_seconds:g} s "
        "after the writes)",
        f"catch-up    sync --once read {s.catch_up_records} records in {s.catch_up_seconds:g} s",
        f"checkpoints {s.checkpoint_looks} looks, {len(s.checkpoint_regressions)} regressions "
        f"({s.transient_reads} transient misreads); {len(s.coverage.get('without_checkpoint', []))} shards without "
        f"a checkpoint, {len(s.coverage.get('closed_not_ended', []))} closed but not ended",
        f"differences {s.differences} ({s.missing} missing, {s.extra} extra, {s.different} different); "
        f"table {s.table_items} items, index {s.index_items}; duplicate keys {s.duplicate_keys}",
        f"verdict     {'OK' if s.ok else 'FAILED'}",
    ])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=60, help="how long the kill-and-restart phase lasts")
    ap.add_argument("--min-kills", type=int, default=0,
                    help="go on past --seconds until this many kills (at most 10 x --seconds in all)")
    ap.add_argument("--maintain", action="store_true",
                    help="run maintenance back to back in another process during the kills (ended by SIGTERM)")
    ap.add_argument("--rollover-records", type=int, default=50,
                    help="the emulator closes a shard after this many records")
    ap.add_argument("--json", action="store_true", help="print the summary as one JSON document instead")
    ap.add_argument("--workdir", help="where the store and the sync log go (default: a new temporary folder)")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = ap.parse_args(argv)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="dynadex-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    say = (lambda t: None) if args.quiet else (lambda t: print(t, file=sys.stderr, flush=True))
    summary = soak(args.seed, args.seconds, workdir, rollover_records=args.rollover_records, min_kills=args.min_kills,
                   maintain=args.maintain, say=say)
    print(json.dumps(summary.as_dict(), default=str) if args.json else text(summary))
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
