"""The apply room: a batch of stream changes into the three indexes.

Invariant: a batch, its shards' checkpoints and the table's sync state
commit in one transaction (``changes.apply_changes``), so a batch is applied
exactly once whatever stops the sync. ``batch_shape`` shapes a batch;
``key_pruning`` keeps its statements' cost with the batch, not the table.
"""
