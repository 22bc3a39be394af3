"""The step state machine of docs/protocol.md section 13, as data plus guards.

The refusal order is the shared machine's (``persistence/state_machine.py``): an unknown verb
is ``bad_request``; a caller without the step's role, a non-admin skipping or retrying, or
someone other than the assignee starting, completing, failing or blocking is ``forbidden``;
a payload the verb cannot take is ``bad_request``; a step in another state, a workflow that
is paused or ended, and a hand-made ``complete`` of a step that completes by itself are
``invalid_transition``.

``complete`` reaches ``completed`` unless its action says otherwise (an approval with
``approved: false`` fails the step): the engine asks the action for the target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from persistence.state_machine import Move, StateMachine
from persistence.workflows.actions import ActionType

__all__ = ["DONE", "STEPS", "STEP_STATES", "StepMove"]

STEP_STATES = ("pending", "ready", "in_progress", "blocked", "completed", "failed", "skipped")
# What lets the steps after it become ready.
DONE = frozenset({"completed", "skipped"})
MAX_REASON = 2000


@dataclass(frozen=True, slots=True)
class StepMove:
    """What the step machine's checks look at."""

    actor: str
    admin: bool
    has_role: bool
    role: str
    assignee: str | None
    action: ActionType
    config: dict[str, Any]
    payload: dict[str, Any]
    instance_status: str


def _performer(move: StepMove) -> str | None:
    if move.admin or move.has_role:
        return None
    return f"only a {move.role} (or an admin) may perform this step"


def _assignee(move: StepMove) -> str | None:
    if (why := _performer(move)) is not None:
        return why
    if move.admin or move.assignee is None or move.assignee == move.actor:
        return None
    return "only the step's assignee (or an admin) may do this"


def _admin(move: StepMove) -> str | None:
    return None if move.admin else "only an admin may skip or retry a step"


def _no_payload(move: StepMove) -> str | None:
    return None if not move.payload else "this verb takes no payload: send {}"


def _reason(move: StepMove) -> str | None:
    reason = move.payload.get("reason")
    if (set(move.payload) == {"reason"} and isinstance(reason, str) and reason.strip()
            and len(reason) <= MAX_REASON):
        return None
    return f'this verb needs {{"reason": TEXT}}, 1 to {MAX_REASON} characters'


def _completion(move: StepMove) -> str | None:
    if not move.action.by_hand:
        return None  # refused below, as a move the step does not take
    return move.action.completion(move.config, move.payload)


def _active(move: StepMove) -> str | None:
    if move.instance_status == "active":
        return None
    return f"the workflow is {move.instance_status}: its steps do not move"


def _by_hand(move: StepMove) -> str | None:
    if move.action.by_hand:
        return None
    return f"a {move.action.name} step completes by itself"


def _instance(move: StepMove) -> dict[str, object]:
    return {"instance_status": move.instance_status}


_RUNNING = frozenset({"in_progress"})
STEPS: StateMachine[StepMove] = StateMachine.of(
    "step",
    states=STEP_STATES,
    final=frozenset({"completed", "skipped"}),
    moves=[
        Move("claim", frozenset({"ready"}), "ready", who=_performer, payload=_no_payload,
             guards=(_active,), extra=_instance),
        Move("start", frozenset({"ready"}), "in_progress", who=_assignee, payload=_no_payload,
             guards=(_active,), extra=_instance),
        Move("complete", _RUNNING, "completed", who=_assignee, payload=_completion,
             guards=(_active, _by_hand), extra=_instance),
        Move("fail", _RUNNING, "failed", who=_assignee, payload=_reason,
             guards=(_active,), extra=_instance),
        Move("block", _RUNNING, "blocked", who=_assignee, payload=_reason,
             guards=(_active,), extra=_instance),
        Move("unblock", frozenset({"blocked"}), "in_progress", who=_performer,
             payload=_no_payload, guards=(_active,), extra=_instance),
        Move("skip", frozenset(STEP_STATES) - {"completed", "skipped"}, "skipped", who=_admin,
             payload=_reason, guards=(_active,), extra=_instance),
        Move("retry", frozenset({"failed"}), "ready", who=_admin, payload=_no_payload,
             guards=(_active,), extra=_instance),
    ],
)
