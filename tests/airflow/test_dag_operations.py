"""How the DAGs behave for the people who run them, through real Airflow (DagBag, dag.test) and the emulator.

The form (params: anchored, complete, described), deterministic failures failing at once while transient
ones are retried, chunk labels in every state, the failure notifier, the handover to the stream sync
(paused DAG, every store followed), sync health, the published asset, maintenance's ``keep_hours=0``.
"""

from __future__ import annotations

import http.server
import json
import os
import threading
from contextlib import contextmanager

import pytest

from dynadex.store import Store
from tests.support import airflow as af
from tests.support.airflow import xcom
from tests.support.emulator import DAG_KNOBS, make_table
from tests.support.sync import fill

pytestmark = pytest.mark.emulator(**DAG_KNOBS)

DAG_IDS = ("dynamodb_ingest", "dynamodb_stream_sync", "dynadex_maintenance")
PARSED: dict = {}


@contextmanager
def env(**values):
    """Set environment variables (read when the DAG files are parsed) for the block."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update({k: str(v) for k, v in values.items()})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class Recorder(http.server.BaseHTTPRequestHandler):
    """A local HTTP endpoint that records what is sent to it (a webhook, or a fake Airflow REST API)."""

    calls: list = []
    paused = True

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"{}")

    def _answer(self, doc, code=200):
        data = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):  # noqa: N802
        body = self._body()
        type(self).calls.append(("POST", self.path, body, self.headers.get("Authorization")))
        self._answer({"access_token": "t0k3n"} if self.path == "/auth/token" else {}, 201 if self.path == "/auth/token" else 200)

    def do_PATCH(self):  # noqa: N802
        body = self._body()
        type(self).calls.append(("PATCH", self.path, body, self.headers.get("Authorization")))
        self._answer({"dag_id": "dynamodb_stream_sync", "is_paused": body.get("is_paused")})

    def log_message(self, *args):
        pass


@contextmanager
def recorder():
    handler = type("Handler", (Recorder,), {"calls": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.calls
    finally:
        server.shutdown()
        server.server_close()


def tries(run, task_id):
    """[(try_number, state, rendered_map_index)] of every try of ``task_id`` (history first, then the current one)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from airflow.utils.session import create_session

    out = []
    with create_session() as session:
        for model in (TaskInstanceHistory, TaskInstance):
            rows = session.query(model).filter(model.dag_id == run.dag_id, model.run_id == run.run_id,
                                               model.task_id == task_id).all()
            out += [(r.map_index, r.try_number, r.state, r.rendered_map_index) for r in rows]
    return sorted(out, key=lambda r: (r[0], r[1]))


# ------------------------------------------------------------------------------------------------ the form

def test_every_param_of_every_dag_has_a_title_a_description_and_anchored_patterns(aws):
    for dag_id in DAG_IDS:
        dag = af.dag(dag_id)
        assert dag.description and dag.owner == "dynadex" and "Params" in dag.doc_md, dag_id
        for name, param in dag.params.items():
            schema = param.schema
            assert schema.get("title") and param.description, (dag_id, name)
            assert "type" in schema, (dag_id, name)
            if "pattern" in schema:
                assert schema["pattern"].startswith("^") and schema["pattern"].endswith(r"$(?!\n)"), (dag_id, name)
        for task in dag.tasks:
            if task.task_id not in ("wait_export",):  # the deferred wait has its own timeout
                assert task.execution_timeout is not None, (dag_id, task.task_id)
    ingest = af.dag("dynamodb_ingest")
    assert ingest.task_dict["build_chunk"].pool == "dynadex_chunks"
    assert [a.name for a in ingest.task_dict["publish"].outlets] == ["dynadex_index"]


@pytest.mark.parametrize("dag_id, conf, field", [
    ("dynamodb_ingest", {"table_name": "bad table!"}, "table_name"),
    ("dynamodb_ingest", {"table_name": "ab"}, "table_name"),
    ("dynamodb_ingest", {"table_name": "Orders\n"}, "table_name"),
    ("dynamodb_ingest", {"table_name": "Orders", "chunk_target_mb": 0}, "chunk_target_mb"),
    ("dynamodb_ingest", {"table_name": "Orders", "s3_bucket": "Bad_Bucket"}, "s3_bucket"),
    ("dynamodb_ingest", {"table_name": "Orders", "export_arn": "arn:nope"}, "export_arn"),
    ("dynamodb_ingest", {"table_name": "Orders", "export_manifest": "/local/path"}, "export_manifest"),
    ("dynamodb_ingest", {"table_name": "Orders", "aws_conn_id": "has space"}, "aws_conn_id"),
    ("dynamodb_stream_sync", {"table_name": "x y z"}, "table_name"),
    ("dynamodb_stream_sync", {"run_seconds": 0}, "run_seconds"),
    ("dynadex_maintenance", {"keep_hours": -1}, "keep_hours"),
])
def test_the_form_refuses_bad_values_before_a_run_exists(aws, dag_id, conf, field):
    from airflow.sdk.exceptions import ParamValidationError

    if dag_id not in PARSED:
        PARSED[dag_id] = af.dag(dag_id)
    with pytest.raises(ParamValidationError, match=field):
        PARSED[dag_id].test(run_conf=conf)


