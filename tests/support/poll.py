"""The one way a test waits: on a condition, bounded, failing with what it waited for."""

from __future__ import annotations

import time


def wait_until(condition, what: str, *, timeout: float = 120.0, every: float = 0.01, proc=None):
    """Poll ``condition()`` every ``every`` s until it returns something truthy, and return that. After
    ``timeout`` s fail naming ``what``; with ``proc`` (a Popen), fail at once if that process has ended."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read()[-3000:] if proc.stdout else ""
            raise AssertionError(f"the process ended ({proc.returncode}) before {what}: {out}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)
