"""Operators: start an export (idempotently), wait for it (deferred), and hand over to the stream sync."""

from __future__ import annotations

import math
from datetime import timedelta

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import BaseOperator, timezone

from dynadex import bootstrap, settings
from dynadex.errors import BootstrapError
from dynadex_airflow import airflow_api, stores
from dynadex_airflow.failures import fail_fast
from dynadex_airflow.hooks import client
from dynadex_airflow.triggers import DynamoDBExportTrigger


class DynamoDBStartExportOperator(BaseOperator):
    """ExportTableToPointInTime at the pinned T0, with a ClientToken derived from the run.

    Unlike the provider's DynamoDBToS3Operator it returns the ExportArn (to XCom), never blocks a
    worker while the export runs, and sends a ClientToken so a retry or a cleared task gets the
    same export back. With ``export_arn`` given it starts nothing and returns that ARN; with
    ``export_manifest`` given it starts nothing and returns None.
    """

    template_fields = ("table", "pin", "s3_bucket", "s3_prefix", "export_format", "export_arn", "export_manifest",
                       "aws_conn_id", "s3_bucket_owner", "s3_sse_kms_key_id")

    def __init__(self, *, table, pin, s3_bucket, s3_prefix="", export_format="DYNAMODB_JSON", export_arn=None,
                 export_manifest=None, aws_conn_id="aws_default", s3_bucket_owner=None, s3_sse_kms_key_id=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.s3_bucket_owner, self.s3_sse_kms_key_id = s3_bucket_owner, s3_sse_kms_key_id
        self.table, self.pin = table, pin
        self.s3_bucket, self.s3_prefix, self.export_format = s3_bucket, s3_prefix, export_format
        self.export_arn, self.export_manifest, self.aws_conn_id = export_arn, export_manifest, aws_conn_id

    @fail_fast
    def execute(self, context):
        if self.export_manifest:
            self.log.info("indexing the existing export at %s", self.export_manifest)
            return None
        if self.export_arn:
            self.log.info("indexing the existing export %s", self.export_arn)
            return self.export_arn
        info = bootstrap.TableInfo.from_dict(self.table)
        pin = bootstrap.PinnedStream.from_dict(self.pin)
        token = bootstrap.client_token(self.dag_id, context["run_id"], info.name, str(pin.t0))
        arn = bootstrap.start_export(client("dynamodb", self.aws_conn_id), info, bucket=self.s3_bucket,
                                     prefix=self.s3_prefix or "", export_format=self.export_format,
                                     export_time=pin.t0, token=token,
                                     bucket_owner=self.s3_bucket_owner or None, kms_key_id=self.s3_sse_kms_key_id or None)
        self.log.info("export %s of %s at T0=%s (ClientToken %s)", arn, info.name, pin.t0, token)
        return arn


class DynamoDBExportSensor(BaseOperator):
    """Waits for an export to finish, deferred (no worker slot held); returns its manifest's s3:// URL.

    A FAILED export fails the task with AWS's FailureCode and FailureMessage. With
    ``export_manifest`` given (an existing export), returns it without waiting. ``poke_interval`` and
    ``timeout`` (seconds) default to ``DYNADEX_EXPORT_POLL_SECONDS`` and ``DYNADEX_EXPORT_TIMEOUT_SECONDS``.
    """

    template_fields = ("export_arn", "export_manifest", "aws_conn_id")

    def __init__(self, *, export_arn, export_manifest=None, aws_conn_id="aws_default",
                 poke_interval: float | None = None, timeout: float | None = None, **kwargs):
        super().__init__(**kwargs)
        self.export_arn, self.export_manifest, self.aws_conn_id = export_arn, export_manifest, aws_conn_id
        self.poke_interval = settings.EXPORT_POLL_SECONDS.read() if poke_interval is None else poke_interval
        self.wait_timeout = settings.EXPORT_TIMEOUT_SECONDS.read() if timeout is None else timeout

    @fail_fast
    def execute(self, context):
        if self.export_manifest:
            return self.export_manifest
        description = bootstrap.describe_export(client("dynamodb", self.aws_conn_id), self.export_arn)
        if description["ExportStatus"] != "IN_PROGRESS":
            return bootstrap.manifest_url(description)
        self.defer(
            trigger=DynamoDBExportTrigger(
                export_arn=self.export_arn,
                waiter_delay=max(1, int(self.poke_interval)),
                waiter_max_attempts=max(1, math.ceil(self.wait_timeout / max(1, self.poke_interval))),
                aws_conn_id=self.aws_conn_id,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.wait_timeout),
        )

    @fail_fast
    def execute_complete(self, context, event=None):
        description = bootstrap.describe_export(client("dynamodb", self.aws_conn_id), self.export_arn)
        if event and event.get("status") != "success" and description["ExportStatus"] != "COMPLETED":
            raise BootstrapError(
                f"export {self.export_arn} {description['ExportStatus']}: "
                f"{description.get('FailureCode')}: {description.get('FailureMessage')}"
            )
        return bootstrap.manifest_url(description)


class StartStreamSyncOperator(TriggerDagRunOperator):
    """Hand a published table over to ``dynamodb_stream_sync``, and make sure that sync will run.

    * remembers the run's store (``stores``), so the continuous sync runs follow it from now on;
    * if the stream DAG is paused (as it is on creation), unpauses it through the REST API
      (``airflow_api``; on by default, ``unpause=False`` or env ``DYNADEX_UNPAUSE_SYNC=false`` turns it
      off) and says so; when it cannot, logs a loud warning naming the command that does it;
    * triggers a sync run (conf ``handover``: this table and store) that follows every followed store, this
      one included; a running sync run ends early for it, so the new table is followed within seconds;
      logs what it triggered and returns it (XCom):
      ``{"dag_id", "run_id", "table_name", "store", "paused", "unpaused", "new_store"}``.
    """

    template_fields = (*TriggerDagRunOperator.template_fields, "table_name", "store", "aws_conn_id")

    def __init__(self, *, table_name, store=None, aws_conn_id="aws_default", trigger_dag_id="dynamodb_stream_sync",
                 unpause: bool | None = None, **kwargs):
        super().__init__(trigger_dag_id=trigger_dag_id, conf=None, wait_for_completion=False, **kwargs)
        self.table_name, self.store, self.aws_conn_id = table_name, store, aws_conn_id
        self.unpause = unpause

    def _paused(self, context) -> bool | None:
        try:
            return bool(context["ti"].get_dag(self.trigger_dag_id).is_paused)
        except Exception as exc:  # an older API server without GetDag: say so, do not fail the handover
            self.log.warning("could not tell whether %s is paused: %s", self.trigger_dag_id, exc)
            return None

    def execute(self, context):
        store = self.store if self.store not in (None, "", "None") else None
        self.conf = {"handover": {"table_name": self.table_name, "store": store}, "aws_conn_id": self.aws_conn_id}
        new_store = stores.remember(store)
        if new_store:
            self.log.info("the continuous %s runs follow store %s from now on (Variable %s)", self.trigger_dag_id,
                          store or "(default)", stores.VARIABLE)
        paused, unpaused = self._paused(context), False
        if paused:
            wanted = self.unpause if self.unpause is not None else settings.UNPAUSE_SYNC.read()
            why = f"unpausing is turned off ({settings.UNPAUSE_SYNC.env}=false)"
            if wanted:
                unpaused, why = airflow_api.unpause(self.trigger_dag_id)
            if unpaused:
                self.log.info("%s was paused: unpaused it (%s); its continuous runs keep the index in sync",
                              self.trigger_dag_id, why)
            else:
                self.log.warning(
                    "\n%s\n%s IS PAUSED: the sync run triggered below stays queued and the index falls behind "
                    "the table until it is unpaused.\nUnpause it in the UI (toggle on DAGs > %s) or run: "
                    "airflow dags unpause %s\n(not unpaused here: %s)\n%s",
                    "!" * 78, self.trigger_dag_id, self.trigger_dag_id, self.trigger_dag_id, why, "!" * 78)
        if not self.trigger_run_id:
            self.trigger_run_id = f"ingest__{self.table_name}__{timezone.utcnow().isoformat()}"
        handover = {"dag_id": self.trigger_dag_id, "run_id": self.trigger_run_id, "table_name": self.table_name,
                    "store": store, "paused": paused, "unpaused": unpaused, "new_store": new_store}
        context["ti"].xcom_push(key="return_value", value=handover)
        self.log.info("triggered %s run %s: table %s, store %s%s", self.trigger_dag_id, self.trigger_run_id,
                      self.table_name, store or "(default)",
                      " (queued until the DAG is unpaused)" if paused and not unpaused else "")
        return super().execute(context)
