"""The wire shapes of what the server tells subscribers about committed changes.

Persistence reports typed facts (``persistence.facts``); this module is the one place that
says how each looks on the wire (docs/protocol.md sections 5 and 7), for live fan-out, for
catch-up from the log and for the ``deltas`` of a conflict alike.
"""

from __future__ import annotations

from typing import Any

from persistence.facts import Delta, LockChanged, Notified, Touched

__all__ = ["delta_message", "lock_message", "notification_message", "touched_message"]


def delta_message(delta: Delta) -> dict[str, Any]:
    return {
        "type": "delta", "doc": delta.doc, "version": delta.version, "ops": delta.ops,
        "actor": delta.actor, "ts": delta.ts, "event": delta.event,
    }


def lock_message(change: LockChanged) -> dict[str, Any]:
    lock = change.lock
    if change.granted:
        return {"type": "locked", **lock}
    return {"type": "unlocked", "doc": lock["doc"], "path": lock["path"],
            "holder": lock["holder"], "reason": change.reason, "token": lock["token"]}


def touched_message(change: Touched) -> dict[str, Any]:
    """``{"type":"review"|"comment","doc","review"|"comment":{...}}`` (sections 11, 12)."""
    return {"type": change.kind, "doc": change.doc, change.kind: change.body}


def notification_message(fact: Notified) -> dict[str, Any]:
    return {"type": "notification", "notification": fact.notification}
