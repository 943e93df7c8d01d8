"""The library's knobs that an environment variable sets: declared once here, one docstring each.

Invariant: outside this module, the library reads a ``DYNADEX_*`` variable
only through a ``Setting`` declared here (test_layering checks the source),
except two declarations of their own kind: the stream sync's ``SyncSettings``
(``stream/sync.py``, one field and docstring per knob, overridable per run)
and the emulator's ``Knobs`` (``local_aws/config.py``). The Airflow side's
settings live in ``plugins/dynadex_airflow/dag_defaults.py``.

A setting is read when ``read()`` is called: modules that need a value fixed
for the process (``lake.INLINE_ROWS``, ``aws.MAX_ATTEMPTS``) read it once at
import, the others on every use, as the comment of each says. An empty
variable means the default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Setting:
    env: str
    default: Any
    parse: Callable[[str], Any]
    doc: str

    def read(self, default: Any = None) -> Any:
        """The variable's value, parsed; unset or empty: ``default`` if given, else the declared default."""
        raw = os.environ.get(self.env, "")
        if not raw.strip():
            return self.default if default is None else default
        try:
            return self.parse(raw.strip())
        except ValueError as exc:
            raise ValueError(f"{self.env}={raw!r} is not valid: {self.doc.split('.')[0]}") from exc


def _flag(raw: str) -> bool:
    return raw.lower() not in ("0", "false", "no", "off")


SETTINGS: dict[str, Setting] = {}


def _declare(env: str, default: Any, parse: Callable[[str], Any], doc: str) -> Setting:
    SETTINGS[env] = setting = Setting(env, default, parse, doc)
    return setting


AWS_MAX_ATTEMPTS = _declare("DYNADEX_AWS_MAX_ATTEMPTS", 9, int, """Attempts per AWS call, the first
included (botocore's ``total_max_attempts``; decision 0017). Read once, at import of ``dynadex.aws``.""")

INLINE_ROWS = _declare("DYNADEX_INLINE_ROWS", 1000, int, """Inserts of at most this many rows are inlined in
the catalog (decision 0021); 0 leaves DuckLake's own limit. Read once, when ``store.lake`` is imported.""")

NARROW_KEYS = _declare("DYNADEX_NARROW_KEYS", 32, int, """A stream batch of 2 to this many keys, on a table of
500 000 rows or more, adds filters on the key columns to its lookup and deletes so that DuckDB reads only the
row groups holding its keys (``store/apply/key_pruning.py``, decision 0025); by key order numbers (decision 0027)
larger tables narrow more keys, one per 16 384 rows up to 256, never fewer than this. 0 turns all narrowing
off. Read once, at import of ``store.key_pruning``.""")

CATALOG_HOLD = _declare("DYNADEX_CATALOG_HOLD", True, _flag, """A writing store keeps one connection to its
SQLite catalog open (``store/catalog/hold.py``, decision 0023); 0 turns it off. Read once, at import of
``store.lake``.""")

MERGE_ENTRIES_ABOVE_CHUNKS = _declare("DYNADEX_MERGE_ENTRIES_ABOVE_CHUNKS", 16, int, """Above this many chunks a
build's inverted entries are merged by range before publish (decision 0022): raise it where files are cheap
to open, lower it on S3. Read at every publish plan.""")

BUILD = _declare("DYNADEX_BUILD", "auto", str, """``python`` builds chunks with the exact Python path instead
of DuckDB's (decision 0007). Read at every chunk build.""")

BUILD_THREADS = _declare("DYNADEX_BUILD_THREADS", None, int, """DuckDB threads for one chunk build; unset: all
cores. Read at every chunk build.""")

DUCKDB_MEMORY = _declare("DYNADEX_DUCKDB_MEMORY", None, str, """DuckDB's memory limit for every connection the
library opens (e.g. ``4GB``); unset: the caller's, else 1500MB. Read at every connection.""")

DUCKDB_TEMP = _declare("DYNADEX_DUCKDB_TEMP", None, str, """Where DuckDB spills sorts and joins, each
connection in a folder of its own under it (``store/catalog/extensions.py``); unset: the temp directory's
``dynadex-duckdb-spill``. Read at every connection.""")

EXTENSION_DIR = _declare("DYNADEX_EXTENSION_DIR", None, str, """Where the DuckDB extensions from their pip
packages are laid out for DuckDB to load; unset: a per-user temp directory. Read once per process.""")

EXTENSION_SIGNATURES = _declare("DYNADEX_EXTENSION_SIGNATURES", False, _flag, """1: every DuckDB instance checks
the signature of each extension it loads, as DuckDB does by default (~0.1 s per extension, hashing its 35 MB);
unset or 0: skipped while the extension directory is private to this user (decision 0029). Read once per
process.""")

STORE = _declare("DYNADEX_STORE", None, str, """The store (a folder, or a PostgreSQL catalog URI) commands use
when not told. Read at every command.""")

DATA_PATH = _declare("DYNADEX_DATA_PATH", None, str, """Where a PostgreSQL-catalogued store keeps its files
(a folder or ``s3://…``). Read at every command.""")

LOG_LEVEL = _declare("DYNADEX_LOG_LEVEL", None, str, """The CLI's log level (DEBUG, INFO, …); unset: the
command's own. Read at every command.""")

QUERY_SANDBOX = _declare("DYNADEX_QUERY_SANDBOX", False, _flag, """``dynadex query`` runs with ``--sandbox``
unless told otherwise (decision 0016). Read at every command.""")
