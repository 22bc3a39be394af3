"""The one factory that turns a Redis URL into a cluster transport.

A node of a coedit cluster needs three things from Redis: a broker (pub/sub between nodes),
a presence backend, and the counters behind rate limits. Whether the URL names one server or
a Redis Cluster (see :mod:`channels.redis_client`) is decided here, once, for all three.
"""

from __future__ import annotations

from collections.abc import Callable

from channels.broker import Broker
from channels.limits import WindowCounter
from channels.presence_backend import PresenceBackend
from channels.redis_broker import RedisBroker
from channels.redis_client import connect, is_cluster_url
from channels.redis_cluster_broker import RedisClusterBroker
from channels.redis_limits import RedisWindows
from channels.redis_presence import RedisPresence

__all__ = ["redis_broker", "redis_transport"]


def redis_broker(url: str) -> Broker:
    """Sharded pub/sub for a Redis Cluster URL, classic pub/sub for one server."""
    return RedisClusterBroker.from_url(url) if is_cluster_url(url) else RedisBroker.from_url(url)


def redis_transport(
    url: str, *, prefix: str, on_fallback: Callable[[], None] | None = None
) -> tuple[Broker, PresenceBackend, WindowCounter]:
    """Broker, presence and counters on the Redis (or Redis Cluster) that ``url`` names."""
    return (
        redis_broker(url),
        RedisPresence(connect(url), prefix=prefix),
        RedisWindows.from_url(url, prefix=prefix, on_fallback=on_fallback),
    )
