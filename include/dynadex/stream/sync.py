"""The stream sync loop: from the stored checkpoints to now, exactly once.

Invariants (docs/architecture.md, invariants 1, 2 and 4):

* Shards are read parents before children, a table's readable shards
  concurrently (``readers``: at most ``shard_readers`` GetRecords at once, one
  per shard), the answers handled in shard order by this one thread; each shard resumes
  AFTER_SEQUENCE_NUMBER of its checkpoint (when it has none, AT_TIMESTAMP of the
  snapshot's stream start minus the overlap, or TRIM_HORIZON where refused).
* Records older than ``stream_start - overlap`` are skipped (the snapshot
  already holds them); the others become changes (INSERT/MODIFY upsert the
  NewImage, REMOVE deletes; TTL removes are counted as such).
* A batch (at most ``batch_records`` records or ``batch_seconds``) and the
  checkpoints of the shards it read commit in ONE store transaction, so a
  crash at any instant neither loses nor repeats a change. While the sync is
  behind (the last batch filled up, or a shard answered a full page), the
  next batch may be twice as large and long, up to ``backlog_batch_factor``
  times both bounds (``BatchSize``); the first batch that ends without
  either goes back to the bounds, so freshness at the tip is as before.
* A gap is never silent: a trimmed checkpoint (TrimmedDataAccessException),
  a checkpointed shard that vanished, a stream ARN that changed, or a sync
  that last ran longer ago than the retention, triggers recovery through
  incremental exports (``recover``); beyond PITR, ``NeedsBootstrap``.
* Expired iterators are renewed from the checkpoint; throttling backs off:
  botocore's retries first (``aws.MAX_ATTEMPTS``), then ``_call``'s own
  ``max_backoff_attempts`` rounds, a bounded budget (decision 0017). An
  endpoint that stays unreachable ends the run with ``AwsUnreachable``
  naming it; every batch committed before stands, nothing after is applied.
* When a pass finds every readable shard at its tip, the time it started is
  stored as applied-through (at most once per ``caught_up_note_seconds``,
  and always when a run ends on such a pass, so its lag then reads 0):
  an idle table is neither taken for a stale sync nor, after a gap,
  recovered from its last change long ago.
"""

from __future__ import annotations

import logging
import random
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial

from dynadex import settings as declared
from dynadex.aws import error_code
from dynadex.errors import AwsThrottled
from dynadex.gcpause import quiet
from dynadex.reach import unreachable
from dynadex.store import Change, Checkpoint, RawImage, Store, TableState
from dynadex.store.apply.changes import SQL_SHAPE_MIN as LARGE_BATCH
from dynadex.store.catalog import lake as lake_module
from dynadex.stream.errors import Gap, GapInGroup, NeedsBootstrap
from dynadex.stream.commit_ahead import CommitAhead
from dynadex.stream.get_records import WireRecord
from dynadex.stream.get_records import lean as lean_get_records
from dynadex.stream.images import canonical_image
from dynadex.stream.readers import ShardReaders
from dynadex.stream.recover import recover
from dynadex.stream.shard_groups import WHOLE, ShardGroup
from dynadex.stream.shards import ShardInfo, children_of, describe_all
from dynadex.types import canonical_item

log = logging.getLogger("dynadex.sync")

THROTTLED = {"LimitExceededException", "ThrottlingException", "ProvisionedThroughputExceededException",
             "RequestLimitExceeded", "InternalServerError"}


def _from(setting: declared.Setting):
    """A field read from ``setting`` (``dynadex.settings``, group "sync") when a ``SyncSettings`` is made."""
    return field(default_factory=setting.read, metadata={"setting": setting})