def test_good_values_pass_the_form():
    from dynadex import bootstrap
    from dynadex.errors import BootstrapError

    for name in ("abc", "Orders.v2", "a-b_c", "x" * 255):
        bootstrap.validate_params({"table_name": name, "s3_bucket": "dynadex-exports"})
    bootstrap.validate_params({"table_name": "Orders", "s3_bucket": "b12", "chunk_target_mb": 0.0001})
    with pytest.raises(BootstrapError, match="chunk_target_mb 0 must be a number above 0"):
        bootstrap.validate_params({"table_name": "Orders", "s3_bucket": "b12", "chunk_target_mb": 0})


# ------------------------------------------------------------------------------------- failing and retrying

def test_a_missing_table_fails_at_once_with_no_retry_and_notifies(aws, tmp_path):
    with recorder() as (url, calls), env(DYNADEX_TASK_RETRIES=2, DYNADEX_RETRY_DELAY_SECONDS=0,
                                         DYNADEX_FAILURE_WEBHOOK=url):
        dag = af.dag("dynamodb_ingest")
        assert dag.task_dict["validate_table"].retries == 2
        run = dag.test(run_conf={"table_name": "NoSuchTable", "store": str(tmp_path / "s")})
    assert run.state == "failed"
    assert tries(run, "validate_table") == [(-1, 1, "failed", None)]  # one try, no up_for_retry
    posted = [body for method, path, body, _ in calls if method == "POST"]
    assert len(posted) == 1 and posted[0]["task_id"] == "validate_table" and posted[0]["dag_id"] == "dynamodb_ingest"
    assert "does not exist" in posted[0]["error"] and "AirflowFailException" in posted[0]["error"]
    assert posted[0]["try_number"] == 1 and "dynamodb_ingest validate_table failed" in posted[0]["text"]


def test_no_notifier_unless_configured(aws):
    os.environ.pop("DYNADEX_FAILURE_WEBHOOK", None)
    dag = af.dag("dynamodb_ingest")
    assert not dag.task_dict["validate_table"].on_failure_callback


def test_a_transient_error_is_retried_and_a_chunk_keeps_its_label_in_every_state(aws, tmp_path, monkeypatch):
    """A network error in one chunk build: retried, then failed, named by its chunk; the others succeed at once."""
    from dynadex_airflow import ingest_tasks

    make_table(aws, "Flaky", sort=("sk", "N"))
    ddb = aws.client("dynamodb")
    fill(ddb, "Flaky", 600)
    real = ingest_tasks.build_one

    def flaky(export, chunk, *args, **kwargs):
        if chunk.index == 0:
            raise ConnectionError("connection reset by peer (simulated)")
        return real(export, chunk, *args, **kwargs)

    monkeypatch.setattr(ingest_tasks, "build_one", flaky)
    with env(DYNADEX_TASK_RETRIES=1, DYNADEX_RETRY_DELAY_SECONDS=0):
        run = af.dag("dynamodb_ingest").test(run_conf={"table_name": "Flaky", "store": str(tmp_path / "s"),
                                                       "chunk_target_mb": 0.005})
    assert run.state == "failed"
    chunk0 = [t for t in tries(run, "build_chunk") if t[0] == 0]
    # retried once (Airflow archives the first try as failed; between the tries the instance was up_for_retry)
    assert [(n, state) for _, n, state, _ in chunk0] == [(1, "failed"), (2, "failed")]
    # every live row (what the grid shows) is named by its chunk, the failed one too, though its body never got
    # past the (simulated) network error: the name comes from the mapped spec, rendered before the body runs.
    # (Airflow 3.3.2 sends no rendered_map_index with a retry, so the archived first try, and the live row while
    # it waits for its retry, show the bare index; see the report.)
    live = [t for t in tries(run, "build_chunk") if t[1] == max(u[1] for u in tries(run, "build_chunk") if u[0] == t[0])]
    assert all(label and label.startswith("chunk ") and " files · " in label for *_, label in live), live
    assert chunk0[1][3].startswith("chunk 1/")
    others = [t for t in tries(run, "build_chunk") if t[0] > 0]
    assert others and all(state == "success" and n == 1 for _, n, state, _ in others)


