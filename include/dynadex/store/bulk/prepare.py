"""Before publish: decide the snapshot's columns from the chunks' statistics, and plan the parallel jobs.

``prepare`` reads only the chunk manifests (metadata). It refuses missing
chunks, count mismatches and a data file claimed by two chunks, decides the
final column names and types (the type-conflict rule over the merged
statistics), and returns a ``PublishPlan`` of independent jobs:

* ``keys`` jobs, one per key range: read every chunk's row file in that range
  (row groups outside it are skipped by their statistics), refuse any key
  held twice, and write the range as one sorted row file (``range_merge``);
  then write the same range of every chunk's column file as one column file
  sorted by key, with the final names and types (a chunk whose own
  statistics chose another type or name is cast on the way: only where the
  data disagrees). The ranges partition the key space, so together they see
  every key exactly once: no duplicate anywhere escapes, no job reads more
  than its share, and a stream batch's delete from either index finds each
  key in one file (decision 0026).
* ``entries`` jobs, one per (path, value, key) range of the inverted index:
  merge the range of every chunk's inverted file into one sorted file. Only
  for builds of more than ``MERGE_ENTRIES_ABOVE_CHUNKS`` chunks: the merge
  costs about as much again as the chunks' own inverted writes, and below
  that a ``find`` opens few enough files (decision 0022).

Invariants: jobs are pure functions of the plan (re-running one rewrites its
record and writes a fresh attempt folder); every record carries the plan's
digest, so ``publish`` accepts only records of the plan whose chunks it
registers. Once the build is published a job only returns its record: the
chunks' own rows and entries are then orphans that maintenance deletes.
Nothing here writes the catalog.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from dynadex import settings
from dynadex.store.bulk import chunk_files, range_merge
from dynadex.store.bulk.chunk_manifest import ChunkManifest, ColumnStats, merge_stats, read_manifest
from dynadex.store.bulk.staging import new_attempt_dir, read_json, write_json
from dynadex.store.catalog.extensions import connect
from dynadex.store.catalog.location import StoreLocation
from dynadex.store.errors import PublishRefused, StoreError
from dynadex.store.layout import key_order
from dynadex.store.layout.names import KEY_COLUMN, literal_list, quote
from dynadex.store.layout.registry import Column, Registry

RANGE_KEYS = 2_000_000  # rows one key-range job checks and merges, about
RANGE_ENTRIES = 16_000_000  # inverted entries one entry-range job merges, about
CHUNKS_PER_RANGE = 2  # at least one range of each index per this many chunks: merges spread like builds
MAX_RANGES = 256  # per index (both under Airflow's max_map_length of 1024)
MERGE_ENTRIES_ABOVE_CHUNKS = settings.MERGE_ENTRIES_ABOVE_CHUNKS.default  # fewer chunks: their own inverted files are registered


def merge_entries_above_chunks() -> int:
    """``DYNADEX_MERGE_ENTRIES_ABOVE_CHUNKS`` (default 16): above this many chunks the inverted entries are
    merged by range. Raise it where files are cheap to open (local disk) and loads must be fast; lower it on
    S3, where a find over unmerged files opens one per chunk (decision 0022)."""
    return settings.MERGE_ENTRIES_ABOVE_CHUNKS.read(default=MERGE_ENTRIES_ABOVE_CHUNKS)


@dataclass
class Job:
    kind: str  # "keys" or "entries"
    name: str  # its record's name, unique in the plan
    lo: str | list | None = None  # keys: first key of the range (inclusive); entries: [path, value, key]; None: open
    hi: str | list | None = None  # the end of the range (exclusive), the same way

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Job":
        # a plan saved by an older release may carry its conform jobs' chunk_id; such a plan's jobs are refused
        # by kind when run, and publish asks for them to run again
        return cls(**{k: v for k, v in d.items() if k in ("kind", "name", "lo", "hi")})

    def label(self, count: int | None = None) -> str:
        what = "check + merge keys" if self.kind == "keys" else "merge entries"
        return f"{what} {self.name.split('-')[-1]}" + (f" of {count}" if count else "")


@dataclass
class PublishPlan:
    table: str
    build_id: str
    digest: str
    items: int
    chunk_ids: list[str]
    columns: list[Column]  # the final registry
    jobs: list[Job] = field(default_factory=list)
    cast_chunks: list[str] = field(default_factory=list)  # chunks whose columns the keys jobs cast (information)
    key_prefix: str = ""  # the common key prefix of the key order numbers the keys jobs write (key_order.py)

    def to_dict(self) -> dict:
        return {**asdict(self), "columns": [c.to_dict() for c in self.columns], "jobs": [j.to_dict() for j in self.jobs]}

    @classmethod
    def from_dict(cls, d: dict) -> "PublishPlan":
        return cls(**{**d, "columns": [Column.from_dict(c) for c in d["columns"]],
                      "jobs": [Job.from_dict(j) for j in d["jobs"]]})

    def registry(self) -> Registry:
        return Registry(list(self.columns))


@dataclass
class JobRecord:
    """What a job of the plan did, kept beside the manifests (``staging.write_json``): publish registers the
    files it names and checks its counts against the chunks'."""

    digest: str  # the plan's: a record of another plan is not this job's
    job: Job
    rows: int = 0  # keys: the keys of the range, each checked to be once
    merged: int = 0  # rows (keys) or entries (entries) written into ``files``
    files: list[str] = field(default_factory=list)
    cols_merged: int | None = None  # keys: column-index rows written into ``cols``; None: an older release's job
    cols: list[str] | None = None
    published: bool = False  # the build was already published when the job ran again: nothing was read

    def to_dict(self) -> dict:
        return {**asdict(self), "job": self.job.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "JobRecord":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{**{k: v for k, v in d.items() if k in known}, "job": Job.from_dict(d["job"])})

    def figures(self) -> dict:
        """The record without its job and digest: what a task logs and returns."""
        return {k: v for k, v in self.to_dict().items() if k not in ("job", "digest")}


