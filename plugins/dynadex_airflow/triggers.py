"""Waiting without holding a worker slot: on a DynamoDB export, and on a sync group's quiet tables."""

from __future__ import annotations

from airflow.providers.amazon.aws.triggers.base import AwsBaseWaiterTrigger
from airflow.triggers.base import BaseTrigger, TriggerEvent

from dynadex_airflow.hooks import DynamoDBClientHook


class DynamoDBExportTrigger(AwsBaseWaiterTrigger):
    """Polls DescribeExport with the provider's ``export_table`` waiter until COMPLETED or FAILED."""

    aws_hook_class = DynamoDBClientHook

    def __init__(self, export_arn: str, waiter_delay: int = 30, waiter_max_attempts: int = 480,
                 aws_conn_id: str | None = "aws_default", **kwargs):
        super().__init__(
            serialized_fields={"export_arn": export_arn},
            waiter_name="export_table",
            waiter_args={"ExportArn": export_arn},
            failure_message=f"DynamoDB export {export_arn} failed",
            status_message="export status",
            status_queries=["ExportDescription.ExportStatus", "ExportDescription.FailureCode",
                            "ExportDescription.FailureMessage"],
            return_key="export_arn",
            return_value=export_arn,
            waiter_delay=waiter_delay,
            waiter_max_attempts=waiter_max_attempts,
            aws_conn_id=aws_conn_id,
            **kwargs,
        )


class QuietTablesTrigger(BaseTrigger):
    """Waits, in the triggerer, until one of a sync group's quiet tables has news; only waits, never commits.

    Each table is probed from the checkpoints its sync left (``dynadex.stream.probe``: GetRecords Limit 1 after
    each open shard's checkpoint, DescribeStream every ``describe_seconds`` for new shards), every
    ``poll_seconds``. One event, then the trigger ends:

    * ``{"status": "news", "why": [...]}``: a table has records, or its shards changed (or a probe failed:
      the resumed sync meets the error itself and reports it as the sync always does);
    * ``{"status": "timer"}``: ``until`` passed (the run's window ends, or the group must note its tables
      caught up);
    * ``{"status": "stop"}``: another run of ``dag_id`` is queued behind this one (asked every
      ``stop_check_seconds``), so this run must end.
    """

    def __init__(self, tables: list, aws_conn_id: str | None = "aws_default", poll_seconds: float = 0.5,
                 describe_seconds: float = 30.0, until: float = 0.0, dag_id: str | None = None,
                 stop_check_seconds: float = 15.0, echo: dict | None = None):
        super().__init__()
        self.echo = dict(echo or {})  # handed back in the event as it came (the task's own figures)
        self.tables, self.aws_conn_id, self.poll_seconds = list(tables), aws_conn_id, float(poll_seconds)
        self.describe_seconds, self.until, self.dag_id = float(describe_seconds), float(until), dag_id
        self.stop_check_seconds = float(stop_check_seconds)

    def serialize(self):
        return ("dynadex_airflow.triggers.QuietTablesTrigger",
                {"tables": self.tables, "aws_conn_id": self.aws_conn_id, "poll_seconds": self.poll_seconds,
                 "describe_seconds": self.describe_seconds, "until": self.until, "dag_id": self.dag_id,
                 "stop_check_seconds": self.stop_check_seconds, "echo": self.echo})

    async def _queued_runs(self) -> int:
        from asgiref.sync import sync_to_async
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        return await sync_to_async(RuntimeTaskInstance.get_dr_count)(dag_id=self.dag_id, states=["queued"])

    async def run(self):
        import asyncio
        import time

        from dynadex.stream.probe import QuietTable, TableProbe
        from dynadex_airflow.hooks import client

        streams = await asyncio.to_thread(client, "dynamodbstreams", self.aws_conn_id)
        probes = [TableProbe(QuietTable.from_dict(t), streams, describe_seconds=self.describe_seconds)
                  for t in self.tables]
        last_stop_check, asking = time.time(), bool(self.dag_id)

        async def news(probe):
            try:
                return await asyncio.to_thread(probe.news)
            except Exception as exc:  # noqa: BLE001 - the resumed sync meets it and reports it
                return f"{probe.quiet.table}: probe failed: {exc}"

        while True:
            found = [w for w in await asyncio.gather(*(news(p) for p in probes)) if w]
            if found:
                self.log.info("news: %s", "; ".join(found[:5]))
                yield TriggerEvent({"status": "news", "why": found[:20], "echo": self.echo})
                return
            now = time.time()
            if now >= self.until:
                yield TriggerEvent({"status": "timer", "echo": self.echo})
                return
            if asking and now - last_stop_check >= self.stop_check_seconds:
                last_stop_check = now
                try:
                    if await self._queued_runs() > 0:
                        yield TriggerEvent({"status": "stop", "echo": self.echo})
                        return
                except Exception as exc:  # noqa: BLE001 - cannot ask here (e.g. an inline test trigger): go on
                    self.log.info("cannot tell whether a run is queued (%s); not asking again", exc)
                    asking = False
            await asyncio.sleep(min(self.poll_seconds, max(0.0, self.until - now)))
