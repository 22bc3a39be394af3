"""coedit's Python client: live document replicas, writes that apply exactly once, edit
locks, presence, event streams (WebSocket or Server-Sent Events) and the HTTP API.

    async with coedit_client.connect("http://localhost:8000", token=TOKEN) as client:
        doc = await client.open(doc_id)
        await doc.patch([{"op": "replace", "path": "/valuation/wacc", "value": 0.081}])
        async for change in doc:
            ...

See docs/client.md.
"""

from __future__ import annotations

from coedit_client.backoff import Backoff
from coedit_client.codec import Encoding
from coedit_client.connection import Client, TokenRefresher, connect
from coedit_client.documents import Change, Delta, Document, Reset, RetryPolicy
from coedit_client.errors import (
    BadRequest,
    ClientClosed,
    CoeditError,
    Conflict,
    ConnectionLost,
    Forbidden,
    Internal,
    InvalidTransition,
    Locked,
    LockLost,
    LockStolen,
    NotFound,
    PreconditionRequired,
    RateLimited,
    TokenExpired,
    TooLarge,
    Unauthorized,
    Unavailable,
)
from coedit_client.http import Api
from coedit_client.locks import Lock
from coedit_client.splice import Splice, apply_splices, splice_from_edit, transform
from coedit_client.streams import EventStream, PresenceFeed

__all__ = [
    "Api",
    "Backoff",
    "BadRequest",
    "Change",
    "Client",
    "ClientClosed",
    "CoeditError",
    "Conflict",
    "ConnectionLost",
    "Delta",
    "Document",
    "Encoding",
    "EventStream",
    "Forbidden",
    "Internal",
    "InvalidTransition",
    "Lock",
    "LockLost",
    "LockStolen",
    "Locked",
    "NotFound",
    "PreconditionRequired",
    "PresenceFeed",
    "RateLimited",
    "Reset",
    "RetryPolicy",
    "Splice",
    "TokenExpired",
    "TokenRefresher",
    "TooLarge",
    "Unauthorized",
    "Unavailable",
    "apply_splices",
    "connect",
    "splice_from_edit",
    "transform",
]

__version__ = "0.1.0"
