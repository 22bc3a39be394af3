"""``approval``: someone decides; ``approved: false`` fails the step (an admin may retry it)."""

from __future__ import annotations

from typing import Any

from persistence.errors import BadRequest
from persistence.workflows.actions.base import ActionType

__all__ = ["Approval"]

MAX_COMMENT = 2000


class Approval(ActionType):
    name = "approval"

    def parse_config(self, config: Any) -> dict[str, Any]:
        if config not in (None, {}):
            raise BadRequest("approval: config must be empty")
        return {}

    def completion(self, config: dict[str, Any], payload: dict[str, Any]) -> str | None:
        comment = payload.get("comment")
        if (not isinstance(payload.get("approved"), bool) or set(payload) - {"approved", "comment"}
                or (comment is not None and (not isinstance(comment, str)
                                             or len(comment) > MAX_COMMENT))):
            return ('approval: complete needs {"approved": true|false, "comment"?: TEXT} '
                    f"(at most {MAX_COMMENT} characters)")
        return None

    def outcome(self, config: dict[str, Any], payload: dict[str, Any]) -> str:
        return "completed" if payload["approved"] else "failed"
