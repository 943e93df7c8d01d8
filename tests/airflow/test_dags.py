"""The Airflow DAGs, run by Airflow (dag.test) against the emulator over HTTP, into real DuckLake files."""

from __future__ import annotations

import json
import threading
import time

import pytest

from dynadex.export import iter_records, read_export
from dynadex.store import Store
from dynadex.stream.verify import verify
from dynadex.types import canonical_json
from tests.support import airflow as af
from tests.support.airflow import xcom
from tests.support.emulator import DAG_KNOBS, make_table, wait_export
from tests.support.sync import fill, rich_item

pytestmark = pytest.mark.emulator(**DAG_KNOBS)


def export_items(export_url: str) -> list[str]:
    e = read_export(export_url)
    return sorted(canonical_json(r.item) for f in e.files for r in iter_records(e, f))


def store_dump(store, table) -> list[str]:
    with Store(store) as st:
        return sorted(st.dump(table))


def test_bootstrap_under_writes_then_stream_sync_converges(aws, tmp_path):
    """>= 10k items of every type, writes continuing during the export; then the stream DAG catches up."""
    make_table(aws, "Everything", sort=("sk", "N"))
    ddb = aws.client("dynamodb")
    fill(ddb, "Everything", 10_500)
    store = str(tmp_path / "store")
    log, stop = [], threading.Event()

    def writer():
        i = 0
        while not stop.is_set():
            i += 1
            sent = time.time()
            if i % 4 == 0:
                ddb.delete_item(TableName="Everything", Key={"pk": {"S": f"user#{i % 997}"}, "sk": {"N": str(i)}})
            else:
                ddb.put_item(TableName="Everything", Item={**rich_item(i), "rev": {"N": str(i)}})
            log.append((sent, time.time(), i))
            time.sleep(0.005)

    th = threading.Thread(target=writer)
    th.start()
    try:
        dag = af.dag("dynamodb_ingest")
        run = dag.test(run_conf={"table_name": "Everything", "store": store, "chunk_target_mb": 0.05})
    finally:
        stop.set()
        th.join()
    s = af.states(run)
    assert run.state == "success", s
    chunks = [k for k in s if k[0] == "build_chunk"]
    assert len(chunks) >= 3  # balanced chunks over the export's files
    manifest = xcom(run, "wait_export")
    assert manifest.startswith("s3://dynadex-exports/dynadex/AWSDynamoDB/")
    # the index equals the export, item for item, byte-exact ...
    exported = export_items(manifest)
    assert len(exported) >= 10_000
    assert store_dump(store, "Everything") == exported
    # ... and the export is the table as it was at T0 (writes answered before T0 are in, sent after are not)
    t0 = xcom(run, "pin_stream_start")["t0"]
    in_export = {json.loads(t)["sk"]["N"] for t in exported}
    for sent, answered, i in log:
        if answered < t0 - 0.05 and i % 4:
            assert str(i) in in_export  # a put finished before T0
        if sent > t0 + 0.05 and i % 4 and i >= 10_000:
            assert str(i) not in in_export  # a new item written after T0
    # the mapped tasks are named in the UI
    from airflow.utils.session import create_session
    with create_session() as session:
        labels = [ti.rendered_map_index for ti in run.get_task_instances(session=session) if ti.task_id == "build_chunk"]
    assert all(l and l.startswith("chunk ") and " files · " in l for l in labels), labels
    # start_stream_sync triggered the stream DAG for this table; run it and the index equals the table
    from airflow.models.dagrun import DagRun
    with create_session() as session:
        triggered = session.query(DagRun).filter(DagRun.dag_id == "dynamodb_stream_sync").all()
        assert any(((r.conf or {}).get("handover") or {}).get("table_name") == "Everything" for r in triggered)
    for i in range(20):  # more writes after the bootstrap, including a TTL-less delete and a new attribute
        ddb.put_item(TableName="Everything", Item={**rich_item(50_000 + i), "late": {"S": "yes"}})
    ddb.delete_item(TableName="Everything", Key={"pk": {"S": "user#0"}, "sk": {"N": "0"}})
    sync_dag = af.dag("dynamodb_stream_sync")
    # the shape: list the tables, one mapped sync task per (store, table), gather their health, bootstrap again
    assert sync_dag.task_dict["sync"].upstream_task_ids == {"list_tables"}
    assert sync_dag.task_dict["report"].upstream_task_ids == {"sync"}
    assert sync_dag.task_dict["bootstrap_again"].upstream_task_ids == {"report"}
    for _ in range(6):  # what the continuous schedule does: bounded runs, each resuming from the checkpoints
        sync = sync_dag.test(run_conf={"table_name": "Everything", "store": store, "run_seconds": 8})
        assert sync.state == "success", af.states(sync)
        with create_session() as session:
            mapped = [ti for ti in sync.get_task_instances(session=session) if ti.task_id == "sync"]
        assert [ti.rendered_map_index for ti in mapped] == [f"Everything · {store}"]
        with Store(store) as st:
            report = verify(st, "Everything", aws.client("dynamodb"))
        if report.ok:
            break
    assert report.ok, (report.missing[:3], report.extra[:3], report.different[:3])
    with Store(store) as st:
        assert report.table_items >= 10_000
        assert st.find("Everything", "late=yes") and len(st.find("Everything", "late=yes")) == 20


