"""What every action type of a workflow step says about itself.

A step's ``action`` names one of these. The type checks the step's ``config`` when a
template is created, changed or published; checks the payload of a hand-made ``complete``
and says which state it leads to; and, for the types that complete by themselves, says
which happenings (a review approved, a document created) finish a step and whether the idea
already satisfies it when the step becomes ready.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.errors import BadRequest

__all__ = ["ActionType", "Trigger", "stage_config"]

STAGE_PATTERN_TEXT = "[a-z][a-z0-9_]{0,31}"


@dataclass(frozen=True, slots=True)
class Trigger:
    """Something that happened to an idea that steps may be waiting for: ``kind`` is
    ``review.approved`` or ``document.created``, ``stage`` the document's kind."""

    kind: str
    stage: str


class ActionType(ABC):
    """One action type; register an instance in ``persistence/workflows/actions/__init__``."""

    name: ClassVar[str]
    # False: only the engine completes the step (a hand-made complete is invalid_transition).
    by_hand: ClassVar[bool] = True

    @abstractmethod
    def parse_config(self, config: Any) -> dict[str, Any]:
        """The step's config as stored; ``BadRequest`` saying what is wrong."""

    def completion(self, config: dict[str, Any], payload: dict[str, Any]) -> str | None:
        """Why ``payload`` cannot complete the step (the ``bad_request`` message), or None."""
        return None if not payload else f"{self.name}: complete takes no payload"

    def outcome(self, config: dict[str, Any], payload: dict[str, Any]) -> str:
        """The state a valid hand-made ``complete`` leads to."""
        return "completed"

    def reacts_to(self, config: dict[str, Any], trigger: Trigger) -> bool:
        """Whether ``trigger`` completes a ready or running step of this config."""
        return False

    async def satisfied(self, conn: AsyncConnection, tenant: str, idea: str,
                        config: dict[str, Any]) -> bool:
        """Whether the idea already holds what the step waits for (checked when it becomes
        ready, and when its workflow resumes)."""
        return False


def stage_config(action: str, config: Any) -> dict[str, Any]:
    """``{"stage": KIND}``, the config of the actions that watch one stage of the idea."""
    if (not isinstance(config, dict) or set(config) != {"stage"}
            or not isinstance(config["stage"], str)
            or not re.fullmatch(STAGE_PATTERN_TEXT, config["stage"])):
        raise BadRequest(f'{action}: config must be {{"stage": KIND}} with KIND matching '
                         f"{STAGE_PATTERN_TEXT}")
    return {"stage": config["stage"]}
