"""DynamoDB Streams as AWS runs them: several shards, rollover with lineage, retention, expiring iterators.

Invariants:

* An item's records always go to the same shard lineage (key hash), so per
  item they are in write order; a lineage's shards are parent -> child.
* Sequence numbers are decimal strings, strictly increasing within a shard
  (and from parent to child), of different lengths per lineage (21 to 40
  digits, as AWS's vary): compare them as integers.
* Rollover closes a shard (EndingSequenceNumber) and opens its child
  (ParentShardId). Records older than the retention are trimmed; a closed
  shard whose records are all trimmed vanishes from DescribeStream.
* Asking for a trimmed position -> TrimmedDataAccessException; an iterator
  older than its lifetime -> ExpiredIteratorException; a closed shard read
  to its end returns no NextShardIterator.
* As AWS: DescribeStream ``Limit`` above 100 and GetRecords ``Limit`` above
  1000 are refused, not clamped; a sequence number outside the shard's range
  is refused; ``ShardFilter`` CHILD_SHARDS lists a parent's children;
  AT_TIMESTAMP starts at the first record written at or after the instant;
  ``SizeBytes`` is the DynamoDB size of the keys plus the images the record
  carries (the rule that fits the AWS CLI's recorded GetRecords output).
"""

from __future__ import annotations

import bisect
import json
import random
import uuid
import zlib
from dataclasses import dataclass, field

from moto.core.exceptions import JsonRESTError

from dynadex.local_aws.feed import now
from dynadex.local_aws.lock import LOCK
from dynadex.local_aws.validate import item_size

SERVICE_IDENTITY = {"PrincipalId": "dynamodb.amazonaws.com", "Type": "Service"}
MAX_RECORDS = 1000
MAX_BYTES = 1 << 20
_EVENT_IDS = random.Random()  # event ids need not be secret, only distinct: cheaper than uuid4's os.urandom


def _seq(record) -> int:
    return record.seq


def _holds(shard, n: int) -> bool:
    """Does the shard hold a record of sequence number ``n``? (its records are in sequence order)"""
    i = bisect.bisect_left(shard.records, n, key=_seq)
    return i < len(shard.records) and shard.records[i].seq == n


def _error(code: str, message: str) -> JsonRESTError:
    err = JsonRESTError(code, message)
    err.code = 400
    return err


def encode(doc: dict) -> bytes:
    """A document as DynamoDB Streams writes it: compact JSON, UTF-8 (the sync shapes new images from these very
    bytes, decision 0044). A string no UTF-8 can hold (a lone surrogate some test wrote) is escaped instead."""
    try:
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return json.dumps(doc, separators=(",", ":")).encode()


@dataclass
class Record:
    seq: int
    created: float
    wire: bytes  # the record's JSON, encoded once when written: GetRecords only joins them
    size: int


@dataclass
class RecordsPage:
    """A GetRecords answer whose records are already JSON text (``Record.wire``)."""

    records: list[bytes]
    next_iterator: str | None = None

    def json(self) -> bytes:
        tail = b"]}" if self.next_iterator is None else b'],"NextShardIterator":' + encode(self.next_iterator) + b"}"
        return b'{"Records":[' + b",".join(self.records) + tail


@dataclass
class Shard:
    shard_id: str
    lineage: int
    start_seq: int
    created: float
    parent_id: str | None = None
    end_seq: int | None = None
    closed_at: float | None = None
    records: list[Record] = field(default_factory=list)
    trimmed_before: int = 0  # positions below this were trimmed

    def describe(self) -> dict:
        rng = {"StartingSequenceNumber": str(self.start_seq)}
        if self.end_seq is not None:
            rng["EndingSequenceNumber"] = str(self.end_seq)
        d = {"ShardId": self.shard_id, "SequenceNumberRange": rng}
        if self.parent_id:
            d["ParentShardId"] = self.parent_id
        return d


@dataclass
class Iterator:
    label: str
    shard_id: str
    position: int  # next sequence number to return (>=)
    issued: float


