"""Fixtures of the serve tests: a module's store and server (``tests/support/serve.py``), and its keys."""

from __future__ import annotations

import pytest

from tests.support.serve import Served, make_store


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    server = Served(make_store(tmp_path_factory.mktemp("serve") / "store"))
    yield server
    if server.proc.poll() is None:
        code, _ = server.stop()
        assert code == 0, server.proc.stderr.read()


@pytest.fixture(scope="module")
def admin(served) -> str:
    return served.key("admin", admin=True)


@pytest.fixture(scope="module")
def reader(served) -> str:
    return served.key("reader")
