"""Bodies of the dynamodb_stream_sync tasks around the sync itself: list the followed tables, a table's
health, gather what the sync tasks report (the sync task is ``sync_operator.StreamSyncOperator``, which
follows a group of tables: ``sync_groups``).

Invariants:

* ``targets`` lists every (store, table) a run follows: a run with a store
  (a triggered one) that store, a run without (the continuous ones) every
  store an ingest has published into (``stores``), or just ``table_name``.
  ``sync_groups.plan`` packs them into the mapped ``sync`` tasks: a busy
  table alone, quiet ones of a store together (decision 0037).
* Tasks of different tables of one store commit into one DuckLake catalog;
  each batch and its checkpoints stay one transaction, which the store runs
  again when another writer's commit got in the way (docs/decisions 0009,
  0013), so none is lost.
* Between tasks only typed contracts travel through XCom: ``SyncTarget``
  in, ``SyncOutcome`` out (``to_dict`` / ``from_dict``).
* A run an ingest's handover triggers (conf ``handover``) follows every
  followed store, the handed-over one included: never just the new table,
  which would leave the others unfollowed for a whole run.
* A sync task ends early, between batches, once another run of this
  DAG is queued behind its run (``waiting_run``): with one active run at a
  time, that run starts only when this one ends.

Each table's health is logged as one line and returned: store, table, applied
changes, lag (as ``dynadex status`` means it: how far behind the table the
index was when the run last looked; 0 at the tip), shards open/ended,
recoveries. ``gather`` collects them (XCom ``health``) with the tables whose
gap cannot be recovered by incremental export (``needs_bootstrap``), so the
DAG can start a fresh bootstrap for them.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

from dynadex.store import Store
from dynadex.store.errors import StoreError
from dynadex.store.reads import lag
from dynadex.stream.shard_groups import WHOLE, ShardGroup
from dynadex_airflow import stores as followed
from dynadex_airflow.dag_defaults import sync_run_seconds
from dynadex_airflow.hooks import store_location

log = logging.getLogger("dynadex.sync")


def _given(conf: dict, params: dict, name: str):
    for source in (conf, params):
        if source.get(name) not in (None, "", "None"):
            return source[name]
    return None


def tables_to_sync(store: str | None, table: str | None, aws_conn_id: str | None = None) -> list[str]:
    if table:
        return [table]
    try:
        with Store(store_location(store, aws_conn_id)) as st:
            return [t for t in st.tables() if st.table_state(t).stream_arn]
    except StoreError as exc:  # a followed store that has no catalog (yet, or any more)
        log.info("store %s: %s; nothing to sync there", store or "(default)", exc)
        return []


def health(st: Store, store: str | None, table: str, stats: dict) -> dict:
    state = st.table_state(table)
    cps = st.checkpoints(table)
    return {
        "store": st.location.display if store else f"{st.location.display} (default)",
        "table": table,
        "applied": stats.get("applied", 0),
        "records_read": stats.get("records", 0),
        "skipped_old": stats.get("skipped_old", 0),
        "ttl_deletes": stats.get("ttl_deletes", 0),
        "batches": stats.get("batches", 0),
        "caught_up": bool(stats.get("caught_up")),
        "stopped_early": bool(stats.get("stopped_early")),  # another run was waiting: this one ended early
        **lag(state),
        "shards": len(cps),
        "shards_open": sum(1 for c in cps.values() if not c.ended),
        "recoveries": stats.get("recoveries", 0),
        "recovered": stats.get("recovered", []),
    }


def health_line(h: dict) -> str:
    lag_text = "-" if h["lag_seconds"] is None else f"{h['lag_seconds']:.3f} s"
    return (f"store {h['store']} table {h['table']}: applied {h['applied']} changes ({h['records_read']} records read, "
            f"{h['batches']} batches), lag {lag_text}{' (at the tip)' if h['caught_up'] else ''}, "
            f"shards {h['shards_open']} open / {h['shards']}, recoveries {h['recoveries']}"
            + (f", shard group {h['shard_group']}" if h.get("shard_group") else "")
            + (f"; needs a sync without groups: {h['needs_recovery']}" if h.get("needs_recovery") else ""))


@dataclass(frozen=True)
class SyncTarget:
    """One mapped sync task's work: follow ``table`` of ``store`` (None: the default store) for ``run_seconds``;
    only ``shard_group``'s share of its shards when that is one group of several (``shard_counts``)."""

    store: str | None
    table: str
    aws_conn_id: str = "aws_default"
    run_seconds: float = field(default_factory=sync_run_seconds)
    shard_group: ShardGroup = WHOLE

    @property
    def label(self) -> str:
        own = "" if self.shard_group.whole else f" · group {self.shard_group}"
        return f"{self.table} · {self.store or 'default store'}{own}"

    def to_dict(self) -> dict:  # the label names the mapped task in the UI
        return {"store": self.store, "table": self.table, "aws_conn_id": self.aws_conn_id,
                "run_seconds": self.run_seconds, "shard_group": str(self.shard_group), "label": self.label}

    @classmethod
    def from_dict(cls, d: dict) -> "SyncTarget":
        return cls(d.get("store") or None, d["table"], d.get("aws_conn_id") or "aws_default",
                   float(d.get("run_seconds") or sync_run_seconds()),
                   ShardGroup.parse(d["shard_group"]) if d.get("shard_group") else WHOLE)


