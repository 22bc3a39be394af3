"""State machines as data plus guards, shared by reviews, comment threads and workflow steps.

A machine is a table of moves. Each move names the states it leaves from, the state it
reaches, who may make it and what else must hold. :meth:`StateMachine.check` asks the
questions in one order for every machine, so every resource refuses the same way:

1. an unknown move is ``bad_request`` (the input is wrong, whatever the state);
2. a caller the move does not admit is ``forbidden`` (who, before any state);
3. a payload the move cannot take is ``bad_request``;
4. a move from a state it does not leave is ``invalid_transition`` naming the state;
5. a guard that does not hold (open threads, say) is ``invalid_transition`` too.

The machine decides nothing about storage: the caller holds the row under its transaction's
lock while it checks, and writes the new state afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from persistence.errors import BadRequest, Forbidden, InvalidTransition

__all__ = ["Move", "StateMachine"]

C = TypeVar("C")

# A check returns ``None`` when it holds, else why not (the refusal's message).
Check = Callable[[C], str | None]


@dataclass(frozen=True, slots=True)
class Move(Generic[C]):
    """One move of a machine; ``name`` is what callers ask for (a target state or a verb)."""

    name: str
    sources: frozenset[str]
    target: str
    who: Check[C] | None = None  # refusal: forbidden
    payload: Check[C] | None = None  # refusal: bad_request
    guards: tuple[Check[C], ...] = ()  # refusal: invalid_transition
    extra: Callable[[C], dict[str, object]] | None = None  # fields for a guard's refusal


@dataclass(frozen=True, slots=True)
class StateMachine(Generic[C]):
    """A named table of moves over ``states``, some of them ``final``."""

    name: str
    states: tuple[str, ...]
    final: frozenset[str]
    moves: dict[str, Move[C]] = field(default_factory=dict)

    @classmethod
    def of(cls, name: str, states: Iterable[str], final: Iterable[str],
           moves: Iterable[Move[C]]) -> StateMachine[C]:
        table = {move.name: move for move in moves}
        known = tuple(states)
        for move in table.values():
            unknown = (move.sources | {move.target}) - set(known)
            if unknown:
                raise ValueError(f"{name}: move {move.name} names unknown states {unknown}")
        return cls(name, known, frozenset(final), table)

    def move(self, name: object) -> Move[C]:
        """The move called ``name``; ``bad_request`` listing the moves there are."""
        if not isinstance(name, str) or name not in self.moves:
            raise BadRequest(f"{self.name}: the move must be one of "
                             f"{', '.join(sorted(self.moves))}")
        return self.moves[name]

    def check(self, name: object, current: str, context: C) -> Move[C]:
        """The move ``name`` from ``current`` for ``context``, or the refusal to raise."""
        move = self.move(name)
        if move.who is not None and (why := move.who(context)) is not None:
            raise Forbidden(why)
        if move.payload is not None and (why := move.payload(context)) is not None:
            raise BadRequest(why)
        if current not in move.sources:
            raise InvalidTransition(
                f"a {self.name} that is {current} cannot move to {move.target}", state=current)
        for guard in move.guards:
            if (why := guard(context)) is not None:
                extra = move.extra(context) if move.extra is not None else {}
                raise InvalidTransition(why, state=current, **extra)
        return move

    def is_final(self, state: str) -> bool:
        return state in self.final
