"""The emulator's one lock.

Invariant: every request that reads or changes the emulator's state (moto's
backends, the write history, the streams, the clock's offset) holds ``LOCK``
while it does, so requests served on several threads see each other whole.
It is re-entrant: a write that triggers the feed takes it again.
"""

from __future__ import annotations

import threading

LOCK = threading.RLock()
