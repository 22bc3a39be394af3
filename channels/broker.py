"""Brokers move bytes between the nodes of a cluster; they know nothing of documents.

The hub decides what to subscribe to and what the bytes mean. A broker only promises to try:
pub/sub may lose messages (Redis does on a reconnect), so the hub fills every gap from the
log and calls nothing delivered that the database does not hold.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence

__all__ = ["Broker", "MemoryBroker", "MessageHandler", "ReconnectHandler"]

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes], None]
ReconnectHandler = Callable[[], Awaitable[None]]


class Broker(ABC):
    """Publish/subscribe on named channels, started and stopped by the app's lifespan."""

    def __init__(self) -> None:
        self._on_message: MessageHandler | None = None
        self._on_reconnect: ReconnectHandler | None = None

    @property
    def started(self) -> bool:
        return self._on_message is not None

    @property
    def reaches_other_nodes(self) -> bool:
        """False when this process is the whole cluster, so a delta fanned out here already
        reached every subscriber and publishing it would only echo it back."""
        return True

    def _handler(self) -> MessageHandler:
        if self._on_message is None:
            raise RuntimeError("Broker not started. Did you forget to call start()?")
        return self._on_message

    async def start(
        self, on_message: MessageHandler, on_reconnect: ReconnectHandler | None = None
    ) -> None:
        """Begin delivering messages of subscribed channels to ``on_message``.

        ``on_reconnect`` runs after the broker lost its connection and got it back: whatever
        was published in between is gone, and the caller must catch up from the log.
        """
        self._on_message = on_message
        self._on_reconnect = on_reconnect

    @abstractmethod
    async def stop(self) -> None: ...

    @abstractmethod
    async def subscribe(self, channel: str) -> None: ...

    @abstractmethod
    async def unsubscribe(self, channel: str) -> None: ...

    @abstractmethod
    async def publish(self, channel: str, data: bytes) -> None: ...

    async def publish_many(self, messages: Sequence[tuple[str, bytes]]) -> None:
        """Publish ``(channel, data)`` pairs in order; a network broker sends them together."""
        for channel, data in messages:
            await self.publish(channel, data)

    @abstractmethod
    async def ping(self) -> None:
        """Raise unless the broker can carry messages right now."""


class MemoryBroker(Broker):
    """The embedded default: one process is the whole cluster, delivery never fails."""

    def __init__(self) -> None:
        super().__init__()
        self._channels: set[str] = set()

    @property
    def reaches_other_nodes(self) -> bool:
        return False

    async def stop(self) -> None:
        self._channels.clear()
        self._on_message = None

    async def subscribe(self, channel: str) -> None:
        self._handler()
        self._channels.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)

    async def publish(self, channel: str, data: bytes) -> None:
        handler = self._handler()
        if channel in self._channels:
            # Deliver on the next loop turn, as a network broker would: never re-entrantly.
            asyncio.get_running_loop().call_soon(handler, channel, data)

    async def ping(self) -> None:
        self._handler()
