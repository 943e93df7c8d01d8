"""The bundled AWS emulator for tests: one factory, started with the knobs a test asks for (a pytest plugin).

Two fixtures, the same knobs:

* ``aws`` (one per test module): the module's emulator, started at its first use with the knobs of the
  module's marker, ``pytestmark = pytest.mark.emulator(**knobs)`` (none: the emulator's defaults);
* ``emulator`` (one test): a factory, ``emulator(**knobs) -> LocalAWS``, for a test that needs an emulator
  of its own (other knobs, or a clock it moves on); each one it started is stopped when the test ends.

Knobs are ``dynadex.local_aws.Knobs`` fields (``export_seconds``, ``stream_shards``, ``retention_seconds``,
``test_clock``...), plus what a test wants around it:

* ``bucket="name"``: the bucket is created;
* ``env=True``: its endpoint and credentials are in ``os.environ`` (as a deployment's environment would
  hold them, for code that makes its own clients);
* ``airflow=True``: a migrated Airflow home pointed at it (implies ``env``).

The environment is put back afterwards: what the emulator set when it stops; for ``aws``, everything the
module's tests changed too, when the module ends. With ``test_clock=1`` a test moves the emulator's clock
forward instead of sleeping (``aws.clock.advance(seconds)``; ``aws.clock.now()`` is its time).
"""

from __future__ import annotations

import os
import signal
from contextlib import ExitStack

import pytest

from tests.support.poll import wait_until

BUCKET = "dynadex-exports"  # the export bucket of the sync and DAG tests
# the emulator the DAG tests run against (test_dags, test_dag_operations, test_secrets)
DAG_KNOBS = dict(bucket=BUCKET, airflow=True, export_seconds=1.5, export_files=8, stream_shards=2, rollover_records=200,
                 min_incremental_seconds=1)


def pytest_configure(config):
    config.addinivalue_line("markers", "emulator(**knobs): the knobs of the module's emulator (fixture ``aws``)")


class Emulators:
    """Starts emulators (``self(**knobs)``); ``close()`` stops them and puts back the environment they set."""

    def __init__(self, tmp_path_factory):
        self._tmp = tmp_path_factory
        self._stack = ExitStack()
        self._env = pytest.MonkeyPatch()

    def __call__(self, *, bucket: str | None = None, env: bool = False, airflow: bool = False, **knobs):
        from dynadex.local_aws import running

        if airflow:
            from tests.support import airflow as af

            self._recorded(af.prepare, self._tmp.mktemp("airflow"))
        aws = self._stack.enter_context(running(**knobs))
        if airflow:
            self._recorded(af.use_emulator, aws.endpoint)
        if bucket:
            aws.client("s3").create_bucket(Bucket=bucket)
        if env or airflow:
            for k, v in aws.env().items():
                self._env.setenv(k, v)
        return aws

    def _recorded(self, change, *args) -> None:
        """Run ``change(*args)``, which sets variables in ``os.environ``, so that ``close()`` puts them back."""
        before = dict(os.environ)
        change(*args)
        after = dict(os.environ)
        for k in {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}:
            if k in before:  # as it was, so that the monkeypatch notes the value to put back
                os.environ[k] = before[k]
            else:
                del os.environ[k]
            if k in after:
                self._env.setenv(k, after[k])
            else:
                self._env.delenv(k)

    def close(self) -> None:
        try:
            self._stack.close()
        finally:
            self._env.undo()


@pytest.fixture
def emulator(tmp_path_factory):
    """``emulator(**knobs) -> LocalAWS``: an emulator of the test's own, stopped when the test ends."""
    started = Emulators(tmp_path_factory)
    try:
        yield started
    finally:
        started.close()


@pytest.fixture(scope="module")
def aws(request, tmp_path_factory):
    """The module's emulator, with the knobs of its ``pytest.mark.emulator(**knobs)`` marker. The environment
    is put back as it was when the module ends, even what its tests changed in it."""
    marker = request.node.get_closest_marker("emulator")
    saved = dict(os.environ)
    started = Emulators(tmp_path_factory)
    try:
        yield started(**(marker.kwargs if marker else {}))
    finally:
        started.close()
        os.environ.clear()
        os.environ.update(saved)


def end_outage(aws) -> None:
    """SIGUSR1 ends the emulator's outage at once (a real signal to the real process); wait until it answers."""
    aws.process.send_signal(signal.SIGUSR1)

    def answers() -> bool:
        try:
            aws.faults.state()
            return True
        except OSError:
            return False

    wait_until(answers, "the emulator to answer again after its outage", timeout=60, every=0.05)


@pytest.fixture
def no_faults_left(aws):
    """After the test, the module's emulator has no outage and no fault rule left (use with ``usefixtures``)."""
    yield
    end_outage(aws)
    aws.faults.clear()


def make_table(aws, name: str, *, key: tuple[str, str] = ("pk", "S"), sort: tuple[str, str] | None = None,
               stream: str | None = "NEW_AND_OLD_IMAGES", pitr: bool = True, ttl: str | None = None) -> dict:
    """Create table ``name`` on demand billing: hash key ``key`` (name, type), range key ``sort`` if given, a
    stream of view type ``stream`` (None: no stream), point-in-time recovery unless ``pitr`` is false and TTL
    on attribute ``ttl`` if given. Returns what DescribeTable answers for it (``TableArn``, ``LatestStreamArn``...)."""
    ddb = aws.client("dynamodb")
    schema = [{"AttributeName": key[0], "KeyType": "HASH"}]
    attrs = [{"AttributeName": key[0], "AttributeType": key[1]}]
    if sort:
        schema.append({"AttributeName": sort[0], "KeyType": "RANGE"})
        attrs.append({"AttributeName": sort[0], "AttributeType": sort[1]})
    kw = {"StreamSpecification": {"StreamEnabled": True, "StreamViewType": stream}} if stream else {}
    ddb.create_table(TableName=name, KeySchema=schema, AttributeDefinitions=attrs, BillingMode="PAY_PER_REQUEST", **kw)
    if pitr:
        ddb.update_continuous_backups(TableName=name,
                                      PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
    if ttl:
        ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl})
    return ddb.describe_table(TableName=name)["Table"]


def wait_export(ddb, arn: str, timeout: float = 30) -> dict:
    """The export's description once it is no longer IN_PROGRESS (COMPLETED or FAILED)."""

    def finished():
        d = ddb.describe_export(ExportArn=arn)["ExportDescription"]
        return d if d["ExportStatus"] != "IN_PROGRESS" else None

    return wait_until(finished, f"export {arn} to finish", timeout=timeout, every=0.05)

