"""The standard's error answers: 400 bad request, 404 not found, 501 not implemented."""

from __future__ import annotations


class StaError(Exception):
    """An error a client gets as ``{"code": status, "type": "error", "message": ...}``."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = " ".join(message.split())  # always one line

    def body(self) -> dict[str, object]:
        return {"code": self.status, "type": "error", "message": self.message}


class BadRequest(StaError):
    """Malformed request: bad syntax, unknown property, value of the wrong type."""

    status = 400


class NotFound(StaError):
    """No such entity, entity set or property."""

    status = 404


class NotSupported(StaError):
    """Valid SensorThings, but not served here (e.g. create, update, delete, ``$ref``)."""

    status = 501
