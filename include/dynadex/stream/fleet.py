"""Many tables followed by one process: a table is read while it has news and probed while it is quiet.

``follow`` is what one ``sync`` task of the stream DAG runs for its group of tables (and what the quiet-tables
bench runs without Airflow); when every table of the group is quiet it returns, and the caller waits
elsewhere (the Airflow trigger) with the ``QuietTable`` of each: no thread, no store, no process.

Invariants:

* A table is either synced (one thread running ``sync_table`` with ``idle_end_seconds``) or probed (``probe.TableProbe`` from its checkpoints as last stored), never both at once: a probe is only
  ever built from the checkpoints a finished sync left, so it never asks about records the sync has
  committed, and it never commits anything itself.
* Every batch commits through ``sync_table``, with its shards' checkpoints, in one transaction: exactly once
  is the sync's, unchanged (invariant 2). The tables of one store share one open ``Store`` (``SharedStore``:
  one call at a time, as the store's writer lock already made its writes), so a group opens each store
  once, not once per table (opening one costs about a second of CPU here, and its memory); batches of
  several tables that are ready at once share one commit (group commit, decision 0039).
* ``follow`` returns when ``until`` passes, when ``should_stop()`` says so (asked every
  ``stop_check_seconds``; running syncs are asked to stop too and end at a batch boundary), or, with
  ``quiet_ends``, as soon as no table is being synced and no probe has news. Every sync it started has
  ended by then; a table whose gap needs a fresh bootstrap is reported (``needs_bootstrap``) and left out;
  any other error ends the group after the others stopped, and is raised.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Callable

from dynadex import settings as declared
from dynadex.store import Store
from dynadex.stream.errors import NeedsBootstrap
from dynadex.stream.probe import QuietTable, TableProbe
from dynadex.stream.shared_store import SharedStore
from dynadex.stream.sync import SyncSettings, sync_table

log = logging.getLogger("dynadex.sync")

Key = tuple  # (store or None, table)
PROBE_THREADS = 8


@dataclass
class FleetSettings:
    """How a group of tables is followed; each field's default is the ``dynadex.settings`` declaration named."""

    quiet_after_seconds: float = field(default_factory=declared.QUIET_AFTER_SECONDS.read)
    poll_seconds: float = field(default_factory=declared.QUIET_POLL_SECONDS.read)
    describe_seconds: float = field(default_factory=declared.QUIET_DESCRIBE_SECONDS.read)
    sync: SyncSettings = field(default_factory=SyncSettings)
    group_commit: bool = True  # batches of a store's tables ready at once share a commit (decision 0039)


@dataclass
class FleetResult:
    """Each table's sync figures (summed over its syncs), and each table as it is left: quiet, probe-able."""

    stats: dict = field(default_factory=dict)  # Key -> the sync's stats dict, plus "syncs" (runs started)
    quiet: list = field(default_factory=list)  # QuietTable of every table still followed
    stopped: bool = False  # should_stop() said so


def merge(into: dict, stats: dict) -> dict:
    """Add a sync's figures to a table's totals (numbers add up, lists extend, the last flags win)."""
    for k, v in stats.items():
        if isinstance(v, bool) or not isinstance(v, (int, float, list)):
            into[k] = v
        elif isinstance(v, list):
            into[k] = [*into.get(k, []), *v]
        else:
            into[k] = into.get(k, 0) + v
    return into


def quiet_tables(keys, locate: Callable, streams, overlap_seconds: float) -> list[QuietTable]:
    """Each table's ``QuietTable`` as its store holds it now (one read-only open per store)."""
    out = []
    for store in dict.fromkeys(k[0] for k in keys):
        with Store(locate(store)) as st:
            held = st.followed([t for s, t in keys if s == store])
        with ThreadPoolExecutor(PROBE_THREADS) as describing:  # one DescribeStream per table
            out += describing.map(lambda t: QuietTable.from_state(store, held[t][0], held[t][1], overlap_seconds,
                                                                   streams), list(held))
    return out


def catch_up(keys, locate: Callable, ddb, streams, s3, settings: SyncSettings | None = None) -> dict:
    """One sync to the tip of each table (``sync_table`` with no window): applies what there is and notes the
    table caught up, so a quiet table's applied-through stays fresh. Key -> stats (or needs_bootstrap)."""
    out = {}
    settings = settings or SyncSettings()
    for store in dict.fromkeys(k[0] for k in keys):
        with Store(locate(store), read_only=False, threads=settings.threads or None) as st:
            for s, table in keys:
                if s != store:
                    continue
                try:
                    out[(s, table)] = sync_table(st, table, ddb, streams, s3, seconds=0, settings=settings)
                except NeedsBootstrap as exc:
                    out[(s, table)] = {"needs_bootstrap": str(exc)}
    return out


