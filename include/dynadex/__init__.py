"""dynadex: a fast, queryable index of a DynamoDB table, fed by Export to S3 and Streams.

The library works without Airflow; ``dags/`` and ``plugins/`` only wire it up.
"""

__version__ = "0.1.0"
