"""The console at ``/``: a static page (HTML, CSS and plain JS in ``static/``, no build step) that talks to the
same REST API as any client, with the API key the user types (kept in the tab's sessionStorage).

Invariants:

* Only the files named in ``FILES`` are served, read from this package; nothing else on disk is reachable.
* The page runs no inline script and loads nothing from elsewhere: its Content-Security-Policy allows this
  server only (``'self'``), so a value in an answer can never run as script (the JS shows answers as text).
* The page itself holds no data: it needs no key; every call it makes carries the user's key.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dynadex.serve.errors import NotFound

HERE = Path(__file__).with_name("static")
FILES = {"index.html": "text/html; charset=utf-8", "console.js": "text/javascript; charset=utf-8",
         "console.css": "text/css; charset=utf-8"}
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@lru_cache(maxsize=None)
def _read(name: str) -> bytes:
    return (HERE / name).read_bytes()


def _file(name: str) -> Response:
    if name not in FILES:
        raise NotFound(f"no console file {name!r}")
    return Response(_read(name), media_type=FILES[name], headers=HEADERS)


async def page(request: Request):
    return _file("index.html")


async def asset(request: Request):
    return _file(request.path_params["name"])


routes = [Route("/", page, methods=["GET"]), Route("/console/{name}", asset, methods=["GET"])]