def read_manifests(location: StoreLocation, table: str, build_id: str, chunk_ids: list[str], key_names,
                   expected_items: dict | None, total_items: int | None) -> list[ChunkManifest]:
    manifests, missing, wrong = [], [], []
    for chunk_id in chunk_ids:
        m = read_manifest(location, table, build_id, chunk_id)
        if m is None:
            missing.append(chunk_id)
            continue
        expected = (expected_items or {}).get(chunk_id)
        if expected is not None and m.items != expected:
            wrong.append(f"{chunk_id} holds {m.items} items, expected {expected}")
        if tuple(m.key_names) != tuple(key_names):
            wrong.append(f"{chunk_id} was built with key {list(m.key_names)}, expected {list(key_names)}")
        manifests.append(m)
    where = f"publish of {table} build {build_id} refused"
    if missing:
        raise PublishRefused(f"{where}: chunk(s) not built: {', '.join(missing)}")
    if wrong:
        raise PublishRefused(f"{where}: {'; '.join(wrong)}")
    owner: dict[str, str] = {}
    for m in manifests:
        for f in m.source_files:
            if f in owner and owner[f] != m.chunk_id:
                raise PublishRefused(f"{where}: data file {f} is in both {owner[f]} and {m.chunk_id}")
            owner[f] = m.chunk_id
    total = sum(m.items for m in manifests)
    if total_items is not None and total != total_items:
        raise PublishRefused(f"{where}: chunks hold {total} items, the export has {total_items}")
    return manifests


def digest(manifests: list[ChunkManifest], columns: list[Column]) -> str:
    h = hashlib.sha256()
    for m in sorted(manifests, key=lambda m: m.chunk_id):
        h.update(m.digest_part.encode())
    h.update(json.dumps([c.to_dict() for c in columns], sort_keys=True, ensure_ascii=False).encode())
    return h.hexdigest()[:24]


def final_columns(manifests: list[ChunkManifest]) -> list[Column]:
    merged = merge_stats(m.columns for m in manifests)
    return Registry.for_publish({k: (s.count, s.number) for k, s in merged.items()}).columns


def needs_cast(manifest: ChunkManifest, registry: Registry) -> bool:
    for c in manifest.columns:
        final = registry.by_key[(c.path, c.kind)]
        if (final.name, final.sql_type) != (c.name, c.sql_type):
            return True
    return False


def key_ranges(manifests: list[ChunkManifest], items: int) -> list[tuple[str | None, str | None]]:
    """About equal ranges of the key space from the chunks' key bounds; they partition it (first and last open)."""
    count = range_merge.range_count(items, RANGE_KEYS, len(manifests), CHUNKS_PER_RANGE, MAX_RANGES)
    return range_merge.cut([k for m in manifests for k in m.key_bounds], count)


def entry_ranges(manifests: list[ChunkManifest]) -> list[tuple]:
    """About equal ranges of the inverted index's (path, value, key) space; they partition it. None for a
    build of at most ``merge_entries_above_chunks()`` chunks, whose inverted files are registered as they are."""
    if len(manifests) <= merge_entries_above_chunks():
        return []
    entries = sum(m.inverted_entries for m in manifests)
    count = range_merge.range_count(entries, RANGE_ENTRIES, len(manifests), CHUNKS_PER_RANGE, MAX_RANGES)
    return range_merge.cut(range_merge.inverted_bounds_of(manifests), count, order=range_merge.entry_order)


