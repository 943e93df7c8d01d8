"""The upkeep room: keeping a store fast as stream batches pile up.

Invariant: maintenance changes files, never answers: every fold, slice,
prune, merge and expiry leaves each query's answer and each row's write id
as they were (``small_files`` for the sync's folds, ``maintenance`` for
``dynadex maintain``).
"""
