"""Kept-alive HTTP connections for the emulator, as AWS keeps them.

werkzeug's development server answers every request with ``Connection:
close``, so every AWS call to the emulator paid a new TCP connection and a
new server thread, and botocore's pool reconnected each time ("Resetting
dropped connection"). At 128 shards that was most of a stream pass's cost
on both sides (decision 0024). werkzeug closes because it cannot tell where
an unread request body ends and the next request begins.

Invariants:

* A request whose length is known (``Content-Length``, or none and no body)
  has its whole body read off the socket before the application runs, so
  the socket holds nothing of it afterwards and the connection can carry the
  next request whatever the application read.
* Anything else (a chunked body, ``Expect: 100-continue``, a client that
  asked for ``Connection: close``) is answered as werkzeug answers it and the
  connection is closed after the answer, as before.
* An idle kept-alive connection is closed after ``IDLE_SECONDS``; an
  outage (``faults``) still shuts the connection of any request that arrives
  on one (``werkzeug.socket`` is the connection's socket, as before).
"""

from __future__ import annotations

import io

from moto.moto_server.werkzeug_app import MotoRequestHandler

IDLE_SECONDS = 120


class KeepAliveHandler(MotoRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_SECONDS  # socketserver: the connection's read timeout; an idle connection ends with it
    # headers and body go out in separate writes: with Nagle's algorithm the body would wait for the client's
    # delayed ACK of the headers (40 ms on Linux) on a connection that stays open
    disable_nagle_algorithm = True

    def run_wsgi(self) -> None:
        length = self.headers.get("Content-Length")
        self._keep = (
            "chunked" not in self.headers.get("Transfer-Encoding", "").lower()
            and not self.headers.get("Expect")
            and self.headers.get("Connection", "").lower() != "close"
            and (length is None or length.strip().isdigit())
        )
        if not self._keep:
            self.close_connection = True
            return super().run_wsgi()
        body = self.rfile.read(int(length)) if length else b""
        if length and len(body) < int(length):  # the client went away mid-body
            self.close_connection = True
            return
        socket_file = self.rfile
        # werkzeug hands self.rfile to the application and, after the answer, drains whatever is left of it:
        # both now read this request's body only, never the next request's bytes
        self.rfile = io.BytesIO(body)
        try:
            super().run_wsgi()
        finally:
            self.rfile = socket_file

    def send_header(self, keyword: str, value: str) -> None:
        if keyword.lower() == "connection" and value.lower() == "close" and getattr(self, "_keep", False):
            return  # werkzeug closes after every answer; this connection stays open for the next request
        super().send_header(keyword, value)
