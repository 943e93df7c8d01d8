"""Gap recovery: incremental exports from the last applied change to now, applied in order.

Invariants:

* Windows cover [from, now) with no hole: each is at least the shortest
  window AWS accepts (15 min; ``from`` moves back when the gap is shorter)
  and at most 24 h, chained end to start.
* Each window is applied as ONE store transaction (NewImage upserts, no
  NewImage deletes), authoritative as of its end, so versions are not
  compared (``force``); the last one also moves the table to the current
  stream with no checkpoints and ``stream_start`` = the last window's end,
  so the stream resumes at the trim horizon skipping records older than
  that end minus the overlap.
* Beyond the PITR window (or with PITR off) there is no incremental export
  to take: ``NeedsBootstrap``.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time

from dynadex.errors import DynadexError
from dynadex.export.manifest import read_export
from dynadex.export.reader import iter_records
from dynadex.store import Change, Store
from dynadex.stream.errors import NeedsBootstrap

log = logging.getLogger("dynadex.recover")

MIN_WINDOW = 15 * 60
MAX_WINDOW = 24 * 3600
PITR_WINDOW = 35 * 86400


def windows(start: float, end: float, min_window: float = MIN_WINDOW, max_window: float = MAX_WINDOW) -> list[tuple[float, float]]:
    """Chained [from, to) windows covering [start, end) with no hole, each within [min_window, max_window]."""
    if end - start < min_window:
        start = end - min_window
    n = max(1, math.ceil((end - start) / max_window))
    step = (end - start) / n
    edges = [start + i * step for i in range(n)] + [end]
    return list(zip(edges, edges[1:]))


def wait_export(ddb, arn: str, timeout: float, poll: float) -> dict:
    deadline = time.time() + timeout
    while True:
        d = ddb.describe_export(ExportArn=arn)["ExportDescription"]
        if d["ExportStatus"] == "COMPLETED":
            return d
        if d["ExportStatus"] == "FAILED":
            raise DynadexError(f"incremental export {arn} failed: {d.get('FailureCode')}: {d.get('FailureMessage')}")
        if time.time() > deadline:
            raise DynadexError(f"incremental export {arn} did not finish within {timeout:g}s")
        time.sleep(poll)


def _stream_created(label: str | None) -> float:
    """Creation time of a stream from its label (ISO 8601, UTC, no offset); 0 when unknown."""
    if not label:
        return 0.0
    try:
        return dt.datetime.fromisoformat(label).replace(tzinfo=dt.timezone.utc).timestamp()
    except ValueError:
        return 0.0


def recover(store: Store, table: str, ddb, s3, *, reason: str, settings) -> dict:
    state = store.table_state(table)
    described = ddb.describe_table(TableName=table)["Table"]
    new_stream = described.get("LatestStreamArn")
    pitr = ddb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
    pitr_desc = pitr.get("PointInTimeRecoveryDescription", {})
    now = time.time()
    last = (state.last_change_micros or state.stream_start_micros or 0) / 1e6
    start = last - settings.overlap_seconds
    earliest = pitr_desc.get("EarliestRestorableDateTime")
    earliest = earliest.timestamp() if hasattr(earliest, "timestamp") else float(earliest or 0)
    if pitr_desc.get("PointInTimeRecoveryStatus") != "ENABLED":
        raise NeedsBootstrap(f"{table}: gap ({reason}) and point-in-time recovery is off: a fresh bootstrap is needed")
    floor = max(earliest, now - settings.pitr_window_seconds)  # the oldest instant an export may start at
    if last < floor:
        raise NeedsBootstrap(f"{table}: gap ({reason}) reaches back beyond the point-in-time recovery window: "
                             "a fresh bootstrap is needed")
    start = max(start, floor)  # the overlap is a safety margin; PITR cannot go before its window
    # Writes made before the stream the sync resumes on began are in no stream it will read (a stream switched
    # off and on): the last window must reach past that stream's creation.
    must_cover = _stream_created(described.get("LatestStreamLabel"))
    while time.time() - 1 <= must_cover:
        time.sleep(min(1.0, must_cover + 1.05 - time.time()))
    end = time.time() - 1
    if end - floor < settings.min_window_seconds:  # PITR too young for the shortest window AWS takes: wait
        time.sleep(settings.min_window_seconds - (end - floor) + 0.1)
        end = time.time() - 1
    start = min(start, end - settings.min_window_seconds)
    start = max(start, floor)
    bucket, prefix = state.export_bucket, state.export_prefix or "dynadex"
    if not bucket:
        raise NeedsBootstrap(f"{table}: gap ({reason}) but no export bucket is recorded for incremental exports")
    plan = windows(start, end, settings.min_window_seconds, settings.max_window_seconds)  # start..end >= min window
    log.warning("%s: gap (%s); recovering through %d incremental export(s) from %.3f to %.3f", table, reason, len(plan), plan[0][0], end)
    key_names = state.key_names
    applied = {"windows": len(plan), "upserts": 0, "deletes": 0}
    for i, (a, b) in enumerate(plan):
        d = ddb.export_table_to_point_in_time(
            TableArn=described["TableArn"], S3Bucket=bucket, S3Prefix=f"{prefix.strip('/')}/recovery",
            ExportType="INCREMENTAL_EXPORT", ExportFormat="DYNAMODB_JSON",
            IncrementalExportSpecification={"ExportFromTime": a, "ExportToTime": b, "ExportViewType": "NEW_IMAGE"},
        )["ExportDescription"]
        d = wait_export(ddb, d["ExportArn"], settings.export_timeout_seconds, settings.export_poll_seconds)
        export = read_export(f"s3://{d['S3Bucket']}/{d['ExportManifest']}", s3_client=s3)
        changes = []
        for f in export.files:
            for r in iter_records(export, f):
                keys = r.keys if r.keys else {k: r.item[k] for k in key_names}
                changes.append(Change(keys, r.item, r.write_micros or int(b * 1e6), f"incremental:{export.summary.export_id}"))
        export.check_total()
        changes.sort(key=lambda c: c.version)
        last_window = i == len(plan) - 1
        updates = {"last_change_micros": int(b * 1e6)}
        if last_window:
            updates.update(stream_arn=new_stream, stream_start_micros=int(b * 1e6))
        result = store.apply(
            table, changes, (), force=True, state_updates=updates, replace_checkpoints=last_window,
            event=("recovery", {"reason": reason, "window": [a, b], "export_arn": d["ExportArn"],
                                "changes": len(changes), "last": last_window}),
        )
        applied["upserts"] += result["upserts"]
        applied["deletes"] += result["deletes"]
    applied["resumed_stream"] = new_stream
    applied["resume_from"] = plan[-1][1]
    return applied