def prepare(location: StoreLocation, table: str, build_id: str, chunk_ids: list[str], key_names,
            expected_items: dict | None = None, total_items: int | None = None) -> PublishPlan:
    manifests = read_manifests(location, table, build_id, chunk_ids, key_names, expected_items, total_items)
    return plan_for(table, build_id, manifests)


def plan_for(table: str, build_id: str, manifests: list[ChunkManifest]) -> PublishPlan:
    """The plan of already-read (and checked) manifests."""
    chunk_ids = [m.chunk_id for m in manifests]
    columns = final_columns(manifests)
    plan = PublishPlan(table, build_id, digest(manifests, columns), sum(m.items for m in manifests), list(chunk_ids),
                       columns)
    if manifests:
        plan.key_prefix = key_order.table_prefix([k for m in manifests for k in m.key_bounds],
                                                 tuple(manifests[0].key_names), tuple(manifests[0].key_types))
    for kind, ranges in (("keys", key_ranges(manifests, plan.items)), ("entries", entry_ranges(manifests))):
        width = len(str(len(ranges)))
        for i, (lo, hi) in enumerate(ranges, 1):  # entry bounds are tuples, kept as JSON lists
            plan.jobs.append(Job(kind, f"{kind}-{i:0{width}d}", lo=list(lo) if isinstance(lo, tuple) else lo,
                                 hi=list(hi) if isinstance(hi, tuple) else hi))
    registry = plan.registry()
    plan.cast_chunks = [m.chunk_id for m in manifests if needs_cast(m, registry)]
    return plan


# ------------------------------------------------------------------ the jobs


def is_published(location: StoreLocation, table: str, build_id: str) -> bool:
    """Whether ``build_id`` is the table's published snapshot (a store that cannot be opened: no)."""
    from dynadex.store.catalog.lake import Lake

    try:
        with Lake(location, read_only=True) as lake:
            found = lake.table_state(table)
    except StoreError:
        return False
    return found is not None and found.build_id == build_id


def run_job(location: StoreLocation, plan: PublishPlan, job: Job, *, threads: int | None = None,
            published: bool | None = None) -> JobRecord:
    """Run one job of the plan and record its result (refusing on a duplicate key). A job of a published build
    (a task cleared after publish) returns its record and reads nothing. ``published``: whether the build is
    published, when the caller asked the catalog once for all its jobs (None: the job asks)."""
    if published is None:
        published = is_published(location, plan.table, plan.build_id)
    if published:
        kept = read_json(location, plan.table, plan.build_id, job.name)
        return JobRecord.from_dict(kept) if kept else JobRecord(plan.digest, job, published=True)
    manifests = [read_manifest(location, plan.table, plan.build_id, c) for c in plan.chunk_ids]
    if any(m is None for m in manifests) or digest(manifests, plan.columns) != plan.digest:
        raise PublishRefused(f"publish of {plan.table} build {plan.build_id} refused: chunks were rebuilt or removed "
                             "since publish was prepared; prepare again")
    con = connect(threads=threads)
    con.execute("SET preserve_insertion_order = false")  # the merges write in their own ORDER BY: less memory
    try:
        if location.data_path.startswith("s3://"):
            from dynadex.store.catalog.lake import s3_secret

            s3_secret(con, location)
        if job.kind not in ("keys", "entries"):
            raise ValueError(f"unknown publish job kind {job.kind!r}")
        folder = new_attempt_dir(location, plan.table, plan.build_id, "merged-" + job.name)
        if job.kind == "keys":
            result = _check_keys(con, plan, job, manifests)
            result.update(_merge(con, folder, plan, job, manifests))
            result.update(_merge_columns(con, folder, plan, job, manifests))
        else:
            result = _merge(con, folder, plan, job, manifests)
    finally:
        con.close()
    record = JobRecord(plan.digest, job, **result)
    write_json(location, plan.table, plan.build_id, job.name, record.to_dict())
    return record


