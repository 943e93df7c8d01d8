"""Which tables share a ``sync`` task: busy tables get one each, quiet ones are packed into groups.

Invariants:

* Every (store, table) a run follows is in exactly one ``SyncGroup``; a group is one mapped ``sync`` task
  (``sync_operator.StreamSyncOperator``), which holds a worker slot only while one of its tables is read.
* A table whose last run read more than ``DYNADEX_BUSY_RECORDS_PER_SECOND`` records a second (that run's
  ``report`` health, XCom ``health``) is busy: alone in its group, so its lag does not depend on the others.
  The others are packed by store, at most ``DYNADEX_SYNC_GROUP_TABLES`` a group. A table no run has
  reported on yet is taken as quiet.
* Only typed contracts travel through XCom: ``SyncGroup`` (its ``SyncTarget``s) in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from dynadex import settings
from dynadex_airflow.sync_tasks import SyncTarget, targets

log = logging.getLogger("dynadex.sync")


@dataclass(frozen=True)
class SyncGroup:
    """The tables one ``sync`` task follows, for ``run_seconds``; ``busy``: a busy table alone."""

    targets: tuple[SyncTarget, ...]
    busy: bool = False

    @property
    def run_seconds(self) -> float:
        return max(t.run_seconds for t in self.targets)

    @property
    def aws_conn_id(self) -> str:
        return self.targets[0].aws_conn_id

    @property
    def label(self) -> str:
        if len(self.targets) == 1:
            return self.targets[0].label
        stores = {t.store or "default store" for t in self.targets}
        return f"{len(self.targets)} tables · {stores.pop() if len(stores) == 1 else f'{len(stores)} stores'}"

    def to_dict(self) -> dict:
        return {"targets": [t.to_dict() for t in self.targets], "busy": self.busy, "label": self.label}

    @classmethod
    def from_dict(cls, d: dict) -> "SyncGroup":
        return cls(tuple(SyncTarget.from_dict(t) for t in d["targets"]), bool(d.get("busy")))


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


def pack(work: list[SyncTarget], busy: set, size: int | None = None) -> list[SyncGroup]:
    """Busy tables alone; the others by store, at most ``size`` (``DYNADEX_SYNC_GROUP_TABLES``) a group."""
    size = max(1, settings.SYNC_GROUP_TABLES.read() if size is None else size)
    groups = [SyncGroup((t,), busy=True) for t in work if (t.store, t.table) in busy]
    quiet: dict = {}
    for t in work:
        if (t.store, t.table) not in busy:
            quiet.setdefault(t.store, []).append(t)
    for same_store in quiet.values():
        groups += [SyncGroup(tuple(same_store[i:i + size])) for i in range(0, len(same_store), size)]
    return groups


def previous_health(ti) -> list:
    """The health the last run's ``report`` pushed (empty when there is none or it cannot be read)."""
    try:
        return ti.xcom_pull(task_ids="report", key="health", include_prior_dates=True) or []
    except Exception as exc:  # noqa: BLE001 - without it every table is taken as quiet: still followed
        log.info("no health of an earlier run (%s): every table is taken as quiet", exc)
        return []


def plan(params: dict, conf: dict, ti=None) -> list[dict]:
    """The groups this run's ``sync`` maps over (``SyncGroup`` dicts)."""
    work = [SyncTarget.from_dict(t) for t in targets(params, conf)]
    busy = busy_tables(previous_health(ti)) if ti is not None else set()
    groups = pack(work, busy)
    for g in groups:
        log.info("sync task %s: %s%s", g.label, ", ".join(t.table for t in g.targets[:8]),
                 " (busy: a task of its own)" if g.busy else "")
    return [g.to_dict() for g in groups]
