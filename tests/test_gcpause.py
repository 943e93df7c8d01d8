"""The sync's garbage-collector pauses (``gcpause``)."""

from __future__ import annotations


def test_settle_freezes_live_objects_and_still_collects_cycles(monkeypatch):
    """settle() spares the collector from re-walking live objects, yet cyclic garbage is reclaimed in time."""
    import gc
    import weakref

    from dynadex import gcpause

    class Node:
        pass

    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle: only the cyclic collector can free it
    ref = weakref.ref(a)
    gcpause.settle()
    assert gc.get_freeze_count() > 0
    del a, b
    monkeypatch.setattr(gcpause, "COLLECT_EVERY_SECONDS", 3600.0)
    gcpause.settle()
    gc.collect()
    assert ref() is not None  # frozen: a plain collection leaves it
    monkeypatch.setattr(gcpause, "COLLECT_EVERY_SECONDS", 0.0)
    gcpause.settle()  # due: unfreeze and collect everything
    assert ref() is None
    gc.unfreeze()