# ------------------------------------------------------------------------------------------ maintenance

def test_keep_hours_zero_means_zero(aws, tmp_path):
    from dynadex.store import PublishSpec
    from dynadex.types import canonical_item

    store = str(tmp_path / "store")
    with Store(store, read_only=False) as st:
        w = st.chunk_writer("K", "b1", "c0", ("pk",), ("S",))
        w.add(canonical_item({"pk": {"S": "a"}}), 1, "bulk")
        w.finish()
        st.publish(PublishSpec("K", "b1", ["c0"], ("pk",), ("S",)))
    run = af.dag("dynadex_maintenance").test(run_conf={"store": store, "keep_hours": 0})
    assert run.state == "success", af.states(run)
    assert xcom(run, "maintain")["expired_snapshots"] >= 1  # with 1 hour kept, these minutes-old ones would stay


def test_a_sync_run_ends_early_when_another_run_is_queued_behind_it(aws, tmp_path, monkeypatch):
    """Runs are long (an hour): a run queued behind the active one (an ingest's handover of a new table) must
    not wait for it. The sync task asks the execution API between batches and ends at a batch boundary."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunTriggeredByType

    from dynadex import bootstrap

    make_table(aws, "Handed", sort=("sk", "N"))
    ddb = aws.client("dynamodb")
    fill(ddb, "Handed", 20)
    store = str(tmp_path / "store")
    assert bootstrap.run(ddb, "Handed", bucket="dynadex-exports", store=store, poll_seconds=0.1)["publish"]["published"]
    monkeypatch.setenv("DYNADEX_STOP_CHECK_SECONDS", "1")
    sync_dag = af.dag("dynamodb_stream_sync")
    assert sync_dag.test(run_conf={"store": str(tmp_path / "none")}).state == "success"  # the DAG is in the DB now
    queued = trigger_dag("dynamodb_stream_sync", triggered_by=DagRunTriggeredByType.TEST, run_id="waiting-behind",
                         conf={"handover": {"table_name": "Handed", "store": store}})
    try:
        run = sync_dag.test(run_conf={"store": store, "table_name": "Handed", "run_seconds": 900})
        assert run.state == "success", af.states(run)
        health = xcom_key(run, "report", "health")
        assert [h["table"] for h in health] == ["Handed"] and health[0]["stopped_early"] is True, health
    finally:
        with create_session() as session:
            session.query(DagRun).filter(DagRun.run_id == queued.run_id).delete(synchronize_session=False)


def test_maintenance_prunes_old_stream_sync_runs_and_keeps_recent_ones(aws, tmp_path):
    """Months of continuous runs: the maintenance DAG deletes the sync's runs (and their task instances) older
    than keep_run_days through `airflow db clean`, and leaves the recent ones and other DAGs' runs alone."""
    import datetime as dt

    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    store = str(tmp_path / "empty-store")  # nothing to follow: each sync run lists no table and ends
    old, recent = (af.dag("dynamodb_stream_sync").test(run_conf={"store": store}) for _ in range(2))
    assert old.state == recent.state == "success", (af.states(old), af.states(recent))
    month_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=30)
    with create_session() as session:  # the first run happened a month ago
        session.query(DagRun).filter(DagRun.run_id == old.run_id).update(
            {"start_date": month_ago, "end_date": month_ago, "logical_date": month_ago, "run_after": month_ago,
             "queued_at": month_ago}, synchronize_session=False)
        session.query(TaskInstance).filter(TaskInstance.run_id == old.run_id).update(
            {"start_date": month_ago, "end_date": month_ago}, synchronize_session=False)
    run = af.dag("dynadex_maintenance").test(run_conf={"store": store, "keep_run_days": 7})
    assert run.state == "success", af.states(run)
    result = xcom(run, "prune_sync_runs")
    assert result["dag_ids"] == ["dynamodb_stream_sync"] and result["returncode"] == 0, result
    with create_session() as session:
        runs = {r.run_id for r in session.query(DagRun).filter(DagRun.dag_id == "dynamodb_stream_sync")}
        old_tis = session.query(TaskInstance).filter(TaskInstance.run_id == old.run_id).count()
        maintenance_runs = session.query(DagRun).filter(DagRun.dag_id == "dynadex_maintenance").count()
    assert old.run_id not in runs and old_tis == 0
    assert recent.run_id in runs and maintenance_runs >= 1


# ----------------------------------------------------------------------- handover, stores, health, asset

def xcom_key(run, task_id, key):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.scalars(XComModel.get_many(run_id=run.run_id, dag_ids=run.dag_id, task_ids=task_id,
                                                  map_indexes=-1, key=key)).all()
        return XComModel.deserialize_value(rows[0]) if rows else None


