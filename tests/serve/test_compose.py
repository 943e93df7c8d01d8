"""docker-compose.yaml's ``serve`` service, read without Docker: the workers' image and store settings, `dynadex serve`
on 0.0.0.0:8765 with the port published, a healthcheck on /health, and its keys in a volume of its own."""

from __future__ import annotations

import yaml

from tests.support.paths import REPO


def test_the_compose_file_serves_the_store_the_workers_write():
    compose = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
    services = compose["services"]
    serve, worker = services["serve"], services["airflow-worker"]
    assert serve["image"] == worker["image"] and serve["build"] == worker["build"]
    assert [*serve["entrypoint"], *serve["command"]] == ["dynadex", "serve", "--host", "0.0.0.0", "--port", "8765"]
    assert "8765:8765" in serve["ports"]
    assert serve["healthcheck"]["test"] == ["CMD", "curl", "--fail", "http://localhost:8765/health"]
    env = serve["environment"]
    for name in ("DYNADEX_STORE", "DYNADEX_DATA_PATH"):
        assert env[name] == worker["environment"][name], name
    assert env["DYNADEX_STORE"].startswith("postgresql://")  # so the state file must be named (docs/serving.md)
    state_dir = env["DYNADEX_SERVE_STATE"].rsplit("/", 1)[0]
    assert f"serve-state:{state_dir}" in serve["volumes"] and "serve-state" in compose["volumes"]
    assert f"serve-state:{state_dir}" in services["airflow-init"]["volumes"]  # made writable there
    assert env["AWS_ENDPOINT_URL"] == "http://local-aws:4566"  # the data on the emulator's S3
    assert serve["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
