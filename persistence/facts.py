"""What a commit changed, as typed facts: persistence says what happened, never how to tell.

Every mutating call of the stores returns its facts beside its result, and the service's one
after-commit seam (``server/service.py``, ``Coedit.after_commit``) turns each into what
follows: the broadcast to subscribers, the stream wake-up of the tenant, metrics. The wire
shapes of those messages are built in ``server/messages.py``. A new kind of change (a
review step, a comment, a workflow transition, a notification) adds a fact here and a case
there; nothing at the edges changes.

Every fact names its tenant: each one stands for at least one audit event appended in that
tenant, which is what wakes its event streams.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

__all__ = ["Appended", "Committed", "Delta", "Fact", "LockChanged", "Notified", "StepMoved",
           "Touched"]

T = TypeVar("T")


@dataclass(slots=True)
class Delta:
    """A document reached ``version`` by ``ops`` (as applied, unredacted), at ``ts`` (in the
    one textual form times have everywhere). ``event`` is the seq of its ``patch.applied``
    event: a batch learns the seqs as it inserts its events, so it is set then, once."""

    tenant: str
    doc: str
    version: int
    ops: list[dict[str, Any]]
    actor: dict[str, str]  # {"id", "name"}: who, as deltas show it
    ts: str
    event: int | None


@dataclass(frozen=True, slots=True)
class LockChanged:
    """An edit lock was granted (``reason`` None) or ended (released, disconnected, expired,
    stolen). ``lock`` is the lock as the protocol shows it."""

    tenant: str
    lock: dict[str, Any]
    reason: str | None = None

    @property
    def doc(self) -> str:
        return str(self.lock["doc"])

    @property
    def granted(self) -> bool:
        return self.reason is None


@dataclass(frozen=True, slots=True)
class Appended:
    """Events were appended in ``tenant`` and nothing else is live to announce (a document
    created, a refusal recorded, a review or comment change)."""

    tenant: str


@dataclass(frozen=True, slots=True)
class Touched:
    """Something that subscribers of document ``doc`` are shown live changed: a review or a
    comment. ``kind`` names the message (``review``, ``comment``) and ``body`` is the
    resource as the protocol shows it."""

    tenant: str
    doc: str
    kind: str
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Notified:
    """A notification was stored for one user (``user``) or for a role of the tenant
    (``role``); exactly one of the two is set. Every session of the addressee, on every
    node, is told at once, unless notifications are off or the user's throttle holds it
    back (it stays stored and listed either way)."""

    tenant: str
    notification: dict[str, Any]
    user: str | None = None
    role: str | None = None


@dataclass(frozen=True, slots=True)
class StepMoved:
    """A workflow step of action ``action`` reached state ``to``; ``cycle_seconds`` is how
    long it took from ``ready`` when ``to`` is ``completed`` (None otherwise)."""

    tenant: str
    action: str
    to: str
    cycle_seconds: float | None = None


Fact = Delta | LockChanged | Appended | Touched | Notified | StepMoved


class Committed(NamedTuple, Generic[T]):
    """A committed change: the caller's result and the facts that follow from it (a pair,
    so ``value, facts = await ...`` reads naturally)."""

    value: T
    facts: tuple[Fact, ...]