@dataclass(frozen=True)
class SyncOutcome:
    """What one table's sync task reports: its health line's figures, and the ingest conf to bootstrap it
    again when its gap is beyond incremental export (None otherwise)."""

    health: dict
    bootstrap: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SyncOutcome":
        return cls(dict(d["health"]), dict(d["bootstrap"]) if d.get("bootstrap") else None)


def targets(params: dict, conf: dict) -> list[dict]:
    """The (store, table) pairs this run follows, as ``SyncTarget`` dicts: what the ``sync`` task maps over."""
    conn = _given(conf, params, "aws_conn_id") or "aws_default"
    seconds = float(_given(conf, params, "run_seconds") or sync_run_seconds())
    table = _given(conf, params, "table_name")
    store = _given(conf, params, "store")
    handover = conf.get("handover") or {}
    if handover:  # an ingest's handover: every followed store, its own included (stores.remember wrote it)
        table, store = None, None
    # a run for one store or one table syncs just that (a table without a store: the default store)
    wanted = [store] if store or table else followed.to_sync(None)
    if handover and handover.get("store") not in wanted:
        wanted.append(handover.get("store") or None)
    work = [SyncTarget(s, t, conn, seconds) for s in wanted for t in tables_to_sync(s, table, conn)]
    if not work:
        log.info("no table with a stream in the followed stores yet; nothing to sync")
    for t in work:
        log.info("following %s for %gs", t.label, t.run_seconds)
    return [t.to_dict() for t in work]


def waiting_run():
    """A question for the sync loop: is another run of this task's DAG queued (waiting for this one to end)?
    Asked through the Task SDK (the execution API), every few seconds between batches."""
    from airflow.sdk import get_current_context

    ti = get_current_context()["ti"]
    dag_id = ti.dag_id
    return lambda: ti.get_dr_count(dag_id=dag_id, states=["queued"]) > 0


def gather(outcomes) -> dict:
    """The mapped syncs' outcomes (one per table, or a list per group of tables) -> every table's health, and the confs ``bootstrap_again`` maps over."""
    flat = [o for group in outcomes or [] for o in (group if isinstance(group, list) else [group])]  # groups' lists
    got = [SyncOutcome.from_dict(o) for o in flat]
    again: dict = {}  # one bootstrap per table: each shard-group task of a table reports the same one
    for o in got:
        if o.bootstrap:
            again.setdefault((o.bootstrap.get("store"), o.bootstrap.get("table_name")), o.bootstrap)
    return {"health": [o.health for o in got], "needs_bootstrap": list(again.values())}
