"""Sharded pub/sub on a Redis Cluster as the broker of a coedit cluster.

A channel lives in the hash slot of its name, like a key: ``SPUBLISH`` goes to the master that
owns the slot, which passes the message to the shard's subscribers (its replicas' too) and to
no other shard. Each master thus carries only its own channels' traffic, where classic
``PUBLISH`` on a cluster is broadcast to every node.

Publishing goes through redis-py's :class:`~redis.asyncio.cluster.RedisCluster`, which routes
``SPUBLISH`` by slot and follows ``MOVED`` and failovers. Listening does not use its
``ClusterPubSub``: this redis-py (8.2) polls every node's connection in turn with a timeout (a
message waits while another node's slice runs), and when a master hands its slots to a replica
(``CLUSTER FAILOVER``) the server ends the shard subscriptions with ``SUNSUBSCRIBE`` and the
library does not subscribe again (none of 366 messages in the 20 seconds after, tried on the
tests' cluster). Here each master whose
slots we follow has one plain pub/sub connection and one task blocking on it, and this module
keeps the promise of :mod:`channels.redis_broker`:

* ``subscribe()`` returns once the owning master confirmed the ``SSUBSCRIBE``.
* When a connection breaks, the server ends subscriptions, or a reply says ``MOVED``, a repair
  refreshes the slot map, subscribes every affected channel on its current owner, waits for
  every confirmation, and only then calls ``on_reconnect``: the hub's log read that follows
  covers whatever was published meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, SlotNotCoveredError

from channels.broker import Broker, MessageHandler, ReconnectHandler
from channels.redis_broker import broker_unavailable
from channels.redis_client import ClusterAddress, parse_cluster_url
from channels.tasks import cancel_and_wait
from persistence.errors import Unavailable

__all__ = ["RedisClusterBroker"]

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Shard:
    """One master's pub/sub connection, the channels subscribed on it, and its reader."""

    name: str
    client: Redis
    pubsub: PubSub
    channels: set[str] = field(default_factory=set)
    reader: asyncio.Task[None] | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    broken: bool = False
    confirmed_once: bool = False  # it worked once: its loss is news, not a retry failing