def set_paused(dag_id, paused):
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(DagModel).filter(DagModel.dag_id == dag_id).update({"is_paused": paused})


def test_handover_unpauses_the_sync_and_every_ingested_store_is_followed_with_health(aws, tmp_path, monkeypatch):
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.models.dagrun import DagRun
    from airflow.models.variable import Variable  # the metadata DB's (the test is not a task)
    from airflow.utils.session import create_session

    monkeypatch.setenv("DYNADEX_STORE", str(tmp_path / "default"))  # the default store: never created here
    monkeypatch.delenv("AIRFLOW_CONN_AIRFLOW_API", raising=False)
    Variable.delete("dynadex_stores")  # stores earlier tests of this process ingested into (their tables are gone)
    for name in ("FollowA", "FollowB"):
        make_table(aws, name, sort=("sk", "N"))
        fill(aws.client("dynamodb"), name, 300)
    store_a, store_b = str(tmp_path / "a"), str(tmp_path / "b")
    ingest = af.dag("dynamodb_ingest")
    set_paused("dynamodb_stream_sync", True)  # as it is on creation

    # no REST API to reach: the handover cannot unpause, says so, and still triggers the run
    run_a = ingest.test(run_conf={"table_name": "FollowA", "store": store_a, "chunk_target_mb": 0.01})
    assert run_a.state == "success", af.states(run_a)
    handover = xcom(run_a, "start_stream_sync")
    assert handover["paused"] is True and handover["unpaused"] is False and handover["new_store"] is True
    with create_session() as session:
        triggered = session.query(DagRun).filter(DagRun.dag_id == "dynamodb_stream_sync",
                                                 DagRun.run_id == handover["run_id"]).one()
        assert triggered.conf == {"handover": {"table_name": "FollowA", "store": store_a}, "aws_conn_id": "aws_default"}

    # with the API connection (make airflow creates it) the handover unpauses the sync
    with recorder() as (url, calls):
        monkeypatch.setenv("AIRFLOW_CONN_AIRFLOW_API", json.dumps({"conn_type": "http", "host": url,
                                                                   "login": "admin", "password": "pw"}))
        run_b = ingest.test(run_conf={"table_name": "FollowB", "store": store_b, "chunk_target_mb": 0.01})
    assert run_b.state == "success", af.states(run_b)
    handover = xcom(run_b, "start_stream_sync")
    assert handover["paused"] is True and handover["unpaused"] is True
    assert ("POST", "/auth/token", {"username": "admin", "password": "pw"}, None) in calls
    assert ("PATCH", "/api/v2/dags/dynamodb_stream_sync?update_mask=is_paused", {"is_paused": False},
            "Bearer t0k3n") in calls
    assert Variable.get("dynadex_stores", deserialize_json=True) == [store_a, store_b]

    # each publish emitted an asset event naming what it published
    with create_session() as session:
        extras = [e.extra for e in session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                  .filter(AssetModel.name == "dynadex_index").all()]
    assert {"table": "FollowA", "store": store_a} .items() <= next(x for x in extras if x["table"] == "FollowA").items()
    assert any(x["table"] == "FollowB" and x["published"] is True and x["items"] == 300 for x in extras), extras

    # changes in both tables; a continuous run (no conf) follows both stores and reports each table's health
    for name in ("FollowA", "FollowB"):
        ddb = aws.client("dynamodb")
        for i in range(7):
            ddb.put_item(TableName=name, Item={"pk": {"S": f"new#{i}"}, "sk": {"N": str(i)}})
    set_paused("dynamodb_stream_sync", False)
    sync = af.dag("dynamodb_stream_sync").test(run_conf={"run_seconds": 8})
    assert sync.state == "success", af.states(sync)
    health = {h["table"]: h for h in xcom_key(sync, "report", "health")}
    assert set(health) >= {"FollowA", "FollowB"}, health
    with create_session() as session:  # one mapped sync task per (store, table), named after its table
        labels = {ti.rendered_map_index for ti in sync.get_task_instances(session=session) if ti.task_id == "sync"}
    assert {f"FollowA · {store_a}", f"FollowB · {store_b}"} <= labels, labels
    for name, store in (("FollowA", store_a), ("FollowB", store_b)):
        h = health[name]
        assert h["store"] == store and h["applied"] >= 7 and h["shards"] >= 1 and h["recoveries"] == 0, h
        assert h["lag_seconds"] is not None and h["checked_at"]
        if h["caught_up"]:
            assert h["lag_seconds"] == 0
        with Store(store) as st:
            assert st.status(name)["tables"][0]["lag_seconds"] == h["lag_seconds"]
