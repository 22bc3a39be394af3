"""``checklist``: a list of items; completing the step names every one of them as checked."""

from __future__ import annotations

from typing import Any

from persistence.errors import BadRequest
from persistence.workflows.actions.base import ActionType

__all__ = ["Checklist"]

MAX_ITEMS = 100
MAX_ITEM = 200


class Checklist(ActionType):
    name = "checklist"

    def parse_config(self, config: Any) -> dict[str, Any]:
        items = config.get("items") if isinstance(config, dict) else None
        if (not isinstance(config, dict) or set(config) != {"items"}
                or not isinstance(items, list) or not 0 < len(items) <= MAX_ITEMS
                or not all(isinstance(i, str) and 0 < len(i) <= MAX_ITEM for i in items)):
            raise BadRequest(f'checklist: config must be {{"items": [...]}}: 1 to {MAX_ITEMS} '
                             f"texts of at most {MAX_ITEM} characters")
        if len(set(items)) != len(items):
            raise BadRequest("checklist: items must be different from each other")
        return {"items": list(items)}

    def completion(self, config: dict[str, Any], payload: dict[str, Any]) -> str | None:
        checked = payload.get("checked")
        if set(payload) != {"checked"} or not isinstance(checked, list) or not all(
                isinstance(i, str) for i in checked):
            return 'checklist: complete needs {"checked": [...]} naming every item'
        missing = [item for item in config["items"] if item not in checked]
        if missing:
            return f"checklist: not checked yet: {', '.join(missing)}"
        unknown = [item for item in checked if item not in config["items"]]
        if unknown:
            return f"checklist: no such item: {', '.join(unknown)}"
        return None
