"""Stream sync: apply throughput from recorded GetRecords pages, and freshness lag against the emulator.

apply:     records shaped exactly as boto3 hands GetRecords pages (datetimes, bytes) are converted and
           applied in batches (--batch-sizes, default 10 000) with their checkpoints (one transaction each),
           DuckDB on 1 thread; every path (--paths, the first the baseline) at every size on its own store, in
           one process (--apply-only --rounds N), with CPU per record by phase: conversion, shaping + Arrow,
           SQL, and a table of records/s and the ratio against the baseline.
backlog:   (--backlog N --factors 1,10) N records replayed through the sync's own loop (TableSync.run to the
           tip, flushes and folds included), fixed batches against batches that grow while behind (decision 0035).
sustained: (--steady-batches N --keys K) N such batches onto K items, with and without the sync's small-file
           folds (decision 0028), CPU ms per batch by window of 10 batches and the files left at the end.
freshness: a writer puts items at a steady rate; `dynadex sync` follows the stream in another process;
           a reader polls the store; lag = first poll that sees a write minus the moment the write was acked.
passes:    (--shards N,... --readers K,...) one table whose stream has N open shards on the emulator: the time
           of one pass over every shard (one GetRecords each; the first pass also gets the iterators and reads
           a small backlog), reading them one after another (K=1) or K at once. --latency-ms adds a simulated
           network round trip to every stream call (the emulator answers from the same machine in ~1 ms and
           serialises requests, which hides what concurrent reads save against AWS).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).parent))

from statistics import median

from dynadex.gcpause import settle
from dynadex.store import Checkpoint, PublishSpec, Store
from dynadex.store.errors import QueryError
from dynadex.stream.get_records import decode_page
from dynadex.stream.sync import record_changes
from dynadex.types import canonical_item


def page_record(i: int, key: int, rnd: random.Random) -> dict:
    image = {"pk": {"S": f"k{key:07d}"}, "n": {"N": str(i)}, "city": {"S": rnd.choice(["Paris", "Rome", "Oslo"])},
             "b": {"B": rnd.randbytes(6)}, "tags": {"SS": ["a", f"t{i % 9}"]}, "m": {"M": {"x": {"N": f"{i}.25"}}}}
    remove = rnd.random() < 0.1
    return {"eventID": f"{i:032x}", "eventName": "REMOVE" if remove else "MODIFY", "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
            "dynamodb": {"ApproximateCreationDateTime": dt.datetime.fromtimestamp(1_800_000_000 + i // 1000, dt.timezone.utc),
                         "Keys": {"pk": image["pk"]}, **({} if remove else {"NewImage": image}),
                         "SequenceNumber": str(10**20 + i), "SizeBytes": 120, "StreamViewType": "NEW_IMAGE"}}




class TimedConnection:
    """A DuckDB connection that adds up the time of every statement it runs (the SQL share of a batch)."""

    def __init__(self, con):
        self.con, self.seconds = con, 0.0

    def execute(self, *args):
        t = time.process_time()
        try:
            return self.con.execute(*args)
        finally:
            self.seconds += time.process_time() - t

    def register(self, *args):
        t = time.process_time()
        try:
            return self.con.register(*args)
        finally:
            self.seconds += time.process_time() - t

    def __getattr__(self, name):
        return getattr(self.con, name)


def apply_store(keys: int, key_prefix: str = "k", stream_arn: str | None = None) -> str:
    """A fresh store whose table S holds ``keys`` published items, keys ``<key_prefix><7 digits>`` (its stream
    ``stream_arn``, from its start, for a sync)."""
    store = tempfile.mkdtemp(prefix="dynadex-apply-")
    with Store(store, read_only=False, threads=1) as st:
        w = st.chunk_writer("S", "b", "c0", ("pk",), ("S",))
        for k in range(keys):
            w.add(canonical_item({"pk": {"S": f"{key_prefix}{k:07d}"}, "n": {"N": "0"}}), 0, "bulk")
        w.finish()
        st.publish(PublishSpec("S", "b", ["c0"], ("pk",), ("S",), stream_arn=stream_arn,
                               stream_start_micros=0 if stream_arn else None))
    return store


def wire_record(record: dict) -> dict:
    """A record as the wire carries it and the lean GetRecords hands it on (decision 0024): creation time in
    epoch seconds, binaries as base64 text; boto3's parse gives datetimes and bytes."""
    from dynadex.aws import from_client

    dyn = dict(record["dynamodb"])
    dyn["ApproximateCreationDateTime"] = dyn["ApproximateCreationDateTime"].timestamp()
    for part in ("Keys", "NewImage"):
        if part in dyn:
            dyn[part] = from_client(dyn[part])
    return {**record, "dynamodb": dyn}


APPLY_PATHS = {
    "reference": "decision 0019's old path: record by record conversion, item by item shaping, the old key lookup",
    "fast": "the sync's path before decision 0035: record_changes, shape_batch, DuckLake statements",
}


