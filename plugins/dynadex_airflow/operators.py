"""Operators for the export steps: start one (idempotently) and wait for it (deferred)."""

from __future__ import annotations

import math
from datetime import timedelta

from airflow.sdk import BaseOperator

from dynadex import bootstrap
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
                       "aws_conn_id")

    def __init__(self, *, table, pin, s3_bucket, s3_prefix="", export_format="DYNAMODB_JSON", export_arn=None,
                 export_manifest=None, aws_conn_id="aws_default", **kwargs):
        super().__init__(**kwargs)
        self.table, self.pin = table, pin
        self.s3_bucket, self.s3_prefix, self.export_format = s3_bucket, s3_prefix, export_format
        self.export_arn, self.export_manifest, self.aws_conn_id = export_arn, export_manifest, aws_conn_id

    def execute(self, context):
        if self.export_manifest:
            self.log.info("indexing the existing export at %s", self.export_manifest)
            return None
        if self.export_arn:
            self.log.info("indexing the existing export %s", self.export_arn)
            return self.export_arn
        info = bootstrap.TableInfo(**{**self.table, "key_names": tuple(self.table["key_names"]),
                                      "key_types": tuple(self.table["key_types"])})
        token = bootstrap.client_token(self.dag_id, context["run_id"], info.name, str(self.pin["t0"]))
        arn = bootstrap.start_export(client("dynamodb", self.aws_conn_id), info, bucket=self.s3_bucket,
                                     prefix=self.s3_prefix or "", export_format=self.export_format,
                                     export_time=self.pin["t0"], token=token)
        self.log.info("export %s of %s at T0=%s (ClientToken %s)", arn, info.name, self.pin["t0"], token)
        return arn


class DynamoDBExportSensor(BaseOperator):
    """Waits for an export to finish, deferred (no worker slot held); returns its manifest's s3:// URL.

    A FAILED export fails the task with AWS's FailureCode and FailureMessage. With
    ``export_manifest`` given (an existing export), returns it without waiting.
    """

    template_fields = ("export_arn", "export_manifest", "aws_conn_id")

    def __init__(self, *, export_arn, export_manifest=None, aws_conn_id="aws_default", poke_interval: float = 30,
                 timeout: float = 6 * 3600, **kwargs):
        super().__init__(**kwargs)
        self.export_arn, self.export_manifest, self.aws_conn_id = export_arn, export_manifest, aws_conn_id
        self.poke_interval, self.wait_timeout = poke_interval, timeout

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

    def execute_complete(self, context, event=None):
        description = bootstrap.describe_export(client("dynamodb", self.aws_conn_id), self.export_arn)
        if event and event.get("status") != "success" and description["ExportStatus"] != "COMPLETED":
            raise bootstrap.BootstrapError(
                f"export {self.export_arn} {description['ExportStatus']}: "
                f"{description.get('FailureCode')}: {description.get('FailureMessage')}"
            )
        return bootstrap.manifest_url(description)
