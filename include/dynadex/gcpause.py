"""Keeping Python's cyclic garbage collector off the hot paths.

Converting a batch allocates hundreds of thousands of small dicts and lists.
Every burst of allocations triggers the cyclic collector, and its full
passes walk every live object again: the process's loaded modules, client
models and whatever batch is waiting. Measured on the stream apply bench:
a third of the time. Our batch data is acyclic (plain dicts, lists and
strings): reference counting frees it, the collector finds nothing.

``settle()`` freezes what is alive now (``gc.freeze``: the collector stops
re-walking it; reference counting still frees it) and, at most once per
``COLLECT_EVERY_SECONDS``, unfreezes and collects everything, so cyclic
garbage made by libraries is still reclaimed.

``quiet()`` goes one step further around one batch's conversion or shaping:
the collector is off inside it and what is alive at its end is frozen, so
the batch's new objects are never walked at all (turning the collector off
alone was slower: the first collection after it walked the whole batch).

Invariant: no object is exempt from collection for longer than
``COLLECT_EVERY_SECONDS`` plus one batch; nothing else about the program
changes.
"""

from __future__ import annotations

import gc
import time
from contextlib import contextmanager

COLLECT_EVERY_SECONDS = 60.0
_last_collect = time.monotonic()


def settle() -> None:
    global _last_collect
    now = time.monotonic()
    if now - _last_collect > COLLECT_EVERY_SECONDS:
        gc.unfreeze()
        gc.collect()
        _last_collect = now
    gc.freeze()


@contextmanager
def quiet():
    """No collection inside; what is alive at the end is frozen (and collected at the next due ``settle``)."""
    settle()
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
