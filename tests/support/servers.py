"""Servers the tests start themselves: free ports, a throw-away PostgreSQL cluster from Debian's packages
(``postgres_server``: a pytest plugin)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.poll import wait_until


def _bin(name: str) -> str | None:
    for candidate in [shutil.which(name), *sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))]:
        if candidate and Path(candidate).exists():
            return str(candidate)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int, host: str = "127.0.0.1") -> bool:
    """Does something accept connections on ``port``?"""
    try:
        socket.create_connection((host, port), timeout=0.5).close()
        return True
    except OSError:
        return False


@dataclass
class PostgresServer:
    port: int

    def database(self, name: str) -> str:
        """Create database ``name`` (if needed) and return its URI."""
        psql = _bin("psql") or "psql"

        def answered():
            done = subprocess.run([psql, "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-tc",
                                   f"SELECT 1 FROM pg_database WHERE datname = '{name}'"], capture_output=True, text=True)
            return done if done.returncode == 0 else None

        done = wait_until(answered, f"PostgreSQL on port {self.port} to answer", timeout=10, every=0.2)
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
