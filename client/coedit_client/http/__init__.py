"""The HTTP API (PROTOCOL.md section 9 and after), one small module per resource family.

``Api(url, token=...)`` works on its own (scripts, the CLI) and as ``client.api`` of a
WebSocket :class:`~coedit_client.Client`. A new family is a module with a class taking the
:class:`~coedit_client.http.transport.Transport`, and one attribute here.
"""

from __future__ import annotations

from typing import Any

from coedit_client.http.bulk import Bulk
from coedit_client.http.comments import Comments
from coedit_client.http.documents import Documents
from coedit_client.http.events import Events
from coedit_client.http.ideas import Ideas
from coedit_client.http.notifications import Notifications
from coedit_client.http.reviews import Reviews
from coedit_client.http.search import Search
from coedit_client.http.transport import Transport
from coedit_client.http.workflows import Workflows

__all__ = ["Api", "Transport"]


class Api:
    """Typed methods for every HTTP resource, sharing one connection pool and token."""

    def __init__(self, url: str, *, token: str | None = None, retries: int = 3,
                 max_wait: float = 30.0, timeout: float = 30.0) -> None:
        self.transport = Transport(url, token=token, retries=retries, max_wait=max_wait,
                                   timeout=timeout)
        self.documents = Documents(self.transport)
        self.events = Events(self.transport)
        self.ideas = Ideas(self.transport)
        self.reviews = Reviews(self.transport)
        self.comments = Comments(self.transport)
        self.notifications = Notifications(self.transport)
        self.bulk = Bulk(self.transport)
        self.search = Search(self.transport)
        self.workflows = Workflows(self.transport)

    def set_token(self, token: str | None) -> None:
        self.transport.token = token

    def set_base(self, url: str) -> None:
        """Follow the node the WebSocket is on (any node serves the same API)."""
        self.transport.base_url = url.rstrip("/")

    async def me(self) -> dict[str, Any]:
        identity: dict[str, Any] = await self.transport.json("GET", "/api/me")
        return identity

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def __aenter__(self) -> Api:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