@dataclass
class SyncSettings:
    """How the sync reads, batches and recovers. The knobs an environment variable sets are declared in
    ``dynadex.settings`` (group "sync"; the field's metadata names it) and read when one is made; callers and
    tests override fields by name."""

    overlap_seconds: float = _from(declared.OVERLAP_SECONDS)
    """Records older than the export's stream start minus this are skipped: the snapshot holds them."""
    batch_records: int = _from(declared.BATCH_RECORDS)
    """A batch commits once it holds this many changes (or ``batch_seconds`` passed)."""
    batch_seconds: float = _from(declared.BATCH_SECONDS)
    """A batch commits at the end of the pass that outlived this (or at the tip)."""
    backlog_batch_factor: int = _from(declared.BACKLOG_BATCH_FACTOR)
    """While behind, batches double up to this many times ``batch_records`` and ``batch_seconds`` (``BatchSize``);
    1 keeps them fixed."""
    threads: int = _from(declared.SYNC_THREADS)
    """DuckDB threads of the store a sync writes (``Store(..., threads=threads or None)``, opened by the caller):
    1 by default (decision 0033)."""
    batch_threads: int = _from(declared.SYNC_BATCH_THREADS)
    """DuckDB threads for the commit of a batch of ``LARGE_BATCH`` changes or more (``Store.apply(threads=)``) and
    the fold that follows it, the store's own ``threads`` back after them (decision 0045)."""
    shard_readers: int = _from(declared.SHARD_READERS)
    """GetRecords calls in flight at once over a table's readable shards (one per shard at most); 1 reads
    the shards one after another in the sync's own thread."""
    retention_seconds: float = _from(declared.STREAM_RETENTION_SECONDS)
    """How long stream records live: a sync last seen longer ago than this is a gap."""
    min_window_seconds: float = _from(declared.MIN_INCREMENTAL_SECONDS)
    """The shortest incremental export window recovery may ask for."""
    max_window_seconds: float = _from(declared.MAX_INCREMENTAL_SECONDS)
    """The longest incremental export window; longer gaps chain several."""
    pitr_window_seconds: float = _from(declared.PITR_WINDOW_SECONDS)
    """How far back point-in-time recovery reaches: a gap older than this needs a fresh bootstrap."""
    export_poll_seconds: float = _from(declared.EXPORT_POLL_SECONDS)
    """How often recovery polls DescribeExport."""
    export_timeout_seconds: float = _from(declared.EXPORT_TIMEOUT_SECONDS)
    """How long recovery waits for one incremental export."""
    caught_up_note_seconds: float = _from(declared.CAUGHT_UP_NOTE_SECONDS)
    """At most this often, a pass at the tip stores its start as applied-through."""
    refresh_seconds: float = 10.0
    """How often a run lists its stream again (table state, DescribeTable, DescribeStream, stored checkpoints) for
    new root shards, a changed stream or a pruned shard; children of ended shards are found as they end. A
    group of quiet tables uses its probe's ``describe_seconds`` (30): 50 tables every 10 s made a fifth of its
    CPU."""
    idle_min_seconds: float = 0.05
    """The first pause after a pass that found nothing."""
    idle_max_seconds: float = _from(declared.IDLE_MAX_SECONDS)
    """Idle pauses double up to this."""
    max_backoff_attempts: int = 8
    """Calls throttled this many times in a row raise."""
    at_timestamp: bool = _from(declared.AT_TIMESTAMP)
    """A shard without a checkpoint is read from the snapshot's stream start minus ``overlap_seconds``
    (GetShardIterator AT_TIMESTAMP) rather than from the 24 h horizon; 0 turns it off."""
    flush_every_batches: int = field(
        default_factory=lambda: declared.FLUSH_EVERY_BATCHES.read(None if lake_module.INLINE_ROWS else 0),
        metadata={"setting": declared.FLUSH_EVERY_BATCHES})
    """Every this many committed batches, the rows small batches inlined in the catalog are written into
    files (``Store.flush_inlined``, ~0.4 s): without it a batch's statements slow down with every batch of
    the run (decision 0021). 0 never flushes (maintenance still does); the default is 100 while inlining is
    on (the default), 0 when ``DYNADEX_INLINE_ROWS=0`` turns it off."""
    fold_every_batches: int = _from(declared.FOLD_EVERY_BATCHES)
    """Every this many committed batches, the table's indexes are checked for small files (stream batches and
    flushes) and folded into one sorted file per index once one holds ``small_files.FOLD_AT_FILES`` of them
    (``Store.fold_small_files``, decision 0028): DuckLake's merge never touches a file that lost a row, so
    without it each such file made every later batch slower until the next maintenance, and each inverted
    stream file every `find`. Files of the row and column indexes that lost a quarter of their rows (a bulk
    load's range files too, up to ``small_files.WORN_MOST_BYTES``; a larger one a slice of that size per
    check) are rewritten alone at the same moment: every batch scanned their deleted rows and wrote their
    whole delete file again. The inlined rows are flushed first (the checkpoint and state rows of a backlog's
    batches slowed its statements too). The check is skipped while every batch since the last one was
    inlined. 0 never folds (maintenance still does)."""
    read_ahead: bool = _from(declared.READ_AHEAD)
    """A shard that answered a full page has its next page fetched while the sync converts this one
    (``ShardReaders.ahead``, decision 0042); 0 reads each pass after the last one is converted."""
    commit_ahead: bool = _from(declared.COMMIT_AHEAD)
    """While behind, a batch's commit runs on its own thread while the next batch is read and shaped
    (``stream/commit_ahead.py``, decision 0042); 0 commits each batch before reading the next."""
    sql_shape: bool = _from(declared.SQL_SHAPE)
    """The lean GetRecords hands records on with their new images undecoded (``WireRecord``), and the store
    shapes a large batch of them inside DuckDB (``store/apply/sql_shape.py``, decision 0044); 0 decodes and
    shapes every image in Python."""
    lean_get_records: bool = _from(declared.LEAN_GET_RECORDS)
    """GetRecords through ``stream.get_records`` (botocore's signer, pool and retry rules, without its per-call
    pipeline: ~0.5 ms less CPU per empty answer, 3x less on a page of records; decision 0024); 0 calls the
    boto3 client's method."""
    idle_end_seconds: float = 0.0
    """A run ends once it has found nothing new for this long, on a pass at the tip (``stats["quiet"]``): a
    table followed with others (``stream.fleet``) is then probed instead of read. 0 (the command's default):
    the run lasts its window."""
    stop_check_seconds: float = _from(declared.STOP_CHECK_SECONDS)
    """How often a run with a ``should_stop`` asks it (after a batch): a run that is no longer wanted (another
    run waits to follow a new table) ends at that batch boundary, not at its window's end."""


