"""Time moved on for the code under test, instead of waited for. The emulator has a clock of its own
(``test_clock=1``, ``aws.clock.advance``); this is the sync's side: ``sync_clock_ahead`` makes the stream sync
see the time some seconds ahead of the wall clock, inside a block."""

from __future__ import annotations

import time as _time
from contextlib import contextmanager

import pytest


class Ahead:
    """Stands in for the ``time`` module of a module under test: ``time()`` is ``seconds`` ahead, the rest
    (``sleep``, ``monotonic``...) is the real module's."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def time(self) -> float:
        return _time.time() + self.seconds

    def __getattr__(self, name):
        return getattr(_time, name)


@contextmanager
def sync_clock_ahead(seconds: float):
    """Inside the block, the stream sync (its loop and its gap recovery) sees the time ``seconds`` ahead: as if
    it ran that much later. Only for what it decides before it writes: the store stamps its own writes with the
    database's clock, which stays where it is."""
    from dynadex.stream import recover, sync

    with pytest.MonkeyPatch.context() as mp:
        for module in (sync, recover):
            mp.setattr(module, "time", Ahead(seconds))
        yield
