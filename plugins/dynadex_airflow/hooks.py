"""Thin AWS hooks: boto3 clients from an Airflow connection (endpoint, region, credentials in the connection)."""

from __future__ import annotations

import os

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook


class DynamoDBClientHook(AwsBaseHook):
    """A DynamoDB *client* hook (the provider's DynamoDBHook is a resource hook, which async waiters cannot use)."""

    def __init__(self, *args, **kwargs):
        kwargs["client_type"] = "dynamodb"
        super().__init__(*args, **kwargs)


def client(service: str, aws_conn_id: str | None):
    """The connection's client, keeping enough HTTP connections for the stream sync's shard readers (the
    connection's own botocore config, if any, is kept and wins on every other setting)."""
    from botocore.config import Config

    from dynadex.aws import POOL_CONNECTIONS

    pool = Config(max_pool_connections=POOL_CONNECTIONS)
    own = AwsBaseHook(aws_conn_id=aws_conn_id, client_type=service).conn_config.botocore_config
    return AwsBaseHook(aws_conn_id=aws_conn_id, client_type=service, config=pool.merge(own) if own else pool).get_conn()


def export_aws_env(aws_conn_id: str | None) -> None:
    """Expose the connection's endpoint and credentials to libraries that read the environment (DuckDB httpfs).

    Only this task's process environment changes; nothing is logged.
    """
    hook = AwsBaseHook(aws_conn_id=aws_conn_id, client_type="s3")
    creds = hook.get_credentials()
    if creds and creds.access_key:
        os.environ["AWS_ACCESS_KEY_ID"] = creds.access_key
        os.environ["AWS_SECRET_ACCESS_KEY"] = creds.secret_key
        if creds.token:
            os.environ["AWS_SESSION_TOKEN"] = creds.token
    endpoint = hook.conn_config.endpoint_url
    if endpoint:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
    if hook.conn_region_name:
        os.environ["AWS_DEFAULT_REGION"] = hook.conn_region_name
