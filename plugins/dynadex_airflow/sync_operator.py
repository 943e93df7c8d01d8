"""The ``sync`` task of ``dynamodb_stream_sync``: follow a group of tables, deferred while all are quiet.

Hook thin, operator orchestrates, trigger only waits (the Amazon provider's pattern):

* ``execute`` follows the group (``dynadex.stream.fleet.follow``): each table with news is read by its own
  sync until it has been at its tip for ``DYNADEX_QUIET_AFTER_SECONDS``; once none is read, the task
  defers to ``QuietTablesTrigger`` with each table's checkpoints: no worker slot, no process, while nothing
  happens. The trigger's event resumes it (``resume``): news, follow again; timer, note the tables caught up
  (``fleet.catch_up``) and wait again, or end at the run's window; stop (another run queued), end.
* Exactly once is unchanged: every batch commits with its checkpoints through ``sync_table``; the trigger
  reads from copies of the stored checkpoints and commits nothing.
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
from dynadex.stream.probe import QuietTable
from dynadex.stream.sync import SyncSettings
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
            self.log.info("%s", health_line(h))
            out.append(SyncOutcome(h, again).to_dict())
        return out
