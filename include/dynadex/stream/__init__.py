"""Following DynamoDB Streams into the store: shard tree, reader, sync loop, gap recovery.

``sync_table`` is the loop both ``dynadex sync`` and the ``dynamodb_stream_sync`` DAG run.
"""

from dynadex.stream.errors import NeedsBootstrap  # the sync's one error for callers: public API
from dynadex.stream.sync import SyncSettings, sync_table

__all__ = ["NeedsBootstrap", "SyncSettings", "sync_table"]
