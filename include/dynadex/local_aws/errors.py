"""The errors the bundled emulator answers with (moto's ``JsonRESTError``: an HTTP error answer, as AWS's)."""

from __future__ import annotations

from moto.core.exceptions import JsonRESTError


class ValidationException(JsonRESTError):
    """HTTP 400 ``ValidationException``, its message AWS's own text for the rule broken."""

    code = 400

    def __init__(self, message: str):
        super().__init__("ValidationException", message)
