"""The Starlette application: routes, errors in Rockset's shape, request metrics.

Invariants:

* Every refusal is an ``ApiError`` answered as Rockset's ``ErrorModel`` with its status; an unexpected
  failure is a 500 whose message holds nothing of the failure, logged with passwords masked
  (``without_secrets``).
* Every request is counted by route template, method and status (``Metrics``), never by a value in it.
"""

from __future__ import annotations

import logging
import time
import uuid

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Match, Route

from dynadex.serve import console, native_api, rockset_api
from dynadex.serve.errors import ApiError
from dynadex.serve.keys import Key
from dynadex.serve.service import Service
from dynadex.store.catalog.location import without_secrets

log = logging.getLogger("dynadex.serve")

HTTP_KINDS = {404: "NOTFOUND", 405: "METHODNOTALLOWED", 406: "NOTACCEPTABLE", 415: "UNSUPPORTEDMEDIATYPE"}


def error_doc(kind: str, message: str, line=None, column=None) -> dict:
    return {"message": message, "type": kind, "line": line, "column": column, "error_id": str(uuid.uuid4()),
            "trace_id": None}


async def api_error(request: Request, exc: ApiError):
    return JSONResponse(error_doc(exc.kind, exc.message, exc.line, exc.column), status_code=exc.status)


async def http_error(request: Request, exc: HTTPException):
    return JSONResponse(error_doc(HTTP_KINDS.get(exc.status_code, "INVALIDINPUT"), str(exc.detail)),
                        status_code=exc.status_code)


async def internal_error(request: Request, exc: Exception):
    shown = without_secrets(exc)
    log.error("%s %s failed: %s: %s", request.method, request.url.path, type(shown).__name__, shown,
              exc_info=(type(shown), shown, shown.__traceback__))
    return JSONResponse(error_doc("INTERNALERROR", "internal error (the server's log has the details)"),
                        status_code=500)


async def health(request: Request):
    """Up, and the store answers (no key needed: it shows nothing of the data)."""
    service: Service = request.app.state.service
    return JSONResponse({"status": "ok", "store": service.readers.location.display, "workspace": service.workspace})


async def metrics(request: Request):
    """Prometheus text; each table's lag read afresh (no key needed: counts and lags, nothing of the data)."""
    service: Service = request.app.state.service
    try:
        await run_in_threadpool(service.tables, Key("metrics", None, False))
    except ApiError as exc:  # a busy store: the last lags read are shown
        log.warning("metrics: the tables' lag was not read: %s", exc)
    points = service.readers.point_reads
    return PlainTextResponse(service.metrics.text(None if points is None else dict(points.counts)),
                             media_type="text/plain; version=0.0.4; charset=utf-8")


def build(service: Service) -> Starlette:
    routes = [Route("/health", health, methods=["GET"]), Route("/metrics", metrics, methods=["GET"]),
              *rockset_api.routes, *native_api.routes, *console.routes]

    app = Starlette(routes=routes, exception_handlers={ApiError: api_error, HTTPException: http_error,
                                                       Exception: internal_error},
                    middleware=[Middleware(Counted, metrics=service.metrics)])
    app.state.service = service
    return app


class Counted:
    """Counts every HTTP request (``Metrics.request``) by the route it matched, its method and the status
    answered (500 when it failed before answering). A plain ASGI middleware: Starlette's ``BaseHTTPMiddleware``
    runs each request in a task of its own and streams the answer through a memory channel, a few hundred
    microseconds a request."""

    def __init__(self, app, metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = [500]

        async def sent(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sent)
        finally:
            self.metrics.request(_template(scope), scope["method"], status[0], time.monotonic() - started)


def _template(scope) -> str:
    """The route a request matched, as written (``/v1/orgs/self/ws/{workspace}/lambdas``), else ``other`` (the
    router leaves the route it handed the request to in the scope; a partial match, a 405, is ``other``)."""
    route = scope.get("route")
    if route is None or route.matches(scope)[0] != Match.FULL:
        return "other"
    return getattr(route, "path", "other")
