"""The ``sync`` task of ``dynamodb_stream_sync``: follow a group of tables, deferred while all are quiet.

Hook thin, operator orchestrates, trigger only waits (the Amazon provider's pattern):

* ``execute`` follows the group (``dynadex.stream.fleet.follow``): each table with news is read by its own
  sync until it has been at its tip for ``DYNADEX_QUIET_AFTER_SECONDS``; once none is read, the task
  defers to ``QuietTablesTrigger`` with each table's checkpoints: no worker slot, no process, while nothing
  happens. The trigger's event resumes it (``resume``): news, follow again; timer, note the tables caught up
  (``fleet.catch_up``) and wait again, or end at the run's window; stop (another run queued), end.
* Exactly once is unchanged: every batch commits with its checkpoints through ``sync_table``; the trigger
  reads from copies of the stored checkpoints and commits nothing.
* A shard-group task (one table's group ``i/n``, ``SyncGroup.shard_group``; decision 0034, amendment) runs
  ``sync_table(..., group=ShardGroup(i, n))`` until the window its table's groups share (``ends_at``), never
  deferred: a table split in groups is busy by configuration. It reads nothing when the table's configured
  count is no longer its own (a stale task retried or cleared after the count changed), and reports a gap
  (``GapInGroup``) as ``needs_recovery`` so that the next run follows the table whole, which recovers.
* It returns one ``SyncOutcome`` dict per table (health, and a bootstrap conf when a gap is beyond
  incremental export), as the one-table task did; ``sync_tasks.gather`` flattens the groups' lists.
"""

from __future__ import annotations

import time
from datetime import timedelta

from airflow.sdk import BaseOperator

from dynadex import settings
from dynadex.store import Store
from dynadex.stream import fleet
from dynadex.stream.errors import GapInGroup, NeedsBootstrap
from dynadex.stream.probe import QuietTable
from dynadex.stream.sync import SyncSettings, sync_table
from dynadex_airflow import shard_counts
from dynadex_airflow.failures import fail_fast
from dynadex_airflow.hooks import client, store_location
from dynadex_airflow.sync_groups import SyncGroup
from dynadex_airflow.sync_tasks import SyncOutcome, health, health_line, waiting_run
from dynadex_airflow.triggers import QuietTablesTrigger


def _name(key) -> str:
    return f"{key[0] or ''}\t{key[1]}"


def _key(name: str) -> tuple:
    store, table = name.split("\t", 1)
    return store or None, table


