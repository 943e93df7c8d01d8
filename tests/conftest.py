"""Wires the shared fixtures (tests/support/) into every test module, after giving Airflow a private home."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tests.support.airflow import airflow_env

# Airflow fixes its configuration at its first import, possibly while another file is collected: make that
# a private home per test process with our DAG folder, never ~/airflow (tests.support.airflow.prepare migrates it).
# Per PROCESS: pytest-xdist's workers inherit the controller's environment, so a home the controller made (or
# any AIRFLOW_HOME in the environment) would be one metadata DB for every worker, and a test's DAG runs and
# Variables would show in another worker's tests.
os.environ.update(airflow_env(Path(tempfile.mkdtemp(
    prefix=f"dynadex-airflow-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}-"))))

pytest_plugins = [
    "tests.support.emulator",  # aws, emulator, no_faults_left; the ``emulator`` marker
    "tests.support.exports",  # genuine_export
    "tests.support.servers",  # postgres_server
]