def _needed_since(state: TableState) -> float | None:
    """The oldest instant whose stream records the next pass may still need (epoch seconds): the last time a
    sync committed or looked, or, when none has since the publish (a fresh bootstrap, whose shards have no
    checkpoints), the snapshot's stream start T0: an export of hours and a paused sync could otherwise start
    reading after records from T0 on were trimmed, and a shard read without a checkpoint would not notice."""
    synced, published = state.synced_at, state.published_at
    if synced is not None and (published is None or synced > published):
        return synced.timestamp()
    if state.stream_start_micros:
        return state.stream_start_micros / 1e6
    return published.timestamp() if published is not None else None


def _iso(seconds: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).isoformat(timespec="seconds")


def _call(fn, settings: SyncSettings, **kwargs):
    """Call AWS, backing off on throttling (beyond botocore's own retries); what outlasts the budget is
    ``AwsThrottled`` (transient) naming the call, the code and the time spent."""
    started = time.monotonic()
    for attempt in range(settings.max_backoff_attempts):
        try:
            return fn(**kwargs)
        except Exception as exc:
            if error_code(exc) not in THROTTLED:
                raise
            if attempt == settings.max_backoff_attempts - 1:
                from dynadex.aws import MAX_ATTEMPTS

                name = getattr(fn, "__name__", "call")
                raise AwsThrottled(
                    f"{name} still answered {error_code(exc)} after {settings.max_backoff_attempts} rounds of "
                    f"{MAX_ATTEMPTS} attempts ({time.monotonic() - started:.1f} s); batches committed before "
                    "stand: run again later") from exc
            delay = min(5.0, 0.1 * 2**attempt) * (0.5 + random.random())
            log.info("throttled (%s); retrying in %.2fs", error_code(exc), delay)
            time.sleep(delay)


def record_change(record: dict, shard_id: str, *, canonical=canonical_item) -> tuple[Change, bool]:
    """One stream record -> a change (and whether it is a TTL delete).

    ``canonical`` turns an image into its canonical item: ``types.canonical_item`` (the reference) unless
    told otherwise; ``record_changes`` passes ``images.canonical_image``, which returns the same."""
    dyn = record["dynamodb"]
    when = dyn["ApproximateCreationDateTime"]
    image = dyn.get("NewImage")
    return _change(record["eventName"], record.get("userIdentity"), when.timestamp() if hasattr(when, "timestamp")
                   else float(when), canonical(dyn["Keys"]),  # canonical() takes boto3's raw-bytes B values as they are
                   dyn["SequenceNumber"], None if image is None else lambda: canonical(image), shard_id)


def _change(event: str, identity: dict | None, seconds: float, keys: dict, seq: str, image, shard_id: str
            ) -> tuple[Change, bool]:
    """The change of a record, whatever shape it came in: ``image()`` gives its item (None: it has none)."""
    # Creation times are whole seconds: version a record by the END of its second, so it applies over
    # snapshot or recovery images taken within that second (stream order then decides).
    version = int(seconds) * 1_000_000 + 999_999
    if event == "REMOVE":
        ident = {k.lower(): v for k, v in (identity or {}).items()}
        ttl = str(ident.get("principalid", "")).lower() == "dynamodb.amazonaws.com" and str(ident.get("type", "")).lower() == "service"
        return Change(keys, None, version, f"{'ttl' if ttl else 'stream'}:{shard_id}:{seq}"), ttl
    if image is None:
        raise NeedsBootstrap(f"stream record {seq} has no NewImage: the stream's view type must be NEW_IMAGE or NEW_AND_OLD_IMAGES")
    return Change(keys, image(), version, f"stream:{shard_id}:{seq}"), False


def wire_record_change(record: WireRecord, shard_id: str) -> tuple[Change, bool]:
    """``record_change`` of a record whose new image came undecoded (``get_records.WireRecord``): the same
    change, its item the image's wire JSON (``RawImage``), which the store shapes or decodes."""
    dyn = record.dynamodb
    wire = dyn.NewImage
    return _change(record.eventName, record.userIdentity, dyn.ApproximateCreationDateTime, canonical_image(dyn.Keys),
                   dyn.SequenceNumber, (lambda: RawImage(bytes(wire))) if len(wire) else None, shard_id)


def record_changes(records: list, shard_id: str) -> list[tuple[Change, bool]]:
    """A page of stream records -> (change, TTL delete?) pairs, in order (``record_change`` of each, or
    ``wire_record_change`` of a page the lean GetRecords left undecoded)."""
    with quiet():
        if records and type(records[0]) is WireRecord:
            return [wire_record_change(r, shard_id) for r in records]
        return [record_change(r, shard_id, canonical=canonical_image) for r in records]


PAGE_LIMIT = 1000
"""Records asked of each GetRecords (DynamoDB Streams' largest page): a page this full says the shard holds more."""


