"""The bundled AWS emulator: moto's server with DynamoDB exports, streams and TTL made to behave like AWS.

We hook moto's classes from here (no fork, no vendored copy):

* ``Table.set_stream_specification`` -> every table gets a ``ChangeFeed``
  (write history + our multi-shard ``Stream``);
* the DynamoDB handler's ExportTableToPointInTime / DescribeExport /
  ListExports -> ``ExportEngine``;
* the DynamoDB Streams handler -> ``StreamRegistry``;
* a TTL sweeper thread deletes expired items as the service would;
* ``faults`` (middleware in front of everything) answers injected errors
  and outages declared as data at ``/_dynadex/faults``;
* ``clock``: every time the emulator keeps or compares is its clock's
  ``now()``, read at ``/_dynadex/clock`` and moved forward there by tests
  (only with the test-only knob ``test_clock``);
* ``strict.install`` wraps the DynamoDB handler's writes and reads so the
  emulator refuses what DynamoDB refuses (``validate``) and answers numbers
  as DynamoDB does; ``patches`` holds small named fixes that belong in moto;
* ``writes_lane`` answers BatchWriteItem (and the bulk ``/_dynadex/batch-writes``)
  against moto's tables without moto's dispatch, exactly as moto's path would.

Invariant: one lock serialises requests, the sweeper and export snapshots,
so the history, the stream and moto's tables never disagree.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time

from dynadex.local_aws.clock import ClockApp, now
from dynadex.local_aws.config import Knobs
from dynadex.local_aws.exports import ExportEngine
from dynadex.local_aws.faults import Faults, FaultsApp
from dynadex.local_aws.feed import ChangeFeed, service_delete
from dynadex.local_aws.lock import LOCK
from dynadex.local_aws.streams import Stream, StreamRegistry

_installed: dict = {}


def feed_of(table) -> ChangeFeed:
    return table.stream_shard if isinstance(table.stream_shard, ChangeFeed) else table._dynadex_feed


def install(knobs: Knobs) -> tuple[ExportEngine, StreamRegistry]:
    """Patch moto in this process (idempotent; knobs of the first call win)."""
    if _installed:
        return _installed["engine"], _installed["streams"]
    from moto.core.responses import ActionResult
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

    from dynadex.local_aws import patches, strict

    patches.apply_all()
    strict.install()
    engine = ExportEngine(knobs)
    registry = StreamRegistry(knobs)
    original_set_stream = Table.set_stream_specification

    def set_stream_specification(self, streams):
        previous = self.latest_stream_label
        original_set_stream(self, streams)
        if self.latest_stream_label and self.latest_stream_label != previous:
            # AWS's labels carry milliseconds ("2019-10-22T18:02:01.576"); moto's carry microseconds
            self.latest_stream_label = self.latest_stream_label[:23]
        feed = getattr(self, "_dynadex_feed", None)
        if feed is None:
            feed = self._dynadex_feed = ChangeFeed(self, knobs)
        spec = self.stream_specification or {}
        if spec.get("StreamEnabled"):
            if feed.stream is None or feed.stream.label != self.latest_stream_label:
                if feed.stream is not None:
                    feed.stream.enabled = False
                feed.stream = Stream(self, spec.get("StreamViewType", "NEW_AND_OLD_IMAGES"), self.latest_stream_label,
                                     knobs, self.region_name)
                registry.register(feed.stream)
        elif feed.stream is not None:
            feed.stream.enabled = False
        self.stream_shard = feed

    Table.set_stream_specification = set_stream_specification

    from moto.dynamodb.exceptions import StreamAlreadyEnabledException
    from moto.dynamodb.models import DynamoDBBackend

    def update_table_streams(self, table, stream_specification):
        # AWS refuses to enable a stream that is enabled, but lets a disabled one be enabled again
        # (with a new stream ARN); moto refuses as soon as any stream ever existed.
        enabling = stream_specification.get("StreamEnabled") or stream_specification.get("StreamViewType")
        if enabling and (table.stream_specification or {}).get("StreamEnabled"):
            raise StreamAlreadyEnabledException
        table.set_stream_specification(stream_specification)

    DynamoDBBackend.update_table_streams = update_table_streams

    def export_table_to_point_in_time(self):
        export = engine.start(self.dynamodb_backend, self.body, feed_of)
        return ActionResult({"ExportDescription": export.describe()})

    def describe_export(self):
        return ActionResult({"ExportDescription": engine.describe(self.body.get("ExportArn", "")).describe()})

    def list_exports(self):
        exports, token = engine.list_page(self.body.get("TableArn"), self.body.get("MaxResults"),
                                          self.body.get("NextToken"))
        out = {"ExportSummaries": [
            {"ExportArn": e.arn, "ExportStatus": e.status, "ExportType": e.export_type} for e in exports]}
        if token:
            out["NextToken"] = token
        return ActionResult(out)

    DynamoHandler.export_table_to_point_in_time = export_table_to_point_in_time
    DynamoHandler.describe_export = describe_export
    DynamoHandler.list_exports = list_exports

    from dynadex.local_aws import streams_lane

    def params(handler, *names):
        return {n: handler._get_param(n) for n in names if handler._get_param(n) is not None}

    def describe_stream(self):
        return ActionResult(streams_lane.describe_stream(
            registry, params(self, "StreamArn", "Limit", "ExclusiveStartShardId", "ShardFilter")))

    def get_shard_iterator(self):
        return ActionResult(streams_lane.get_shard_iterator(
            registry, params(self, "StreamArn", "ShardId", "ShardIteratorType", "SequenceNumber", "Timestamp")))

    def get_records(self):
        # JSON text, not ActionResult: moto's model-driven serializer walks every attribute value of every
        # record in Python (670 ms for a page of 200 rich records; json.dumps takes a few ms)
        return streams_lane.json_body(streams_lane.get_records(registry, params(self, "ShardIterator", "Limit"))).decode()

    def list_streams(self):
        table_name = self._get_param("TableName")
        with LOCK:
            streams = [
                {"StreamArn": s.arn, "TableName": s.table.name, "StreamLabel": s.label}
                for s in registry.streams.values()
                if s.enabled and (table_name is None or s.table.name == table_name)
            ]
        return ActionResult({"Streams": streams})

    DynamoDBStreamsHandler.describe_stream = describe_stream
    DynamoDBStreamsHandler.get_shard_iterator = get_shard_iterator
    DynamoDBStreamsHandler.get_records = get_records
    DynamoDBStreamsHandler.list_streams = list_streams

    _installed.update(engine=engine, streams=registry, knobs=knobs)
    return engine, registry


def sweep_ttl_once() -> int:
    """Delete every expired item of every TTL-enabled table; return how many."""
    from decimal import Decimal

    from moto.dynamodb.models import dynamodb_backends

    deleted = 0
    t = now()
    with LOCK:
        for account in list(dynamodb_backends.keys()):
            for region, backend in list(dynamodb_backends[account].items()):
                for table in list(backend.tables.values()):
                    if table.ttl.get("TimeToLiveStatus") != "ENABLED":
                        continue
                    attr = table.ttl.get("AttributeName")
                    expired = []
                    for item in table.all_items():
                        av = item.to_json()["Attributes"].get(attr)
                        if av and "N" in av:
                            try:
                                if Decimal(av["N"]) <= Decimal(t):
                                    expired.append(item)
                            except ArithmeticError:
                                continue
                    for item in expired:
                        with service_delete():
                            table.delete_item(item.hash_key, item.range_key)
                        deleted += 1
    return deleted


def _sweeper(interval: float, stop: threading.Event) -> None:
    while not stop.wait(interval):
        try:
            sweep_ttl_once()
        except Exception as exc:  # pragma: no cover - keep sweeping
            print(f"local-aws: TTL sweep failed: {exc}", file=sys.stderr)


class LockedApp:
    """WSGI middleware serialising requests (moto's backends are not thread-safe)."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        with LOCK:
            body = self.app(environ, start_response)
            return list(body)


def make_app(knobs: Knobs, faults: Faults | None = None):
    install(knobs)
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    app = LockedApp(DomainDispatcherApplication(create_backend_app))
    if knobs.streams_lane:
        from dynadex.local_aws.streams_lane import StreamsLane

        app = StreamsLane(app, _installed["streams"])
    if knobs.writes_lane:
        from dynadex.local_aws.writes_lane import WritesLane

        app = WritesLane(app)
    return ClockApp(FaultsApp(app, faults or Faults()), movable=bool(knobs.test_clock))


def serve(host: str, port: int, knobs: Knobs) -> None:
    """Run in the foreground; print ``ready http://HOST:PORT`` once accepting; stop on SIGINT/SIGTERM.

    An injected outage (``faults``) closes the listening socket; the loop below listens again on the same
    port once it is over (or at SIGUSR1), with every table, stream and object as it was."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import make_server

    from dynadex.local_aws.keepalive import KeepAliveHandler

    handler = KeepAliveHandler if knobs.keep_alive else MotoRequestHandler

    faults = Faults()
    app = make_app(knobs, faults)
    stop = threading.Event()
    current: list = []
    sweeper = threading.Thread(target=_sweeper, args=(knobs.ttl_interval_seconds, stop), daemon=True)
    sweeper.start()

    def shutdown(signum, frame):
        stop.set()
        faults.down_until = 0.0
        if current:
            threading.Thread(target=current[0].shutdown, daemon=True).start()

    def end_outage(signum, frame):  # SIGUSR1: the outage is over now (tests, drills)
        faults.down_until = 0.0

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    signal.signal(signal.SIGUSR1, end_outage)
    first = True
    while not stop.is_set():
        try:
            server = make_server(host, port, app, threaded=True, request_handler=handler)
        except OSError as exc:  # the port is briefly held after an outage: try again until it is free
            if first:
                raise
            print(f"local-aws: listening again on {port} failed ({exc}); retrying", file=sys.stderr, flush=True)
            time.sleep(0.1)
            continue
        current[:] = [server]
        faults.stop_listening = server.shutdown
        if first:
            port = server.server_port
            print(f"ready http://{host}:{port}", flush=True)
            first = False
        try:
            server.serve_forever()
        finally:
            server.server_close()
        if not stop.is_set() and faults.down:
            print(f"local-aws: outage: not listening on {port}", flush=True)
            faults.wait_outage()
            print(f"local-aws: listening again on {port}", flush=True)
        elif not stop.is_set():
            continue
    stop.set()
    print("local-aws: stopped", flush=True)
