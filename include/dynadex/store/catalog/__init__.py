"""The catalog room: opening a DuckLake store and committing to it safely.

Invariants kept here: one writer commits at a time per store (``writer_lock``);
a write meeting another process's commit runs again on a fresh connection
(``lake.Lake.retrying``); nothing is half-committed; the sync state (schema
``dynadex``) is read and written only through ``state``; credentials never
reach a log (``location.mask``). Imports only ``layout`` below it.
"""
