"""Start the emulator in a child process on a free port (tests, ``make demo``).

Invariant: the endpoint yielded accepts requests (the child printed its
``ready`` line); leaving the context stops the child (SIGTERM, then SIGKILL).
Real HTTP, a real separate process, like AWS.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass

from dynadex.local_aws.config import Knobs

AWS_ENV = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass
class LocalAWS:
    endpoint: str
    process: subprocess.Popen
    knobs: Knobs

    def env(self) -> dict:
        """Environment variables pointing boto3 (and DuckDB) at this emulator."""
        return {**AWS_ENV, "AWS_ENDPOINT_URL": self.endpoint}

    def client(self, service: str):
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint, region_name=AWS_ENV["AWS_DEFAULT_REGION"],
                            aws_access_key_id="local", aws_secret_access_key="local")

    @property
    def faults(self):
        """The emulator's fault-injection control (``local_aws.faults``)."""
        from dynadex.local_aws.faults import FaultControl

        return FaultControl(self.endpoint)

    @property
    def clock(self):
        """The emulator's clock (``local_aws.clock``): ``now()``, and ``advance(seconds)`` with ``test_clock=1``."""
        from dynadex.local_aws.clock import ClockControl

        return ClockControl(self.endpoint)


@contextmanager
def running(host: str = "127.0.0.1", port: int = 0, timeout: float = 60, **knobs):
    k = Knobs.from_env(**knobs)
    cmd = [sys.executable, "-m", "dynadex.cli", "local-aws", "--host", host, "--port", str(port), *k.to_args()]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **AWS_ENV})
    endpoint = None
    result: list[str] = []

    def read_ready():
        for line in proc.stdout:
            if line.startswith("ready "):
                result.append(line.split(" ", 1)[1].strip())
                return

    reader = threading.Thread(target=read_ready, daemon=True)
    reader.start()
    reader.join(timeout)
    if not result:
        proc.kill()
        err = proc.stderr.read() if proc.stderr else ""
        raise RuntimeError(f"local-aws did not start within {timeout:g}s: {err[-2000:]}")
    endpoint = result[0]
    # keep draining output so the child never blocks on a full pipe
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    try:
        yield LocalAWS(endpoint, proc, k)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
