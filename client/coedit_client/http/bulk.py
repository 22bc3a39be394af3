"""Bulk operations (PROTOCOL.md section 15).

Tested against a real server in tests/test_client_trail.py."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from coedit_client.http.transport import Transport

__all__ = ["MAX_BULK_IDS", "Bulk"]

MAX_BULK_IDS = 1000  # more ids in one call answer too_large


class Bulk:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    async def run(self, operation: str, ids: Sequence[str], params: dict[str, Any] | None = None,
                  *, dry_run: bool = False, all_or_nothing: bool = True) -> dict[str, Any]:
        """``{"operation","total","succeeded","failed","results","dry_run","rolled_back",
        "correlation_id"}``. Operations: ``review.assign``, ``review.transition``,
        ``workflow.step``, ``document.archive``."""
        body = {"operation": operation, "ids": list(ids), "params": params or {},
                "dry_run": dry_run, "all_or_nothing": all_or_nothing}
        result: dict[str, Any] = await self._t.json("POST", "/api/bulk", json_body=body)
        return result
