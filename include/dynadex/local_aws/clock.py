"""The emulator's clock: its one notion of "now", which tests may move forward instead of sleeping.

Every time the emulator keeps or compares (write history and export times, stream record and shard ages,
iterator lifetimes, retention, the PITR window, TTL sweeps) is ``now()``: the wall clock plus an offset. The
offset is 0 and stays 0 unless the emulator runs with the test-only knob ``test_clock`` (``--test-clock 1``):
then ``POST /_dynadex/clock {"advance": seconds}`` moves it forward, so a test sees an iterator expire, a
record trimmed or an item's TTL pass without waiting for it (without the knob: 403). ``GET`` answers
``{"now": ..., "offset": ...}``.

Invariant: the clock never goes back (an advance is >= 0), so write times stay in order. Durations the
emulator waits out for real (an export's ``export_seconds``, an outage) are not shortened by it.
"""

from __future__ import annotations

import json
import threading
import time

from dynadex.local_aws.lock import LOCK

CLOCK_PATH = "/_dynadex/clock"


class Clock:
    def __init__(self):
        self.offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> float:
        if not 0 <= seconds < float("inf"):  # also refuses NaN
            raise ValueError(f"the clock only moves forward: advance of {seconds!r} s")
        with self._lock:
            self.offset += seconds
        return self.now()

    def state(self) -> dict:
        return {"now": self.now(), "offset": self.offset}


CLOCK = Clock()


def now() -> float:
    return CLOCK.now()


class ClockApp:
    """WSGI middleware: the clock's endpoint; it moves the clock only when ``movable`` (the ``test_clock`` knob)."""

    def __init__(self, app, movable: bool, clock: Clock = CLOCK):
        self.app, self.movable, self.clock = app, movable, clock

    def __call__(self, environ, start_response):
        if not environ.get("PATH_INFO", "").startswith(CLOCK_PATH):
            return self.app(environ, start_response)
        try:
            if environ.get("REQUEST_METHOD") == "POST" and not self.movable:
                body, status = json.dumps({"error": "this emulator's clock only moves with the test-only knob "
                                                    "test_clock=1"}).encode(), "403 Forbidden"
                start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
                return [body]
            if environ.get("REQUEST_METHOD") == "POST":
                doc = json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)) or b"{}")
                with LOCK:  # between two requests, never inside one (its writes share one instant)
                    self.clock.advance(float(doc.get("advance", 0)))
            body, status = json.dumps(self.clock.state()).encode(), "200 OK"
        except (ValueError, TypeError) as exc:
            body, status = json.dumps({"error": str(exc)}).encode(), "400 Bad Request"
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


class ClockControl:
    """Client of a running emulator's clock endpoint (plain HTTP, no AWS signing)."""

    def __init__(self, endpoint: str):
        self.url = endpoint.rstrip("/") + CLOCK_PATH

    def _send(self, method: str, doc: dict | None = None) -> dict:
        import urllib.error
        import urllib.request

        data = None if doc is None else json.dumps(doc).encode()
        req = urllib.request.Request(self.url, data=data, method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            try:
                reason = json.loads(exc.read())["error"]
            except (ValueError, KeyError, TypeError):
                reason = f"HTTP {exc.code} {exc.reason}"
            raise RuntimeError(f"{method} {self.url}: {reason}") from exc

    def now(self) -> float:
        """The emulator's time (epoch seconds)."""
        return self._send("GET")["now"]

    def advance(self, seconds: float) -> float:
        """Move the emulator's clock ``seconds`` forward; its new time."""
        return self._send("POST", {"advance": seconds})["now"]