@dataclass
class BatchSize:
    """The bounds of the next batch: the settings' at the tip, doubled after each batch that found the stream
    behind, up to ``backlog_batch_factor`` times (decision 0035). A backlog's batches then carry their fixed
    costs (the commit, the state and checkpoint rows, the registrations, the lookups' scans) over up to 10x
    as many records; the first batch that ends neither full nor on a full page goes back to the settings'
    bounds, so a table followed at its tip commits as often as before. A batch whose records' ``SizeBytes``
    reached ``GROW_BYTES`` does not grow the next one: large items bound a batch's memory, not its count."""

    records: int
    seconds: float
    factor: int
    scale: int = 1
    grow_bytes: int = 16 << 20  # GROW_BYTES, or GROW_BYTES_SQL where images are shaped inside DuckDB

    @classmethod
    def of(cls, settings: "SyncSettings", wire_images: bool = False) -> "BatchSize":
        """``wire_images``: the reader hands images undecoded, for DuckDB to shape (decision 0044)."""
        return cls(settings.batch_records, settings.batch_seconds, max(1, settings.backlog_batch_factor),
                   grow_bytes=GROW_BYTES_SQL if wire_images else GROW_BYTES)

    @property
    def most_records(self) -> int:
        return self.records * self.scale

    @property
    def most_seconds(self) -> float:
        return self.seconds * self.scale

    def after(self, changes: int, full_page: bool, size_bytes: int = 0) -> None:
        """The batch just committed held ``changes`` changes of ``size_bytes`` record bytes; ``full_page``: its
        last pass met a full page."""
        if not (changes >= self.most_records or full_page):
            self.scale = 1
        elif size_bytes < self.grow_bytes:
            self.scale = min(self.factor, self.scale * 2)


GROW_BYTES = 16 << 20
"""A batch whose records' ``SizeBytes`` add up to this does not make the next one larger. A batch costs about
7 KB of memory per record plus several times its bytes while it is shaped (100 000 records of 120 bytes:
~0.75 GB over the sync's own), so records of 200 bytes stop growing batches at ~80 000 and of 2 KB at the
settings' 10 000; only the settings bound a batch of larger items (10 000 of 400 KB, DynamoDB's largest).
Shaped inside DuckDB (decision 0044) a record costs far less (a 1 M-record catch-up of 120-byte records peaked at
1.6 GB with batches of 160 000, against 2.3 GB with batches of 100 000: the store's build is the peak), hence
``GROW_BYTES_SQL``."""

GROW_BYTES_SQL = 64 << 20
"""``GROW_BYTES`` of a sync whose images are shaped inside DuckDB (decision 0044): a record there costs its bytes
a few times over (its wire JSON, DuckDB's parse, the staged Arrow tables) and about 1 KB of Python, so 200 000
records of 320 bytes stay well under 1 GB; records of up to about 320 bytes then grow batches to the factor's
200 000."""


@dataclass
class ShardRead:
    records: list[dict]
    finished: bool  # the shard was read to its end: no NextShardIterator
    expired: int = 0  # iterators renewed on the way


@dataclass
class ShardCursor:
    info: ShardInfo
    sequence_number: str | None
    ended: bool
    iterator: str | None = None
    ahead: tuple[str, Future] | None = None  # (iterator, its next page in flight): ``TableSync.read_ahead``


PARENT_POLL_SECONDS = 0.5
"""How often a shard group whose child shard waits on another group's parent reads that parent's checkpoint."""
PARENT_WAIT_SECONDS = 300.0
"""How long a shard group's run until caught up (``--once``) waits for other groups to end the parents of its
shards before it ends anyway, saying so (the other groups are likely not running)."""


