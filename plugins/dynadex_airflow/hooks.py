"""Thin AWS hooks: boto3 clients from an Airflow connection (endpoint, region, credentials in the connection)."""

from __future__ import annotations

from dataclasses import replace

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

from dynadex.credentials import AwsCredentials
from dynadex.store.catalog.location import StoreLocation, resolve


class DynamoDBClientHook(AwsBaseHook):
    """A DynamoDB *client* hook (the provider's DynamoDBHook is a resource hook, which async waiters cannot use)."""

    def __init__(self, *args, **kwargs):
        kwargs["client_type"] = "dynamodb"
        super().__init__(*args, **kwargs)


def client(service: str, aws_conn_id: str | None):
    """The connection's client, keeping enough HTTP connections for the stream sync's shard readers and
    dynadex's retry budget (``dynadex.aws.retries``: the same as the CLI's, decision 0017); the connection's
    own botocore config, if any, is kept and wins on every setting it names."""
    from botocore.config import Config

    from dynadex.aws import POOL_CONNECTIONS, retries

    pool = Config(max_pool_connections=POOL_CONNECTIONS, retries=retries())
    own = AwsBaseHook(aws_conn_id=aws_conn_id, client_type=service).conn_config.botocore_config
    return AwsBaseHook(aws_conn_id=aws_conn_id, client_type=service, config=pool.merge(own) if own else pool).get_conn()


def aws_credentials(aws_conn_id: str | None) -> AwsCredentials:
    """The connection's credentials, region and endpoint as one explicit object (nothing goes to os.environ;
    DuckDB gets them as a temporary secret, pyarrow as filesystem options)."""
    hook = AwsBaseHook(aws_conn_id=aws_conn_id, client_type="s3")
    return AwsCredentials.from_boto3_session(hook.get_session(), region=hook.conn_region_name,
                                             endpoint_url=hook.conn_config.endpoint_url)


def store_location(store: str | None, aws_conn_id: str | None) -> StoreLocation:
    """The store ``store`` names; one whose data path is on S3 is reached with the connection's credentials."""
    location = resolve(store)
    return replace(location, credentials=aws_credentials(aws_conn_id)) if location.is_s3 else location
