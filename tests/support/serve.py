"""A tiny store and a real ``dynadex serve`` on a free port, for tests that talk HTTP to it."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

from dynadex.serve.keys import KeyRing
from dynadex.serve.state import StateFile, state_path
from dynadex.store import PublishSpec, Store
from dynadex.store.catalog.location import resolve
from dynadex.types import canonical_item
from tests.support.paths import REPO as ROOT
from tests.support.store import publish_items

ITEMS = [{"pk": {"S": f"k{i}"}, "n": {"N": str(i)}, "tag": {"S": "even" if i % 2 == 0 else "odd"}} for i in range(20)]
SECRETS = [{"pk": {"S": "s1"}, "code": {"S": "launch"}}]


def make_store(path: Path, *, followed_lag: float | None = None) -> Path:
    """Orders (20 items) and Secrets (1). ``followed_lag``: Orders is published as a table the sync follows (a
    stream), its export taken that many seconds before the publish, so its lag reads about that much."""
    if followed_lag is None:
        publish_items(path, "Orders", ITEMS)
    else:
        with Store(str(path), read_only=False) as st:
            w = st.chunk_writer("Orders", "b1", "c0", ("pk",), ("S",))
            for item in ITEMS:
                w.add(canonical_item(item), 1, "test")
            w.finish()
            st.publish(PublishSpec("Orders", "b1", ["c0"], ("pk",), ("S",), total_items=len(ITEMS),
                                   export_time_micros=int((time.time() - followed_lag) * 1e6),
                                   stream_arn="arn:aws:dynamodb:us-east-1:000000000000:table/Orders/stream/x"))
    publish_items(path, "Secrets", SECRETS, build="b2")
    return path


class Served:
    """A ``dynadex serve`` subprocess: its URL, its output, and keys made for it."""

    def __init__(self, store: Path, env: dict | None = None):
        self.store = store
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dynadex.cli", "serve", "--store", str(store), "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": f"{ROOT / 'include'}:{ROOT / 'plugins'}:{ROOT}", **(env or {})})
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(l) for l in self.proc.stdout], daemon=True).start()
        try:
            first = lines.get(timeout=60)  # the server prints this line once it listens
        except queue.Empty:
            self.proc.kill()
            raise AssertionError(f"no 'listening on' line in 60 s: {self.proc.stderr.read()}") from None
        assert first.startswith("listening on http://127.0.0.1:"), first
        self.url = first.split()[-1]
        self._ring = KeyRing(StateFile(state_path(resolve(str(store)))))

    def key(self, name: str, tables=None, admin=False) -> str:
        return self._ring.create(name, tables, admin)

    def revoke(self, name: str) -> None:
        self._ring.revoke(name)

    def call(self, method: str, path: str, key: str | None = None, **kw) -> requests.Response:
        headers = kw.pop("headers", {})
        if key:
            headers["Authorization"] = f"ApiKey {key}"
        return requests.request(method, self.url + path, headers=headers, timeout=60, **kw)

    def query(self, key: str | None, sql: str, parameters=None, **body) -> requests.Response:
        return self.call("POST", "/v1/orgs/self/queries", key,
                         json={"sql": {"query": sql, "parameters": parameters or [], **body.pop("sql_extra", {})},
                               **body})

    def stop(self, sig=signal.SIGTERM, within: float = 10) -> tuple[int, float]:
        started = time.monotonic()
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=within)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self._ring.state.close()
        return code, time.monotonic() - started