def test_ion_export(aws, tmp_path):
    make_table(aws, "IonTable", sort=("sk", "N"))
    ddb = aws.client("dynamodb")
    fill(ddb, "IonTable", 300)
    store = str(tmp_path / "store")
    run = af.dag("dynamodb_ingest").test(run_conf={"table_name": "IonTable", "store": store, "export_format": "ION"})
    assert run.state == "success", af.states(run)
    manifest = xcom(run, "wait_export")
    assert read_export(manifest).summary.output_format == "ION"
    with Store(store) as st:
        assert verify(st, "IonTable", ddb).ok


def _existing_export(aws, ddb, table, prefix):
    arn = ddb.describe_table(TableName=table)["Table"]["TableArn"]
    d = ddb.export_table_to_point_in_time(TableArn=arn, S3Bucket="dynadex-exports", S3Prefix=prefix)["ExportDescription"]
    d = wait_export(ddb, d["ExportArn"], timeout=120)
    return f"s3://dynadex-exports/{d['ExportManifest']}"


def test_existing_export_failed_chunk_cleared_and_rerun_publish_noop(aws, tmp_path):
    make_table(aws, "Existing", sort=("sk", "N"))
    ddb = aws.client("dynamodb")
    fill(ddb, "Existing", 2000)
    manifest = _existing_export(aws, ddb, "Existing", "given")
    e = read_export(manifest)
    s3 = aws.client("s3")
    victim = max(e.files, key=lambda f: f.item_count).key
    good = s3.get_object(Bucket="dynadex-exports", Key=victim)["Body"].read()
    bad = good[:-30] + bytes([good[-30] ^ 0xFF]) + good[-29:]  # one flipped byte: MD5 mismatch
    s3.put_object(Bucket="dynadex-exports", Key=victim, Body=bad)
    store = str(tmp_path / "store")
    dag = af.dag("dynamodb_ingest")
    run = dag.test(run_conf={"table_name": "Existing", "store": store, "export_manifest": manifest, "chunk_target_mb": 0.02})
    s = af.states(run)
    assert run.state == "failed"
    failed = [k for k, v in s.items() if k[0] == "build_chunk" and v == "failed"]
    assert len(failed) == 1 and s[("publish", -1)] == "upstream_failed"
    assert s[("start_export", -1)] == "success" and xcom(run, "start_export") is None  # nothing started
    from pathlib import Path
    assert not (Path(store) / "catalog.sqlite").exists()  # nothing published: no catalog was even created
    # on call: fix the file, clear the failed chunk (downstream follows), re-run
    s3.put_object(Bucket="dynadex-exports", Key=victim, Body=good)
    # what "Clear" with downstream does in the UI: the chunk, then prepare_publish, the checks and publish
    af.clear(run, lambda ti: (ti.task_id, ti.map_index) == failed[0]
             or ti.task_id in ("prepare_publish", "check", "publish", "start_stream_sync"))
    run = af.resume(dag, run)
    s = af.states(run)
    assert run.state == "success", {k: v for k, v in s.items() if v != "success"}
    exported = export_items(manifest)
    assert store_dump(store, "Existing") == exported and len(exported) == 2000  # no duplicate, no loss
    with Store(store) as st:
        snap = st.status("Existing")["snapshot"]
    # publish cleared and re-run after success: a no-op
    af.clear(run, lambda ti: ti.task_id in ("publish", "start_stream_sync"))
    run = af.resume(dag, run)
    assert run.state == "success"
    assert xcom(run, "publish")["published"] is False
    with Store(store) as st:
        assert st.status("Existing")["snapshot"] == snap
        assert st.query("SELECT count(*) FROM row_index.Existing")[1] == [(2000,)]


