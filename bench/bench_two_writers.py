"""Two writers on one table's catalog for minutes: a running `dynadex sync` under continuous writes beside
maintenance (what `dynadex maintain` does: prune, compact, expire) in a loop in another process.

    bench/bench_two_writers.py --seconds T [--maintain-pause P] [--json]

Both write the same SQLite catalog, so they take turns through the store's writer lock
(store/catalog/writer_lock.py) and retry what still conflicts (Lake.retrying, decision 0009). Measured:
  sync         batches committed, retried attempts (by reason), lock waits: how many batches found the lock
               held by maintenance, the total and the longest wait;
  maintenance  runs (each: prune, compact, expire keeping --keep-seconds), their durations, retries, waits;
  overlap      checkpoint advances seen by a reader polling the store every 0.5 s, maintenance runs ended,
               and how often the two alternated (both committing all along, neither starved);
  loss         checkpoints never go back (the reader's polls), every shard checkpointed and every closed
               shard ended after the catch-up, verify = 0 differences, no duplicate key.
The writer stops 3 s before the sync's time ends; `dynadex sync --once` then catches up what is left.

With --until-overlap (the test's mode), --seconds is a minimum: both writers go on until the overlap shows
(3 checkpoint advances and 1 maintenance run ended during the sync, 2 alternations), at most --max-seconds;
then the writer stops and the sync and the maintenance loop end at a stop file (the sync is `dynadex sync`'s
own code with a stop question added). On a loaded box a maintenance run took up to 16 s: a fixed window
then holds too few turns to count, and only a condition measures whether they alternate.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from live_table import BUCKET, CheckpointWatch, bootstrap, checkpoint_coverage, child_env, dynadex, last_json, new_table  # noqa: E402
from seeded_writes import SeededWriter  # noqa: E402

TABLE = "TwoWriters"


def maintain_loop(store: str, seconds: float, pause: float, keep_seconds: float, stop_file: str | None = None) -> int:
    """The maintenance process: `dynadex maintain`'s work in a loop, one JSON line per run, then the totals.
    It ends after ``seconds`` or, sooner, once ``stop_file`` exists."""
    from dynadex.store import Store
    from dynadex.store.catalog import contention

    end = time.monotonic() + seconds
    runs = 0
    while time.monotonic() < end and not (stop_file and Path(stop_file).exists()):
        t = time.monotonic()
        with Store(store, read_only=False) as st:
            done = {**st.compact(), **st.expire(dt.timedelta(seconds=keep_seconds))}
        runs += 1
        print(json.dumps({"run": runs, "start": t, "end": time.monotonic(), **done}), flush=True)
        time.sleep(pause)
    print(json.dumps({"runs": runs, "store_writes": contention.snapshot().as_dict()}), flush=True)
    return 0


@dataclass
class TwoWriters:
    seconds: float
    maintain_pause: float
    operations: int = 0
    writer_errors: list = field(default_factory=list)
    batches: int = 0
    applied: int = 0
    sync_writes: dict = field(default_factory=dict)
    maintenance_runs: int = 0
    maintenance_seconds: dict = field(default_factory=dict)
    maintenance_writes: dict = field(default_factory=dict)
    stale_entries_pruned: int = 0
    snapshots_expired: int = 0
    checkpoint_advances: int = 0
    maintenance_runs_during_sync: int = 0
    alternations: int = 0
    longest_gap_between_advances: float = 0.0
    checkpoint_looks: int = 0
    checkpoint_regressions: list = field(default_factory=list)
    transient_reads: int = 0
    catch_up_records: int = 0
    coverage: dict = field(default_factory=dict)
    differences: int = 0
    duplicate_keys: int = 0
    examples: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.differences or self.duplicate_keys or self.checkpoint_regressions or self.writer_errors
                    or self.coverage.get("without_checkpoint") or self.coverage.get("closed_not_ended"))

    def as_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def sync_child(stop_file: str, argv: list[str]) -> int:
    """`dynadex sync` (cli._cmd_sync: its settings, logs and JSON line) that also ends, between batches, once
    ``stop_file`` exists: the --until-overlap mode stops it on a condition, not at a preset time."""
    import dynadex.stream as stream
    from dynadex import cli
    from dynadex.stream.sync import SyncSettings

    plain = stream.sync_table

    def stoppable(*args, settings=None, should_stop=None, **kwargs):
        return plain(*args, settings=settings or SyncSettings(stop_check_seconds=0.2),
                     should_stop=lambda: Path(stop_file).exists(), **kwargs)

    stream.sync_table = stoppable
    return cli.main(argv)


class Lines(threading.Thread):
    """A child's stdout read as it comes (the maintenance loop's runs, counted while both still run)."""

    def __init__(self, stream):
        super().__init__(daemon=True)
        self.stream, self.lines = stream, []
        self.start()

    def run(self) -> None:
        for line in self.stream:
            self.lines.append(line)

    def text(self) -> str:
        self.join()
        return "".join(self.lines)


def alternations(advances: list[float], runs: list[tuple[float, float]]) -> int:
    """How many times the sequence of events (checkpoint advances, maintenance run ends) switches writer."""
    events = sorted([(t, "b") for t in advances] + [(end, "m") for _, end in runs])
    return sum(1 for a, b in zip(events, events[1:]) if a[1] != b[1])


def bench(seconds: float, workdir: Path, *, maintain_pause: float = 0.0, keep_seconds: float = 10.0, seed: int = 3,
          say=lambda text: None, until_overlap: bool = False, max_seconds: float | None = None) -> TwoWriters:
    from dynadex.local_aws import running
    from dynadex.store import Store
    from dynadex.stream.verify import verify

    out = TwoWriters(seconds, maintain_pause)
    store = str(workdir / "store")
    import os

    with running(export_seconds=0.5, export_files=3, stream_shards=3, rollover_records=100,
                 ttl_interval_seconds=0.5, min_incremental_seconds=1) as aws:
        os.environ.update(aws.env())
        aws.client("s3").create_bucket(Bucket=BUCKET)
        ddb, streams = aws.client("dynamodb"), aws.client("dynamodbstreams")
        new_table(ddb, TABLE)
        for i in range(300):
            ddb.put_item(TableName=TABLE, Item={"pk": {"S": f"k{i:04d}"}, "n": {"N": str(i)}})
        bootstrap(ddb, TABLE, store)
        env = child_env(DYNADEX_BATCH_SECONDS="0.2", DYNADEX_IDLE_MAX_SECONDS="0.2")
        writer = SeededWriter(aws.client("dynamodb"), TABLE, seed).start()
        stop_file = workdir / "stop" if until_overlap else None
        span = max(seconds, max_seconds or 10 * seconds) if until_overlap else seconds  # the runs' bound
        if stop_file is not None:
            stop_file.unlink(missing_ok=True)
            sync = subprocess.Popen([sys.executable, __file__, "--sync-child", str(stop_file), "sync", TABLE, "--for",
                                     f"{span + 60:g}", "--store", store], env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
        else:
            sync = dynadex("sync", TABLE, "--for", f"{seconds:g}", "--store", store, env=env, capture=True)
        maint = dynadex_maintain_loop(store, span + 60 if stop_file else seconds, maintain_pause, keep_seconds, env,
                                      stop_file)
        # read as they come: the maintenance runs are counted while both run, and no pipe fills up
        m_lines, m_err_lines, s_err_lines = Lines(maint.stdout), Lines(maint.stderr), Lines(sync.stderr)
        watch = CheckpointWatch(store, TABLE)
        stop = threading.Event()

        def poll():
            while not stop.wait(0.5):
                watch.look()

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        sync_started = time.monotonic()
        say(f"sync and maintenance running for {seconds:g}s")
        if stop_file is None:
            time.sleep(max(0.0, seconds - 3))  # the bench's measured span itself: nothing to wait on but time
            writer.stop()
        else:
            def overlapped() -> bool:
                ends = [json.loads(l).get("end", 0) for l in list(m_lines.lines) if l.startswith("{")]
                during = [t for t in list(watch.advances) if t >= sync_started]
                spans = [(end, end) for end in ends if end >= sync_started]
                return len(during) >= 3 and len(spans) >= 1 and alternations(during, spans) >= 2

            deadline = sync_started + span
            while time.monotonic() < deadline and not (time.monotonic() >= sync_started + seconds and overlapped()):
                if sync.poll() is not None or maint.poll() is not None:
                    break  # one of them ended early: reported below
                time.sleep(0.2)
            say(f"overlap {'seen' if overlapped() else 'NOT seen'} after {time.monotonic() - sync_started:.1f}s")
            writer.stop()
            time.sleep(1)  # the sync's last batches of the writer's last writes
            stop_file.touch()
        s_out = sync.stdout.read()
        sync.wait(timeout=span + 600)
        maint.wait(timeout=span + 600)
        s_err, m_out, m_err = s_err_lines.text(), m_lines.text(), m_err_lines.text()
        sync_ended = time.monotonic()
        (workdir / "sync.log").write_text(s_err)
        (workdir / "maintenance.log").write_text(m_err)
        stop.set()
        poller.join()
        if sync.returncode != 0 or maint.returncode != 0:
            raise RuntimeError(f"sync exited {sync.returncode}: {s_err[-1500:]}\nmaintenance exited {maint.returncode}: "
                               f"{m_err[-1500:]}")
        synced = last_json(s_out)
        lines = [json.loads(l) for l in m_out.splitlines() if l.startswith("{")]
        runs = [l for l in lines if "run" in l]
        out.operations, out.writer_errors = writer.total, writer.errors[:5]
        out.batches, out.applied = synced["batches"], synced["applied"]
        out.sync_writes = synced["store_writes"]
        out.maintenance_runs = lines[-1]["runs"]
        out.maintenance_writes = lines[-1]["store_writes"]
        durations = [r["end"] - r["start"] for r in runs]
        if durations:
            out.maintenance_seconds = {"p50": round(statistics.median(durations), 3), "max": round(max(durations), 3)}
        out.stale_entries_pruned = sum(r.get("stale_inverted_entries_removed", 0) for r in runs)
        out.snapshots_expired = sum(r.get("expired_snapshots", 0) for r in runs)
        during = [t for t in watch.advances if sync_started <= t <= sync_ended]
        out.checkpoint_advances = len(during)
        spans = [(r["start"], r["end"]) for r in runs if sync_started <= r["end"] <= sync_ended]
        out.maintenance_runs_during_sync = len(spans)
        out.alternations = alternations(during, spans)
        marks = [sync_started, *during]
        out.longest_gap_between_advances = round(max((b - a for a, b in zip(marks, marks[1:])), default=0.0), 2)
        final = dynadex("sync", TABLE, "--once", "--store", store, env=env, capture=True)
        f_out, f_err = final.communicate(timeout=900)
        if final.returncode != 0:
            raise RuntimeError(f"the final sync failed: {f_err[-2000:]}")
        out.catch_up_records = last_json(f_out).get("records", 0)
        watch.look()
        out.checkpoint_looks, out.checkpoint_regressions, out.transient_reads = (watch.looks, watch.regressions[:20],
                                                                                 watch.transient)
        out.coverage = checkpoint_coverage(streams, ddb, store, TABLE)
        with Store(store) as st:
            report = verify(st, TABLE, ddb, keep=3)
            rows, distinct = st.query(f"SELECT count(*), count(DISTINCT key) FROM row_index.{TABLE}")[1][0]
        out.duplicate_keys = rows - distinct
        out.differences = report.missing_count + report.extra_count + report.different_count
        if not report.ok:
            out.examples = {"missing": report.missing, "extra": report.extra, "different": report.different}
    return out


def dynadex_maintain_loop(store: str, seconds: float, pause: float, keep_seconds: float, env: dict,
                          stop_file: Path | None = None):
    return subprocess.Popen([sys.executable, __file__, "--maintain-loop", store, "--seconds", f"{seconds:g}",
                             "--maintain-pause", f"{pause:g}", "--keep-seconds", f"{keep_seconds:g}",
                             *(["--stop-file", str(stop_file)] if stop_file else [])],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def text(r: TwoWriters) -> str:
    s, m = r.sync_writes, r.maintenance_writes
    per = (s.get("lock_wait_seconds", 0) / s["lock_waits"]) if s.get("lock_waits") else 0.0
    return "\n".join([
        f"two writers, {r.seconds:g} s, maintenance pause {r.maintain_pause:g} s; {r.operations:,} table writes",
        f"sync         {r.batches} batches ({r.applied:,} changes); lock: {s.get('lock_waits', 0)} of "
        f"{s.get('lock_acquisitions', 0)} writes waited, {s.get('lock_wait_seconds', 0):g} s in all, mean {per:.3f} s, "
        f"longest {s.get('lock_wait_max_seconds', 0):g} s; retries {s.get('retries', 0)} {s.get('retry_reasons', {})}; "
        f"{s.get('reopened', 0)} batches started on a fresh connection (maintenance had committed)",
        f"maintenance  {r.maintenance_runs} runs (p50 {r.maintenance_seconds.get('p50', 0):g} s, max "
        f"{r.maintenance_seconds.get('max', 0):g} s); {r.stale_entries_pruned:,} stale entries pruned, "
        f"{r.snapshots_expired:,} snapshots expired; lock: {m.get('lock_waits', 0)} of {m.get('lock_acquisitions', 0)} "
        f"waited, {m.get('lock_wait_seconds', 0):g} s, longest {m.get('lock_wait_max_seconds', 0):g} s; "
        f"retries {m.get('retries', 0)} {m.get('retry_reasons', {})}",
        f"overlap      {r.checkpoint_advances} checkpoint advances seen, {r.maintenance_runs_during_sync} "
        f"maintenance runs ended meanwhile, {r.alternations} alternations; longest span without an advance "
        f"{r.longest_gap_between_advances:g} s",
        f"loss         {r.checkpoint_looks} looks, {len(r.checkpoint_regressions)} checkpoint regressions "
        f"({r.transient_reads} transient misreads); {r.coverage.get('shards', 0)} shards, "
        f"{len(r.coverage.get('without_checkpoint', []))} without checkpoint, "
        f"{len(r.coverage.get('closed_not_ended', []))} closed not ended; catch-up read {r.catch_up_records} records; "
        f"differences {r.differences}, duplicate keys {r.duplicate_keys}",
        f"verdict      {'OK' if r.ok else 'FAILED'}",
    ])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--maintain-pause", type=float, default=0.0,
                    help="pause between maintenance runs (0: back to back)")
    ap.add_argument("--keep-seconds", type=float, default=10.0, help="maintenance keeps snapshots younger than this")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--workdir")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--until-overlap", action="store_true",
                    help="--seconds is a minimum: run on until both writers have taken turns (see above)")
    ap.add_argument("--max-seconds", type=float, help="with --until-overlap: the bound (default 10x --seconds)")
    ap.add_argument("--maintain-loop", metavar="STORE", help=argparse.SUPPRESS)  # the maintenance process
    ap.add_argument("--stop-file", help=argparse.SUPPRESS)  # the maintenance process ends once it exists
    args = ap.parse_args(argv)
    if args.maintain_loop:
        return maintain_loop(args.maintain_loop, args.seconds, args.maintain_pause, args.keep_seconds, args.stop_file)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="dynadex-two-writers-"))
    workdir.mkdir(parents=True, exist_ok=True)
    say = (lambda t: None) if args.quiet else (lambda t: print(t, file=sys.stderr, flush=True))
    result = bench(args.seconds, workdir, maintain_pause=args.maintain_pause, keep_seconds=args.keep_seconds,
                   seed=args.seed, say=say, until_overlap=args.until_overlap, max_seconds=args.max_seconds)
    print(json.dumps(result.as_dict(), default=str) if args.json else text(result))
    return 0 if result.ok else 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["--sync-child"]:  # the stoppable `dynadex sync` of --until-overlap
        sys.exit(sync_child(sys.argv[2], sys.argv[3:]))
    sys.exit(main())
