"""How this process's store writes met other writers: waits for the writer lock, and retried attempts.

Invariant: counting never changes what a write does. The figures only grow
(until ``reset``), are this process's alone (each process counts its own
writes), and are consistent under threads (one small lock guards them, held
only to add). ``writer_lock`` counts a wait only when the lock was really
held by another writer (a non-blocking try failed first); ``Lake.retrying``
counts every attempt it runs again, by the reason it retried.

Why: two writers of one catalog (stream batches beside maintenance) must be
seen to take turns without loss or starvation; these are the figures that
show it (``dynadex sync`` and ``dynadex maintain`` print them as
``store_writes``; ``bench/bench_two_writers.py`` reports them).
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field

_guard = threading.Lock()


@dataclass
class Contention:
    lock_acquisitions: int = 0
    """Writes (attempts) that took the store's writer lock."""
    lock_waits: int = 0
    """Of those, the ones that found it held by another writer and waited."""
    lock_wait_seconds: float = 0.0
    """Total time spent waiting for it."""
    lock_wait_max_seconds: float = 0.0
    """The longest single wait."""
    lock_held_seconds: float = 0.0
    """Total time this process held the lock: its serialized share of the store's writes (shard groups,
    decision 0034, measure it against their busy time)."""
    retries: int = 0
    """Attempts run again because another writer got in the way (``Lake.retrying``)."""
    retry_reasons: dict[str, int] = field(default_factory=dict)
    """Those retries by reason (the error's kind)."""
    reopened: int = 0
    """Writes that started on a fresh connection because another writer had committed since this
    connection's last write (``Lake._fresh_for_write``)."""

    def as_dict(self) -> dict:
        out = asdict(self)
        out["lock_wait_seconds"] = round(self.lock_wait_seconds, 3)
        out["lock_wait_max_seconds"] = round(self.lock_wait_max_seconds, 3)
        out["lock_held_seconds"] = round(self.lock_held_seconds, 3)
        return out


_now = Contention()


def lock_taken(waited_seconds: float | None) -> None:
    """One acquisition of the writer lock; ``waited_seconds`` None when it was free at once."""
    with _guard:
        _now.lock_acquisitions += 1
        if waited_seconds is not None:
            _now.lock_waits += 1
            _now.lock_wait_seconds += waited_seconds
            _now.lock_wait_max_seconds = max(_now.lock_wait_max_seconds, waited_seconds)


def lock_released(held_seconds: float) -> None:
    """The writer lock was held this long (one write attempt)."""
    with _guard:
        _now.lock_held_seconds += held_seconds


REASONS = ("database is locked", "transaction conflict", "failed to commit ducklake transaction", "unknown table",
           "already exists", "failed to read inlined data")


def retried(exc: BaseException) -> None:
    text = str(exc).lower()
    reason = next((r for r in REASONS if r in text), "other")
    with _guard:
        _now.retries += 1
        _now.retry_reasons[reason] = _now.retry_reasons.get(reason, 0) + 1


def reopened() -> None:
    with _guard:
        _now.reopened += 1


def snapshot() -> Contention:
    with _guard:
        return Contention(_now.lock_acquisitions, _now.lock_waits, _now.lock_wait_seconds, _now.lock_wait_max_seconds,
                          _now.lock_held_seconds, _now.retries, dict(_now.retry_reasons), _now.reopened)


def reset() -> None:
    global _now
    with _guard:
        _now = Contention()