class TableSync:
    def __init__(self, store: Store, table: str, ddb, streams, s3, settings: SyncSettings,
                 group: ShardGroup = WHOLE):
        self.store, self.table, self.ddb, self.streams, self.s3 = store, table, ddb, streams, s3
        self.settings = settings
        self.group = group  # the shards this sync reads (stream/shard_groups.py); WHOLE: all
        self.last_parent_poll = 0.0
        self.cursors: dict[str, ShardCursor] = {}
        self.caught_up = False  # the run ended on a pass that found every readable shard at its tip
        self.childless: dict[str, float] = {}  # ended shards whose children DescribeStream did not list yet
        self.last_child_poll = 0.0
        self.at_timestamp = settings.at_timestamp  # cleared if the endpoint refuses AT_TIMESTAMP iterators
        self.get_records = ((settings.lean_get_records and lean_get_records(streams, raw_images=settings.sql_shape))
                            or streams.get_records)
        self.files_since_fold = True  # a fold check lists files only after files were written (or a run began)
        self.batch_size = BatchSize.of(settings, wire_images=getattr(self.get_records, "raw_images", False))
        self.ahead = CommitAhead(False)  # run() gives each run its own (settled before it returns)
        self.stats = {"records": 0, "applied": 0, "skipped_old": 0, "ttl_deletes": 0, "batches": 0, "recoveries": 0,
                      "expired_iterators": 0, "flushes": 0, "folds": 0, "full_describes": 0, "largest_batch": 0}

    # ------------------------------------------------------------- discovery
    def refresh(self) -> None:
        self.ahead.settle()  # the store is this thread's again
        state = self.store.table_state(self.table)
        described = self.ddb.describe_table(TableName=self.table)["Table"]
        current = described.get("LatestStreamArn")
        spec = described.get("StreamSpecification") or {}
        if not spec.get("StreamEnabled") or not current:
            raise NeedsBootstrap(f"{self.table}: DynamoDB Streams is off; turn it on and bootstrap again")
        if spec.get("StreamViewType") not in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES"):
            raise NeedsBootstrap(f"{self.table}: stream view type {spec.get('StreamViewType')} carries no new images")
        if state.stream_arn != current:
            raise Gap(f"stream ARN changed from {state.stream_arn} to {current}")
        since = _needed_since(state)
        if since is not None and time.time() - since > self.settings.retention_seconds:
            raise Gap(f"the stream must be read from {_iso(since)} on, older than its retention "
                      f"({self.settings.retention_seconds:g}s): records may be trimmed")
        _, shards = _call(describe_all, self.settings, streams=self.streams, stream_arn=current)
        listed = {s.shard_id for s in shards}
        stored = self.store.checkpoints(self.table)
        for shard_id, cp in stored.items():
            if not cp.ended and shard_id not in listed:
                raise Gap(f"shard {shard_id} was pruned before it was read to its end")
        cursors = {}
        for s in shards:
            old = self.cursors.get(s.shard_id)
            if old is not None:
                old.info = s
                cursors[s.shard_id] = old
                continue
            cp = stored.get(s.shard_id)
            cursors[s.shard_id] = ShardCursor(s, cp.sequence_number if cp else None, bool(cp and cp.ended))
        self.cursors = cursors
        self.stored = stored
        self.stream_arn = current
        self.skip_before = (state.stream_start_micros or 0) - int(self.settings.overlap_seconds * 1e6)

    def add_children_of(self, parents: list[ShardCursor]) -> bool:
        """Shards that ended in one pass: their children, in as few DescribeStream calls as the listing allows.
        A filtered call per parent costs one call each; a full listing ceil(shards / 100): when a rollover
        ends many shards at once (AWS allows 10 DescribeStream calls a second), the listing is fewer calls
        and answers for every parent. True if a child was new."""
        if not parents:
            return False
        pages = -(-len(self.cursors) // 100)
        if len(parents) <= pages:
            return any([self.add_children(p) for p in parents])
        _, shards = _call(describe_all, self.settings, streams=self.streams, stream_arn=self.stream_arn)
        self.stats["full_describes"] += 1
        by_parent: dict[str, list[ShardInfo]] = {}
        for s in shards:
            if s.parent_id:
                by_parent.setdefault(s.parent_id, []).append(s)
        return any([self._adopt(p, by_parent.get(p.info.shard_id, [])) for p in parents])

    def add_children(self, parent: ShardCursor) -> bool:
        """A shard just ended: find its children now (not at the next refresh), so the same batch goes on
        reading them and a rollover adds no lag. True if a child was new."""
        children = _call(children_of, self.settings, streams=self.streams, stream_arn=self.stream_arn,
                         shard_id=parent.info.shard_id)
        return self._adopt(parent, children)

    def _adopt(self, parent: ShardCursor, children: list[ShardInfo]) -> bool:
        """Cursors for the children of ``parent`` not known yet; a parent whose children are not listed yet
        is asked again (``retry_childless``). True if a child was new."""
        new = False
        for s in children:
            if s.shard_id not in self.cursors:
                cp = self.stored.get(s.shard_id)
                self.cursors[s.shard_id] = ShardCursor(s, cp.sequence_number if cp else None, bool(cp and cp.ended))
                new = True
        if children:
            self.childless.pop(parent.info.shard_id, None)
        else:  # not created yet: asked again (at most once a second) for a minute, then left to refreshes
            self.childless.setdefault(parent.info.shard_id, time.time())
        return new

    def parents_elsewhere(self) -> bool:
        """Shards of this group whose parent another group reads: the parent's end, as that group committed it
        (read at most every ``PARENT_POLL_SECONDS`` while one waits). True if a parent was found ended."""
        now = time.time()
        if self.group.whole or now - self.last_parent_poll < PARENT_POLL_SECONDS:
            return False
        waiting = self.waiting_on_others()
        if not waiting:
            return False
        self.last_parent_poll = now
        self.ahead.settle()
        stored = self.store.checkpoints(self.table)
        ended = [p for p in waiting if stored.get(p) is not None and stored[p].ended]
        for p in ended:
            self.cursors[p].ended = True
        return bool(ended)

    def waiting_on_others(self) -> set[str]:
        """Parents, read by other shard groups and not ended yet, of shards of this group."""
        if self.group.whole:
            return set()
        return {c.info.parent_id for c in self.cursors.values()
                if not c.ended and self.group.owns(c.info.shard_id) and c.info.parent_id in self.cursors
                and not self.cursors[c.info.parent_id].ended and not self.group.owns(c.info.parent_id)}

    def _note_tip(self, micros: int) -> None:
        """Every readable shard of this sync was at its tip at ``micros``: the table's applied-through, or, for one
        shard group of several, this group's (the table's is the oldest of all groups')."""
        self.ahead.settle()  # every batch read before this pass is committed before its time is noted
        if self.group.whole:
            self.store.note_caught_up(self.table, micros)
        else:
            self.store.note_group_tip(self.table, self.group.index, self.group.count, micros)

    def retry_childless(self) -> bool:
        now = time.time()
        if now - self.last_child_poll < 1.0 or not self.childless:
            return False
        self.last_child_poll = now
        new = False
        for shard_id, since in list(self.childless.items()):
            if now - since > 60:
                del self.childless[shard_id]
            elif shard_id in self.cursors:
                new |= self.add_children(self.cursors[shard_id])
        return new

    def readable(self) -> list[ShardCursor]:
        out = []
        for c in self.cursors.values():
            if c.ended or not self.group.owns(c.info.shard_id):
                continue
            parent = c.info.parent_id
            if parent and parent in self.cursors and not self.cursors[parent].ended:
                continue
            out.append(c)
        return out

    # ---------------------------------------------------------------- reading
    def _iterator(self, c: ShardCursor) -> str:
        kwargs = {"StreamArn": self.stream_arn, "ShardId": c.info.shard_id}
        if c.sequence_number:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=c.sequence_number)
        elif self.skip_before > 0 and self.at_timestamp:
            # no checkpoint yet: start where the snapshot stops holding the table (its stream start minus the
            # overlap), not at the 24 h horizon, so a fresh bootstrap of a busy table does not read and skip a
            # day of records first; the client-side skip below stays as the rule
            kwargs.update(ShardIteratorType="AT_TIMESTAMP", Timestamp=self.skip_before / 1e6)
        else:
            kwargs.update(ShardIteratorType="TRIM_HORIZON")
        try:
            return _call(self.streams.get_shard_iterator, self.settings, **kwargs)["ShardIterator"]
        except Exception as exc:
            if kwargs["ShardIteratorType"] == "AT_TIMESTAMP" and error_code(exc) in ("ValidationException",
                                                                                   "InvalidParameterValue"):
                log.info("%s: the endpoint refuses AT_TIMESTAMP iterators (%s); reading from TRIM_HORIZON",
                         self.table, error_code(exc))
                self.at_timestamp = False
                return self._iterator(c)
            if error_code(exc) == "TrimmedDataAccessException":
                raise Gap(f"checkpoint {c.sequence_number} of shard {c.info.shard_id} was trimmed") from exc
            if error_code(exc) == "ResourceNotFoundException":
                raise Gap(f"shard {c.info.shard_id} vanished") from exc
            raise

    def read(self, c: ShardCursor) -> "ShardRead":
        """One GetRecords on a shard. Runs in a reader thread: touches only ``c`` (one read per shard per pass)."""
        expired = 0
        ahead, c.ahead = c.ahead, None
        if ahead is not None and ahead[0] == c.iterator and c.iterator is not None:
            try:
                page = ahead[1].result()
            except Exception:  # noqa: BLE001 - read again below, where every error has its handling
                pass
            else:
                c.iterator = page.get("NextShardIterator")
                return ShardRead(page.get("Records", []), c.iterator is None, 0)
        if c.iterator is None:
            c.iterator = self._iterator(c)
        try:
            page = _call(self.get_records, self.settings, ShardIterator=c.iterator, Limit=PAGE_LIMIT)
        except Exception as exc:
            code = error_code(exc)
            if code == "ExpiredIteratorException":
                expired = 1
                c.iterator = self._iterator(c)
                page = _call(self.get_records, self.settings, ShardIterator=c.iterator, Limit=PAGE_LIMIT)
            elif code == "TrimmedDataAccessException":
                raise Gap(f"records of shard {c.info.shard_id} after {c.sequence_number} were trimmed") from exc
            else:
                raise
        c.iterator = page.get("NextShardIterator")
        return ShardRead(page.get("Records", []), c.iterator is None, expired)

    def read_ahead(self, readers: ShardReaders, c: ShardCursor) -> None:
        """Start the next page of ``c``, whose last page was full, while this thread converts that one: its
        next ``read`` takes it. Only a GetRecords of the iterator ``c`` holds; ``c`` changes when it is taken."""
        if c.iterator is not None and c.ahead is None:
            iterator = c.iterator
            future = readers.ahead(partial(_call, self.get_records, self.settings, ShardIterator=iterator,
                                           Limit=PAGE_LIMIT))
            if future is not None:
                c.ahead = (iterator, future)

    def _commit(self, changes: list[Change], cps: list[Checkpoint], ttl: int, prepared, read_started: float) -> None:
        """One batch and its shards' checkpoints in one transaction, then the flush and fold checks that follow a
        commit: on the run's thread, or on ``CommitAhead``'s while the run reads the next batch."""
        t_apply = time.time()
        threads = self.settings.batch_threads if len(changes) >= LARGE_BATCH else None  # a backlog's (0045)
        result = self.store.apply(self.table, changes, cps, event=("ttl_deletes", {"count": ttl}) if ttl else None,
                                  preshaped=prepared, threads=threads)
        log.debug("batch of %d changes from %d shards: read %.3fs, applied in %.3fs", len(changes), len(cps),
                  t_apply - read_started, time.time() - t_apply)
        self.stats["applied"] += result["upserts"] + result["deletes"]
        self.stats["ttl_deletes"] += ttl
        self.stats["batches"] += 1
        self.stats["largest_batch"] = max(self.stats["largest_batch"], len(changes))
        # a batch over the inline limit wrote a file per index; an inlined one wrote none
        self.files_since_fold |= result["upserts"] > lake_module.INLINE_ROWS
        every = self.settings.flush_every_batches
        # a store shared by several tables' syncs flushes for all of them at most every ``every`` of its
        # commits, and says whether it did (stream/shared_store.py)
        t_flush = time.time()
        flushed = bool(every) and self.stats["batches"] % every == 0 and self.store.flush_inlined()
        if flushed:
            self.stats["flushes"] += 1
            self.files_since_fold = True
            log.debug("flushed inlined rows in %.3fs", time.time() - t_flush)
        every = self.settings.fold_every_batches
        if every and self.stats["batches"] % every == 0 and self.files_since_fold:
            t_fold = time.time()
            # batches that write files are a backlog's: their inlined state rows (checkpoints, sync state)
            # slowed each batch's statements until the 100-batch flush; flushed here as well, unless this
            # batch's flush just ran (the fold flushes first unless told it just ran)
            folded = self.store.fold_small_files(self.table, rewrite_worn=True, flush_first=not flushed,
                                                 threads=threads)
            self.stats["flushes"] += not flushed
            self.files_since_fold = False
            if folded:
                self.stats["folds"] += 1
                log.debug("folded small files %s in %.3fs", folded, time.time() - t_fold)

    def _note_final(self, at_tip: bool, pass_started: float, last_note: float) -> None:
        """A run that ends on a pass at the tip says so, whatever the note rate, so the lag it leaves reads 0."""
        self.ahead.settle()  # a run never ends with a batch in flight
        if at_tip and last_note < pass_started:
            self._note_tip(int(pass_started * 1e6))
        self.caught_up = at_tip

    # --------------------------------------------------------------- the loop
    def run(self, until: float, until_caught_up: bool = False, should_stop=None) -> dict:
        """Sync until ``until`` (epoch seconds), or, with ``until_caught_up``, until a pass finds nothing new;
        or until ``should_stop()`` (asked every ``stop_check_seconds``, between batches) says so."""
        with ShardReaders(self.settings.shard_readers) as readers, CommitAhead(self.settings.commit_ahead) as ahead:
            self.ahead = ahead  # its exit waits for the batch in flight, and raises its error, whatever ends the run
            try:
                return self._run(readers, until, until_caught_up, should_stop)
            finally:
                self.stats["commits_ahead"] = ahead.overlapped

    def _stop_wanted(self, should_stop) -> bool:
        try:
            return bool(should_stop())
        except Exception as exc:  # noqa: BLE001 - a failed question is not a reason to stop following the table
            log.warning("%s: could not tell whether this run should end early (%s); going on", self.table, exc)
            return False

    def _run(self, readers: ShardReaders, until: float, until_caught_up: bool, should_stop=None) -> dict:
        idle = self.settings.idle_min_seconds
        self.refresh()
        last_refresh = run_started = time.time()
        last_stop_check = last_refresh
        last_note = 0.0
        last_news = time.time()  # the last pass that read something (idle_end_seconds counts from it)
        while True:
            changes: list[Change] = []
            touched: dict[str, ShardCursor] = {}
            ttl = 0
            batch_started = time.time()
            progressed = False
            at_tip = False  # a whole pass over at least one readable shard returned nothing
            full_page = False  # the last pass met a shard that answered a full page: it holds more
            size_bytes = 0  # the batch's records' SizeBytes (what DynamoDB counts of each)
            most_records, most_seconds = self.batch_size.most_records, self.batch_size.most_seconds
            while len(changes) < most_records and time.time() - batch_started < most_seconds:
                pass_records = 0
                full_page = False
                ended_now: list[ShardCursor] = []
                readable = self.readable()
                # reading is concurrent (one read per shard); converting and applying stay in this thread
                pages = readers.read_pass(self.read, readable)
                if self.settings.read_ahead:
                    for c, got in zip(readable, pages):
                        if len(got.records) >= PAGE_LIMIT:  # it holds more: fetched while this pass converts
                            self.read_ahead(readers, c)
                skip_before = self.skip_before
                for c, got in zip(readable, pages):
                    records, finished = got.records, got.finished
                    self.stats["expired_iterators"] += got.expired
                    full_page |= len(records) >= PAGE_LIMIT
                    converted = record_changes(records, c.info.shard_id)  # raises before the cursor moves
                    if records:
                        self.stats["records"] += len(records)
                        c.sequence_number = records[-1]["dynamodb"]["SequenceNumber"]
                    skipped = 0
                    for rec, (change, is_ttl) in zip(records, converted):
                        if change.version < skip_before:
                            skipped += 1
                            continue
                        changes.append(change)
                        ttl += is_ttl
                        size_bytes += rec["dynamodb"].get("SizeBytes", 0)
                    self.stats["skipped_old"] += skipped
                    if records or finished:
                        touched[c.info.shard_id] = c
                        progressed = True
                    if finished:
                        c.ended = True
                        ended_now.append(c)
                    pass_records += len(records)
                found_children = self.add_children_of(ended_now)
                if not pass_records and not found_children:
                    at_tip = bool(readable) and not progressed
                    break
            if touched:
                cps = [Checkpoint(c.info.shard_id, c.sequence_number, c.info.parent_id, c.ended) for c in touched.values()]
                # shaped here, beside the batch in flight (if any); committed after it, in its own transaction
                prepared = self.store.prepare(self.table, changes)
                # behind (the batch filled up, or a shard answered a full page): the next batch is read while
                # this one commits; the arguments are bound now, as the loop rebinds its names
                behind = full_page or len(changes) >= most_records
                self.ahead.submit(partial(self._commit, changes, cps, ttl, prepared, batch_started), ahead=behind)
                self.batch_size.after(len(changes), full_page, size_bytes)
            now = time.time()
            if at_tip and now - last_note >= self.settings.caught_up_note_seconds:
                # a pass over every readable shard found nothing: all changes before it started are applied
                self._note_tip(int(batch_started * 1e6))
                last_note = now
            if until_caught_up and not progressed:
                self.refresh()
                if not any(c.iterator is None for c in self.readable()):  # every readable shard read to its tip
                    waiting = self.waiting_on_others()  # a shard group: children of ours on others' parents
                    if waiting and now - run_started < PARENT_WAIT_SECONDS:
                        time.sleep(PARENT_POLL_SECONDS)  # not caught up yet: the other group ends the parent
                        self.parents_elsewhere()
                        continue
                    if waiting:
                        self.stats["waiting_on_other_groups"] = len(waiting)
                        log.warning("%s: group %s ends with %d parent shard(s) other groups read still open; are "
                                    "the other groups of %d running?", self.table, self.group, len(waiting),
                                    self.group.count)
                    self._note_final(at_tip, batch_started, last_note)
                    return self.stats
            elif not until_caught_up and now >= until:
                self._note_final(at_tip, batch_started, last_note)
                return self.stats
            if progressed:
                last_news = now
            elif (self.settings.idle_end_seconds > 0 and at_tip and not until_caught_up
                  and now - last_news >= self.settings.idle_end_seconds):
                self.stats["quiet"] = 1  # nothing new for idle_end_seconds: the caller probes it from now on
                self._note_final(at_tip, batch_started, last_note)
                return self.stats
            if should_stop is not None and now - last_stop_check >= self.settings.stop_check_seconds:
                last_stop_check = now
                if self._stop_wanted(should_stop):
                    log.info("%s: ending this run early: another run is waiting", self.table)
                    self.stats["stopped_early"] = 1
                    self._note_final(at_tip, batch_started, last_note)
                    return self.stats
            if progressed:
                idle = self.settings.idle_min_seconds
            elif not until_caught_up:
                time.sleep(min(idle, max(0.0, until - now)))
                idle = min(self.settings.idle_max_seconds, idle * 2)
            # children of ended shards are already known (add_children); a full refresh catches new roots
            self.retry_childless()
            self.parents_elsewhere()
            if time.time() - last_refresh > self.settings.refresh_seconds or not self.readable():
                self.refresh()
                last_refresh = time.time()


