"""Which Redis a URL names: one server by redis-py's own forms, a Redis Cluster by
``redis+cluster://`` seeds, decided in one place."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from channels.redis_broker import RedisBroker
from channels.redis_client import connect, is_cluster_url, parse_cluster_url
from channels.redis_cluster_broker import RedisClusterBroker
from channels.transport import redis_broker
from server.config import ConfigError, Settings


def test_a_cluster_url_names_its_seeds_and_credentials() -> None:
    """Seeds, user, password (percent-decoded) and TLS come out of a cluster URL."""
    address = parse_cluster_url("rediss+cluster://app:p%40ss@10.0.0.1:7000,[::1]:7001/0")
    assert address.seeds == (("10.0.0.1", 7000), ("::1", 7001))
    assert (address.username, address.password, address.tls) == ("app", "p@ss", True)
    plain = parse_cluster_url("redis+cluster://127.0.0.1:7000")
    assert plain.seeds == (("127.0.0.1", 7000),)
    assert (plain.username, plain.password, plain.tls) == (None, None, False)
    assert plain.connection_kwargs() == {}


@pytest.mark.parametrize("url", [
    "redis+cluster://", "redis+cluster://10.0.0.1", "redis+cluster://10.0.0.1:0",
    "redis+cluster://10.0.0.1:7000,", "redis+cluster://10.0.0.1:port",
    "redis+cluster://10.0.0.1:7000/3", "redis://10.0.0.1:7000",
    "redis+cluster://" + ",".join(f"h{n}:7000" for n in range(65)),
])
def test_a_malformed_cluster_url_is_refused(url: str) -> None:
    """A cluster URL without seeds, with a bad port, a database other than 0 or too many
    seeds is refused with ValueError."""
    with pytest.raises(ValueError):
        parse_cluster_url(url)


def test_a_refused_cluster_url_never_echoes_its_password() -> None:
    """The configuration error for a bad cluster URL names the fault, not the password."""
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({"COEDIT_REDIS_URL": "redis+cluster://app:hunter22@10.0.0.1"})
    assert "hunter22" not in str(refused.value)
    assert "COEDIT_REDIS_URL" in str(refused.value)


async def test_the_scheme_alone_picks_the_client_and_the_broker() -> None:
    """A cluster URL gets the cluster client and the sharded broker; any other the plain
    ones; settings accept both forms."""
    assert is_cluster_url("redis+cluster://h:1") and not is_cluster_url("redis://h:1/0")
    single, cluster = connect("redis://127.0.0.1:1/0"), connect("redis+cluster://127.0.0.1:1")
    assert type(single) is Redis and type(cluster) is RedisCluster
    assert isinstance(redis_broker("redis://127.0.0.1:1/0"), RedisBroker)
    assert isinstance(redis_broker("redis+cluster://127.0.0.1:1"), RedisClusterBroker)
    url = "redis+cluster://127.0.0.1:7000,127.0.0.1:7001"
    assert Settings.from_env({"COEDIT_REDIS_URL": url}).redis_url == url
    await single.aclose()
    await cluster.aclose()
