"""Redis pub/sub as the broker of a cluster.

One connection listens (a ``PubSub`` read by a single reader task), the client's pool
publishes. Two races are closed here rather than left to the hub:

* ``subscribe()`` returns only after Redis confirmed the subscription. Until then a message
  published by another node could be dropped, and the hub's catch-up (which reads the log
  right after subscribing) could miss a version nobody would ever publish again.
* After the connection is lost, the reader reconnects with backoff, subscribes again to every
  channel, waits for all confirmations and only then calls ``on_reconnect``, so the log read
  that follows covers everything Redis dropped in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import (
    ClusterDownError,
    ClusterError,
    RedisClusterUnreachableError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from channels.broker import Broker, MessageHandler, ReconnectHandler
from channels.tasks import cancel_and_wait
from persistence.errors import Unavailable

__all__ = ["RedisBroker", "broker_unavailable"]

log = logging.getLogger(__name__)

_CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)
# A Redis Cluster in the middle of a failover answers these until a replica took over.
_UNAVAILABLE = (*_CONNECTION_ERRORS, ClusterDownError, ClusterError,
                RedisClusterUnreachableError, SlotNotCoveredError, TryAgainError)


def broker_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means Redis is out of reach (restarting, unreachable, a pooled
    connection it dropped, a cluster shard failing over), so the client may retry, rather
    than a bug of ours."""
    return isinstance(exc, _UNAVAILABLE) or isinstance(exc.__cause__, _UNAVAILABLE)


class RedisBroker(Broker):
    def __init__(self, client: Redis, *, confirm_timeout: float = 5.0) -> None:
        super().__init__()
        self._client = client
        self._confirm_timeout = confirm_timeout
        self._channels: set[str] = set()
        self._confirmations: dict[str, list[asyncio.Future[None]]] = {}
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._resync: set[str] | None = None
        self._catch_up: asyncio.Future[None] | None = None

    @classmethod
    def from_url(cls, url: str) -> RedisBroker:
        return cls(Redis.from_url(url, decode_responses=False, health_check_interval=10,
                                  socket_keepalive=True))

    async def start(
        self, on_message: MessageHandler, on_reconnect: ReconnectHandler | None = None
    ) -> None:
        await super().start(on_message, on_reconnect)
        self._pubsub = self._client.pubsub()
        self._reader = asyncio.create_task(self._read(), name="redis-broker-reader")

    async def stop(self) -> None:
        await cancel_and_wait([self._reader])
        self._reader = None
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
            self._pubsub = None
        with contextlib.suppress(Exception):
            await self._client.aclose()
        self._on_message = None

    async def subscribe(self, channel: str) -> None:
        self._handler()
        self._channels.add(channel)
        pubsub = self._pubsub
        if pubsub is None:
            raise RuntimeError("RedisBroker not started. Did you forget to call start()?")
        confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirmations.setdefault(channel, []).append(confirmed)
        try:
            await pubsub.subscribe(channel)
            self._wake.set()
            async with asyncio.timeout(self._confirm_timeout):
                await asyncio.shield(confirmed)
        except BaseException as exc:
            waiting = self._confirmations.get(channel, [])
            if confirmed in waiting:
                waiting.remove(confirmed)
            self._channels.discard(channel)
            # The reader replaced the connection under us (a reconnect closed the old one
            # mid-command; redis-py then fails in ways of its own, e.g. AttributeError).
            replaced = pubsub is not self._pubsub and isinstance(exc, Exception)
            if replaced or isinstance(exc, (*_CONNECTION_ERRORS, TimeoutError)):
                raise Unavailable("the broker (Redis) is unavailable; retry shortly") from exc
            raise

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        if self._pubsub is not None:
            with contextlib.suppress(*_CONNECTION_ERRORS):
                await self._pubsub.unsubscribe(channel)

    async def publish(self, channel: str, data: bytes) -> None:
        self._handler()
        await self._client.publish(channel, data)

    async def publish_many(self, messages: Sequence[tuple[str, bytes]]) -> None:
        # One round trip for a burst (a group commit's deltas): Redis runs a pipeline's
        # commands in order, so each channel still sees its messages in sequence.
        self._handler()
        async with self._client.pipeline(transaction=False) as pipe:
            for channel, data in messages:
                pipe.publish(channel, data)
            await pipe.execute()

    async def ping(self) -> None:
        self._handler()
        await self._client.ping()

    # -- the reader -----------------------------------------------------------------------

    async def _read(self) -> None:
        backoff = 0.05
        while True:
            pubsub = self._pubsub
            if pubsub is None or not pubsub.subscribed:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                message = await pubsub.get_message(timeout=1.0)
                backoff = 0.05
            except asyncio.CancelledError:
                raise
            except _CONNECTION_ERRORS as exc:
                log.warning("Redis pub/sub connection lost (%s); reconnecting", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                await self._reconnect()
                continue
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        raw = message.get("channel")
        channel = raw.decode() if isinstance(raw, bytes) else str(raw)
        if kind == "message":
            if channel in self._channels and self._on_message is not None:
                self._on_message(channel, message["data"])
        elif kind == "subscribe":
            for waiter in self._confirmations.pop(channel, []):
                if not waiter.done():
                    waiter.set_result(None)
            if self._resync is not None:
                self._resync.discard(channel)
                if not self._resync:
                    self._resync = None
                    self._fire_reconnect()

    async def _reconnect(self) -> None:
        old, self._pubsub = self._pubsub, self._client.pubsub()
        if old is not None:
            with contextlib.suppress(Exception):
                await old.aclose()
        channels = set(self._channels)
        if not channels:
            self._fire_reconnect()
            return
        self._resync = set(channels)
        try:
            await self._pubsub.subscribe(*channels)
        except _CONNECTION_ERRORS as exc:
            log.warning("Redis still unavailable (%s)", exc)
            self._resync = None
            # ``subscribed`` stays false: the loop waits, then the next subscribe retries.
            await asyncio.sleep(0.2)
            await self._reconnect_later()

    async def _reconnect_later(self) -> None:
        # Keep trying until Redis answers; each failure sleeps a little longer.
        delay = 0.2
        while True:
            try:
                await self._client.ping()
            except _CONNECTION_ERRORS:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            await self._reconnect()
            return

    def _fire_reconnect(self) -> None:
        if self._on_reconnect is not None:
            self._catch_up = asyncio.ensure_future(self._on_reconnect())
