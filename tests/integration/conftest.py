"""Servers the integration tests start themselves: a throw-away PostgreSQL cluster (Debian's packages)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest


def _bin(name: str) -> str | None:
    for candidate in [shutil.which(name), *sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))]:
        if candidate and Path(candidate).exists():
            return str(candidate)
    return None


@contextmanager
def emulator_env(*, bucket: str | None = None, airflow_home: Path | None = None, **knobs):
    """The bundled emulator with ``knobs``, its endpoint and credentials in ``os.environ`` (as a deployment's
    environment would hold them) and ``bucket`` created; with ``airflow_home``, an Airflow home prepared and
    pointed at the emulator too. The environment is put back as it was afterwards, even when the test failed."""
    from dynadex.local_aws import running
    from tests.integration import airflow_support as af

    saved = dict(os.environ)
    try:
        if airflow_home is not None:
            af.prepare(airflow_home)
        with running(**knobs) as aws:
            if airflow_home is not None:
                af.use_emulator(aws.endpoint)
            if bucket:
                aws.client("s3").create_bucket(Bucket=bucket)
            os.environ.update(aws.env())
            yield aws
    finally:
        os.environ.clear()
        os.environ.update(saved)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgresServer:
    port: int

    def database(self, name: str) -> str:
        """Create database ``name`` (if needed) and return its URI."""
        psql = _bin("psql") or "psql"
        for _ in range(50):
            done = subprocess.run([psql, "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-tc",
                                   f"SELECT 1 FROM pg_database WHERE datname = '{name}'"], capture_output=True, text=True)
            if done.returncode == 0:
                break
            time.sleep(0.2)
        if "1" not in done.stdout:
            subprocess.run([psql, "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-c", f"CREATE DATABASE {name}"],
                           check=True, capture_output=True)
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"


@pytest.fixture(scope="session")
def postgres_server():
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    as_user = [] if os.getuid() else ["runuser", "-u", "postgres", "--"]
    base = Path(tempfile.mkdtemp(prefix="dynadex-pg-"))
    data = base / "data"
    if os.getuid() == 0:
        shutil.chown(base, "postgres")
    port = free_port()
    subprocess.run([*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "postgres"], check=True, capture_output=True)
    subprocess.run([*as_user, pg_ctl, "-D", str(data), "-o", f"-p {port} -k {base} -c listen_addresses=127.0.0.1 "
                    "-c max_connections=200", "-l", str(base / "log"), "-w", "start"], check=True, capture_output=True)
    try:
        yield PostgresServer(port)
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
