"""``dynadex serve``: the application on uvicorn, bound, announced, stopped cleanly.

Invariants:

* ``listening on http://HOST:PORT`` is printed once the socket listens, so whoever waits for that line can
  connect at once (with ``--port 0``, the port the system chose).
* SIGTERM and SIGINT stop the server: requests in flight get ``STOP_SECONDS`` to finish, then every store
  connection and the state file are closed and the command exits 0.
"""

from __future__ import annotations

import signal
import socket
import sys
from contextlib import contextmanager

from dynadex import settings
from dynadex.serve.app import build
from dynadex.serve.keys import KeyRing
from dynadex.serve.lambdas import LambdaBook
from dynadex.serve.metrics import Metrics
from dynadex.serve.queries import Limits
from dynadex.serve.readers import Readers
from dynadex.serve.service import Service
from dynadex.serve.state import StateFile, state_path

STOP_SECONDS = 5


def open_service(store: str | None, data_path: str | None = None, state: str | None = None) -> Service:
    readers = Readers(store, data_path, connections=settings.SERVE_CONNECTIONS.read(),
                      memory_limit=settings.SERVE_MEMORY.read())
    try:
        state_file = StateFile(state_path(readers.location, state))
    except BaseException:
        readers.close()
        raise
    return Service(readers, KeyRing(state_file), LambdaBook(state_file), settings.SERVE_WORKSPACE.read(),
                   Limits(settings.SERVE_QUERY_SECONDS.read(), settings.SERVE_MAX_ROWS.read()), Metrics())


def close_service(service: Service) -> None:
    service.readers.close()
    service.keys.state.close()


def _server(config):
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's, but a SIGTERM or SIGINT stops it and the command returns (exit 0, connections closed), where
        uvicorn raises the signal again once stopped, and the process dies of it before closing anything."""

        @contextmanager
        def capture_signals(self):
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return Server(config)


def serve(store: str | None, host: str = "127.0.0.1", port: int = 8765, *, data_path: str | None = None,
          state: str | None = None) -> None:
    import uvicorn

    service = open_service(store, data_path, state)
    try:
        app = build(service)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        shown_host = f"[{host}]" if ":" in host else host
        print(f"listening on http://{shown_host}:{sock.getsockname()[1]}", flush=True)
        config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=STOP_SECONDS,
                                access_log=False, lifespan="off")
        _server(config).run(sockets=[sock])
        print("stopped", file=sys.stderr, flush=True)
    finally:
        close_service(service)