class Stream:
    def __init__(self, table, view_type: str, label: str, knobs, region: str):
        self.table = table
        self.view_type = view_type
        self.label = label
        self.knobs = knobs
        self.region = region
        self.enabled = True
        self.created = now()
        self.shards: list[Shard] = []
        self.current: dict[int, Shard] = {}
        self.counters: dict[int, int] = {}
        self.rnd = random.Random(zlib.crc32(label.encode()))
        self._sizes: dict[str, tuple[dict, int]] = {}  # key -> (its last new image, that image's size)
        for lineage in range(max(1, knobs.stream_shards)):
            self.counters[lineage] = (lineage + 1) * 10 ** (20 + (lineage * 4) % 20)
            self._open(lineage, None)

    @property
    def arn(self) -> str:
        return f"{self.table.table_arn}/stream/{self.label}"

    def _shard_id(self) -> str:
        return f"shardId-{int(now() * 1000):020d}-{uuid.uuid4().hex[:8]}"

    def _next_seq(self, lineage: int) -> int:
        self.counters[lineage] += self.rnd.randint(1, 5000)
        return self.counters[lineage]

    def _open(self, lineage: int, parent: Shard | None) -> Shard:
        shard = Shard(self._shard_id(), lineage, self._next_seq(lineage), now(), parent.shard_id if parent else None)
        self.shards.append(shard)
        self.current[lineage] = shard
        return shard

    def _close(self, shard: Shard) -> None:
        shard.end_seq = shard.records[-1].seq if shard.records else shard.start_seq
        shard.closed_at = now()
        self._open(shard.lineage, shard)

    def maintain(self) -> None:
        """Time-based rollover and retention trimming (run before every read and write)."""
        t = now()
        for lineage, shard in list(self.current.items()):
            if self.knobs.rollover_seconds and t - shard.created >= self.knobs.rollover_seconds:
                self._close(shard)
        horizon = t - self.knobs.retention_seconds
        for shard in self.shards:
            cut = 0
            while cut < len(shard.records) and shard.records[cut].created < horizon:
                cut += 1
            if cut:
                shard.trimmed_before = shard.records[cut - 1].seq + 1
                del shard.records[:cut]
        self.shards = [
            s for s in self.shards if not (s.closed_at is not None and s.closed_at < horizon and not s.records)
        ]

    def _size(self, key_text: str, old: dict | None, new: dict | None) -> tuple[int, int]:
        """DynamoDB sizes of the old and new image; the old one is the last new image of the key (the feed
        hands the same object on), so its size is remembered, not counted again."""
        known = self._sizes.get(key_text)
        old_size = 0 if old is None else known[1] if known is not None and known[0] is old else item_size(old)
        new_size = 0 if new is None else item_size(new)
        if new is None:
            self._sizes.pop(key_text, None)
        else:
            self._sizes[key_text] = (new, new_size)
        return old_size, new_size

    def append(self, keys: dict, old: dict | None, new: dict | None, t: float, service: bool) -> None:
        self.maintain()
        key_text = json.dumps(keys, sort_keys=True)
        lineage = zlib.crc32(key_text.encode()) % len(self.current)
        shard = self.current[lineage]
        if self.knobs.rollover_records and len(shard.records) >= self.knobs.rollover_records and shard.records:
            self._close(shard)
            shard = self.current[lineage]
        seq = shard.start_seq if not shard.records and shard.trimmed_before == 0 else self._next_seq(lineage)
        event = "INSERT" if old is None else "REMOVE" if new is None else "MODIFY"
        # kept in the wire form (DynamoDB JSON, B as base64): GetRecords answers them as JSON text directly
        dyn = {"ApproximateCreationDateTime": float(int(t)), "Keys": keys}
        if new is not None and self.view_type in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES"):
            dyn["NewImage"] = new
        if old is not None and self.view_type in ("OLD_IMAGE", "NEW_AND_OLD_IMAGES"):
            dyn["OldImage"] = old
        dyn["SequenceNumber"] = str(seq)
        old_size, new_size = self._size(key_text, old, new)
        dyn["SizeBytes"] = item_size(keys) + ("NewImage" in dyn) * new_size + ("OldImage" in dyn) * old_size
        dyn["StreamViewType"] = self.view_type
        body = {
            "eventID": f"{_EVENT_IDS.getrandbits(128):032x}",  # 32 hex digits, as AWS's
            "eventName": event,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": self.region,
            "dynamodb": dyn,
        }
        if service and event == "REMOVE":
            body["userIdentity"] = dict(SERVICE_IDENTITY)
        # encoded here, once: answering GetRecords by json.dumps of each record was 95% of the emulator's CPU while a
        # sync caught up (7.5 us a record, served again on every read)
        shard.records.append(Record(seq, t, encode(body), dyn["SizeBytes"] + 200))

    # ------------------------------------------------------------------ API
    def describe(self, limit: int | None, exclusive_start: str | None, shard_filter: dict | None = None) -> dict:
        self.maintain()
        shards = self.shards
        if limit is not None and not 1 <= int(limit) <= 100:
            raise _error("ValidationException", f"1 validation error detected: Value '{limit}' at 'limit' failed to "
                         "satisfy constraint: Member must have value less than or equal to 100")
        if shard_filter:
            kind = shard_filter.get("Type")
            if kind != "CHILD_SHARDS":
                raise _error("ValidationException", f"1 validation error detected: Value '{kind}' at 'shardFilter.type' "
                             "failed to satisfy constraint: Member must satisfy enum value set: [CHILD_SHARDS]")
            parent = shard_filter.get("ShardId")
            if not parent:
                raise _error("ValidationException", "ShardFilter of type CHILD_SHARDS needs a ShardId")
            shards = [s for s in shards if s.parent_id == parent]
        if exclusive_start:
            ids = [s.shard_id for s in shards]
            shards = shards[ids.index(exclusive_start) + 1 :] if exclusive_start in ids else []
        limit = int(limit or 100)
        page = shards[:limit]
        d = {
            "StreamArn": self.arn,
            "StreamLabel": self.label,
            "StreamStatus": "ENABLED" if self.enabled else "DISABLED",
            "StreamViewType": self.view_type,
            "CreationRequestDateTime": self.created,
            "TableName": self.table.name,
            "KeySchema": self.table.schema,
            "Shards": [s.describe() for s in page],
        }
        if len(shards) > limit:
            d["LastEvaluatedShardId"] = page[-1].shard_id
        return d

    def shard(self, shard_id: str) -> Shard:
        for s in self.shards:
            if s.shard_id == shard_id:
                return s
        raise _error("ResourceNotFoundException", f"Requested resource not found: Shard {shard_id} does not exist")

    def iterator(self, shard_id: str, kind: str, seq: str | None, timestamp: float | None = None) -> Iterator:
        self.maintain()
        shard = self.shard(shard_id)
        first = shard.records[0].seq if shard.records else None
        if kind == "TRIM_HORIZON":
            position = max(shard.trimmed_before, shard.start_seq)
        elif kind == "LATEST":
            position = (shard.records[-1].seq + 1) if shard.records else max(shard.trimmed_before, shard.start_seq)
        elif kind in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
            if seq is None:
                raise _error("ValidationException", f"SequenceNumber is required for {kind}")
            try:
                n = int(seq)
            except ValueError as exc:
                raise _error("ValidationException", f"Invalid SequenceNumber {seq}") from exc
            position = n + 1 if kind == "AFTER_SEQUENCE_NUMBER" else n
            if position < shard.trimmed_before and (first is None or position < first):
                raise _error(
                    "TrimmedDataAccessException",
                    f"The sequence number {seq} of shard {shard_id} is beyond the trim horizon (records trimmed)",
                )
            if n < shard.start_seq or (shard.end_seq is not None and n > shard.end_seq) or (
                    shard.end_seq is None and shard.records and n > shard.records[-1].seq) or (
                    shard.records and shard.records[0].seq <= n <= shard.records[-1].seq
                    and not _holds(shard, n)):
                # a number this shard never gave out (another shard's, or a made-up one)
                raise _error("ValidationException", f"Invalid SequenceNumber {seq} for shard {shard_id}")
        elif kind == "AT_TIMESTAMP":
            if timestamp is None:
                raise _error("ValidationException", "Timestamp is required for AT_TIMESTAMP")
            later = [r.seq for r in shard.records if r.created >= timestamp]
            if later:
                position = later[0]
            elif shard.records:
                position = shard.records[-1].seq + 1
            else:
                position = max(shard.trimmed_before, shard.start_seq)
        else:
            raise _error("ValidationException", f"Invalid ShardIteratorType {kind}")
        return Iterator(self.label, shard_id, position, now())

    def read(self, it: Iterator, limit: int) -> tuple[list[bytes], Iterator | None]:
        self.maintain()
        shard = self.shard(it.shard_id)
        if it.position < shard.trimmed_before:
            raise _error("TrimmedDataAccessException", f"Records of shard {it.shard_id} at this iterator were trimmed")
        out, size, last = [], 0, None
        # records are in sequence order: start at the first at or after the position (a scan from the shard's
        # start made each GetRecords cost the shard's length: 82 us per record served at 2 M records)
        records = shard.records
        for k in range(bisect.bisect_left(records, it.position, key=_seq), len(records)):
            rec = records[k]
            if len(out) >= limit or (out and size + rec.size > MAX_BYTES):
                break
            out.append(rec.wire)
            size += rec.size
            last = rec.seq
        position = last + 1 if last is not None else it.position
        if shard.end_seq is not None and (not shard.records or position > shard.records[-1].seq):
            return out, None
        return out, Iterator(self.label, it.shard_id, position, now())


