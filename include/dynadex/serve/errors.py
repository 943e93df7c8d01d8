"""The errors ``dynadex serve`` answers with, in Rockset's error shape (``ErrorModel``: ``message``, ``type``).

Invariant: every refusal the server makes is one of these, carrying its HTTP status and Rockset's error
``type``; its message names what was refused and why, and never holds a key or a credential. The app turns
each into ``{"message": ..., "type": ..., "error_id": ...}`` (``app.py``).
"""

from __future__ import annotations

from dynadex.errors import DynadexError


class ApiError(DynadexError):
    """A request refused. ``status``: the HTTP status; ``kind``: Rockset's ``ErrorModel.type``."""

    status = 400
    kind = "INVALIDINPUT"

    def __init__(self, message: str, *, line: int | None = None, column: int | None = None):
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


class BadRequest(ApiError):
    """A body or parameter that is not what the endpoint takes."""


class QueryFailed(ApiError):
    """A query DuckDB refused or failed (the sandbox's refusals included)."""

    kind = "QUERY_ERROR"


class Unauthorized(ApiError):
    """No API key, or one the server does not know (or revoked)."""

    status = 401
    kind = "AUTHEXCEPTION"


class Forbidden(ApiError):
    """A key that may not do this: read a table outside its list, or manage Query Lambdas without admin."""

    status = 403
    kind = "FORBIDDEN"


class NotFound(ApiError):
    """A collection, workspace, Query Lambda, version or tag that does not exist."""

    status = 404
    kind = "NOTFOUND"


class AlreadyExists(ApiError):
    """A Query Lambda or API key whose name is taken."""

    status = 409
    kind = "ALREADYEXISTS"


class NotImplementedYet(ApiError):
    """A part of Rockset's API this server does not do (async queries, writes)."""

    status = 501
    kind = "NOTIMPLEMENTEDYET"


class NotAcceptable(ApiError):
    """An answer format the server does not write (JSON, CSV and Arrow it does)."""

    status = 406
    kind = "NOTACCEPTABLE"


class QueryTimedOut(ApiError):
    """A query interrupted at its deadline."""

    status = 408
    kind = "QUERY_TIMEOUT"


class Busy(ApiError):
    """No connection free within the request's time, or every read overlapped a flush: try again."""

    status = 503
    kind = "NOT_READY"


class StateError(DynadexError, ValueError):
    """The server's state file (keys, Query Lambdas) cannot be placed or opened as asked."""
