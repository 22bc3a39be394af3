"""``document``: done once the idea has a document of ``stage`` (created with the idea)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.schema import documents
from persistence.workflows.actions.base import ActionType, Trigger, stage_config

__all__ = ["Document"]


class Document(ActionType):
    name = "document"
    by_hand = False

    def parse_config(self, config: Any) -> dict[str, Any]:
        return stage_config(self.name, config)

    def reacts_to(self, config: dict[str, Any], trigger: Trigger) -> bool:
        return trigger.kind == "document.created" and trigger.stage == config["stage"]

    async def satisfied(self, conn: AsyncConnection, tenant: str, idea: str,
                        config: dict[str, Any]) -> bool:
        return (await conn.execute(select(documents.c.id).where(
            documents.c.tenant == tenant, documents.c.idea == idea,
            documents.c.kind == config["stage"]).limit(1))).first() is not None