def test_failed_export_fails_wait_with_aws_reason(aws, tmp_path):
    make_table(aws, "NoBucket", sort=("sk", "N"))
    run = af.dag("dynamodb_ingest").test(run_conf={"table_name": "NoBucket", "store": str(tmp_path / "s"),
                                                   "s3_bucket": "no-such-bucket"})
    s = af.states(run)
    assert run.state == "failed" and s[("wait_export", -1)] == "failed" and s[("start_export", -1)] == "success"
    arn = xcom(run, "start_export")
    from dynadex_airflow.operators import DynamoDBExportSensor
    sensor = DynamoDBExportSensor(task_id="probe", export_arn=arn)
    with pytest.raises(Exception, match="FAILED: S3NoSuchBucket: The specified bucket does not exist"):
        sensor.execute_complete({}, {"status": "error", "message": "waiter failed"})


@pytest.mark.parametrize("pitr, stream, reason", [
    (False, "NEW_AND_OLD_IMAGES", "point-in-time recovery is off"),
    (True, None, "DynamoDB Streams is off"),
    (True, "KEYS_ONLY", "carries no new images"),
])
def test_table_without_pitr_or_stream_is_refused(aws, tmp_path, pitr, stream, reason):
    name = f"Bad{int(pitr)}{stream or 'none'}".replace("_", "")
    make_table(aws, name, sort=("sk", "N"), pitr=pitr, stream=stream)
    ddb = aws.client("dynamodb")
    run = af.dag("dynamodb_ingest").test(run_conf={"table_name": name, "store": str(tmp_path / "s")})
    s = af.states(run)
    assert run.state == "failed" and s[("validate_table", -1)] == "failed" and s[("start_export", -1)] == "upstream_failed"
    arn = ddb.describe_table(TableName=name)["Table"]["TableArn"]
    assert ddb.list_exports(TableArn=arn)["ExportSummaries"] == []
    from dynadex import bootstrap
    from dynadex.errors import BootstrapError
    with pytest.raises(BootstrapError, match=reason):
        bootstrap.validate_table(ddb, name)


def test_bad_params_rejected_by_the_form_and_at_run_time(aws):
    from airflow.sdk.exceptions import ParamValidationError

    from dynadex import bootstrap
    from dynadex.errors import BootstrapError

    dag = af.dag("dynamodb_ingest")
    with pytest.raises(ParamValidationError, match="chunk_target_mb"):
        dag.test(run_conf={"table_name": "Everything", "chunk_target_mb": -1})
    with pytest.raises(ParamValidationError, match="export_format"):
        dag.test(run_conf={"table_name": "Everything", "export_format": "CSV"})
    with pytest.raises(BootstrapError, match="table_name 'x' is not a DynamoDB table name.*s3_bucket"):
        bootstrap.validate_params({"table_name": "x", "s3_bucket": "UPPER"})


def test_maintenance_dag_prunes_superseded_entries_and_answers_stay(aws, tmp_path):
    """The daily DAG, run by Airflow: superseded inverted entries go, every answer stays the same."""
    from dynadex.store import Change, PublishSpec
    from dynadex.types import canonical_item

    store = str(tmp_path / "store")
    item = lambda k, city: canonical_item({"pk": {"S": k}, "city": {"S": city}})  # noqa: E731
    with Store(store, read_only=False) as st:
        w = st.chunk_writer("M", "b1", "c0", ("pk",), ("S",))
        for k in range(20):
            w.add(item(f"k{k}", "Paris"), 1, "bulk")
        w.finish()
        st.publish(PublishSpec("M", "b1", ["c0"], ("pk",), ("S",)))
        for n, city in enumerate(["Rome", "Oslo", "Lima"]):
            st.apply("M", [Change({"pk": {"S": f"k{k}"}}, item(f"k{k}", city), 10 + n, "s") for k in range(10)])
        before = st.query("SELECT count(*) FROM inverted_index.M")[1][0][0]
        answers = {c: st.find("M", f"city={c}") for c in ("Paris", "Rome", "Oslo", "Lima")}
    assert before == 40 + 3 * 20  # 2 entries per item, plus each batch's 10 items
    run = af.dag("dynadex_maintenance").test(run_conf={"store": store, "keep_hours": 0})
    assert run.state == "success", af.states(run)
    with Store(store) as st:
        assert st.query("SELECT count(*) FROM inverted_index.M")[1][0][0] == 40  # one write per item is current
        assert {c: st.find("M", f"city={c}") for c in answers} == answers
        assert len(answers["Lima"]) == 10 and len(answers["Paris"]) == 10 and answers["Rome"] == []