class StreamSyncOperator(BaseOperator):
    """Follows the tables of ``sync_group`` (a ``SyncGroup`` dict) for its run's window, deferred while quiet."""

    template_fields = ("sync_group",)

    def __init__(self, *, sync_group: dict, **kwargs):
        super().__init__(**kwargs)
        self.sync_group = sync_group

    # ----------------------------------------------------------------- plumbing
    def _group(self) -> SyncGroup:
        return SyncGroup.from_dict(self.sync_group)

    def _clients(self, group: SyncGroup):
        return tuple(client(name, group.aws_conn_id) for name in ("dynamodb", "dynamodbstreams", "s3"))

    def _locate(self, group: SyncGroup):
        return lambda store: store_location(store, group.aws_conn_id)

    # ---------------------------------------------------------------- the steps
    @fail_fast
    def execute(self, context):
        group = self._group()
        started = time.time()
        if group.shard_group is not None:
            return self._follow_shards(context, group, started)
        return self._follow(context, group, {"started": started, "window_end": started + group.run_seconds,
                                             "stats": {}}, None)

    @fail_fast
    def resume(self, context, event=None, state=None):
        """The trigger's event: its ``echo`` is this task's state (window, figures so far), since the event
        is all that reaches a resumed task in every runner (``dag.test`` drops defer's kwargs)."""
        group, state = self._group(), dict(state or (event or {}).get("echo") or {})
        status = (event or {}).get("status")
        self.log.info("resumed by the trigger: %s %s", status, "; ".join((event or {}).get("why", [])[:5]))
        if status == "stop":
            return self._finish(group, state, stopped=True)
        if status == "timer":
            self._catch_up(group, state)
            if time.time() >= state["window_end"]:
                return self._finish(group, state)
        return self._follow(context, group, state, None)

    def _follow(self, context, group: SyncGroup, state: dict, quiet):
        ddb, streams, s3 = self._clients(group)
        locate = self._locate(group)
        keys = [(t.store, t.table) for t in group.targets]
        sync_settings = SyncSettings()
        tables = quiet or fleet.quiet_tables(keys, locate, streams, sync_settings.overlap_seconds)
        should_stop = waiting_run()
        result = fleet.follow(tables, locate, ddb, streams, s3, until=state["window_end"],
                              settings=fleet.FleetSettings(sync=sync_settings), should_stop=should_stop)
        for key, stats in result.stats.items():
            fleet.merge(state["stats"].setdefault(_name(key), {}), stats)
        now = time.time()
        if result.stopped or now >= state["window_end"] - 0.5 or not result.quiet:
            return self._finish(group, state, stopped=result.stopped)
        if fleet.asked(should_stop):  # a run already waits: end now rather than defer (the trigger asks too)
            return self._finish(group, state, stopped=True)
        until = min(state["window_end"], now + settings.QUIET_NOTE_SECONDS.read())
        self.log.info("all %d table(s) quiet: deferred until one has news (or %.0fs)", len(result.quiet), until - now)
        self.defer(
            trigger=QuietTablesTrigger(
                tables=[q.to_dict() for q in result.quiet], aws_conn_id=group.aws_conn_id,
                poll_seconds=settings.QUIET_POLL_SECONDS.read(), describe_seconds=settings.QUIET_DESCRIBE_SECONDS.read(),
                until=until, dag_id=self.dag_id, stop_check_seconds=sync_settings.stop_check_seconds, echo=state),
            method_name="resume",
            timeout=timedelta(seconds=max(60.0, until - now + 600)),
        )

    def _follow_shards(self, context, group: SyncGroup, started: float) -> list:
        """One shard group of one table until the window its table's groups share, with its own store."""
        t, own = group.targets[0], group.shard_group
        state: dict = {"started": started, "stats": {}}
        configured = shard_counts.counts(context.get("params"), dict(context["dag_run"].conf or {})).get(t.table, 1)
        if configured != own.count:
            self.log.warning("%s: %s is now configured with %d shard group(s), not %d: this task of the old count "
                             "reads nothing (two counts at once would read a shard twice); the next run follows "
                             "it with the new count", t.table, shard_counts.VARIABLE, configured, own.count)
            state["stats"][_name((t.store, t.table))] = {"stale_count": own.count}
            return self._finish(group, state)
        until = group.ends_at or started + t.run_seconds
        self.log.info("%s: shard group %s until %.0fs from now", t.table, own, until - started)
        ddb, streams, s3 = self._clients(group)
        sync_settings = SyncSettings()
        with Store(store_location(t.store, t.aws_conn_id), read_only=False,
                   threads=sync_settings.threads or None) as st:
            try:  # past the window (a late retry or clear): one pass, so the groups of a count end together
                stats = sync_table(st, t.table, ddb, streams, s3, seconds=max(0.01, until - time.time()),
                                   settings=sync_settings, should_stop=waiting_run(), group=own)
            except GapInGroup as exc:
                self.log.error("%s; the next run follows %s whole, which recovers", exc, t.table)
                stats = {"needs_recovery": str(exc)}
            except NeedsBootstrap as exc:
                stats = {"needs_bootstrap": str(exc)}
        state["stats"][_name((t.store, t.table))] = {**stats, "syncs": 1}
        return self._finish(group, state)

    def _catch_up(self, group: SyncGroup, state: dict) -> None:
        ddb, streams, s3 = self._clients(group)
        done = fleet.catch_up([(t.store, t.table) for t in group.targets], self._locate(group), ddb, streams, s3)
        for key, stats in done.items():
            fleet.merge(state["stats"].setdefault(_name(key), {}), stats)

    def _finish(self, group: SyncGroup, state: dict, stopped: bool = False) -> list:
        followed = max(0.001, time.time() - state["started"])
        out = []
        for t in group.targets:
            stats = dict(state["stats"].get(_name((t.store, t.table)), {}))
            if stopped:
                stats["stopped_early"] = 1
            with Store(store_location(t.store, t.aws_conn_id)) as st:
                h = health(st, t.store, t.table, stats)
                again = None
                if "needs_bootstrap" in stats:
                    h["needs_bootstrap"] = stats["needs_bootstrap"]
                    s = st.table_state(t.table)
                    again = {"table_name": t.table, "store": t.store, "aws_conn_id": t.aws_conn_id}
                    if s.export_bucket:
                        again.update(s3_bucket=s.export_bucket, s3_prefix=s.export_prefix or "dynadex")
            h.update(store_given=t.store, followed_seconds=round(followed, 3), syncs=stats.get("syncs", 0))
            if not t.shard_group.whole:
                h.update(shard_group=str(t.shard_group), stale_count=bool(stats.get("stale_count")),
                         waiting_on_other_groups=stats.get("waiting_on_other_groups", 0))
            if "needs_recovery" in stats:
                h["needs_recovery"] = stats["needs_recovery"]
            self.log.info("%s", health_line(h))
            out.append(SyncOutcome(h, again).to_dict())
        return out