class StreamRegistry:
    """All streams and live iterators of the emulator."""

    def __init__(self, knobs):
        self.knobs = knobs
        self.iterators: dict[str, Iterator] = {}
        self.streams: dict[str, Stream] = {}  # arn -> stream

    def register(self, stream: Stream) -> None:
        self.streams[stream.arn] = stream

    def stream(self, arn: str) -> Stream:
        s = self.streams.get(arn)
        if s is None:
            raise _error("ResourceNotFoundException", f"Requested resource not found: Stream: {arn} not found")
        return s

    def issue(self, stream: Stream, it: Iterator) -> str:
        token = f"{stream.arn}|1|{uuid.uuid4().hex}{uuid.uuid4().hex}"
        self.iterators[token] = it
        if len(self.iterators) > 100_000:  # forget the oldest
            for k in list(self.iterators)[:50_000]:
                del self.iterators[k]
        return token

    def describe_stream(self, arn: str, limit=None, exclusive_start=None, shard_filter=None) -> dict:
        with LOCK:
            return self.stream(arn).describe(limit, exclusive_start, shard_filter)

    def get_shard_iterator(self, arn: str, shard_id: str, kind: str, seq: str | None, timestamp=None) -> str:
        with LOCK:
            stream = self.stream(arn)
            return self.issue(stream, stream.iterator(shard_id, kind, seq, timestamp))

    def get_records(self, token: str, limit: int | None) -> RecordsPage:
        with LOCK:
            it = self.iterators.get(token)
            if it is None:
                raise _error("ValidationException", "Invalid ShardIterator")
            if now() - it.issued > self.knobs.iterator_seconds:
                raise _error("ExpiredIteratorException", "Iterator expired. The iterator was created more than "
                             f"{self.knobs.iterator_seconds:g} seconds ago")
            stream = self.stream(token.split("|", 1)[0])
            if limit is not None and not 1 <= int(limit) <= MAX_RECORDS:
                raise _error("ValidationException", f"1 validation error detected: Value '{limit}' at 'limit' failed "
                             f"to satisfy constraint: Member must have value less than or equal to {MAX_RECORDS}")
            limit = int(limit or MAX_RECORDS)
            records, nxt = stream.read(it, limit)
            return RecordsPage(records, None if nxt is None else self.issue(stream, nxt))