def _check_keys(con, plan: PublishPlan, job: Job, manifests: list[ChunkManifest]) -> dict:
    files = [f for m in manifests for f in m.files["rows"]]
    cond, params = range_merge.key_range_sql(job.lo, job.hi)
    if not files:
        return {"rows": 0}
    src = f"read_parquet({literal_list(files)})"
    rows, most = con.execute(f"SELECT coalesce(sum(c), 0), coalesce(max(c), 0) FROM "
                             f"(SELECT count(*) AS c FROM {src} {cond} GROUP BY key)", params).fetchone()
    if most > 1:  # name the key and the chunks holding it (a second, rare read)
        dup = con.execute(f"SELECT key, count(*), list(DISTINCT filename) FROM read_parquet({literal_list(files)}, "
                          f"filename = true) {cond} GROUP BY key HAVING count(*) > 1 ORDER BY key LIMIT 1",
                          params).fetchone()
        owners = sorted({m.chunk_id for m in manifests if set(m.files["rows"]) & set(dup[2])})
        raise PublishRefused(f"publish of {plan.table} build {plan.build_id} refused: key {dup[0]} appears "
                             f"{dup[1]} times (chunks {', '.join(owners)})")
    return {"rows": int(rows)}


def _merge(con, folder: str, plan: PublishPlan, job: Job, manifests: list[ChunkManifest]) -> dict:
    """Write the job's range of every chunk's rows (keys) or inverted entries (entries) as one sorted file in
    ``folder`` (the job's fresh attempt folder)."""
    index = "rows" if job.kind == "keys" else "inv"
    files = [f for m in manifests for f in m.files[index]]
    if not files:
        return {"merged": 0, "files": []}
    target = f"{folder}/{index}.parquet"
    if job.kind == "keys":
        sql, params = range_merge.merge_rows_sql(files, job.lo, job.hi, target, plan.key_prefix)
    else:
        lo, hi = (None if b is None else tuple(b) for b in (job.lo, job.hi))
        sql, params = range_merge.merge_entries_sql(files, lo, hi, target)
    merged = range_merge.run_copy(con, sql, params)
    return {"merged": merged, "files": [target] if merged else []}  # an empty range registers no file


def column_select(m: ChunkManifest, registry: Registry) -> list[str] | None:
    """The SELECT list that reads chunk ``m``'s column file with the final names and types; None where the file
    already has them."""
    if not needs_cast(m, registry):
        return None
    select = [quote(KEY_COLUMN)]
    for c in m.columns:
        final = registry.by_key[(c.path, c.kind)]
        select.append(f"{chunk_files.cast_sql(quote(c.name), c.sql_type, final.sql_type)} AS {quote(final.name)}")
    return select


def _merge_columns(con, folder: str, plan: PublishPlan, job: Job, manifests: list[ChunkManifest]) -> dict:
    """Write the job's key range of every chunk's column file as one file sorted by key, final names and types."""
    registry = plan.registry()
    as_is, sources = [], []
    for m in manifests:
        select = column_select(m, registry)
        if select is None:
            as_is += m.files["cols"]
        else:
            sources.append((m.files["cols"], select))
    if as_is:
        sources.insert(0, (as_is, None))
    if not sources:
        return {"cols_merged": 0, "cols": []}
    target = f"{folder}/cols.parquet"
    sql, params = range_merge.merge_columns_sql(sources, [quote(c.name) for c in registry.columns], job.lo, job.hi,
                                                target, plan.key_prefix)
    merged = range_merge.run_copy(con, sql, params)
    return {"cols_merged": merged, "cols": [target] if merged else []}


def save_plan(location: StoreLocation, plan: PublishPlan) -> None:
    """Keep the plan beside the manifests: the mapped jobs and publish read it there (XCom carries job names)."""
    write_json(location, plan.table, plan.build_id, "plan", plan.to_dict())


def load_plan(location: StoreLocation, table: str, build_id: str) -> PublishPlan:
    doc = read_json(location, table, build_id, "plan")
    if doc is None:
        raise PublishRefused(f"publish of {table} build {build_id} refused: publish was not prepared")
    return PublishPlan.from_dict(doc)


def results(location: StoreLocation, plan: PublishPlan) -> dict[str, JobRecord]:
    """The recorded result of every job of the plan; refuses if one is missing or belongs to another plan."""
    out, missing = {}, []
    for job in plan.jobs:
        r = read_json(location, plan.table, plan.build_id, job.name)
        if r is None or r.get("digest") != plan.digest:
            missing.append(job.name)
        else:
            out[job.name] = JobRecord.from_dict(r)
    if missing:
        raise PublishRefused(f"publish of {plan.table} build {plan.build_id} refused: publish job(s) not run for "
                             f"these chunks: {', '.join(missing)}")
    return out


__all__ = ["ColumnStats", "Job", "JobRecord", "PublishPlan", "load_plan", "prepare", "results", "run_job",
           "save_plan"]
