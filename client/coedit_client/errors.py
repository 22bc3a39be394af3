"""One exception per error code of the contract (PROTOCOL.md section 3), plus the few failures
that only a client can see (a lost connection, a lost lock).

A WebSocket ``error`` reply and an HTTP error body carry the same map, so both become the same
exception, with every field of the body kept: :class:`Conflict` has ``current_version``,
``paths`` and ``deltas``, :class:`Locked` the ``lock``, :class:`RateLimited` the
``retry_after_ms``, and any field is in ``fields``.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "BadRequest",
    "ClientClosed",
    "CoeditError",
    "Conflict",
    "ConnectionLost",
    "Forbidden",
    "Internal",
    "InvalidTransition",
    "LockLost",
    "LockStolen",
    "Locked",
    "NotFound",
    "PreconditionRequired",
    "RateLimited",
    "TokenExpired",
    "TooLarge",
    "Unauthorized",
    "Unavailable",
    "error_from",
]


class CoeditError(Exception):
    """A failure the server reported, or one the client met on its behalf."""

    code: ClassVar[str] = "internal"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, fields: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields: dict[str, Any] = dict(fields or {})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class BadRequest(CoeditError):
    code = "bad_request"
    http_status = 400


class Unauthorized(CoeditError):
    code = "unauthorized"
    http_status = 401


class TokenExpired(Unauthorized):
    """The server closed the connection with 4401 and no token refresher was given (or it
    gave no new token)."""


class Forbidden(CoeditError):
    code = "forbidden"
    http_status = 403


class NotFound(CoeditError):
    code = "not_found"
    http_status = 404


class Conflict(CoeditError):
    """The write overlaps newer versions (or a ``test`` op failed); nothing was applied."""

    code = "conflict"
    http_status = 409

    @property
    def current_version(self) -> int | None:
        value = self.fields.get("current_version")
        return value if isinstance(value, int) else None

    @property
    def your_version(self) -> int | None:
        value = self.fields.get("your_version")
        return value if isinstance(value, int) else None

    @property
    def paths(self) -> list[str]:
        return list(self.fields.get("paths") or [])

    @property
    def deltas(self) -> list[dict[str, Any]]:
        return list(self.fields.get("deltas") or [])


class InvalidTransition(CoeditError):
    """A state machine refused the move; ``state`` names where it is."""

    code = "invalid_transition"
    http_status = 409

    @property
    def state(self) -> str | None:
        value = self.fields.get("state")
        return value if isinstance(value, str) else None


class Locked(CoeditError):
    """Another holder's lock covers the region; ``lock`` is that lock."""

    code = "locked"
    http_status = 423

    @property
    def lock(self) -> dict[str, Any] | None:
        value = self.fields.get("lock")
        return value if isinstance(value, dict) else None


class TooLarge(CoeditError):
    code = "too_large"
    http_status = 413


class PreconditionRequired(CoeditError):
    code = "precondition_required"
    http_status = 428


class RateLimited(CoeditError):
    code = "rate_limited"
    http_status = 429

    @property
    def retry_after_ms(self) -> int | None:
        value = self.fields.get("retry_after_ms")
        return int(value) if isinstance(value, int | float) else None


class Unavailable(CoeditError):
    code = "unavailable"
    http_status = 503


class Internal(CoeditError):
    code = "internal"
    http_status = 500


class ConnectionLost(CoeditError):
    """The connection dropped while a request that cannot be repeated safely (``create``) was
    unanswered: it may or may not have taken effect."""

    code = "connection_lost"
    http_status = 0


class ClientClosed(CoeditError):
    """The client was closed (or failed for good) while this was waiting."""

    code = "client_closed"
    http_status = 0


class LockLost(CoeditError):
    """A held lock ended without being released: the connection dropped, it expired, or a
    renewal was refused. Writes inside its region are no longer protected."""

    code = "lock_lost"
    http_status = 0


class LockStolen(LockLost):
    """An admin took the lock (``unlocked`` with reason ``stolen``)."""


_BY_CODE: dict[str, type[CoeditError]] = {
    cls.code: cls
    for cls in (BadRequest, Unauthorized, Forbidden, NotFound, Conflict, InvalidTransition,
                Locked, TooLarge, PreconditionRequired, RateLimited, Unavailable, Internal)
}


def error_from(body: dict[str, Any], *, status: int | None = None) -> CoeditError:
    """The exception for an error map (``{"code","message",...}``); an unknown code becomes
    the class of its HTTP status, else :class:`Internal`."""
    code = body.get("code")
    cls = _BY_CODE.get(code) if isinstance(code, str) else None
    if cls is None and status is not None:
        cls = next((c for c in _BY_CODE.values() if c.http_status == status), None)
    cls = cls or Internal
    message = body.get("message")
    fields = {k: v for k, v in body.items() if k not in ("type", "re", "message")}
    return cls(message if isinstance(message, str) else str(code or "error"), fields)
