"""Every ``DYNADEX_*`` environment variable, declared once here: name, type, default, one line of documentation.

Invariant: nothing in ``include/``, ``plugins/`` or ``dags/`` reads a ``DYNADEX_*`` variable but through a
``Setting`` declared here, library and Airflow side alike (tests/test_layering.py checks the source;
tests/test_settings.py that every ``DYNADEX_*`` name the source mentions is declared, and that docs/settings.md's
table is ``python -m dynadex.settings --markdown``, which ``make settings-doc`` writes there).

The declarations come in groups (``GROUPS``): the library and its command, the export waits, the stream
sync (``SyncSettings`` takes its field defaults from them), the Airflow side (``plugins/dynadex_airflow``,
``dags/``), the launchers ``make airflow`` and ``make demo``, and the bundled emulator (``Knobs``).

A setting is read when ``read()`` is called: on every use, except those marked ``once``, which a module
reads at its import and keeps for the process (``aws.MAX_ATTEMPTS``, ``lake.INLINE_ROWS``,
``lake.CATALOG_HOLD``, ``key_pruning.PRUNE_KEYS``: tests patch those module constants). ``SyncSettings`` and
``Knobs`` read theirs when one is made; a DAG file when it is parsed. An unset or empty variable means the
default; a value that is not of the setting's type raises ``SettingError`` naming the variable and the value.

Not declared here: the ``AWS_*`` variables, AWS's own, read as botocore reads them (``aws.py``,
``credentials.py``), and the ``PATH`` and ``PYTHONPATH`` the launchers pass on to what they start.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Callable

from dynadex.errors import SettingError


@dataclass(frozen=True)
class Kind:
    """A setting's type: its name in the table, how a value is parsed (``ValueError`` when it is not one)."""

    name: str
    parse: Callable[[str], Any]
    expected: str


def _int(raw: str) -> int:
    try:
        return int(raw)
    except ValueError as exc:
        value = float(raw)  # 1e4 and 16.0 were always taken (the sync and emulator parsed floats)
        if not value.is_integer():
            raise ValueError(f"{raw!r} is not a whole number") from exc
        return int(value)


def _bool(raw: str) -> bool:
    word = raw.lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off"):
        return False
    value = float(raw)  # a number: 0 is off, anything else on (as the sync's switches always read them)
    if math.isnan(value):
        raise ValueError(raw)
    return value != 0


INT = Kind("int", _int, "an integer")
FLOAT = Kind("float", float, "a number")
BOOL = Kind("bool", _bool, "a boolean (1/0, true/false, yes/no, on/off)")
STR = Kind("str", str, "a string")


@dataclass(frozen=True)
class Setting:
    env: str
    kind: Kind
    default: Any
    doc: str
    group: str
    once: bool = False
    """Read once, when the module using it is imported (the others are read on every use)."""

    def parse(self, raw: str) -> Any:
        """``raw`` as this setting's type; ``SettingError`` naming the variable and the value when it is not."""
        try:
            return self.kind.parse(raw.strip())
        except (ValueError, OverflowError) as exc:
            raise SettingError(f"{self.env}={raw!r} is not {self.kind.expected} "
                               f"(default {shown(self.default)})") from exc

    def read(self, default: Any = None) -> Any:
        """The variable's value, parsed; unset or empty: ``default`` if given, else the declared default."""
        raw = os.environ.get(self.env, "")
        if not raw.strip():
            return self.default if default is None else default
        return self.parse(raw)


