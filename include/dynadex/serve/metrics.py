"""The server's counters, shown at ``/metrics`` in Prometheus' text format.

Invariant: counting never fails a request and never holds a key: metrics are labelled by route template
and status, never by a path's values or a header.
"""

from __future__ import annotations

import threading
from collections import defaultdict

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self):
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.latency: dict[str, list] = {}  # route -> [bucket counts..., sum, count]
        self.rows = 0
        self.queries = 0
        self.lags: dict[str, float | None] = {}

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(route, method, status)] += 1
            h = self.latency.setdefault(route, [0] * len(BUCKETS) + [0.0, 0])
            for i, b in enumerate(BUCKETS):
                if seconds <= b:
                    h[i] += 1
            h[-2] += seconds
            h[-1] += 1

    def answered(self, answer) -> None:
        with self._lock:
            self.queries += 1
            self.rows += answer.result.table.num_rows
            for table, fresh in answer.freshness.items():
                if fresh is not None:
                    self.lags[table] = fresh.get("lag_seconds")

    def lag(self, table: str, seconds: float | None) -> None:
        with self._lock:
            self.lags[table] = seconds

    def text(self, point_reads=None) -> str:
        """``point_reads``: ``PointReads.counts`` (how gets were answered: ``fast``, ``fallback``, ``detached``,
        ``plans``), shown as ``dynadex_serve_point_reads_total``."""
        def label(v: str) -> str:
            return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

        out = ["# HELP dynadex_serve_requests_total Requests answered, by route, method and status.",
               "# TYPE dynadex_serve_requests_total counter"]
        with self._lock:
            for (route, method, status), n in sorted(self.requests.items()):
                out.append(f'dynadex_serve_requests_total{{route="{label(route)}",method="{method}",'
                           f'status="{status}"}} {n}')
            out += ["# HELP dynadex_serve_request_seconds Time to answer a request, by route.",
                    "# TYPE dynadex_serve_request_seconds histogram"]
            for route, h in sorted(self.latency.items()):
                for i, b in enumerate(BUCKETS):
                    out.append(f'dynadex_serve_request_seconds_bucket{{route="{label(route)}",le="{b}"}} {h[i]}')
                out.append(f'dynadex_serve_request_seconds_bucket{{route="{label(route)}",le="+Inf"}} {h[-1]}')
                out.append(f'dynadex_serve_request_seconds_sum{{route="{label(route)}"}} {h[-2]:.6f}')
                out.append(f'dynadex_serve_request_seconds_count{{route="{label(route)}"}} {h[-1]}')
            out += ["# HELP dynadex_serve_queries_total Queries answered (SQL and Query Lambdas).",
                    "# TYPE dynadex_serve_queries_total counter", f"dynadex_serve_queries_total {self.queries}",
                    "# HELP dynadex_serve_rows_total Rows returned by queries.",
                    "# TYPE dynadex_serve_rows_total counter", f"dynadex_serve_rows_total {self.rows}",
                    "# HELP dynadex_table_lag_seconds How far behind its DynamoDB table the index was, as last read.",
                    "# TYPE dynadex_table_lag_seconds gauge"]
            for table, seconds in sorted(self.lags.items()):  # NaN: no stream sync has run yet
                out.append(f'dynadex_table_lag_seconds{{table="{label(table)}"}} '
                           f'{"NaN" if seconds is None else seconds}')
        if point_reads is not None:
            out += ["# HELP dynadex_serve_point_reads_total Gets by how they were read: fast (the row index's files "
                    "read directly), fallback (through DuckLake), detached (no DuckLake transaction at all), plans "
                    "(snapshots whose files were listed).",
                    "# TYPE dynadex_serve_point_reads_total counter"]
            for how in ("fast", "fallback", "detached", "plans"):
                out.append(f'dynadex_serve_point_reads_total{{how="{how}"}} {point_reads.get(how, 0)}')
        return "\n".join(out) + "\n"
