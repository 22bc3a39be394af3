"""Channels for people rather than documents: one per user and one per role of a tenant.

A session is reachable on these without subscribing to anything: it arrives with its user id
and roles, and from then on whatever any node sends to that user, or to one of those roles
in its tenant, reaches it. The tenant is part of every channel name, so nothing addressed
in one tenant is heard in another, whatever ids the two share.

The hub's topics do the bookkeeping: a node follows a person's channel while at least one
local session of that user (or role) is connected, subscribing the broker for the first and
unsubscribing after the last. Like every topic, delivery is best effort: a message the
broker loses is not sent again (what is sent here is stored elsewhere and can be listed).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from channels.hub import Hub, Sink

__all__ = ["People"]


def _part(value: str) -> str:
    # Escapes ':' (and '%'), so no tenant, user id or role can pose as another's channel.
    return quote(value, safe="")


class People:
    """Per-user and per-role channels of a tenant, over the hub's topics."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    @staticmethod
    def user_topic(tenant: str, user: str) -> str:
        return f"people:{_part(tenant)}:user:{_part(user)}"

    @staticmethod
    def role_topic(tenant: str, role: str) -> str:
        return f"people:{_part(tenant)}:role:{_part(role)}"

    def _topics(self, tenant: str, user: str, roles: Iterable[str]) -> list[str]:
        return [self.user_topic(tenant, user),
                *(self.role_topic(tenant, role) for role in dict.fromkeys(roles))]

    async def arrive(self, sink: Sink, *, tenant: str, user: str, roles: Iterable[str]) -> None:
        """From now on ``sink`` hears what is sent to ``user`` or to one of ``roles`` in
        ``tenant``; returns once the broker carries all of it (or raises, having joined
        nothing)."""
        joined: list[str] = []
        try:
            for topic in self._topics(tenant, user, roles):
                await self.hub.join_topic(sink, topic)
                joined.append(topic)
        except BaseException:
            for topic in joined:
                await self.hub.leave_topic(sink, topic)
            raise

    async def depart(self, sink: Sink, *, tenant: str, user: str, roles: Iterable[str]) -> None:
        """``sink`` hears nothing more; a channel nobody here follows any longer is dropped.
        Departing without having arrived changes nothing."""
        for topic in self._topics(tenant, user, roles):
            await self.hub.leave_topic(sink, topic)

    def tell_soon(
        self, tenant: str, message: dict[str, Any], *, user: str | None = None,
        role: str | None = None,
    ) -> None:
        """Send ``message`` to every session of ``user`` (or of ``role``) in ``tenant``, on
        every node, without waiting: queued behind what this node published before."""
        self.hub.publish_topic_soon(self._addressee(tenant, user, role), message)

    def followers(self, tenant: str, *, user: str | None = None, role: str | None = None) -> int:
        """Local sinks that hear ``user`` (or ``role``) of ``tenant`` now."""
        return self.hub.topic_followers(self._addressee(tenant, user, role))

    def _addressee(self, tenant: str, user: str | None, role: str | None) -> str:
        if user is not None and role is None:
            return self.user_topic(tenant, user)
        if role is not None and user is None:
            return self.role_topic(tenant, role)
        raise ValueError("address exactly one of user and role")
