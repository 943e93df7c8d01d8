"""dynadex's own endpoints: get an item by key, find items by value, the tables and their lag, SQL in JSON, CSV
or Arrow.

Invariants:

* ``get`` reads the row index and answers the item exactly as stored (canonical DynamoDB JSON).
* ``find`` reads the inverted index through ``reads.find``: current entries only (a superseded entry of a
  key's older write never answers).
* Each answer reads one whole snapshot and names it (``dynadex``); a key reads only its tables (403).
"""

from __future__ import annotations

import json
import time

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from dynadex.serve import access, formats, queries
from dynadex.serve.errors import BadRequest, NotFound
from dynadex.serve.rockset_api import body_of
from dynadex.serve.service import Service


def _table(service: Service, request: Request, key) -> str:
    table = request.path_params["table"]
    access.check_tables(key, [table])
    return table


def _known(service: Service, reader, table: str) -> None:
    if service.readers.state(reader, table) is None:  # cached per snapshot: a get pays no catalog lookup for it
        raise NotFound(f"no table {table!r} in the store")


def server_timing(timing: dict) -> str:
    """The ``Server-Timing`` header: milliseconds per phase (``Readers.read``'s, and ``key`` for the key check)."""
    return ", ".join(f"{name};dur={ms:.2f}" for name, ms in timing.items())


async def get_item(request: Request):
    service: Service = request.app.state.service
    started = time.monotonic()
    key = service.key(request)
    timing = {"key": (time.monotonic() - started) * 1000}
    table = _table(service, request, key)
    item_key = request.query_params.get("key")
    if not item_key:
        raise BadRequest('give the key in DynamoDB JSON: ?key={"pk":{"S":"a"}}')

    def work(reader):
        _known(service, reader, table)
        return reader.get(table, item_key)

    item, snapshot, fresh = await run_in_threadpool(service.readers.read, work, timeout=service.limits.seconds,
                                                    tables=[table], timing=timing, gets=True)
    about = {**snapshot.as_dict(), "tables": fresh}
    timing["total"] = (time.monotonic() - started) * 1000
    if item is None:
        return JSONResponse({"message": f"no item with key {item_key} in {table}", "type": "NOTFOUND",
                             "dynadex": about}, status_code=404, headers={"Server-Timing": server_timing(timing)})
    return JSONResponse({"item": json.loads(item), "dynadex": about},
                        headers={"X-Dynadex-Snapshot": str(snapshot.id), "Server-Timing": server_timing(timing)})


async def find_items(request: Request):
    service: Service = request.app.state.service
    started = time.monotonic()
    key = service.key(request)
    timing = {"key": (time.monotonic() - started) * 1000}
    table = _table(service, request, key)
    q = request.query_params
    if "path" not in q or "value" not in q:
        raise BadRequest("give path and value: ?path=tag&value=odd (value: text, or a DynamoDB JSON value)")
    try:
        limit = min(int(q.get("limit", service.limits.rows)), service.limits.rows)
    except ValueError as exc:
        raise BadRequest(f"limit {q.get('limit')!r} is not a number") from exc
    expression = q["path"].replace("=", "\\=") + "=" + q["value"]

    def work(reader):
        _known(service, reader, table)
        return reader.find(table, expression, limit + 1)

    items, snapshot, fresh = await run_in_threadpool(service.readers.read, work, timeout=service.limits.seconds,
                                                     tables=[table], timing=timing)
    about = {**snapshot.as_dict(), "tables": fresh, "rows_cut_at": limit if len(items) > limit else None}
    timing["total"] = (time.monotonic() - started) * 1000
    return JSONResponse({"items": [json.loads(i) for i in items[:limit]], "dynadex": about},
                        headers={"X-Dynadex-Snapshot": str(snapshot.id), "Server-Timing": server_timing(timing)})


async def list_tables(request: Request):
    service: Service = request.app.state.service
    key = service.key(request)
    return JSONResponse({"tables": await run_in_threadpool(service.tables, key)})


def _parameters(given) -> list[dict] | None:
    """Rockset's ``[{name, type, value}]``, or plainly ``{"name": value}`` (typed by its JSON type)."""
    if not isinstance(given, dict):
        return given
    out = []
    for name, value in given.items():
        kind = ("bool" if isinstance(value, bool) else "int" if isinstance(value, int) else
                "float" if isinstance(value, float) else "string")
        if value is not None and not isinstance(value, (bool, int, float, str)):
            raise BadRequest(f"parameter {name}: a string, number, boolean or null, not {type(value).__name__}")
        out.append({"name": name, "type": kind, "value": value})
    return out


async def query(request: Request):
    service: Service = request.app.state.service
    started = time.monotonic()
    key = service.key(request)
    timing = {"key": (time.monotonic() - started) * 1000}
    fmt = formats.chosen(request)
    body = await body_of(request)
    if not isinstance(body.get("sql"), str):
        raise BadRequest('the body needs sql: {"sql": "SELECT ...", "parameters": {"name": value}}')
    limits = service.limits.narrowed(body.get("timeout_ms"), body.get("row_limit"))
    answer = await run_in_threadpool(queries.run, service.readers, key, body["sql"], _parameters(body.get("parameters")),
                                     service.workspace, limits, timing)
    service.metrics.answered(answer)
    response = formats.render(fmt, answer.result, {**answer.about(), "warnings": answer.warnings,
                                                   "elapsed_ms": answer.elapsed_ms})
    timing["total"] = (time.monotonic() - started) * 1000
    response.headers["Server-Timing"] = server_timing(timing)
    return response


routes = [
    Route("/v1/dynadex/tables", list_tables, methods=["GET"]),
    Route("/v1/dynadex/tables/{table}/item", get_item, methods=["GET"]),
    Route("/v1/dynadex/tables/{table}/find", find_items, methods=["GET"]),
    Route("/v1/dynadex/query", query, methods=["POST"]),
]
