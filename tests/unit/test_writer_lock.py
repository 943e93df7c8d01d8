"""Writes to one SQLite catalog take turns (store/writer_lock.py), across threads as across processes."""

from __future__ import annotations

import threading

from dynadex.store.writer_lock import lock_path, writing


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


def test_a_write_inside_a_write_of_the_same_thread_goes_on(tmp_path):
    catalog = f"sqlite:{tmp_path / 'catalog.sqlite'}"
    with writing(catalog, "outer"):
        with writing(catalog, "inner"):
            pass
    with writing(catalog, "again"):  # released: a later write takes it
        pass
