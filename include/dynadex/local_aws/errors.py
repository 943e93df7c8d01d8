"""The errors the bundled emulator answers with (moto's ``JsonRESTError``: an HTTP error answer, as AWS's)."""

from __future__ import annotations

from moto.core.exceptions import JsonRESTError


class ValidationException(JsonRESTError):
    """HTTP 400 ``ValidationException``, its message AWS's own text for the rule broken."""

    code = 400

    def __init__(self, message: str):
        super().__init__("ValidationException", message)


class NotInLane(Exception):
    """A request the writes lane hands on to moto's path untouched (moto answers it, its errors word for word,
    or does what the lane does not handle); a refused bulk line reports its text."""
