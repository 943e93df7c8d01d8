"""One served query: parameters bound, access checked, run in the sandbox within its limits.

Invariants:

* Nothing runs before the key's access is checked (``access.check_query``) on DuckDB's own parse.
* Every query has a deadline (``DYNADEX_SERVE_QUERY_SECONDS``, or less when the request asks) and a row limit
  (``DYNADEX_SERVE_MAX_ROWS``, or fewer); a request cannot raise either. Rows past the limit are never
  fetched, and the answer says it was cut.
* The answer names the snapshot it read (``Readers.read``).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from dynadex.serve import access
from dynadex.serve.errors import BadRequest
from dynadex.serve.keys import Key
from dynadex.serve.readers import Readers
from dynadex.serve.sql import Prepared, parameter_values, prepare
from dynadex.store import QueryResult, Snapshot


@dataclass(frozen=True)
class Limits:
    seconds: float
    rows: int

    def narrowed(self, timeout_ms=None, row_limit=None) -> "Limits":
        """These limits, or the request's when it asks for less."""
        seconds, rows = self.seconds, self.rows
        if timeout_ms is not None:
            if not isinstance(timeout_ms, int) or isinstance(timeout_ms, bool) or timeout_ms <= 0:
                raise BadRequest(f"timeout_ms must be a positive integer, not {timeout_ms!r}")
            seconds = min(seconds, timeout_ms / 1000)
        if row_limit is not None:
            if not isinstance(row_limit, int) or isinstance(row_limit, bool) or row_limit <= 0:
                raise BadRequest(f"default_row_limit must be a positive integer, not {row_limit!r}")
            rows = min(rows, row_limit)
        return Limits(seconds, rows)


@dataclass
class Answer:
    query_id: str
    prepared: Prepared
    result: QueryResult
    snapshot: Snapshot
    freshness: dict
    elapsed_ms: int
    limits: Limits
    warnings: list[str] = field(default_factory=list)

    def about(self) -> dict:
        """What the answer read: its snapshot and how fresh each table was in it (the ``dynadex`` field)."""
        return {**self.snapshot.as_dict(), "tables": self.freshness, "rows_cut_at": self.limits.rows
                if self.result.truncated else None}


def run(readers: Readers, key: Key, sql: str, parameters: list[dict] | None, workspace: str, limits: Limits,
        timing: dict | None = None) -> Answer:
    """``timing``: filled with the milliseconds of each phase (``Readers.read``'s, and ``prepare``)."""
    started = time.monotonic()
    prepared = prepare(sql, parameter_values(parameters), workspace)
    access.check_query(key, prepared)
    if timing is not None:
        timing["prepare"] = (time.monotonic() - started) * 1000
    result, snapshot, freshness = readers.read(
        lambda reader: reader.query(prepared.sql, prepared.params, max_rows=limits.rows), timeout=limits.seconds,
        tables=prepared.tables, timing=timing)
    warnings = []
    if result.truncated:
        warnings.append(f"the answer was cut at {limits.rows} rows (the row limit); add a LIMIT or narrow the query")
    return Answer(str(uuid.uuid4()), prepared, result, snapshot, freshness,
                  int((time.monotonic() - started) * 1000), limits, warnings)