def shown(value: Any) -> str:
    """A default as the environment would spell it: 1/0 for booleans, 3600 for 3600.0, ``unset`` for None."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


GROUPS: dict[str, str] = {
    "library": "the library and the `dynadex` command: stores, chunk builds, DuckDB, AWS calls",
    "exports": "waiting for DynamoDB exports: the ingest DAG's full export and the sync's incremental ones",
    "sync": "the stream sync (`SyncSettings`, read when a sync starts; callers may override each field)",
    "fleet": "many tables followed by one process, a table probed while quiet (`stream.fleet.FleetSettings`; the "
             "stream DAG's sync groups and their trigger)",
    "serve": "`dynadex serve`, the HTTP API (read when the server starts)",
    "airflow": "the DAGs and their tasks (`plugins/dynadex_airflow`, `dags/`; read when a DAG file is parsed "
               "or a task runs)",
    "launchers": "`make airflow` and `make demo`; unless set, they give the Airflow they start shorter waits: "
                 "`DYNADEX_EXPORT_POLL_SECONDS` 2 (`make demo`: always 1) and `DYNADEX_SYNC_RUN_SECONDS` 30",
    "emulator": "the bundled AWS emulator (`Knobs`; the flags of `dynadex local-aws` win over them)",
}

SETTINGS: dict[str, Setting] = {}


def _declare(env: str, kind: Kind, default: Any, doc: str, *, group: str, once: bool = False) -> Setting:
    assert env not in SETTINGS and group in GROUPS and "\n" not in doc, env
    SETTINGS[env] = setting = Setting(env, kind, default, doc, group, once)
    return setting


def group(name: str) -> list[Setting]:
    return [s for s in SETTINGS.values() if s.group == name]


# ---- the library and the `dynadex` command -------------------------------------------------------------

AWS_MAX_ATTEMPTS = _declare("DYNADEX_AWS_MAX_ATTEMPTS", INT, 9, "Attempts per AWS call, the first included "
                            "(botocore's `total_max_attempts`; decision 0017).", group="library", once=True)

INLINE_ROWS = _declare("DYNADEX_INLINE_ROWS", INT, 1000, "Inserts of at most this many rows are inlined in the "
                       "DuckLake catalog (decision 0021); 0 leaves DuckLake's own limit.", group="library",
                       once=True)

# by key order numbers (decision 0027) larger tables narrow more keys, one per 16 384 rows up to 256
NARROW_KEYS = _declare("DYNADEX_NARROW_KEYS", INT, 32, "A stream batch of 2 to this many keys, on a table of "
                       "500 000 rows or more, filters its lookups and deletes on the key columns so that DuckDB "
                       "reads only the row groups holding them (decisions 0025, 0027; larger tables narrow more, "
                       "up to 256); 0 turns narrowing off.", group="library", once=True)

CATALOG_HOLD = _declare("DYNADEX_CATALOG_HOLD", BOOL, True, "A writing store keeps one connection to its SQLite "
                        "catalog open (`store/catalog/hold.py`, decision 0023); 0 turns it off.", group="library",
                        once=True)

MERGE_ENTRIES_ABOVE_CHUNKS = _declare("DYNADEX_MERGE_ENTRIES_ABOVE_CHUNKS", INT, 16, "Above this many chunks a "
                                      "build's inverted entries are merged by range before publish (decision "
                                      "0022): raise it where files are cheap to open, lower it on S3.",
                                      group="library")

BUILD = _declare("DYNADEX_BUILD", STR, "auto", "`python` builds chunks with the exact Python path instead of "
                 "DuckDB's (decision 0007).", group="library")

BUILD_THREADS = _declare("DYNADEX_BUILD_THREADS", INT, None, "DuckDB threads for one chunk build; unset: all "
                         "cores.", group="library")

DUCKDB_MEMORY = _declare("DYNADEX_DUCKDB_MEMORY", STR, None, "DuckDB's memory limit for every connection the "
                         "library opens (e.g. `4GB`); unset: the caller's, else 1500MB.", group="library")

DUCKDB_TEMP = _declare("DYNADEX_DUCKDB_TEMP", STR, None, "Where DuckDB spills sorts and joins, each connection "
                       "in a folder of its own under it; unset: `dynadex-duckdb-spill` in the temp directory.",
                       group="library")

EXTENSION_DIR = _declare("DYNADEX_EXTENSION_DIR", STR, None, "Where the DuckDB extensions from their pip "
                         "packages are laid out for DuckDB to load (once per process); unset: a per-user temp "
                         "directory.", group="library")

EXTENSION_SIGNATURES = _declare("DYNADEX_EXTENSION_SIGNATURES", BOOL, False, "1: every DuckDB instance checks "
                                "the signature of each extension it loads (~0.1 s each); 0: skipped while the "
                                "extension directory is private to this user (decision 0029; read once per "
                                "process).", group="library")

STORE = _declare("DYNADEX_STORE", STR, None, "The store (a folder, or a PostgreSQL catalog URI) commands and "
                 "DAGs use when not told; unset: `./.dynadex`.", group="library")

DATA_PATH = _declare("DYNADEX_DATA_PATH", STR, None, "Where a PostgreSQL-catalogued store keeps its files (a "
                     "folder or `s3://…`).", group="library")

LOG_LEVEL = _declare("DYNADEX_LOG_LEVEL", STR, None, "The `dynadex` command's log level (DEBUG, INFO, …); unset: "
                     "the command's own.", group="library")

QUERY_SANDBOX = _declare("DYNADEX_QUERY_SANDBOX", BOOL, False, "`dynadex query` runs with `--sandbox` unless "
                         "told otherwise (decision 0016).", group="library")

# ---- dynadex serve ------------------------------------------------------------------------------------

SERVE_QUERY_SECONDS = _declare("DYNADEX_SERVE_QUERY_SECONDS", FLOAT, 30.0, "The longest a served query may run "
                               "(a request's `timeout_ms` may ask for less); past it DuckDB is interrupted and the "
                               "answer is 408.", group="serve")

SERVE_MAX_ROWS = _declare("DYNADEX_SERVE_MAX_ROWS", INT, 10000, "The most rows a served answer holds (a request's "
                          "`default_row_limit` may ask for fewer); more are cut off, with a warning.", group="serve")

SERVE_MEMORY = _declare("DYNADEX_SERVE_MEMORY", STR, "512MB", "DuckDB's memory limit for each of the server's "
                        "query connections (`DYNADEX_DUCKDB_MEMORY`, when set, wins).", group="serve")

SERVE_CONNECTIONS = _declare("DYNADEX_SERVE_CONNECTIONS", INT, 4, "Sandboxed store connections the server "
                             "answers with: at most this many requests read at once, the others wait.",
                             group="serve")

POINT_READS = _declare("DYNADEX_POINT_READS", BOOL, True, "A served `get` reads the row index's Parquet files "
                       "itself, from a plan of the snapshot's files made once per snapshot (decision 0040); off: "
                       "every `get` reads through DuckLake (slower, the same answers).", group="serve")

CATALOG_WAL_INDEX = _declare("DYNADEX_CATALOG_WAL_INDEX", BOOL, True, "A served `get` looks for the newest "
                             "snapshot only when the SQLite catalog's WAL index header changed since its last look "
                             "(a commit writes a new one); off: it reads the catalog at every `get` (decision "
                             "0040).", group="serve")

CATALOG_SIDE_READER = _declare("DYNADEX_CATALOG_SIDE_READER", BOOL, True, "A served `get` reads a SQLite "
                               "catalog's rows (the newest snapshot, a new snapshot's changes, inlined rows and sync "
                               "state) through Python's `sqlite3` in a child process, on one connection kept open "
                               "(decision 0047); off: each read is a `sqlite_query` of DuckDB's, which opens a SQLite "
                               "connection for each.", group="serve")

SERVE_WARM_SECONDS = _declare("DYNADEX_SERVE_WARM_SECONDS", FLOAT, 0.001, "How often the server looks whether "
                              "the SQLite catalog committed (its WAL index header): at a new snapshot it makes the "
                              "point-read plans and sync states of the tables recently got before a `get` needs "
                              "them (decision 0040); 0: off, the first `get` of a snapshot makes them.",
                              group="serve")

SERVE_WORKSPACE = _declare("DYNADEX_SERVE_WORKSPACE", STR, "commons", "The one Rockset workspace the server "
                           "answers for: its collections are the store's tables (`commons.Orders`).",
                           group="serve")

SERVE_STATE = _declare("DYNADEX_SERVE_STATE", STR, None, "The SQLite file holding the server's API keys "
                       "(hashed) and Query Lambdas; unset: `serve.sqlite` in the store folder (required for a "
                       "PostgreSQL catalog).", group="serve")

# ---- export waits -------------------------------------------------------------------------------------

# One default for both waits (they were 30 s in the ingest DAG, 10 s in the sync): a sync recovering a gap
# leaves its table unfollowed until the export is seen done, so every second of the poll is lag there; a
# DescribeExport every 10 s per running export costs nothing worth saving.
EXPORT_POLL_SECONDS = _declare("DYNADEX_EXPORT_POLL_SECONDS", FLOAT, 10.0, "How often DescribeExport is polled "
                               "while an export runs: the ingest DAG's deferred `wait_export` (whole seconds, "
                               "at least 1) and the sync's gap recovery.", group="exports")

EXPORT_TIMEOUT_SECONDS = _declare("DYNADEX_EXPORT_TIMEOUT_SECONDS", FLOAT, 6 * 3600.0, "How long the ingest DAG "
                                  "waits for its export, and the sync's recovery for each incremental export.",
                                  group="exports")

# ---- the stream sync (SyncSettings) -------------------------------------------------------------------

OVERLAP_SECONDS = _declare("DYNADEX_OVERLAP_SECONDS", FLOAT, 300.0, "Stream records older than the export's "
                           "stream start minus this are skipped: the snapshot holds them.", group="sync")

BATCH_RECORDS = _declare("DYNADEX_BATCH_RECORDS", INT, 10000, "A batch commits once it holds this many changes "
                         "(or `DYNADEX_BATCH_SECONDS` passed).", group="sync")

BATCH_SECONDS = _declare("DYNADEX_BATCH_SECONDS", FLOAT, 0.5, "A batch commits at the end of the pass that "
                         "outlived this (or at the tip).", group="sync")

BACKLOG_BATCH_FACTOR = _declare("DYNADEX_BACKLOG_BATCH_FACTOR", INT, 20, "While the sync is behind (a batch filled "
                                "up, or a shard answered a full page), each next batch may hold twice as many "
                                "changes and take twice as long, up to this many times `DYNADEX_BATCH_RECORDS` "
                                "and `DYNADEX_BATCH_SECONDS`: a backlog's fixed costs per batch amortize. At the "
                                "tip batches shrink back at once; 1 keeps them fixed (decision 0035).",
                                group="sync")

SYNC_THREADS = _declare("DYNADEX_SYNC_THREADS", INT, 1, "DuckDB threads of a stream sync's store (its batches, "
                        "flushes and folds). One: a sync's statements gain little from more, several syncs share "
                        "a worker's cores, and the flush crashed now and then on several under load (decision "
                        "0033); 0: DuckDB's default (one per core).", group="sync")

SYNC_BATCH_THREADS = _declare("DYNADEX_SYNC_BATCH_THREADS", INT, 2, "DuckDB threads for the commit of a large "
                              "stream batch (2 000 changes or more: a backlog's, or a busy table's); the store's "
                              "own `DYNADEX_SYNC_THREADS` is back after it, and flushes keep one thread. 1 or 0: "
                              "every statement on the store's own setting (decision 0045).", group="sync")

READ_AHEAD = _declare("DYNADEX_READ_AHEAD", BOOL, True, "A shard that answered a full page of GetRecords has "
                      "its next page fetched while the sync converts this one (at most one call in flight per "
                      "shard, as without it; pages at the tip are never fetched ahead, decision 0042). 0: each "
                      "pass is read after the last one is converted.", group="sync")

COMMIT_AHEAD = _declare("DYNADEX_COMMIT_AHEAD", BOOL, True, "While the sync is behind, each batch commits on its "
                        "own thread while the next batch is read, converted and shaped: DuckDB releases Python's "
                        "lock, so the two use both cores. Batches still commit one at a time, in order, each "
                        "with its checkpoints; at the tip every batch commits before the next read (decision "
                        "0042). 0: commit, then read.", group="sync")

SHARD_READERS = _declare("DYNADEX_SHARD_READERS", INT, 16, "GetRecords calls in flight at once over a table's "
                         "readable shards, one per shard at most (decision 0014); 1 reads them one after another.",
                         group="sync")

STREAM_RETENTION_SECONDS = _declare("DYNADEX_STREAM_RETENTION_SECONDS", FLOAT, 24 * 3600.0, "How long stream "
                                    "records live: a sync last seen longer ago than this is a gap.", group="sync")

MIN_INCREMENTAL_SECONDS = _declare("DYNADEX_MIN_INCREMENTAL_SECONDS", FLOAT, 15 * 60.0, "The shortest "
                                   "incremental export window gap recovery may ask for.", group="sync")

MAX_INCREMENTAL_SECONDS = _declare("DYNADEX_MAX_INCREMENTAL_SECONDS", FLOAT, 24 * 3600.0, "The longest "
                                   "incremental export window; longer gaps chain several.", group="sync")

PITR_WINDOW_SECONDS = _declare("DYNADEX_PITR_WINDOW_SECONDS", FLOAT, 35 * 86400.0, "How far back point-in-time "
                               "recovery reaches: a gap older than this needs a fresh bootstrap.", group="sync")

CAUGHT_UP_NOTE_SECONDS = _declare("DYNADEX_CAUGHT_UP_NOTE_SECONDS", FLOAT, 60.0, "At most this often, a pass "
                                  "that finds every shard at its tip stores its start as applied-through.",
                                  group="sync")

IDLE_MAX_SECONDS = _declare("DYNADEX_IDLE_MAX_SECONDS", FLOAT, 1.0, "The pauses after passes that found "
                            "nothing double from 0.05 s up to this.", group="sync")

AT_TIMESTAMP = _declare("DYNADEX_AT_TIMESTAMP", BOOL, True, "A shard without a checkpoint is read from the "
                        "snapshot's stream start minus the overlap (AT_TIMESTAMP); 0: from the 24 h horizon.",
                        group="sync")

FLUSH_EVERY_BATCHES = _declare("DYNADEX_FLUSH_EVERY_BATCHES", INT, 100, "Every this many committed batches, the "
                               "rows inlined in the catalog are written into files (decision 0021); 0 never; "
                               "unset while `DYNADEX_INLINE_ROWS=0`: 0.", group="sync")

FOLD_EVERY_BATCHES = _declare("DYNADEX_FOLD_EVERY_BATCHES", INT, 10, "Every this many committed batches, each "
                              "index's small files are folded into one and worn files rewritten (decision "
                              "0028); 0 never (maintenance still does).", group="sync")

SQL_SHAPE = _declare("DYNADEX_SQL_SHAPE", BOOL, True, "The lean GetRecords keeps each record's new image as "
                     "the JSON the wire carried, and a batch of at least 2 000 upserts is shaped inside DuckDB "
                     "with the bulk build's SQL, on DuckDB's threads; images its guard refuses are shaped in "
                     "Python (decision 0044). 0: every image decoded and shaped in Python.", group="sync")

LEAN_GET_RECORDS = _declare("DYNADEX_LEAN_GET_RECORDS", BOOL, True, "GetRecords through `stream.get_records`, "
                            "without botocore's per-call pipeline (decision 0024); 0 calls the boto3 client's "
                            "method.", group="sync")

STOP_CHECK_SECONDS = _declare("DYNADEX_STOP_CHECK_SECONDS", FLOAT, 15.0, "How often a run that may be asked to "
                              "stop asks (after a batch): a run another run waits behind ends at that batch.",
                              group="sync")

QUIET_AFTER_SECONDS = _declare("DYNADEX_QUIET_AFTER_SECONDS", FLOAT, 30.0, "A table followed with others "
                               "(`stream.fleet`, the stream DAG) stops being read after this long at its tip and "
                               "is probed instead; a group whose tables are all quiet defers (no slot, no "
                               "process).", group="fleet")

QUIET_POLL_SECONDS = _declare("DYNADEX_QUIET_POLL_SECONDS", FLOAT, 0.5, "How often a quiet table's open shards "
                              "are probed for records (GetRecords Limit 1 after each checkpoint): the longest "
                              "a first write after a quiet spell waits before its table is read again.",
                              group="fleet")

QUIET_DESCRIBE_SECONDS = _declare("DYNADEX_QUIET_DESCRIBE_SECONDS", FLOAT, 30.0, "How often a quiet table's "
                                  "stream is listed (DescribeStream) for shards its checkpoints do not know.",
                                  group="fleet")

# ---- Airflow: plugins/dynadex_airflow and dags/ --------------------------------------------------------

OWNER = _declare("DYNADEX_OWNER", STR, "dynadex", "The owner of every dynadex DAG (`default_args`).", group="airflow")

TASK_RETRIES = _declare("DYNADEX_TASK_RETRIES", INT, 2, "Retries of a task after a transient error "
                        "(deterministic ones fail at once, `failures.py`).", group="airflow")

RETRY_DELAY_SECONDS = _declare("DYNADEX_RETRY_DELAY_SECONDS", FLOAT, 60.0, "The delay before a task's first "
                               "retry, growing exponentially.", group="airflow")

TASK_TIMEOUT_SECONDS = _declare("DYNADEX_TASK_TIMEOUT_SECONDS", FLOAT, 1800.0, "`execution_timeout` of the "
                                "short control-plane tasks.", group="airflow")

CHUNK_TIMEOUT_SECONDS = _declare("DYNADEX_CHUNK_TIMEOUT_SECONDS", FLOAT, 7200.0, "`execution_timeout` of one "
                                 "chunk build or check.", group="airflow")

PUBLISH_TIMEOUT_SECONDS = _declare("DYNADEX_PUBLISH_TIMEOUT_SECONDS", FLOAT, 3600.0, "`execution_timeout` of "
                                   "`publish` (one metadata transaction).", group="airflow")

SYNC_TIMEOUT_SECONDS = _declare("DYNADEX_SYNC_TIMEOUT_SECONDS", FLOAT, 8 * 3600.0, "`execution_timeout` of a "
                                "stream sync task (a run may wait for incremental exports while it recovers a "
                                "gap).", group="airflow")

MAINTENANCE_TIMEOUT_SECONDS = _declare("DYNADEX_MAINTENANCE_TIMEOUT_SECONDS", FLOAT, 7200.0, "`execution_timeout`"
                                       " of the maintenance tasks.", group="airflow")

CHUNK_POOL = _declare("DYNADEX_CHUNK_POOL", STR, "dynadex_chunks", "The Airflow pool chunk builds and checks run "
                      "in (a task in a pool that does not exist is never scheduled; `default_pool` always exists).",
                      group="airflow")

MAX_ACTIVE_CHUNKS = _declare("DYNADEX_MAX_ACTIVE_CHUNKS", INT, 16, "Chunks of one ingest run built (or checked) "
                             "at once; with `chunk_target_mb` empty, two chunks per slot.", group="airflow")

SYNC_RUN_SECONDS = _declare("DYNADEX_SYNC_RUN_SECONDS", FLOAT, 3600.0, "How long one `dynamodb_stream_sync` run "
                            "follows its tables before the next run takes over: the default of its `run_seconds` "
                            "(decision 0020).", group="airflow")

SYNC_GROUP_TABLES = _declare("DYNADEX_SYNC_GROUP_TABLES", INT, 64, "At most this many quiet tables share one "
                             "`sync` task of `dynamodb_stream_sync` (one process while any is read; deferred to "
                             "the triggerer while all are quiet); 1 gives every table its own task.",
                             group="airflow")

BUSY_RECORDS_PER_SECOND = _declare("DYNADEX_BUSY_RECORDS_PER_SECOND", FLOAT, 100.0, "A table whose last sync "
                                   "run read more records a second than this is busy: the next run gives it a "
                                   "`sync` task of its own.", group="airflow")

QUIET_NOTE_SECONDS = _declare("DYNADEX_QUIET_NOTE_SECONDS", FLOAT, 3600.0, "A deferred sync group resumes at "
                              "least this often to note its quiet tables caught up (far below the stream's 24 h "
                              "retention, so idleness is never taken for a gap).", group="airflow")

MAINTENANCE_SCHEDULE = _declare("DYNADEX_MAINTENANCE_SCHEDULE", STR, "@daily", "The schedule of "
                                "`dynadex_maintenance` (an Airflow schedule: cron or preset).", group="airflow")

UNPAUSE_SYNC = _declare("DYNADEX_UNPAUSE_SYNC", BOOL, True, "An ingest's handover unpauses `dynamodb_stream_sync` "
                        "through the REST API; 0 leaves it paused (and warns).", group="airflow")

AIRFLOW_API_CONN = _declare("DYNADEX_AIRFLOW_API_CONN", STR, "airflow_api", "The Airflow connection unpausing "
                            "reaches the REST API with (host: the API server's URL; a user who may edit DAGs).",
                            group="airflow")

FAILURE_WEBHOOK = _declare("DYNADEX_FAILURE_WEBHOOK", STR, None, "A URL every finally failed task POSTs one JSON "
                           "document to (`text` included, for Slack-style webhooks); unset: none.",
                           group="airflow")

FAILURE_CALLBACK = _declare("DYNADEX_FAILURE_CALLBACK", STR, None, "`package.module:function`, called with the "
                            "context of every finally failed task; unset: none.", group="airflow")

# ---- the launchers: make airflow, make demo ----------------------------------------------------------

AIRFLOW_PORT = _declare("DYNADEX_AIRFLOW_PORT", INT, 8080, "The API server and UI port of `make airflow`; 0 picks "
                        "a free one.", group="launchers")

DEMO_ITEMS = _declare("DYNADEX_DEMO_ITEMS", INT, 50000, "Items in the demo table of `make demo` (unset for "
                      "`make airflow`: 5000).", group="launchers")

# ---- the bundled AWS emulator (local_aws.Knobs; AWS's values by default, turned down to seconds by tests) --

LOCAL_AWS_EXPORT_SECONDS = _declare("DYNADEX_LOCAL_AWS_EXPORT_SECONDS", FLOAT, 5.0, "How long an export stays "
                                    "IN_PROGRESS before it completes.", group="emulator")

LOCAL_AWS_EXPORT_FILES = _declare("DYNADEX_LOCAL_AWS_EXPORT_FILES", INT, 4, "Data files per export (partitions "
                                  "by key hash; some may be empty).", group="emulator")

LOCAL_AWS_STREAM_SHARDS = _declare("DYNADEX_LOCAL_AWS_STREAM_SHARDS", INT, 4, "Open shards per stream (items "
                                   "spread by key hash).", group="emulator")

LOCAL_AWS_ROLLOVER_RECORDS = _declare("DYNADEX_LOCAL_AWS_ROLLOVER_RECORDS", INT, 0, "A shard closes after this "
                                      "many records; 0: never by count.", group="emulator")

LOCAL_AWS_ROLLOVER_SECONDS = _declare("DYNADEX_LOCAL_AWS_ROLLOVER_SECONDS", FLOAT, 4 * 3600.0, "A shard closes "
                                      "after this age (AWS: about 4 h).", group="emulator")

LOCAL_AWS_RETENTION_SECONDS = _declare("DYNADEX_LOCAL_AWS_RETENTION_SECONDS", FLOAT, 24 * 3600.0, "Stream records "
                                       "live this long, then are trimmed.", group="emulator")

LOCAL_AWS_ITERATOR_SECONDS = _declare("DYNADEX_LOCAL_AWS_ITERATOR_SECONDS", FLOAT, 15 * 60.0, "Shard iterators "
                                      "expire this long after GetShardIterator.", group="emulator")

LOCAL_AWS_MIN_INCREMENTAL_SECONDS = _declare("DYNADEX_LOCAL_AWS_MIN_INCREMENTAL_SECONDS", FLOAT, 15 * 60.0,
                                             "The shortest incremental export window accepted.", group="emulator")

LOCAL_AWS_MAX_INCREMENTAL_SECONDS = _declare("DYNADEX_LOCAL_AWS_MAX_INCREMENTAL_SECONDS", FLOAT, 24 * 3600.0,
                                             "The longest incremental export window accepted.", group="emulator")

LOCAL_AWS_PITR_WINDOW_SECONDS = _declare("DYNADEX_LOCAL_AWS_PITR_WINDOW_SECONDS", FLOAT, 35 * 86400.0, "How far "
                                         "back point-in-time recovery reaches.", group="emulator")

LOCAL_AWS_TTL_INTERVAL_SECONDS = _declare("DYNADEX_LOCAL_AWS_TTL_INTERVAL_SECONDS", FLOAT, 10.0, "How often the "
                                          "TTL sweeper deletes expired items.", group="emulator")

LOCAL_AWS_STREAMS_LANE = _declare("DYNADEX_LOCAL_AWS_STREAMS_LANE", INT, 1, "1: DynamoDB Streams' reads are "
                                  "answered without moto's dispatch; 0: through moto.", group="emulator")

LOCAL_AWS_WRITES_LANE = _declare("DYNADEX_LOCAL_AWS_WRITES_LANE", INT, 1, "1: BatchWriteItem (and the bulk "
                                  "`POST /_dynadex/batch-writes`) is answered without moto's dispatch "
                                  "(`local_aws/writes_lane.py`); 0: through moto (no bulk path).", group="emulator")

LOCAL_AWS_KEEP_ALIVE = _declare("DYNADEX_LOCAL_AWS_KEEP_ALIVE", INT, 1, "1: HTTP connections stay open between "
                                "requests, as AWS keeps them; 0: closed after each answer.", group="emulator")

LOCAL_AWS_TEST_CLOCK = _declare("DYNADEX_LOCAL_AWS_TEST_CLOCK", INT, 0, "1: tests may move the emulator's clock "
                                "forward (`POST /_dynadex/clock`, `local_aws/clock.py`); never for deployments.",
                                group="emulator")


# ---- the table ---------------------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown() -> str:
    """Every setting, a table per group: variable, type, default, what it does (docs/settings.md's block)."""
    out = []
    for name, what in GROUPS.items():
        out += [f"**{name}**: {what}.", "", "| variable | type | default | what it does |", "|---|---|---|---|"]
        for s in group(name):
            doc = s.doc + (" Read once per process." if s.once else "")
            default = "unset" if s.default is None else f"`{shown(s.default)}`"
            out.append(f"| `{s.env}` | {s.kind.name} | {default} | {_cell(doc)} |")
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


BEGIN, END = "<!-- settings:begin -->", "<!-- settings:end -->"


def _marks(lines: list[str]) -> tuple[int, int]:
    marks = [i for i, line in enumerate(lines) if line.strip() in (BEGIN, END)]
    if len(marks) != 2 or lines[marks[0]].strip() != BEGIN:
        raise ValueError(f"expected one line {BEGIN}, then one line {END}")
    return marks[0], marks[1]


def block(text: str) -> str:
    """What ``text`` (README.md) holds between its marker lines."""
    lines = text.splitlines(keepends=True)
    begin, end = _marks(lines)
    return "".join(lines[begin + 1:end])


def readme_block() -> str:
    """What belongs between the marker lines: ``markdown()`` between blank lines."""
    return "\n" + markdown() + "\n"


def with_table(text: str) -> str:
    """``text`` (README.md) with the lines between its marker lines replaced by ``readme_block()``."""
    lines = text.splitlines(keepends=True)
    begin, end = _marks(lines)
    return "".join(lines[:begin + 1]) + readme_block() + "".join(lines[end:])


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m dynadex.settings", description=__doc__.split("\n\n")[0])
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--markdown", action="store_true", help="print every setting as Markdown tables")
    what.add_argument("--readme", metavar="FILE", help=f"rewrite the block between {BEGIN} and {END} in FILE")
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown(), end="")
        return 0
    with open(args.readme, encoding="utf-8") as f:
        text = f.read()
    new = with_table(text)
    if new != text:
        with open(args.readme, "w", encoding="utf-8") as f:
            f.write(new)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
