"""Is there anything to sync on a quiet table? A probe of its open shards from their stored checkpoints.

A quiet table is not read for the index: it is probed, by ``stream.fleet`` (in a sync process) or by the
Airflow trigger (in the triggerer, with no worker slot), until it has news; then the sync reads it again.

Invariants:

* A probe never commits and never moves a checkpoint: it is built from the checkpoints stored for the table
  (``QuietTable``, a typed contract that travels to the triggerer) and only ever asks AWS. What it reads is
  dropped; the sync reads it again from the same checkpoints, so exactly-once stays the sync's alone
  (invariant 2).
* Each open shard is asked with GetRecords ``Limit=1`` on an iterator AFTER_SEQUENCE_NUMBER of its
  checkpoint (AT_TIMESTAMP of the stream start minus the overlap, or TRIM_HORIZON, when it has none, as the
  sync starts it). An empty answer moves the probe's own iterator on (DynamoDB may answer empty pages before
  a record), kept between polls; an expired one is asked again from the checkpoint. So a record after the
  checkpoint is found within one poll of its arrival.
* ``news()`` names why the sync must run (None: nothing): a record on an open shard, an open shard that
  ended, a shard neither the checkpoints nor the listing the probe was built with know (listed every
  ``describe_seconds``), or a stream, shard or
  checkpoint AWS no longer answers for (the sync's refresh tells a gap from the rest). A false alarm costs
  one short sync run; there is no false quiet for records on the shards it knows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from dynadex.aws import error_code
from dynadex.stream.shards import describe_all


@dataclass(frozen=True)
class ShardMark:
    """A shard as the store's checkpoints leave it: the last sequence number applied, and whether it ended."""

    shard_id: str
    sequence_number: str | None
    ended: bool


@dataclass(frozen=True)
class QuietTable:
    """What a probe needs to know of one table: where it is stored, its stream, its shards' checkpoints, and
    where a shard without one starts (epoch microseconds; 0: the horizon)."""

    store: str | None
    table: str
    stream_arn: str
    shards: tuple[ShardMark, ...] = ()
    start_micros: int = 0

    @property
    def key(self) -> tuple[str | None, str]:
        return self.store, self.table

    def to_dict(self) -> dict:
        return {"store": self.store, "table": self.table, "stream_arn": self.stream_arn,
                "start_micros": self.start_micros,
                "shards": [[m.shard_id, m.sequence_number, m.ended] for m in self.shards]}

    @classmethod
    def from_dict(cls, d: dict) -> "QuietTable":
        return cls(d.get("store") or None, d["table"], d["stream_arn"],
                   tuple(ShardMark(s, q, bool(e)) for s, q, e in d.get("shards") or ()), int(d.get("start_micros") or 0))

    @classmethod
    def from_store(cls, store, location: str | None, table: str, overlap_seconds: float, streams) -> "QuietTable":
        """The table as ``store`` (a ``Store``) holds it now: its stream ARN and every checkpoint, plus each shard
        the stream lists that has none yet (a shard no record was ever read from: probed from the stream
        start, as the sync would read it)."""
        return cls.from_state(location, store.table_state(table), store.checkpoints(table), overlap_seconds, streams)

    @classmethod
    def from_state(cls, location: str | None, state, cps: dict, overlap_seconds: float, streams) -> "QuietTable":
        """``from_store`` from a ``TableState`` and its checkpoints already read (``fleet.quiet_tables`` reads every
        table's of a store in two statements)."""
        table = state.table_name
        marks = {s: ShardMark(c.shard_id, c.sequence_number, bool(c.ended)) for s, c in cps.items()}
        if state.stream_arn:
            _, listed = describe_all(streams, state.stream_arn)
            for s in listed:
                marks.setdefault(s.shard_id, ShardMark(s.shard_id, None, False))
        start = max(0, (state.stream_start_micros or 0) - int(overlap_seconds * 1e6))
        return cls(location, table, state.stream_arn or "", tuple(marks[k] for k in sorted(marks)), start)


@dataclass
class TableProbe:
    """Polls one quiet table's open shards (``news``); boto3's streams client is thread-safe, a probe is not."""

    quiet: QuietTable
    streams: object
    describe_seconds: float = 30.0
    iterators: dict = field(default_factory=dict)
    described_at: float = 0.0
    calls: int = 0

    def news(self) -> str | None:
        if not self.quiet.stream_arn:
            return f"{self.quiet.table}: no stream recorded"
        try:
            if time.time() - self.described_at >= self.describe_seconds:
                why = self._new_shards()
                self.described_at = time.time()
                if why:
                    return why
            for mark in self.quiet.shards:
                if not mark.ended:
                    why = self._ask(mark)
                    if why:
                        return why
        except Exception as exc:  # noqa: BLE001 - the sync tells a gap or an outage from the rest, and says so
            code = error_code(exc)
            if code in ("ResourceNotFoundException", "TrimmedDataAccessException", "ValidationException"):
                return f"{self.quiet.table}: AWS answered {code}"
            raise
        return None

    def _new_shards(self) -> str | None:
        self.calls += 1
        _, shards = describe_all(self.streams, self.quiet.stream_arn)
        known = {m.shard_id for m in self.quiet.shards}
        listed = {s.shard_id for s in shards}
        new = sorted(listed - known)
        if new:
            return f"{self.quiet.table}: {len(new)} shard(s) without a checkpoint ({new[0]}...)"
        gone = sorted(m.shard_id for m in self.quiet.shards if not m.ended and m.shard_id not in listed)
        if gone:
            return f"{self.quiet.table}: open shard {gone[0]} is no longer listed"
        return None

    def _iterator(self, mark: ShardMark) -> str:
        kwargs = {"StreamArn": self.quiet.stream_arn, "ShardId": mark.shard_id}
        if mark.sequence_number:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=mark.sequence_number)
        elif self.quiet.start_micros > 0:
            kwargs.update(ShardIteratorType="AT_TIMESTAMP", Timestamp=self.quiet.start_micros / 1e6)
        else:
            kwargs.update(ShardIteratorType="TRIM_HORIZON")
        self.calls += 1
        return self.streams.get_shard_iterator(**kwargs)["ShardIterator"]

    def _ask(self, mark: ShardMark) -> str | None:
        iterator = self.iterators.get(mark.shard_id) or self._iterator(mark)
        self.calls += 1
        try:
            page = self.streams.get_records(ShardIterator=iterator, Limit=1)
        except Exception as exc:
            if error_code(exc) != "ExpiredIteratorException":
                raise
            self.calls += 1
            page = self.streams.get_records(ShardIterator=self._iterator(mark), Limit=1)
        if page.get("Records"):
            self.iterators.pop(mark.shard_id, None)
            return f"{self.quiet.table}: records on shard {mark.shard_id}"
        nxt = page.get("NextShardIterator")
        if not nxt:
            self.iterators.pop(mark.shard_id, None)
            return f"{self.quiet.table}: shard {mark.shard_id} ended"
        self.iterators[mark.shard_id] = nxt
        return None
