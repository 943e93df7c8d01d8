"""Which tables share a ``sync`` task: busy tables get one each, quiet ones are packed into groups, and a table
configured with shard groups gets one task per group.

Invariants:

* Every (store, table) a run follows is in exactly one ``SyncGroup``, or, when it has ``n > 1`` shard groups
  (``shard_counts``: the Variable ``dynadex_shard_groups`` or the run's ``shard_groups``), in ``n`` of them,
  one per group ``i/n``, each a task of its own that never joins the quiet shared task (decision 0034,
  amendment). A group is one mapped ``sync`` task (``sync_operator.StreamSyncOperator``), which holds a
  worker slot only while one of its tables is read (a shard-group task: for its whole window).
* The shard-group tasks of one table share one window, ``ends_at``, set when the run is planned: they end
  together, so a later run (one active at a time) may change the count. A group task retried or cleared
  late ends at that window too (one pass when it is past).
* A table whose shard group met a gap in the last run (its health says ``needs_recovery``; that run's health
  only, ``latest_health``) is followed whole for one run: the whole sync recovers gaps, which one group of
  several may not (``GapInGroup``); the run after maps its groups again.
* A table whose last run read more than ``DYNADEX_BUSY_RECORDS_PER_SECOND`` records a second (that run's
  ``report`` health, XCom ``health``) is busy: alone in its group, so its lag does not depend on the others.
  The others are packed by store, at most ``DYNADEX_SYNC_GROUP_TABLES`` a group. A table no run has
  reported on yet is taken as quiet.
* Only typed contracts travel through XCom: ``SyncGroup`` (its ``SyncTarget``s) in.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace

from dynadex import settings
from dynadex.stream.shard_groups import ShardGroup
from dynadex_airflow import shard_counts
from dynadex_airflow.sync_tasks import SyncTarget, targets

log = logging.getLogger("dynadex.sync")


@dataclass(frozen=True)
class SyncGroup:
    """The tables one ``sync`` task follows, for ``run_seconds``; ``busy``: a busy table alone. A shard-group
    task (one target whose ``shard_group`` is one of several) follows until ``ends_at`` (epoch seconds), the
    window every group of its table shares."""

    targets: tuple[SyncTarget, ...]
    busy: bool = False
    ends_at: float | None = None

    @property
    def run_seconds(self) -> float:
        return max(t.run_seconds for t in self.targets)

    @property
    def aws_conn_id(self) -> str:
        return self.targets[0].aws_conn_id

    @property
    def shard_group(self) -> ShardGroup | None:
        """The shard group this task reads, when it is one of several of its table's; None otherwise."""
        if len(self.targets) == 1 and not self.targets[0].shard_group.whole:
            return self.targets[0].shard_group
        return None

    @property
    def label(self) -> str:
        if len(self.targets) == 1:
            return self.targets[0].label
        stores = {t.store or "default store" for t in self.targets}
        return f"{len(self.targets)} tables · {stores.pop() if len(stores) == 1 else f'{len(stores)} stores'}"

    def to_dict(self) -> dict:
        return {"targets": [t.to_dict() for t in self.targets], "busy": self.busy, "ends_at": self.ends_at,
                "label": self.label}

    @classmethod
    def from_dict(cls, d: dict) -> "SyncGroup":
        ends_at = d.get("ends_at")
        return cls(tuple(SyncTarget.from_dict(t) for t in d["targets"]), bool(d.get("busy")),
                   None if ends_at is None else float(ends_at))


def busy_tables(health: list | None, above: float | None = None) -> set:
    """(store, table) of each table a run's health says read more than ``above`` records a second."""
    above = settings.BUSY_RECORDS_PER_SECOND.read() if above is None else above
    out = set()
    for h in _entries(health):
        seconds = h.get("followed_seconds")
        if seconds and h.get("records_read", 0) / seconds > above:
            out.add((h.get("store_given"), h["table"]))
    return out


def _entries(health) -> list[dict]:
    """The per-table health dicts in what ``xcom_pull`` returned: one run's list, or (Airflow 3 with
    ``include_prior_dates``) a list of several runs' lists, nested as it comes; anything else is left out."""
    if isinstance(health, dict):
        return [health]
    if isinstance(health, (list, tuple)):
        return [h for item in health for h in _entries(item)]
    return []


def recovering(health: list | None) -> set:
    """(store, table) of each table one of whose shard groups met a gap in the run ``health`` is from."""
    return {(h.get("store_given"), h["table"]) for h in _entries(health) if h.get("needs_recovery")}


def pack(work: list[SyncTarget], busy: set, size: int | None = None, counts: dict | None = None,
         now: float | None = None, unsplit: set = frozenset()) -> list[SyncGroup]:
    """A table with ``counts[table] > 1`` shard groups (and not in ``unsplit``, (store, table) followed whole this
    run): one task per group, sharing one window; busy tables alone; the others by store, at most ``size``
    (``DYNADEX_SYNC_GROUP_TABLES``) a group."""
    size = max(1, settings.SYNC_GROUP_TABLES.read() if size is None else size)
    now = time.time() if now is None else now

    def count(t: SyncTarget) -> int:
        return 1 if (t.store, t.table) in unsplit else (counts or {}).get(t.table, 1)

    groups = []
    for t in work:
        n = count(t)
        if n > 1:
            groups += [SyncGroup((replace(t, shard_group=ShardGroup(i, n)),), busy=True, ends_at=now + t.run_seconds)
                       for i in range(n)]
    whole = [t for t in work if count(t) <= 1]
    groups += [SyncGroup((t,), busy=True) for t in whole if (t.store, t.table) in busy]
    quiet: dict = {}
    for t in whole:
        if (t.store, t.table) not in busy:
            quiet.setdefault(t.store, []).append(t)
    for same_store in quiet.values():
        groups += [SyncGroup(tuple(same_store[i:i + size])) for i in range(0, len(same_store), size)]
    return groups


def latest_health(ti) -> list:
    """The health the latest earlier run's ``report`` pushed, that run's only (``include_prior_dates`` alone
    answers every kept run's): a table busy or a gap met a week ago says nothing of now (empty when there is
    none)."""
    try:
        return ti.xcom_pull(task_ids="report", key="health", include_prior_dates=True, map_indexes=-1) or []
    except Exception as exc:  # noqa: BLE001 - without it no table is taken as recovering: its groups meet the gap again
        log.info("no health of the last run (%s): every table is taken as quiet, none as recovering", exc)
        return []


def plan(params: dict, conf: dict, ti=None) -> list[dict]:
    """The groups this run's ``sync`` maps over (``SyncGroup`` dicts)."""
    work = [SyncTarget.from_dict(t) for t in targets(params, conf)]
    last = latest_health(ti) if ti is not None else []
    busy = busy_tables(last)  # busy in the last run: one busy a week ago is quiet now (it is probed)
    counts = shard_counts.counts(params, conf)
    again = recovering(last)
    for t in work:
        if counts.get(t.table, 1) > 1 and (t.store, t.table) in again:
            log.warning("%s: a shard group met a gap in the last run: followed whole this run (it recovers), in "
                        "%d shard groups again from the next", t.label, counts[t.table])
    groups = pack(work, busy, counts=counts, unsplit=again)
    for g in groups:
        log.info("sync task %s: %s%s", g.label, ", ".join(t.table for t in g.targets[:8]),
                 " (shard group: a task of its own)" if g.shard_group else " (busy: a task of its own)" if g.busy
                 else "")
    return [g.to_dict() for g in groups]
