"""Search (PROTOCOL.md section 16).

Tested against a real server in tests/test_client_trail.py."""

from __future__ import annotations

from typing import Any

from coedit_client.http.transport import Transport

__all__ = ["Search"]


class Search:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    async def __call__(self, q: str, *, kind: str | None = None, idea: str | None = None,
                       limit: int | None = None, cursor: str | None = None) -> dict[str, Any]:
        """``{"items": [{"document","score","matches"}], "next"}``, best first."""
        page: dict[str, Any] = await self._t.json("GET", "/api/search", params={
            "q": q, "kind": kind, "idea": idea, "limit": limit, "cursor": cursor})
        return page
