"""Which Redis a URL names: one server, or a Redis Cluster, and the one place that decides.

A single server keeps redis-py's own URL forms (``redis://``, ``rediss://``, ``unix://``). A
cluster is named by its seed nodes under a scheme of its own, so the choice is made once,
here, from the URL alone::

    redis+cluster://[user:password@]host:port[,host:port...]
    rediss+cluster://...        (TLS)

Any reachable seed will do; the client learns the rest of the topology (which master owns
which hash slot, and every replica) from it. Everything that talks to Redis gets its client
from :func:`connect` and asks :func:`is_cluster` rather than looking at the URL again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster

__all__ = ["CLUSTER_SCHEMES", "ClusterAddress", "connect", "is_cluster", "is_cluster_url",
           "parse_cluster_url"]

CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")
MAX_SEEDS = 64


def is_cluster_url(url: str) -> bool:
    return url.startswith(CLUSTER_SCHEMES)


def is_cluster(client: Redis | RedisCluster) -> bool:
    return isinstance(client, RedisCluster)


@dataclass(frozen=True, slots=True)
class ClusterAddress:
    """Seed nodes and the credentials every node of the cluster is reached with."""

    seeds: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None
    tls: bool = False

    def connection_kwargs(self) -> dict[str, Any]:
        """What a plain connection to one node of this cluster needs besides host and port."""
        kwargs: dict[str, Any] = {}
        if self.username is not None:
            kwargs["username"] = self.username
        if self.password is not None:
            kwargs["password"] = self.password
        if self.tls:
            kwargs["ssl"] = True
        return kwargs


def parse_cluster_url(url: str) -> ClusterAddress:
    """``redis+cluster://[user:pass@]h1:p1,h2:p2`` to its parts; ValueError names the fault."""
    if not is_cluster_url(url):
        raise ValueError(f"not a Redis Cluster URL: {url!r}")
    scheme, rest = url.split("://", 1)
    rest = rest.split("?", 1)[0].split("#", 1)[0]
    netloc, _, path = rest.partition("/")
    if path.strip("/") not in ("", "0"):
        raise ValueError("a Redis Cluster has only database 0; drop the /N from the URL")
    credentials, at, hosts = netloc.rpartition("@")
    username: str | None = None
    password: str | None = None
    if at:
        user, colon, secret = credentials.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    seeds: list[tuple[str, int]] = []
    for item in hosts.split(","):
        host, colon, port = item.strip().rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"each cluster seed is host:port, got {item.strip()!r}")
        seeds.append((host.strip("[]"), int(port)))
    if not seeds or len(seeds) > MAX_SEEDS:
        raise ValueError(f"a Redis Cluster URL names 1 to {MAX_SEEDS} seed nodes")
    return ClusterAddress(tuple(seeds), username, password, tls=scheme == "rediss+cluster")


def connect(url: str, **options: Any) -> Redis | RedisCluster:
    """A client for ``url``: :class:`RedisCluster` for a cluster URL, else :class:`Redis`.

    ``options`` are connection settings (timeouts, keepalive) that mean the same on both.
    """
    if not is_cluster_url(url):
        return Redis.from_url(url, **options)
    address = parse_cluster_url(url)
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in address.seeds],
        **address.connection_kwargs(), **options,
    )
