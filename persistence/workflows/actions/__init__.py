"""The action types a workflow step may name: one module each, registered here.

Adding one is a module with an :class:`ActionType` subclass and one line below
(docs/workflows.md, "Adding an action type").
"""

from __future__ import annotations

from persistence.errors import BadRequest
from persistence.workflows.actions.approval import Approval
from persistence.workflows.actions.base import ActionType, Trigger
from persistence.workflows.actions.checklist import Checklist
from persistence.workflows.actions.document import Document
from persistence.workflows.actions.review import Review

__all__ = ["ACTIONS", "ActionRegistry", "ActionType", "Trigger"]


class ActionRegistry:
    """Action types by name."""

    def __init__(self, *types: ActionType) -> None:
        self._types: dict[str, ActionType] = {}
        for action in types:
            self.register(action)

    def register(self, action: ActionType) -> None:
        if action.name in self._types:
            raise ValueError(f"action type {action.name!r} is registered twice")
        self._types[action.name] = action

    def get(self, name: object, *, where: str = "action") -> ActionType:
        """The type called ``name``; ``bad_request`` listing the known ones."""
        if not isinstance(name, str) or name not in self._types:
            raise BadRequest(f"{where} must be one of {', '.join(sorted(self._types))}")
        return self._types[name]

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._types))


ACTIONS = ActionRegistry(Checklist(), Approval(), Review(), Document())