def apply_bench(records: int, keys: int, rounds: int = 3, wire: bool = False, sizes: tuple[int, ...] = (10_000,),
                paths: tuple[str, ...] = ("reference", "fast")) -> None:
    """Every (path, batch size) of ``paths`` x ``sizes`` (``APPLY_PATHS``) on the same records: each round builds
    one fresh store per variant and applies every batch to each, variant after variant in an order that turns
    from round to round, so load from other processes falls on all alike. Rates are records per second of
    this process's CPU time (DuckDB runs on 1 thread: one core), split into conversion, shaping (Python,
    Arrow) and SQL; the last table sets every variant against the first (the old path)."""
    from dynadex.store.apply.changes import apply_changes
    from dynadex.stream.sync import record_change

    rnd = random.Random(5)
    raw = [page_record(i, rnd.randrange(keys), rnd) for i in range(records)]
    # with ``wire``, the fast paths get the records as the lean GetRecords hands them (the reference: boto3's)
    wired = [wire_record(r) for r in raw] if wire else raw
    variants = [(p, n) for n in sizes for p in paths]
    totals = {v: [] for v in variants}
    for r in range(rounds):
        stores = {v: apply_store(keys) for v in variants}
        order = variants[r % len(variants):] + variants[:r % len(variants)]
        for v in order:
            path, size = v
            got = {"convert": 0.0, "apply": 0.0, "sql": 0.0, "wall": 0.0}
            with Store(stores[v], read_only=False, threads=1) as st:
                timed = TimedConnection(st.lake.con)
                st.lake.con = timed
                for start in range(0, records, size):
                    batch = (raw if path == "reference" else wired)[start:start + size]
                    cps = [Checkpoint("shard-1", batch[-1]["dynamodb"]["SequenceNumber"])]
                    w, c0 = time.perf_counter(), time.process_time()
                    if path == "reference":
                        settle()
                        changes = [record_change(rec, "shard-1")[0] for rec in batch]
                    else:
                        changes = [ch for ch, _ in record_changes(batch, "shard-1")]
                    c1 = time.process_time()
                    apply_changes(st.lake, "S", changes, cps, reference=path == "reference")
                    got["convert"] += c1 - c0
                    got["apply"] += time.process_time() - c1
                    got["wall"] += time.perf_counter() - w
                got["sql"] = timed.seconds
                st.lake.con = timed.con
            cpu = got["convert"] + got["apply"]
            totals[v].append(cpu)
            print(f"apply {path:9s} batches of {size:6,d}, round {r + 1}: {records / cpu:7,.0f} records/s of CPU "
                  f"({records / got['wall']:,.0f}/s wall); per record: convert {got['convert'] / records * 1e6:.1f} µs, "
                  f"shape+Arrow {(got['apply'] - got['sql']) / records * 1e6:.1f} µs, SQL {got['sql'] / records * 1e6:.1f} µs "
                  f"({got['sql'] / -(-records // size) * 1000:.0f} ms per batch)", flush=True)
        for store in stores.values():
            shutil.rmtree(store, ignore_errors=True)
    base = variants[0]
    print(f"apply: {records:,} records onto {keys:,} items, 1 core (CPU time), median of {rounds} rounds; "
          f"ratio against {base[0]} at {base[1]:,}:")
    print("| path | batch | records/s | ratio (per round) |")
    for v in variants:
        ratios = [b / a for a, b in zip(totals[v], totals[base])]
        print(f"| {v[0]} | {v[1]:,} | {records / median(totals[v]):,.0f} | {median(ratios):.2f}x "
              f"({', '.join(f'{x:.2f}' for x in ratios)}) |", flush=True)