class Fleet:
    def __init__(self, tables: list[QuietTable], locate: Callable, ddb, streams, s3, settings: FleetSettings):
        self.locate, self.ddb, self.streams, self.s3, self.settings = locate, ddb, streams, s3, settings
        self.probes = {q.key: self._probe(q) for q in tables}
        self.stop = threading.Event()
        self.result = FleetResult()
        self.stores: dict = {}  # store -> SharedStore, opened at a table's first sync, closed when follow ends
        self.opening = threading.Lock()

    def _store(self, store):
        with self.opening:
            if store not in self.stores:
                self.stores[store] = SharedStore(Store(self.locate(store), read_only=False,
                                                       threads=self.settings.sync.threads or None),
                                                 flush_every=self.settings.sync.flush_every_batches,
                                                 group_commit=self.settings.group_commit)
                try:  # every table's state and checkpoints in two statements, for their syncs' first reads
                    self.stores[store].warm([t for s, t in self.probes if s == store])
                except Exception as exc:  # noqa: BLE001 - each sync then reads its own, and meets the error there
                    log.warning("could not read the group's tables at once (%s); each reads its own", exc)
            return self.stores[store]

    def close(self) -> None:
        for shared in self.stores.values():
            shared.close()
        self.stores = {}

    def _probe(self, q: QuietTable) -> TableProbe:
        return TableProbe(q, self.streams, describe_seconds=self.settings.describe_seconds)

    def _sync_one(self, key: Key, until: float):
        store, table = key
        sync_settings = replace(self.settings.sync, idle_end_seconds=self.settings.quiet_after_seconds,
                                refresh_seconds=max(self.settings.sync.refresh_seconds, self.settings.describe_seconds))
        st = self._store(store)
        try:
            stats = sync_table(st, table, self.ddb, self.streams, self.s3, seconds=max(0.01, until - time.time()),
                               settings=sync_settings, should_stop=self.stop.is_set)
        except NeedsBootstrap as exc:
            return {"needs_bootstrap": str(exc)}, None
        return stats, QuietTable.from_store(st, store, table, sync_settings.overlap_seconds, self.streams)

    def follow(self, until: float, *, should_stop=None, quiet_ends: bool = True) -> FleetResult:
        active: dict[Key, Future] = {}
        errors: list[tuple[Key, BaseException]] = []
        last_stop_check = time.time()
        with ThreadPoolExecutor(max(1, len(self.probes)), thread_name_prefix="dynadex-table") as syncs, \
                ThreadPoolExecutor(PROBE_THREADS, thread_name_prefix="dynadex-probe") as probing:
            while True:
                for key, fut in list(active.items()):
                    if fut.done():
                        del active[key]
                        self._finished(key, fut, errors)
                now = time.time()
                if not self.stop.is_set():
                    if errors or now >= until:
                        self.stop.set()
                    elif should_stop is not None and now - last_stop_check >= self.settings.sync.stop_check_seconds:
                        last_stop_check = now
                        if asked(should_stop):
                            log.info("ending this group's run early: another run is waiting")
                            self.result.stopped = True
                            self.stop.set()
                if self.stop.is_set():
                    if not active:
                        break
                    self.stop.wait(0.05)
                    continue
                idle = [(k, p) for k, p in self.probes.items() if k not in active]
                for (key, probe), why in zip(idle, probing.map(lambda kp: _news(kp[1]), idle)):
                    if isinstance(why, BaseException):
                        errors.append((key, why))
                    elif why:
                        log.info("%s", why)
                        self.result.stats.setdefault(key, {})["syncs"] = self.result.stats.get(key, {}).get("syncs", 0) + 1
                        active[key] = syncs.submit(self._sync_one, key, until)
                if quiet_ends and not active and not errors:
                    break
                self.stop.wait(self.settings.poll_seconds)
        if errors:
            for key, exc in errors[1:]:
                log.error("%s: %s", key[1], exc)
            key, exc = errors[0]
            raise exc
        self.result.quiet = [p.quiet for p in self.probes.values()]
        return self.result

    def _finished(self, key: Key, fut: Future, errors: list) -> None:
        try:
            stats, quiet = fut.result()
        except BaseException as exc:  # noqa: BLE001 - raised by follow once the others have stopped
            errors.append((key, exc))
            return
        merge(self.result.stats.setdefault(key, {}), stats)
        if quiet is None:  # needs a fresh bootstrap: reported, no longer followed here
            log.error("%s: %s", key[1], stats.get("needs_bootstrap"))
            del self.probes[key]
        else:
            self.probes[key] = self._probe(quiet)


def _news(probe: TableProbe):
    try:
        return probe.news()
    except Exception as exc:  # noqa: BLE001 - handed to follow, which stops the group and raises it
        return exc


def asked(should_stop) -> bool:
    try:
        return bool(should_stop())
    except Exception as exc:  # noqa: BLE001 - a failed question is not a reason to stop following
        log.warning("could not tell whether this run should end early (%s); going on", exc)
        return False


def follow(tables: list[QuietTable], locate: Callable, ddb, streams, s3, *, until: float,
           settings: FleetSettings | None = None, should_stop=None, quiet_ends: bool = True) -> FleetResult:
    """Follow ``tables`` (probed first; a table with news is synced until quiet) until ``until``, a stop, or,
    with ``quiet_ends``, until all are quiet. ``locate(store)`` names the store to open for a table's sync."""
    fleet = Fleet(tables, locate, ddb, streams, s3, settings or FleetSettings())
    try:
        return fleet.follow(until, should_stop=should_stop, quiet_ends=quiet_ends)
    finally:
        fleet.close()