class RedisClusterBroker(Broker):
    def __init__(self, client: RedisCluster, address: ClusterAddress, *,
                 confirm_timeout: float = 5.0) -> None:
        super().__init__()
        self._client = client
        self._address = address
        self._confirm_timeout = confirm_timeout
        self._channels: set[str] = set()      # what the hub follows
        self._confirmed: set[str] = set()     # subscribed and confirmed on the current owner
        self._where: dict[str, _Shard] = {}   # channel -> the shard it was subscribed on
        self._shards: dict[str, _Shard] = {}  # node name -> shard
        self._confirmations: dict[str, list[asyncio.Future[None]]] = {}
        self._repair_wanted = False
        self._gap = False  # something may have been published that this node did not hear
        self._repairer: asyncio.Task[None] | None = None
        self._catch_up: asyncio.Future[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()  # shards being closed (kept referenced)
        self._stopping = False

    @classmethod
    def from_url(cls, url: str) -> RedisClusterBroker:
        address = parse_cluster_url(url)
        client = RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in address.seeds],
            **address.connection_kwargs(), socket_keepalive=True,
        )
        return cls(client, address)

    async def start(
        self, on_message: MessageHandler, on_reconnect: ReconnectHandler | None = None
    ) -> None:
        await super().start(on_message, on_reconnect)
        self._stopping = False

    async def stop(self) -> None:
        self._stopping = True
        await cancel_and_wait([self._repairer, self._catch_up])
        self._repairer = None
        await asyncio.gather(*self._closing, return_exceptions=True)
        for shard in list(self._shards.values()):
            await self._close_shard(shard)
        self._shards.clear()
        with contextlib.suppress(Exception):
            await self._client.aclose()
        self._on_message = None

    # -- the Broker interface --------------------------------------------------------------

    async def subscribe(self, channel: str) -> None:
        self._handler()
        self._channels.add(channel)
        confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirmations.setdefault(channel, []).append(confirmed)
        try:
            async with asyncio.timeout(self._confirm_timeout):
                if channel not in self._confirmed:
                    await self._subscribe_on_owner(channel)
                elif not confirmed.done():
                    confirmed.set_result(None)  # another joiner's subscription is live
                await asyncio.shield(confirmed)
        except BaseException as exc:
            self._forget_waiter(channel, confirmed)
            if channel not in self._confirmed:
                self._channels.discard(channel)
                shard = self._where.pop(channel, None)
                if shard is not None:
                    shard.channels.discard(channel)
            if isinstance(exc, TimeoutError) or (
                    isinstance(exc, Exception) and broker_unavailable(exc)):
                raise Unavailable("the broker (Redis Cluster) is unavailable; retry shortly"
                                  ) from exc
            raise

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        self._confirmed.discard(channel)
        shard = self._where.pop(channel, None)
        if shard is None:
            return
        shard.channels.discard(channel)
        if not shard.broken:
            with contextlib.suppress(RedisError, OSError):
                await shard.pubsub.sunsubscribe(channel)

    async def publish(self, channel: str, data: bytes) -> None:
        self._handler()
        await self._client.spublish(channel, data)

    async def publish_many(self, messages: Sequence[tuple[str, bytes]]) -> None:
        # The cluster pipeline sends each master its share in one round trip and keeps the
        # order within a master, hence within each channel (a channel has one slot).
        self._handler()
        async with self._client.pipeline(transaction=False) as pipe:
            for channel, data in messages:
                pipe.spublish(channel, data)
            await pipe.execute()

    async def ping(self) -> None:
        self._handler()
        await self._client.execute_command("PING", target_nodes=RedisCluster.PRIMARIES)

    def _forget_waiter(self, channel: str, waiter: asyncio.Future[None]) -> None:
        waiting = self._confirmations.get(channel, [])
        if waiter in waiting:
            waiting.remove(waiter)
        if not waiting:
            self._confirmations.pop(channel, None)

    # -- subscribing on the owner of a channel's slot ----------------------------------------

    async def _subscribe_on_owner(self, channel: str) -> None:
        await self._client.initialize()
        node = self._client.get_node_from_key(channel)
        if node is None:
            raise SlotNotCoveredError(f"no master serves the slot of {channel!r} yet")
        shard = await self._shard(node.name, node.host, int(node.port))
        previous = self._where.get(channel)
        self._where[channel] = shard  # first: the old node's SUNSUBSCRIBE reply is then ours
        if previous is not None and previous is not shard:
            previous.channels.discard(channel)
            if not previous.broken:
                with contextlib.suppress(RedisError, OSError):
                    await previous.pubsub.sunsubscribe(channel)
        shard.channels.add(channel)
        try:
            await shard.pubsub.ssubscribe(channel)
            shard.wake.set()
        except Exception as exc:
            if broker_unavailable(exc):
                self._shard_failed(shard, exc)
            raise

    async def _shard(self, name: str, host: str, port: int) -> _Shard:
        shard = self._shards.get(name)
        if shard is not None and not shard.broken:
            return shard
        # No retries inside redis-py: a connection that fails must reach the reader, which
        # hands its channels to a repair. A silent reconnect would resubscribe on a node that
        # may no longer own the slots, and nobody would catch up what was lost meanwhile.
        client = Redis(host=host, port=port, retry=Retry(NoBackoff(), 0),
                       socket_keepalive=True, socket_connect_timeout=2.0,
                       health_check_interval=10, **self._address.connection_kwargs())
        shard = _Shard(name, client, client.pubsub())
        shard.reader = asyncio.create_task(self._read(shard), name=f"redis-shard-{name}")
        self._shards[name] = shard
        return shard

    async def _read(self, shard: _Shard) -> None:
        while not shard.broken:
            if not shard.pubsub.subscribed:
                shard.wake.clear()
                await shard.wake.wait()  # set once an SSUBSCRIBE went out
                continue
            try:
                message = await shard.pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # MOVED, a broken connection: the repair sorts it out
                self._shard_failed(shard, exc)
                return
            if message is not None:
                self._dispatch(shard, message)

    def _dispatch(self, shard: _Shard, message: dict[str, Any]) -> None:
        kind = message.get("type")
        raw = message.get("channel")
        channel = raw.decode() if isinstance(raw, bytes) else str(raw)
        if kind == "smessage":
            if channel in self._confirmed and self._on_message is not None:
                self._on_message(channel, message["data"])
        elif kind == "ssubscribe":
            if channel in self._channels and self._where.get(channel) is shard:
                shard.confirmed_once = True
                self._confirmed.add(channel)
                for waiter in self._confirmations.pop(channel, []):
                    if not waiter.done():
                        waiter.set_result(None)
        elif (kind == "sunsubscribe" and channel in self._channels
              and self._where.get(channel) is shard):
            # Not ours (unsubscribe and moves forget the channel here first): the server's.
            # A master that gave its slots away ends their subscriptions; the channel moves on.
            log.info("Redis Cluster node %s ended the subscription to %s (a failover?); "
                     "moving it", shard.name, channel)
            self._confirmed.discard(channel)
            self._gap = True
            self._want_repair()

    def _shard_failed(self, shard: _Shard, exc: BaseException) -> None:
        if shard.broken or self._stopping:
            return
        shard.broken = True
        log.log(logging.WARNING if shard.confirmed_once else logging.DEBUG,
                "Redis Cluster pub/sub on %s lost (%s: %.200s); moving its channels",
                shard.name, type(exc).__name__, exc)
        if self._shards.get(shard.name) is shard:
            del self._shards[shard.name]
        lost = shard.channels & self._channels
        self._confirmed.difference_update(lost)
        self._gap = self._gap or bool(lost)
        closing = asyncio.get_running_loop().create_task(self._close_shard(shard))
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)
        self._want_repair()

    async def _close_shard(self, shard: _Shard) -> None:
        shard.broken = True
        if shard.reader is not asyncio.current_task():
            await cancel_and_wait([shard.reader])
        with contextlib.suppress(Exception):
            await shard.pubsub.aclose()
        with contextlib.suppress(Exception):
            await shard.client.aclose()

    # -- repair -------------------------------------------------------------------------------

    def _want_repair(self) -> None:
        self._repair_wanted = True
        if self._repairer is None and not self._stopping:
            self._repairer = asyncio.get_running_loop().create_task(
                self._repair(), name="redis-cluster-broker-repair")

    async def _repair(self) -> None:
        """Resubscribe every followed channel that lost its subscription, on its current
        owner, until all are confirmed; then the hub catches up from the log."""
        delay = 0.05
        failures = 0
        try:
            while self._repair_wanted and not self._stopping:
                self._repair_wanted = False
                lost = sorted(self._channels - self._confirmed)
                waits: list[tuple[str, asyncio.Future[None]]] = []
                try:
                    if lost:
                        # A fresh slot map: after a failover the old one names the dead master.
                        await self._client.nodes_manager.initialize()
                    async with asyncio.timeout(self._confirm_timeout):
                        for channel in lost:
                            if channel not in self._channels or channel in self._confirmed:
                                continue
                            done = asyncio.get_running_loop().create_future()
                            self._confirmations.setdefault(channel, []).append(done)
                            waits.append((channel, done))
                            await self._subscribe_on_owner(channel)
                        await asyncio.gather(*(asyncio.shield(w) for _, w in waits))
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    for channel, waiter in waits:
                        self._forget_waiter(channel, waiter)
                    failures += 1
                    # Once, then about every ten seconds: a failover takes a few anyway.
                    log.log(logging.WARNING if failures % 10 == 1 else logging.DEBUG,
                            "Redis Cluster still unavailable for %d channels (%s: %.200s); "
                            "retrying", len(lost), type(exc).__name__, exc)
                    self._repair_wanted = True
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 1.0)
                    continue
                delay, failures = 0.05, 0
                if self._gap and not self._repair_wanted:
                    self._gap = False
                    self._fire_reconnect()
        finally:
            self._repairer = None
            if self._repair_wanted and not self._stopping:
                self._want_repair()

    def _fire_reconnect(self) -> None:
        if self._on_reconnect is not None:
            self._catch_up = asyncio.ensure_future(self._on_reconnect())