class ReplayedStream:
    """A DynamoDB Streams client over recorded pages: ``shards`` open shards holding the records in turn (as
    the lean GetRecords hands them), for the sync's own loop without an emulator."""

    ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/S/stream/2030-01-01T00:00:00.000"

    def __init__(self, records: list[dict], shards: int):
        self.records = {f"shardId-{s:05d}": records[s::shards] for s in range(shards)}

    def describe_table(self, TableName):  # noqa: N803 - boto3's names
        return {"Table": {"TableName": TableName, "LatestStreamArn": self.ARN,
                          "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}}}

    def describe_stream(self, StreamArn, Limit=100, ExclusiveStartShardId=None, ShardFilter=None):  # noqa: N803
        shards = [] if ShardFilter else [
            {"ShardId": sid, "SequenceNumberRange": {"StartingSequenceNumber": recs[0]["dynamodb"]["SequenceNumber"]}}
            for sid, recs in self.records.items()]
        return {"StreamDescription": {"StreamArn": StreamArn, "Shards": shards}}

    def get_shard_iterator(self, StreamArn, ShardId, ShardIteratorType, SequenceNumber=None, Timestamp=None):  # noqa: N803
        pos = 0
        if ShardIteratorType == "AFTER_SEQUENCE_NUMBER":
            pos = [r["dynamodb"]["SequenceNumber"] for r in self.records[ShardId]].index(SequenceNumber) + 1
        return {"ShardIterator": f"{ShardId}|{pos}"}

    def get_records(self, ShardIterator, Limit=1000):  # noqa: N803
        sid, pos = ShardIterator.split("|")
        recs = self.records[sid][int(pos):int(pos) + Limit]
        return {"Records": recs, "NextShardIterator": f"{sid}|{int(pos) + len(recs)}"}


def backlog_bench(records: int, keys: int, factors: list[int], shards: int = 4, rounds: int = 1,
                  ahead: tuple[bool, ...] = (True,), store_threads: int = 1) -> None:
    """A backlog of ``records`` wire records on ``shards`` shards applied by the sync's own loop
    (``TableSync.run`` to the tip, its flushes and folds included) onto ``keys`` published items, once per
    ``backlog_batch_factor`` (1: fixed 10 000-record batches, as before decision 0035), in turn, in one
    process; each factor with each of ``ahead`` (``commit_ahead``: a batch commits on its own thread while
    the next is read, decision 0042). Prints records/s of CPU and of wall time, the batches and the largest,
    and the ratio against the first variant."""
    from dynadex.stream.sync import SyncSettings, TableSync

    rnd = random.Random(5)
    backlog = [wire_record(page_record(i, rnd.randrange(keys), rnd)) for i in range(records)]
    for r in backlog:
        r["dynamodb"]["SizeBytes"] = len(json.dumps(r["dynamodb"].get("NewImage", r["dynamodb"]["Keys"])))
    variants = [(f, a) for f in factors for a in ahead]
    cpu = {v: [] for v in variants}
    walls = {v: [] for v in variants}
    for r in range(rounds):
        for f, a in variants[r % len(variants):] + variants[:r % len(variants)]:
            store = apply_store(keys, stream_arn=ReplayedStream.ARN)
            try:
                with Store(store, read_only=False, threads=store_threads) as st:
                    streams = ReplayedStream(backlog, shards)
                    sync = TableSync(st, "S", streams, streams, None, SyncSettings(
                        backlog_batch_factor=f, overlap_seconds=0, shard_readers=1, lean_get_records=False,
                        commit_ahead=a))
                    w, c = time.perf_counter(), time.process_time()
                    stats = sync.run(until=0, until_caught_up=True)
                    used, wall = time.process_time() - c, time.perf_counter() - w
                cpu[(f, a)].append(used)
                walls[(f, a)].append(wall)
                print(f"backlog, factor {f:2d}, commit ahead {int(a)}, round {r + 1}: {records / wall:7,.0f} records/s "
                      f"wall ({records / used:,.0f}/s of CPU), {stats['batches']} batches (largest "
                      f"{stats['largest_batch']:,}, {stats.get('commits_ahead', 0)} committed ahead), "
                      f"{stats['folds']} folds, {stats['flushes']} flushes", flush=True)
            finally:
                shutil.rmtree(store, ignore_errors=True)
    base = variants[0]
    print(f"backlog: {records:,} records on {shards} shards onto {keys:,} items, the sync's loop, median of "
          f"{rounds}: " + ", ".join(
              f"factor {f} ahead {int(a)}: {records / median(walls[(f, a)]):,.0f} records/s wall "
              f"({median(walls[base]) / median(walls[(f, a)]):.2f}x), {records / median(cpu[(f, a)]):,.0f} of CPU "
              f"({median(cpu[base]) / median(cpu[(f, a)]):.2f}x)" for f, a in variants), flush=True)


class PagedStream(ReplayedStream):
    """``ReplayedStream`` over pages kept as the JSON bytes GetRecords answers (msgspec-encoded, 1 000 records a
    page), decoded at each call as the lean GetRecords decodes an answer: a backlog of millions of records fits
    in a few GB (a dict a record would not)."""

    PAGE = 1000

    def __init__(self, records: int, keys: int, shards: int, seed: int = 5):
        import msgspec

        encode = msgspec.json.Encoder().encode
        self._decode = msgspec.json.Decoder().decode
        rnd = random.Random(seed)
        self.pages: dict[str, list[bytes]] = {}
        self.first: dict[str, str] = {}
        self.count = 0
        for s in range(shards):
            sid = f"shardId-{s:05d}"
            pages, page = [], []
            for i in range(s, records, shards):
                r = wire_record(page_record(i, rnd.randrange(keys), rnd))
                page.append(r)
                if len(page) == self.PAGE:
                    pages.append(encode({"Records": page}))
                    page = []
            if page:
                pages.append(encode({"Records": page}))
            self.pages[sid] = pages
            self.first[sid] = str(10**20 + s)
            self.count += (records - s + shards - 1) // shards
        self.records = {sid: [{"dynamodb": {"SequenceNumber": self.first[sid]}}] for sid in self.pages}  # describe
        self.raw_images = False  # pages decoded as the lean GetRecords decodes them with DYNADEX_SQL_SHAPE

    def get_shard_iterator(self, StreamArn, ShardId, ShardIteratorType, SequenceNumber=None, Timestamp=None):  # noqa: N803
        if ShardIteratorType == "AFTER_SEQUENCE_NUMBER":
            raise NotImplementedError("PagedStream replays a backlog from its start only")
        return {"ShardIterator": f"{ShardId}|0"}

    def get_records(self, ShardIterator, Limit=1000):  # noqa: N803
        sid, page = ShardIterator.split("|")
        if int(page) >= len(self.pages[sid]):  # an open shard read to its tip: nothing yet
            return {"Records": [], "NextShardIterator": ShardIterator}
        answer = decode_page(self.pages[sid][int(page)], self.raw_images)
        nxt = int(page) + 1
        return {"Records": answer["Records"], "NextShardIterator": f"{sid}|{nxt}"}


def _shaped(st) -> str:
    """How the store's batches were shaped (decision 0044's counters)."""
    return ", ".join(f"{s.shaped} batches ({s.python_lines} images in Python), {s.declined} declined"
                     for s in st.shapers.values()) or "none"


def catch_up_bench(records: int, keys: int, shards: int, variants: list[str]) -> None:
    """Time from a backlog of ``records`` replayed records (``PagedStream``, ``shards`` shards) to lag 0 through
    the sync's own loop on a store of ``keys`` items, with the sync's default settings (shard readers,
    growing batches, flushes and folds), per variant ("before": no read- or commit-ahead; "now"), one after the
    other in this process on the same pages. Prints the wall time, records/s of wall and CPU, and the ratio.
    Variants: "noahead" (decision 0042 off), "before" (the release before decision 0044: images decoded and
    shaped in Python, batches growing to 100 000), "onethread" (the release before decision 0045: images shaped
    inside DuckDB, batches to 200 000, every commit on the store's one DuckDB thread), "now" (large batches'
    commits on two threads), "store2" (every statement of the store on two threads, flushes on one)."""
    from dynadex.stream.sync import SyncSettings, TableSync

    t = time.perf_counter()
    streams = PagedStream(records, keys, shards)
    print(f"catch-up: {streams.count:,} records in {sum(len(p) for p in streams.pages.values()):,} pages, "
          f"{sum(map(len, (b for p in streams.pages.values() for b in p))) / 1e9:.2f} GB, made in "
          f"{time.perf_counter() - t:.0f} s", flush=True)
    variant_settings = {"noahead": dict(read_ahead=False, commit_ahead=False, sql_shape=False, batch_threads=1),
                        "before": dict(sql_shape=False, backlog_batch_factor=10, batch_threads=1),
                        "onethread": dict(sql_shape=True, batch_threads=1), "now": dict(sql_shape=True),
                        "store2": dict(sql_shape=True, threads=2)}
    walls = {}
    for v in variants:
        store = apply_store(keys, stream_arn=ReplayedStream.ARN)
        try:
            with Store(store, read_only=False, threads=variant_settings[v].get("threads", 1)) as st:
                streams.raw_images = variant_settings[v]["sql_shape"]
                sync = TableSync(st, "S", streams, streams, None, SyncSettings(
                    overlap_seconds=0, lean_get_records=False, **variant_settings[v]))
                w, c = time.perf_counter(), time.process_time()
                stats = sync.run(until=0, until_caught_up=True)
                used, wall = time.process_time() - c, time.perf_counter() - w
                shaped = _shaped(st)
            walls[v] = wall
            print(f"catch-up, {v}: {stats['records']:,} records to lag 0 in {wall:.1f} s = {stats['records'] / wall:,.0f}"
                  f" records/s ({stats['records'] / used:,.0f}/s of CPU, {used / wall:.2f} cores); {stats['batches']} "
                  f"batches (largest {stats['largest_batch']:,}, {stats.get('commits_ahead', 0)} committed ahead), "
                  f"{stats['flushes']} flushes, {stats['folds']} folds; {walls[variants[0]] / wall:.2f}x "
                  f"{variants[0]}; shaped in DuckDB: {shaped}", flush=True)
        finally:
            shutil.rmtree(store, ignore_errors=True)


STEADY = {
    "fold": "as the sync runs: every fold_every_batches a flush, a fold of the three indexes and a rewrite "
            "of the worn files (a quarter deleted, the bulk load's included)",
    "fold sliced": "as fold, with the bytes one fold may rewrite per index an eighth of the bulk load's row file: "
                   "the worn bulk files are moved a slice per fold check, as a range file of a table of hundreds "
                   "of GB is by the 64 MB bound",
    "fold no worn": "the same without rewriting worn files (what a worn file over the bound got before slices)",
    "fold keyed": "the row and column indexes only, no worn files (the sync of decision 0028 as first written)",
    "no fold": "as before decision 0028: the flush every flush_every_batches only",
}


def steady_apply(batches: int, keys: int, window: int = 10, out: str | None = None,
                 variants: tuple[str, ...] = ("fold", "no fold")) -> None:
    """Sustained apply: ``batches`` batches of 10 000 records (the sync's default) onto a fresh store of
    ``keys`` items per variant (``STEADY``), batch by batch in alternating order in one process. Prints CPU
    milliseconds per batch over each ``window`` batches (median and mean, folds included), the wall time of a
    selective ``find`` at each window's end (median of 5, a value written in the window), the slowest batches,
    and the files each index holds at the end: the first batches after a bulk load are not what hours of a
    busy stream cost."""
    from dynadex.store.apply.changes import apply_changes
    from dynadex.store.upkeep import small_files
    from dynadex.stream.sync import SyncSettings

    every, flush_every = SyncSettings().fold_every_batches, SyncSettings().flush_every_batches
    names = tuple(v.strip() for v in variants)
    unknown = [n for n in names if n not in STEADY]
    if unknown or len(set(names)) != len(names):
        sys.exit(f"--steady-compare: unknown or repeated variant(s) {unknown or names}; choose from {', '.join(STEADY)}")
    stores = {n: apply_store(keys) for n in names}
    slice_bytes = None
    if "fold sliced" in names:
        with Store(stores["fold sliced"]) as st:
            slice_bytes = max(size for _, size in small_files.listed(st.lake, small_files.ROW_SCHEMA, "S")) // 8
        print(f"sustained apply, fold sliced: at most {slice_bytes / 1e6:.1f} MB per index per fold", flush=True)
    rnd = random.Random(11)
    rows = []
    try:
        with contextlib.ExitStack() as stack:
            opened = {n: stack.enter_context(Store(stores[n], read_only=False, threads=1)) for n in names}
            times = {n: [] for n in names}  # CPU seconds of each batch (the fold variant's folds included)
            fold_times = {n: [] for n in names}
            slices = {n: 0 for n in names}
            for i in range(batches):
                batch = [wire_record(page_record(j, rnd.randrange(keys), rnd))
                         for j in range(i * 10_000, (i + 1) * 10_000)]
                cps = [Checkpoint("shard-1", batch[-1]["dynamodb"]["SequenceNumber"])]
                order = names[i % len(names):] + names[:i % len(names)]
                for n in order:
                    t = time.process_time()
                    apply_changes(opened[n].lake, "S", [ch for ch, _ in record_changes(batch, "shard-1")], cps)
                    flushed = bool(flush_every) and (i + 1) % flush_every == 0
                    if flushed:  # all, as the sync always did
                        opened[n].flush_inlined()
                    if n != "no fold" and every and (i + 1) % every == 0:  # as the sync now does: flush, fold
                        f = time.process_time()
                        if not flushed:
                            opened[n].flush_inlined()
                        indexes = small_files.KEYED if n == "fold keyed" else small_files.INDEXES
                        bound = slice_bytes if n == "fold sliced" else small_files.WORN_MOST_BYTES
                        with mock.patch.object(small_files, "WORN_MOST_BYTES", bound):
                            folded = opened[n].fold_small_files("S", indexes=indexes,
                                                                rewrite_worn=n in ("fold", "fold sliced"))
                        if folded:
                            fold_times[n].append(time.process_time() - f)
                            slices[n] += small_files.totals(folded)[2]
                    times[n].append(time.process_time() - t)
                if (i + 1) % window == 0:
                    got = {n: times[n][-window:] for n in names}
                    finds = {}
                    for n in names:  # values of ``n`` written in this window: each is one item (REMOVE: none)
                        lat = []
                        for j in range(5):
                            w = time.perf_counter()
                            opened[n].find("S", f"n={(i + 1) * 10_000 - 1 - 997 * j}")
                            lat.append(time.perf_counter() - w)
                        finds[n] = 1000 * median(lat)
                    row = {"batches": i + 1, **{f"{n} mean_ms": 1000 * sum(v) / window for n, v in got.items()},
                           **{f"{n} median_ms": 1000 * median(v) for n, v in got.items()},
                           **{f"{n} find_ms": v for n, v in finds.items()}}
                    rows.append(row)
                    print(f"sustained apply, batches {i + 2 - window}-{i + 1}: " + ", ".join(
                        f"{n} {row[n + ' median_ms']:.0f} ms/batch median ({row[n + ' mean_ms']:.0f} mean, "
                        f"find {finds[n]:.1f} ms)" for n in names), flush=True)
            for n in names:  # what made a window's mean: the slowest batches
                slow = sorted(range(batches), key=lambda k: -times[n][k])[:3]
                print(f"sustained apply, {n}: slowest batches " + ", ".join(
                    f"#{k + 1} {1000 * times[n][k]:.0f} ms" for k in slow), flush=True)
            for n, ft in fold_times.items():
                if ft:
                    print(f"sustained apply, {n}: {len(ft)} folds, {1000 * median(ft):.0f} ms median, "
                          f"{1000 * max(ft):.0f} ms at most; {slices[n]} worn-file slices", flush=True)
            files = {n: {index.schema: len(small_files.listed(st.lake, index.schema, "S")) for index in small_files.INDEXES}
                     for n, st in opened.items()}
        print(f"sustained apply: {batches} batches of 10 000 records onto {keys:,} items; files at the "
              "end: " + "; ".join(f"{n} {f}" for n, f in files.items()), flush=True)
        if out:
            Path(out).write_text(json.dumps({"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                             "keys": keys, "variants": {n: STEADY[n] for n in names},
                                             "windows": rows, "files": files,
                                             "fold_ms": {n: [1000 * x for x in v] for n, v in fold_times.items()},
                                             "slice_bytes": slice_bytes, "slices": slices,
                                             "batch_ms": {n: [1000 * x for x in v] for n, v in times.items()}}, indent=1))
    finally:
        for store in stores.values():
            shutil.rmtree(store, ignore_errors=True)


def batch_latency(store: str, table: str, changes: int = 20, batches: int = 6) -> list[float]:
    """Small change batches (upserts of random existing keys) applied to an existing store, e.g. the one
    bench_build.py's (d) leaves: what one stream batch costs against an index of that size."""
    from dynadex.store import Change

    rnd = random.Random(3)
    with Store(store, read_only=False) as st:
        names, _ = st.lake.key_spec(table)
        texts = [r[0] for r in st.query(f'SELECT item FROM row_index."{table}" USING SAMPLE 2000 ROWS')[1]]
        times = []
        for b in range(batches):
            batch = []
            for text in rnd.sample(texts, changes):
                item = canonical_item(json.loads(text))
                item["bench_touch"] = {"N": str(b)}
                batch.append(Change({k: item[k] for k in names}, item, 4_000_000_000_000_000 + b, "bench"))
            t = time.perf_counter()
            st.apply(table, batch)
            times.append(time.perf_counter() - t)
        items = st.query(f'SELECT count(*) FROM row_index."{table}"')[1][0][0]
    print(f"batch latency: {changes} changes per batch onto {items:,} items: "
          + ", ".join(f"{x:.2f}s" for x in times) + " (the first pays for opening files)", flush=True)
    return times


def batch_scale(sizes: list[int], changes: list[int], out: str | None, key_prefix: str = "k") -> None:
    """How a small stream batch's time grows with the index: for each table size a fresh store of that many
    published items (one sorted row file in row groups of 4 096), then batches of each change count. A batch
    looks its keys up and deletes their rows from the row and column indexes. "plain" is those statements as
    ``key IN (...)``, which DuckDB 1.5.5 prunes for one key only, so they grow with the table; "narrowed"
    adds the key columns' filters (store/apply/key_pruning.py, decision 0025) at every size, to show where they
    gain. ``key_prefix``: what every key value starts with (``customer#``: values that share their first 8
    bytes, which the key-column filters cannot narrow, decision 0027)."""
    from dynadex.store.apply import key_pruning

    rows = []
    narrowing, above = key_pruning.PRUNE_KEYS, key_pruning.PRUNE_ABOVE_ROWS
    for size in sizes:
        store = apply_store(size, key_prefix)
        try:
            for n in changes:
                for variant in ("narrowed", "plain") if n <= narrowing else ("narrowed",):
                    # "narrowed": the key columns' filters at any table size; "plain": the statements before
                    # store/apply/key_pruning.py (key IN (...) alone)
                    key_pruning.PRUNE_KEYS = narrowing if variant == "narrowed" else 0
                    key_pruning.PRUNE_ABOVE_ROWS = 0
                    times = batch_latency(store, "S", n)
                    rows.append({"items": size, "changes": n, "variant": variant, "median_s": median(times[1:]),
                                 "first_s": times[0], "key_prefix": key_prefix})
                    print(f"scale: {size:,} items, {n} changes, {variant}: median {median(times[1:]):.3f} s",
                          flush=True)
        finally:
            key_pruning.PRUNE_KEYS, key_pruning.PRUNE_ABOVE_ROWS = narrowing, above
            shutil.rmtree(store, ignore_errors=True)
    if out:
        Path(out).write_text(json.dumps({"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                         "rows": rows}, indent=1))


def preload(store: str, table: str, items: int) -> None:
    """Swap in a snapshot of ``items`` generated items that keeps the stream state bootstrap stored, so the
    sync follows the live stream against an index of that size (the generated items are not in the table)."""
    from gen_export import generate

    from dynadex.ingest import ingest_export

    with Store(store) as st:
        state, cps = st.table_state(table), st.checkpoints(table)
    root = tempfile.mkdtemp(prefix="dynadex-preload-")
    # the snapshot is as of the bootstrap's stream start: an older export time is a gap the sync refuses
    as_of = dt.datetime.fromtimestamp(state.stream_start_micros / 1e6, dt.timezone.utc)
    summary = generate(Path(root), items, max(1, items // 62_500),
                       export_time=as_of.strftime("%Y-%m-%dT%H:%M:%S.") + f"{as_of.microsecond // 1000:03d}Z")
    ingest_export(str(summary), table, "pk:S", store=store, workers=2, chunk_target_mb=64,
                  stream_arn=state.stream_arn, stream_start_micros=state.stream_start_micros,
                  checkpoints=[dataclasses.replace(cp, ended=False) for cp in cps.values()])


# What --compare-* sets side by side: (name, environment of the sync process, emulator knobs)
VARIANTS = {
    "now": ("now", {}, {}),
    "hold-off": ("catalog hold off", {"DYNADEX_CATALOG_HOLD": "0"}, {}),
    "emulator-before": ("emulator closing connections, moto dispatch", {}, {"keep_alive": 0, "streams_lane": 0}),
    "botocore-reads": ("GetRecords through botocore", {"DYNADEX_LEAN_GET_RECORDS": "0"}, {}),
    "plain-keys": ("batch key statements not narrowed (decision 0025)", {"DYNADEX_NARROW_KEYS": "0"}, {}),
    "window-0.5": ("the sync's default batch window (0.5 s; the bench's own is 0.1 s)",
                   {"DYNADEX_BATCH_SECONDS": "0.5"}, {}),
    "fixed-batches": ("batches of a fixed size, as before decision 0035", {"DYNADEX_BACKLOG_BATCH_FACTOR": "1"}, {}),
    "before": ("before this round: botocore reads, emulator closing connections, moto dispatch",
               {"DYNADEX_LEAN_GET_RECORDS": "0"}, {"keep_alive": 0, "streams_lane": 0}),
}


def settings_of(variant: str, **fields):
    """The sync settings a variant's environment gives (for the benches that run the sync in this process)."""
    from dynadex.stream.sync import SyncSettings

    saved = dict(os.environ)
    os.environ.update(VARIANTS[variant][1])
    try:
        return SyncSettings(**fields)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def freshness_bench(seconds: float, rate: float, items: int = 0, samples_out: str | None = None,
                    sync_log: str | None = None, shards: int = 2, rollover_seconds: float = 4 * 3600.0,
                    variant: str = "now") -> dict:
    """Lag from a write's ack to the moment a polling reader's query sees it, while ``rate`` writes a
    second go to a table whose stream has ``shards`` open shards rolling over every ``rollover_seconds``;
    ``variant`` names the sync settings and emulator knobs (``VARIANTS``)."""
    from dynadex import bootstrap
    from dynadex.local_aws import running

    label, sync_env, knobs = VARIANTS[variant]
    with running(export_seconds=1, stream_shards=shards, rollover_seconds=rollover_seconds, **knobs) as aws:
        ddb = streamed_table(aws, "Fresh")
        store = tempfile.mkdtemp(prefix="dynadex-fresh-")
        ddb.put_item(TableName="Fresh", Item={"pk": {"S": "seed"}, "w": {"N": "0"}})
        bootstrap.run(ddb, "Fresh", bucket="dynadex-exports", store=store, poll_seconds=0.2)
        if items:
            preload(store, "Fresh", items)
        env = {**os.environ, "DYNADEX_BATCH_SECONDS": "0.1", "DYNADEX_IDLE_MAX_SECONDS": "0.2", **sync_env}
        if sync_log:
            env["DYNADEX_LOG_LEVEL"] = "DEBUG"
        log_file = open(sync_log, "w") if sync_log else subprocess.DEVNULL
        sync = subprocess.Popen([sys.executable, "-m", "dynadex.cli", "sync", "Fresh", "--for", str(seconds + 30),
                                 "--store", store], env=env, stdout=subprocess.DEVNULL, stderr=log_file)
        with Store(store) as reader:  # the sync has caught up with the seed before the clock starts
            deadline = time.time() + 60

            def synced() -> bool:  # by the sync itself: the publish sets synced_at too
                state = reader.table_state("Fresh")
                return bool(state.synced_at) and (state.published_at is None or state.synced_at > state.published_at)
            while not synced() and time.time() < deadline:
                time.sleep(0.1)
        acked: dict[int, float] = {}
        stop = threading.Event()
        per_call = max(1, min(25, int(rate // 40)))  # above 40/s, BatchWriteItem of up to 25 items

        def writer():
            i, t0 = 0, time.time()
            while not stop.is_set():
                ids = range(i + 1, i + per_call + 1)
                if per_call == 1:
                    ddb.put_item(TableName="Fresh", Item={"pk": {"S": f"w{i + 1}"}, "w": {"N": str(i + 1)}})
                else:
                    todo = [{"PutRequest": {"Item": {"pk": {"S": f"w{n}"}, "w": {"N": str(n)}}}} for n in ids]
                    while todo:
                        todo = ddb.batch_write_item(RequestItems={"Fresh": todo}).get("UnprocessedItems", {}).get("Fresh", [])
                now = time.time()
                for n in ids:
                    acked[n] = now
                i += per_call
                pause = t0 + i / rate - time.time()
                if pause > 0:
                    time.sleep(pause)

        th = threading.Thread(target=writer)
        cpu0 = (process_cpu(sync.pid), process_cpu(aws.process.pid), time.process_time(), time.time())
        th.start()
        seen: dict[int, float] = {}
        slow_polls = 0  # reader queries that took over 0.3 s
        deadline = time.time() + seconds
        with Store(store) as reader:
            while time.time() < deadline + 10:
                t_poll = time.time()
                try:
                    top = reader.query('SELECT max(w) FROM "Fresh"')[1][0][0] or 0
                except QueryError as exc:  # a preloaded index has no column w until the first write lands
                    if 'column "w" not found' not in str(exc):
                        raise
                    top = 0
                now = time.time()
                slow_polls += now - t_poll > 0.3
                for i in range(len(seen) + 1, int(top) + 1):
                    seen.setdefault(i, now)
                if time.time() > deadline:
                    stop.set()
                    if len(seen) >= len(acked) and not th.is_alive():
                        break
                time.sleep(0.05)
        th.join()
        cpu1 = (process_cpu(sync.pid), process_cpu(aws.process.pid), time.process_time(), time.time())
        span = cpu1[3] - cpu0[3]
        cores = {name: (after - before) / span
                 for name, before, after in zip(("sync", "emulator", "writer and reader"), cpu0, cpu1)}
        sync.terminate()
        sync.wait()
        lags = sorted(seen[i] - acked[i] for i in seen if i in acked)
        start = min(acked.values())
        written = len(acked) / max(1e-9, max(acked.values()) - start)
        if samples_out:  # for bench/plots.py: (seconds into the run, lag) of every write
            doc = {"date": time.strftime("%Y-%m-%d"), "rate": rate, "seconds": seconds, "index_items": items + 1,
                   "shards": shards, "rollover_seconds": rollover_seconds,
                   "samples": [[round(acked[i] - start, 3), round(seen[i] - acked[i], 3)]
                               for i in sorted(seen) if i in acked]}
            Path(samples_out).write_text(json.dumps(doc))
        out = {"shards": shards, "rollover_seconds": rollover_seconds, "rate": rate, "written_per_second": written,
               "variant": variant, "slow_polls": slow_polls, "cores": cores,
               "writes": len(acked), "seen": len(lags), "p50": lags[len(lags) // 2], "p99": lags[int(len(lags) * 0.99)],
               "max": lags[-1]}
        print(f"freshness: {len(lags)} writes at {rate:g}/s (achieved {written:.0f}/s) over {seconds:g}s, "
              f"{shards} shards rolling every {rollover_seconds:g}s, index of {items + 1:,} items, {label}: lag p50 {out['p50']:.2f}s p99 {out['p99']:.2f}s max {out['max']:.2f}s; "
              f"{slow_polls} reader polls over 0.3 s; cores busy: "
              + ", ".join(f"{name} {used:.2f}" for name, used in cores.items()), flush=True)
        return out


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far (psutil, pinned through Airflow)."""
    import psutil

    used = psutil.Process(pid).cpu_times()
    return used.user + used.system


def freshness_matrix(seconds: float, shard_counts: list[int], rates: list[float], rollover_seconds: float,
                     out: str | None, variants: tuple[str, ...] = ("now",)) -> None:
    """The freshness run for every (shards, rate), one emulator each, side by side in one process; with
    several ``variants`` (``VARIANTS``), each case once with each, one after the other."""
    rows = [freshness_bench(seconds, rate, shards=n, rollover_seconds=rollover_seconds, variant=v)
            for n in shard_counts for rate in rates for v in variants]
    print("| shards | writes/s asked (achieved) | variant | p50 | p99 | max | reader polls over 0.3 s "
          "| cores busy: sync / emulator / writer and reader |")
    for r in rows:
        print(f"| {r['shards']} | {r['rate']:g} ({r['written_per_second']:.0f}) | {VARIANTS[r['variant']][0]} | "
              f"{r['p50']:.2f} s | {r['p99']:.2f} s | {r['max']:.2f} s | {r['slow_polls']} | "
              + " / ".join(f"{used:.2f}" for used in r["cores"].values()) + " |")
    if out:
        Path(out).write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "seconds": seconds, "rows": rows}, indent=1))


class Delayed:
    """A streams client whose every call first waits ``seconds`` (a network round trip; the GIL is released)."""

    def __init__(self, inner, seconds: float):
        self.inner, self.seconds = inner, seconds

    def __getattr__(self, name):
        fn = getattr(self.inner, name)

        def call(**kw):
            time.sleep(self.seconds)
            return fn(**kw)
        return call


def streamed_table(aws, name: str):
    """A table with PITR and a NEW_IMAGE stream on the emulator, its export bucket, and the process pointed
    at it; returns the DynamoDB client."""
    os.environ.update(aws.env())
    ddb = aws.client("dynamodb")
    aws.client("s3").create_bucket(Bucket="dynadex-exports")
    ddb.create_table(TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
                     StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})
    ddb.update_continuous_backups(TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
    return ddb


class Counting:
    """A streams client that counts GetRecords calls per shard iterator's shard."""

    def __init__(self, inner):
        self.inner, self.shard_of, self.calls = inner, {}, {}
        self.lock = threading.Lock()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def get_shard_iterator(self, **kw):
        out = self.inner.get_shard_iterator(**kw)
        with self.lock:
            self.shard_of[out["ShardIterator"]] = kw["ShardId"]
        return out

    def get_records(self, **kw):
        out = self.inner.get_records(**kw)
        with self.lock:
            shard = self.shard_of.get(kw["ShardIterator"], "?")
            self.calls[shard] = self.calls.get(shard, 0) + 1
            if out.get("NextShardIterator"):
                self.shard_of[out["NextShardIterator"]] = shard
        return out


# DynamoDB Streams: GetRecords costs one streams read request unit; $0.02 per 100,000 in us-east-1
# (aws.amazon.com/dynamodb/pricing/on-demand, "Change data capture for DynamoDB Streams"; the first 2.5 M
# a month are free, not counted here)
PRICE_PER_READ_UNIT = 0.02 / 100_000


def idle_bench(seconds: float, shards: int, ceilings: list[float]) -> None:
    """GetRecords calls per idle shard per hour, and their monthly cost per 100 shards, per polling ceiling."""
    from dynadex import bootstrap
    from dynadex.aws import client
    from dynadex.local_aws import running
    from dynadex.stream.sync import SyncSettings, sync_table

    with running(export_seconds=1, export_files=2, stream_shards=shards) as aws:
        ddb = streamed_table(aws, "Idle")
        ddb.put_item(TableName="Idle", Item={"pk": {"S": "seed"}})
        store = tempfile.mkdtemp(prefix="dynadex-idle-")
        bootstrap.run(ddb, "Idle", bucket="dynadex-exports", store=store, poll_seconds=0.2)
        for ceiling in ceilings:
            streams = Counting(client("dynamodbstreams"))
            with Store(store, read_only=False) as st:
                sync_table(st, "Idle", client("dynamodb"), streams, client("s3"), seconds=seconds,
                           settings=SyncSettings(idle_max_seconds=ceiling))
            per_hour = sum(streams.calls.values()) / max(1, len(streams.calls)) * 3600 / seconds
            monthly = per_hour * 24 * 30 * 100 * PRICE_PER_READ_UNIT
            print(f"idle: {shards} shards, ceiling {ceiling:g} s (DYNADEX_IDLE_MAX_SECONDS): "
                  f"{per_hour:,.0f} GetRecords per idle shard per hour, ${monthly:,.2f} a month per 100 shards "
                  f"(worst case for a first write: {ceiling:g} s)")


def pass_bench(shard_counts: list[int], readers: list[int], latency_ms: float, passes: int = 5,
               variants: tuple[str, ...] = ("now",)) -> None:
    from statistics import median

    from dynadex import bootstrap
    from dynadex.aws import client
    from dynadex.local_aws import running
    from dynadex.stream.readers import ShardReaders
    from dynadex.stream.sync import TableSync

    for n, variant in [(n, v) for n in shard_counts for v in variants]:
        label, _, knobs = VARIANTS[variant]
        with running(export_seconds=1, export_files=2, stream_shards=n, **knobs) as aws:
            ddb = streamed_table(aws, "Wide")
            store = tempfile.mkdtemp(prefix="dynadex-passes-")
            ddb.put_item(TableName="Wide", Item={"pk": {"S": "seed"}})
            bootstrap.run(ddb, "Wide", bucket="dynadex-exports", store=store, poll_seconds=0.2)
            for i in range(2 * n):  # a small backlog, about 2 records per shard
                ddb.put_item(TableName="Wide", Item={"pk": {"S": f"k{i}"}, "n": {"N": str(i)}})
            streams = client("dynamodbstreams")
            if latency_ms:
                streams = Delayed(streams, latency_ms / 1000)
            with Store(store) as st:
                for k in readers:
                    sync = TableSync(st, "Wide", client("dynamodb"), streams, None, settings_of(variant, shard_readers=k))
                    sync.refresh()
                    with ShardReaders(k) as pool:
                        times, cpu = [], []
                        for _ in range(passes + 1):
                            readable = sync.readable()
                            t, c = time.perf_counter(), time.process_time()
                            pool.read_pass(sync.read, readable)
                            times.append(time.perf_counter() - t)
                            cpu.append(time.process_time() - c)
                    print(f"passes: {n:4d} shards, readers {k:3d}, latency {latency_ms:g} ms: first pass "
                          f"{times[0] * 1000:7.1f} ms, pass at the tip median {median(times[1:]) * 1000:7.1f} ms "
                          f"({median(times[1:]) * 1000 / n:.2f} ms per shard; the sync's own CPU {median(cpu[1:]) * 1000 / n:.2f} ms "
                          f"per shard, the rest is the emulator); {label}", flush=True)


def call_cpu_bench(calls: int = 300, records: int = 40) -> None:
    """The sync process's CPU per GetRecords call, lean (``stream/get_records.py``) against botocore's, on an
    empty shard and on pages of ``records`` records, alternating in one process against one emulator."""
    from dynadex.aws import client
    from dynadex.local_aws import running
    from dynadex.stream.get_records import lean

    with running(stream_shards=2) as aws:
        ddb = streamed_table(aws, "Calls")
        for i in range(records):
            ddb.put_item(TableName="Calls", Item={"pk": {"S": f"k{i}"}, "n": {"N": str(i)}, "b": {"B": b"\x00raw"},
                                                  "m": {"M": {"s": {"S": "x" * 40}, "l": {"L": [{"N": "1.5"}]}}}})
        arn = ddb.describe_table(TableName="Calls")["Table"]["LatestStreamArn"]
        streams = client("dynamodbstreams")
        shards = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
        ways = {"botocore": streams.get_records, "lean": lean(streams)}
        for kind in ("empty", "records"):
            its = []
            for s in shards:
                it = streams.get_shard_iterator(StreamArn=arn, ShardId=s["ShardId"], ShardIteratorType=(
                    "LATEST" if kind == "empty" else "TRIM_HORIZON"))["ShardIterator"]
                its.append((it, len(streams.get_records(ShardIterator=it, Limit=records)["Records"])))
            it, got = max(its, key=lambda x: x[1]) if kind == "records" else its[0]
            cpu = {name: [] for name in ways}
            for _ in range(3):
                for name, call in ways.items():
                    c = time.process_time()
                    for _ in range(calls):
                        call(ShardIterator=it, Limit=records)
                    cpu[name].append((time.process_time() - c) / calls * 1000)
            print(f"GetRecords CPU per call, {kind} ({got} records): " + ", ".join(
                f"{name} {min(v):.2f} ms" for name, v in cpu.items())
                + f" ({min(cpu['botocore']) / min(cpu['lean']):.1f}x)", flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--keys", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=3, help="apply: runs of each path (old and new, alternately)")
    ap.add_argument("--apply-only", action="store_true", help="only the apply comparison")
    ap.add_argument("--batch-sizes", default="10000",
                    help="apply: batch sizes to compare, e.g. 10000,50000 (each with every --paths)")
    ap.add_argument("--paths", default="reference,fast",
                    help="apply: the paths to compare, the first the baseline: " + "; ".join(
                        f"{k}: {v}" for k, v in APPLY_PATHS.items()))
    ap.add_argument("--wire", action="store_true",
                    help="apply: the fast path gets records as the lean GetRecords hands them (epoch times, base64)")
    ap.add_argument("--catch-up", type=int, default=0,
                    help="only the catch-up: a backlog of this many replayed records to lag 0 (10000000: issue 29's)")
    ap.add_argument("--shards-for-catch-up", type=int, default=4, help="shards of the --catch-up backlog")
    ap.add_argument("--variants", default="before,now",
                    help="with --catch-up: noahead (no read/commit-ahead), before (images shaped in Python), "
                         "onethread (large batches committed on one DuckDB thread), now, store2 (the store on two threads)")
    ap.add_argument("--backlog", type=int,
                    help="only the backlog through the sync's loop: this many records onto --keys items, per --factors")
    ap.add_argument("--ahead", default="1",
                    help="with --backlog: commit_ahead values to compare, e.g. 0,1 (decision 0042)")
    ap.add_argument("--factors", default="1,10",
                    help="with --backlog: DYNADEX_BACKLOG_BATCH_FACTOR values to compare (1: fixed batches, the old way)")
    ap.add_argument("--steady-batches", type=int,
                    help="only the sustained apply: this many 10 000-record batches onto --keys items, folds on and off")
    ap.add_argument("--steady-out", help="with --steady-batches: write the windows here (JSON)")
    ap.add_argument("--steady-compare", default="fold,no fold",
                    help="with --steady-batches: the variants, side by side: " + "; ".join(f"{k}: {v}" for k, v in STEADY.items()))
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--rate", type=float, default=20)
    ap.add_argument("--index-items", type=int, default=0, help="freshness against an index preloaded with this many items")
    ap.add_argument("--batch-store", help="only measure small-batch latency on this existing store (e.g. bench_build's store2)")
    ap.add_argument("--batch-table", default="Bench")
    ap.add_argument("--batch-scale", help="small-batch latency against fresh stores of these sizes, e.g. 50000,1000000")
    ap.add_argument("--batch-changes", default="20,500", help="with --batch-scale: changes per batch to compare")
    ap.add_argument("--batch-out", help="with --batch-scale: write the rows here (JSON)")
    ap.add_argument("--batch-key-prefix", default="k",
                    help="with --batch-scale: what every key value starts with, e.g. customer# (shared first bytes)")
    ap.add_argument("--shards", help="only measure pass times for streams of these shard counts, e.g. 4,32,128,256")
    ap.add_argument("--readers", default="1,16", help="with --shards: the pool sizes to compare (1: sequential)")
    ap.add_argument("--latency-ms", type=float, default=0.0, help="with --shards: simulated round trip per stream call")
    ap.add_argument("--idle", action="store_true", help="only the idle-polling cost: GetRecords per idle shard")
    ap.add_argument("--idle-ceilings", default="1,5,30", help="with --idle: polling ceilings to compare (seconds)")
    ap.add_argument("--skip-apply", action="store_true", help="only the freshness run")
    ap.add_argument("--sync-log", help="the sync's DEBUG log goes here (to see what a stall was)")
    ap.add_argument("--fresh-shards", help="freshness for each of these shard counts (e.g. 4,32,128) and each --rates")
    ap.add_argument("--rates", default="20,1000", help="with --fresh-shards: writes per second to compare")
    ap.add_argument("--rollover-seconds", type=float, default=20.0, help="with --fresh-shards: shard lifetime")
    ap.add_argument("--matrix-out", help="with --fresh-shards: write the rows here (JSON)")
    ap.add_argument("--stream-shards", type=int,
                    help="the single freshness run on this many shards rolling over every --rollover-seconds")
    ap.add_argument("--compare", default="now",
                    help="with --fresh-shards, --shards or the single freshness run: variants to run each case with, side by side: "
                         + ", ".join(f"{k} ({v[0]})" for k, v in VARIANTS.items()))
    ap.add_argument("--samples-out", help="write every write's lag of the freshness run here (JSON, for bench/plots.py)")
    ap.add_argument("--call-cpu", action="store_true", help="only the CPU per GetRecords, lean against botocore")
    a = ap.parse_args()
    if a.call_cpu:
        call_cpu_bench()
    elif a.catch_up:
        catch_up_bench(a.catch_up, a.keys, a.shards_for_catch_up, a.variants.split(","))
    elif a.backlog:
        backlog_bench(a.backlog, a.keys, [int(x) for x in a.factors.split(",")], rounds=a.rounds,
                      ahead=tuple(bool(int(x)) for x in a.ahead.split(",")))
    elif a.steady_batches:
        steady_apply(a.steady_batches, a.keys, out=a.steady_out, variants=tuple(a.steady_compare.split(",")))
    elif a.idle:
        idle_bench(a.seconds, 4, [float(x) for x in a.idle_ceilings.split(",")])
    elif a.shards:
        pass_bench([int(x) for x in a.shards.split(",")], [int(x) for x in a.readers.split(",")], a.latency_ms,
                   variants=tuple(a.compare.split(",")))
    elif a.fresh_shards:
        freshness_matrix(a.seconds, [int(x) for x in a.fresh_shards.split(",")], [float(x) for x in a.rates.split(",")],
                         a.rollover_seconds, a.matrix_out, tuple(a.compare.split(",")))
    elif a.batch_store:
        batch_latency(a.batch_store, a.batch_table)
    elif a.batch_scale:
        batch_scale([int(x) for x in a.batch_scale.split(",")], [int(x) for x in a.batch_changes.split(",")],
                    a.batch_out, a.batch_key_prefix)
    else:
        if not a.skip_apply:
            apply_bench(a.records, a.keys, a.rounds, wire=a.wire, sizes=tuple(int(x) for x in a.batch_sizes.split(",")),
                        paths=tuple(a.paths.split(",")))
        if not a.apply_only:
            for variant in a.compare.split(","):  # each on its own fresh table, store and preload, one by one
                freshness_bench(a.seconds, a.rate, a.index_items, a.samples_out, a.sync_log, variant=variant,
                                **({"shards": a.stream_shards, "rollover_seconds": a.rollover_seconds}
                                   if a.stream_shards else {}))
