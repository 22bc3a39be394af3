"""``review``: done once a review of the idea's document of ``stage`` is approved.

The review store calls the engine in the approving transaction (``review.approved``), so
the step completes in the same commit as the review it waited for.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.schema import reviews
from persistence.workflows.actions.base import ActionType, Trigger, stage_config

__all__ = ["Review"]


class Review(ActionType):
    name = "review"
    by_hand = False

    def parse_config(self, config: Any) -> dict[str, Any]:
        return stage_config(self.name, config)

    def reacts_to(self, config: dict[str, Any], trigger: Trigger) -> bool:
        return trigger.kind == "review.approved" and trigger.stage == config["stage"]

    async def satisfied(self, conn: AsyncConnection, tenant: str, idea: str,
                        config: dict[str, Any]) -> bool:
        return (await conn.execute(select(reviews.c.id).where(
            reviews.c.tenant == tenant, reviews.c.idea == idea,
            reviews.c.stage == config["stage"], reviews.c.status == "approved").limit(1)
        )).first() is not None
