"""Waiting on a DynamoDB export without holding a worker slot."""

from __future__ import annotations

from airflow.providers.amazon.aws.triggers.base import AwsBaseWaiterTrigger

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