def _add_stats(total: dict, one: dict) -> None:
    """One ``TableSync``'s figures added to the run's (the largest batch is the largest of either)."""
    for k, v in one.items():
        total[k] = max(total.get(k, 0), v) if k == "largest_batch" else total.get(k, 0) + v


def sync_table(store: Store, table: str, ddb, streams, s3, *, seconds: float = 0.0, settings: SyncSettings | None = None,
               should_stop=None, group: ShardGroup = WHOLE) -> dict:
    """Sync ``table`` for ``seconds`` (0 or less: until caught up), or until ``should_stop()`` (asked between
    batches every ``stop_check_seconds``) is true; only ``group``'s share of the shards (stream/shard_groups.py;
    default all). Recovers gaps (one group of several raises ``GapInGroup``); raises NeedsBootstrap."""
    with unreachable(f"syncing {table}"):
        return _sync_table(store, table, ddb, streams, s3, seconds, settings or SyncSettings(), should_stop, group)


def _sync_table(store: Store, table: str, ddb, streams, s3, seconds: float, settings: SyncSettings,
                should_stop=None, group: ShardGroup = WHOLE) -> dict:
    until = time.time() + seconds
    once = seconds <= 0
    stats: dict = {}
    for _ in range(3):
        sync = TableSync(store, table, ddb, streams, s3, settings, group)
        try:
            result = sync.run(until, until_caught_up=once, should_stop=should_stop)
            _add_stats(stats, result)
            stats["caught_up"] = sync.caught_up
            return stats
        except Gap as gap:
            if not group.whole:
                raise GapInGroup(f"{table}: shard group {group} met a gap ({gap.reason}); recovery rewrites the "
                                 "whole table's position: stop the groups, run `dynadex sync` once without "
                                 "--group (it recovers), then start the groups again") from gap
            _add_stats(stats, sync.stats)
            log.warning("%s: gap detected: %s", table, gap.reason)
            stats["recoveries"] = stats.get("recoveries", 0) + 1
            stats.setdefault("recovered", []).append(recover(store, table, ddb, s3, reason=gap.reason, settings=settings))
    raise NeedsBootstrap(f"{table}: gaps keep appearing after recovery; a fresh bootstrap is needed")
