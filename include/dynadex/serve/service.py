"""What every handler shares: the store's readers, the keys, the lambdas, the limits and the metrics.

Invariant: a handler reaches the store only through ``Service.readers`` (sandboxed, one whole snapshot per
request) and the state file only through ``keys`` and ``lambdas``; ``key`` is the one place a request's
API key is read.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from dynadex.serve.keys import Key, KeyRing, from_header
from dynadex.serve.lambdas import LambdaBook
from dynadex.serve.metrics import Metrics
from dynadex.serve.queries import Limits
from dynadex.serve.readers import Readers


@dataclass
class Service:
    readers: Readers
    keys: KeyRing
    lambdas: LambdaBook
    workspace: str
    limits: Limits
    metrics: Metrics

    def key(self, request: Request) -> Key:
        return self.keys.check(from_header(request.headers.get("authorization")))

    def tables(self, key: Key, names=None) -> list[dict]:
        """The tables ``key`` may read (of ``names``, if given), each with its item count and freshness, from one
        snapshot."""
        def work(reader):
            known = reader.tables()
            wanted = [t for t in known if key.may_read_table(t) and (names is None or t in names)]
            return [(t, reader.items(t), reader.table_state(t)) for t in wanted]

        rows, snapshot, _ = self.readers.read(work, timeout=self.limits.seconds)
        from dynadex.store.reads import jsonable, lag

        out = []
        for table, items, state in rows:
            out.append({"table": table, "items": items, "snapshot": snapshot.id,
                        "snapshot_committed_at": jsonable(snapshot.committed_at),
                        "published_at": jsonable(state.published_at), "key": list(state.key_names),
                        "last_applied_at": jsonable(state.last_applied_at), **lag(state)})
            self.metrics.lag(table, out[-1]["lag_seconds"])
        return out

    def collection_doc(self, info: dict) -> dict:
        """A table as Rockset's ``Collection``."""
        import datetime as dt

        updated = info["last_applied_at"] or info["published_at"]
        ms = int(dt.datetime.fromisoformat(updated).timestamp() * 1000) if updated else None
        return {"name": info["table"], "workspace": self.workspace, "status": "READY", "read_only": True,
                "created_at": info["published_at"],
                "description": f"DynamoDB table {info['table']} (key {', '.join(info['key'])}), indexed by dynadex",
                "stats": {"doc_count": info["items"], "last_updated_ms": ms}}
