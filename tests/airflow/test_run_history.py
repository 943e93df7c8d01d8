"""run_history: the `airflow db clean` command and how its output is judged (table-driven, no Airflow)."""

from __future__ import annotations

import datetime as dt

import pytest

from dynadex_airflow import run_history


def test_the_command_names_the_dags_the_cut_off_and_skips_the_archive():
    cmd = run_history.clean_command(("dynamodb_stream_sync",), dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc))
    assert cmd[1:5] == ["-m", "airflow", "db", "clean"]
    assert cmd[cmd.index("--clean-before-timestamp") + 1] == "2026-11-01T00:00:00+00:00"
    assert cmd[cmd.index("--dag-ids") + 1] == "dynamodb_stream_sync"
    assert "--skip-archive" in cmd and "--yes" in cmd


@pytest.mark.parametrize("output, failed", [
    ("Checking table dag_run\nFound 3 rows meeting deletion criteria.", set()),
    ("[warning] The following tables were not cleaned due to errors: ['deadline']. Check the logs", {"deadline"}),
    ("The following tables were not cleaned due to errors: ['deadline', 'xcom']. Check", {"deadline", "xcom"}),
])
def test_failed_tables_are_read_from_the_output(output, failed):
    assert run_history.failed_tables(output) == failed


def test_an_empty_keep_prunes_nothing():
    result = run_history.prune(None)
    assert result.returncode is None and "kept" in result.skipped
    assert result.to_dict()["dag_ids"] == ["dynamodb_stream_sync"]
