"""The one exception family of coedit.

Every failure a client can see is a :class:`CoeditError` carrying one protocol error code.
The edge (WebSocket or HTTP) turns it into an ``error`` reply or an HTTP error body; nothing
below the edge knows which transport asked. The module lives in ``persistence`` because that
is the lowest layer: ``channels`` and ``server`` may import it, it imports neither.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "BadRequest",
    "CoeditError",
    "Conflict",
    "Forbidden",
    "Internal",
    "InvalidTransition",
    "Locked",
    "NotFound",
    "PreconditionRequired",
    "RateLimited",
    "TooLarge",
    "Unauthorized",
    "Unavailable",
]


class CoeditError(Exception):
    """A failure with a protocol code; ``extra`` fields travel beside code and message."""

    code: ClassVar[str] = "internal"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """The ``{"code","message",...}`` map shared by WebSocket replies and HTTP bodies."""
        return {"code": self.code, "message": self.message, **self.extra}


class BadRequest(CoeditError):
    code = "bad_request"
    http_status = 400


class Unauthorized(CoeditError):
    code = "unauthorized"
    http_status = 401


class Forbidden(CoeditError):
    code = "forbidden"
    http_status = 403


class NotFound(CoeditError):
    code = "not_found"
    http_status = 404


class Conflict(CoeditError):
    code = "conflict"
    http_status = 409


class InvalidTransition(CoeditError):
    """A state machine refused a move; the body names the current ``state``."""

    code = "invalid_transition"
    http_status = 409

    def __init__(self, message: str, *, state: str, **extra: Any) -> None:
        super().__init__(message, state=state, **extra)


class TooLarge(CoeditError):
    code = "too_large"
    http_status = 413


class Locked(CoeditError):
    code = "locked"
    http_status = 423


class PreconditionRequired(CoeditError):
    code = "precondition_required"
    http_status = 428


class RateLimited(CoeditError):
    code = "rate_limited"
    http_status = 429


class Internal(CoeditError):
    code = "internal"
    http_status = 500


class Unavailable(CoeditError):
    code = "unavailable"
    http_status = 503
