"""Ideas (PROTOCOL.md section 10).

Tested against a real server in tests/test_client_trail.py."""

from __future__ import annotations

from typing import Any

from coedit_client.http.transport import Transport

__all__ = ["Ideas"]


class Ideas:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    async def create(self, title: str, *, ticker: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"title": title}
        if ticker is not None:
            body["ticker"] = ticker
        idea: dict[str, Any] = await self._t.json("POST", "/api/ideas", json_body=body)
        return idea

    async def get(self, idea: str) -> dict[str, Any]:
        """The idea with its ``documents``, ``reviews`` and ``workflows``."""
        found: dict[str, Any] = await self._t.json("GET", f"/api/ideas/{idea}")
        return found

    async def list(self, *, q: str | None = None, limit: int | None = None,
                   cursor: str | None = None) -> dict[str, Any]:
        page: dict[str, Any] = await self._t.json(
            "GET", "/api/ideas", params={"q": q, "limit": limit, "cursor": cursor})
        return page
