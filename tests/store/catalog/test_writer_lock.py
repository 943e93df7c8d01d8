"""Writes to one SQLite catalog take turns (store/catalog/writer_lock.py), across threads as across processes."""

from __future__ import annotations

import fcntl
import threading

from dynadex.store.catalog.writer_lock import lock_path, writing


def test_a_second_writer_waits_for_the_first(tmp_path):
    catalog = f"sqlite:{tmp_path / 'catalog.sqlite'}"
    trying, acquired = threading.Event(), threading.Event()
    order = []

    def second():
        trying.set()
        with writing(catalog, "second"):
            order.append("second in")
            acquired.set()

    t = threading.Thread(target=second)
    with writing(catalog, "first"):
        t.start()
        assert trying.wait(30)
        assert not acquired.wait(0.5)  # held here: the second writer is still waiting
        order.append("first out")
    t.join(30)
    assert order == ["first out", "second in"]
    assert lock_path(catalog).exists()


def test_postgres_catalogs_take_no_file_lock():
    assert lock_path("postgres:dbname=x") is None
    with writing("postgres:dbname=x", "w"):
        with writing("postgres:dbname=x", "w"):  # no lock: nested writes do not wait on each other
            pass


def held_by_another(path) -> bool:
    """Is the lock file held? (A fresh open file asks, as another writer would, without waiting.)"""
    with open(path, "a+b") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        return False


def test_a_write_inside_a_write_of_the_same_thread_goes_on(tmp_path):
    """The thread holding the lock writes again at once (a second flock of its own would wait on itself for
    ever), the inner write's end leaves the lock held for the outer one, and the outer one's end frees it."""
    catalog = f"sqlite:{tmp_path / 'catalog.sqlite'}"
    path = lock_path(catalog)
    seen = []

    def nested():
        with writing(catalog, "outer"):
            with writing(catalog, "inner"):
                seen.append(("inner", held_by_another(path)))
            seen.append(("after inner", held_by_another(path)))
        seen.append(("after outer", held_by_another(path)))

    t = threading.Thread(target=nested, daemon=True)  # a deadlock fails the test instead of hanging it
    t.start()
    t.join(30)
    assert not t.is_alive(), f"the inner write waited on the outer one (self-deadlock); got only {seen}"
    assert seen == [("inner", True), ("after inner", True), ("after outer", False)]


def test_waits_for_the_lock_are_counted_only_when_another_writer_held_it(tmp_path):
    from dynadex.store.catalog import contention

    catalog = f"sqlite:{tmp_path / 'catalog.sqlite'}"
    contention.reset()
    with writing(catalog, "alone"):  # free at once: an acquisition, no wait
        pass
    got = contention.snapshot()
    assert (got.lock_acquisitions, got.lock_waits, got.lock_wait_seconds) == (1, 0, 0.0)
    trying, done = threading.Event(), threading.Event()

    def second():
        trying.set()
        with writing(catalog, "second"):
            done.set()

    t = threading.Thread(target=second)
    with writing(catalog, "first"):
        t.start()
        assert trying.wait(30)
        assert not done.wait(0.3)  # the second writer is held for at least this long
    t.join(30)
    got = contention.snapshot()
    assert got.lock_acquisitions == 3 and got.lock_waits == 1
    # held at least 0.3 s after the second said it was trying; its own clock starts a moment later (CI: 0.2997)
    assert 0.2 <= got.lock_wait_seconds == got.lock_wait_max_seconds < 30


def test_retried_attempts_are_counted_by_reason():
    from dynadex.store.catalog import contention

    contention.reset()
    contention.retried(RuntimeError("Failed to commit DuckLake transaction: database is locked"))
    contention.retried(RuntimeError("TransactionContext Error: Failed to commit DuckLake transaction"))
    got = contention.snapshot().as_dict()
    assert got["retries"] == 2
    assert got["retry_reasons"] == {"database is locked": 1, "failed to commit ducklake transaction": 1}
