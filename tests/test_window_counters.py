"""The hit counters behind HTTP rate limits and the notification throttle: one conformance
suite over memory, Redis and a Redis Cluster (where one call's keys span hash slots), and how
the Redis counter behaves when Redis goes away."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from channels.limits import MemoryWindows, WindowCounter
from channels.redis_client import connect
from channels.redis_limits import RedisWindows
from tests.redis_server import (
    RedisServer,
    private_redis_fixture,
    redis_cluster_url_fixture,
    redis_url_fixture,
)
from tests.support import TIMEOUT

__all__ = ["private_redis_fixture", "redis_cluster_url_fixture", "redis_url_fixture"]


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
async def counter(request: pytest.FixtureRequest) -> AsyncIterator[WindowCounter]:
    if request.param == "memory":
        yield MemoryWindows()
        return
    redis_url = request.getfixturevalue(
        "redis_cluster_url" if request.param == "redis-cluster" else "redis_url")
    prefix = f"coedit-test-{uuid.uuid4().hex[:10]}"
    fallbacks: list[str] = []
    windows = RedisWindows(connect(redis_url), prefix=prefix,
                           on_fallback=lambda: fallbacks.append("local"))
    try:
        yield windows
        assert fallbacks == [], "the counter fell back to counting locally"
    finally:
        await asyncio.wait_for(windows.stop(), TIMEOUT)
        cleaner = connect(redis_url)
        with contextlib.suppress(Exception):
            keys = [k async for k in cleaner.scan_iter(match=f"{prefix}:*")]
            for key in keys:  # one by one: a cluster's keys sit in many slots
                await asyncio.wait_for(cleaner.delete(key), TIMEOUT)
        await asyncio.wait_for(cleaner.aclose(), TIMEOUT)


async def test_hits_count_up_to_the_limit_and_past_it(counter: WindowCounter) -> None:
    """Each hit counts, refused ones too; remaining falls to 0 and the window's end is
    reported within its length."""
    verdicts = [await asyncio.wait_for(counter.hit("k", limit=3, window_ms=60_000), TIMEOUT)
                for _ in range(5)]
    assert [v.count for v in verdicts] == [1, 2, 3, 4, 5]
    assert [v.allowed for v in verdicts] == [True, True, True, False, False]
    assert [v.remaining for v in verdicts] == [2, 1, 0, 0, 0]
    assert all(0 < v.reset_ms <= 60_000 for v in verdicts)
    assert verdicts[-1].reset_ms <= verdicts[0].reset_ms


async def test_keys_count_apart_and_a_call_counts_its_keys_in_order(
    counter: WindowCounter
) -> None:
    """Several keys (one repeated) in one call: each key has its own count, in call order."""
    verdicts = await asyncio.wait_for(
        counter.hit_many(["a", "b", "a", "a"], limit=2, window_ms=60_000), TIMEOUT)
    assert [(v.count, v.allowed) for v in verdicts] == [(1, True), (1, True), (2, True),
                                                        (3, False)]
    many = [f"key-{n % 40}" for n in range(120)]  # many hash slots on a cluster
    verdicts = await asyncio.wait_for(
        counter.hit_many(many, limit=2, window_ms=60_000), TIMEOUT)
    assert [v.count for v in verdicts] == [1 + n // 40 for n in range(120)]
    assert await asyncio.wait_for(counter.hit_many([], limit=2, window_ms=1000), TIMEOUT) == []


async def test_a_window_renews_after_its_length(counter: WindowCounter) -> None:
    """Once the window that began with the first hit ended, counting starts over."""
    for _ in range(3):
        await asyncio.wait_for(counter.hit("k", limit=2, window_ms=300), TIMEOUT)
    await asyncio.sleep(0.45)
    verdict = await asyncio.wait_for(counter.hit("k", limit=2, window_ms=300), TIMEOUT)
    assert (verdict.count, verdict.allowed) == (1, True)


async def test_a_redis_counter_without_a_lifetime_gets_its_window(redis_url: str) -> None:
    """A counter left without expiry (written by hand here) is given one on the next hit,
    so nobody stays limited forever."""
    prefix = f"coedit-test-{uuid.uuid4().hex[:10]}"
    client = Redis.from_url(redis_url)
    windows = RedisWindows(Redis.from_url(redis_url), prefix=prefix)
    try:
        await client.set(f"{prefix}:limit:stuck", 99)
        verdict = await asyncio.wait_for(windows.hit("stuck", limit=5, window_ms=10_000),
                                         TIMEOUT)
        assert verdict.count == 100 and 0 < verdict.reset_ms <= 10_000
        assert 0 < await client.pttl(f"{prefix}:limit:stuck") <= 10_000
    finally:
        await client.delete(f"{prefix}:limit:stuck")
        await windows.stop()
        await client.aclose()


async def test_without_redis_the_node_counts_alone_and_returns_to_redis(
    private_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis down: hits are counted in memory (never an error), the fallback is reported
    once in the log and on every fallback through the callback; once Redis is back and the
    retry delay passed, Redis counts again."""
    fallbacks: list[int] = []
    windows = RedisWindows(Redis.from_url(private_redis.url, socket_timeout=0.5,
                                          socket_connect_timeout=0.5),
                           prefix="coedit-test", on_fallback=lambda: fallbacks.append(1),
                           retry_after=0.2)
    try:
        assert (await asyncio.wait_for(windows.hit("k", limit=9, window_ms=60_000),
                                       TIMEOUT)).count == 1
        await private_redis.astop()
        local = [await asyncio.wait_for(windows.hit("k", limit=9, window_ms=60_000), TIMEOUT)
                 for _ in range(3)]
        assert [v.count for v in local] == [1, 2, 3]
        assert len(fallbacks) == 1  # the next two did not even try Redis
        await asyncio.sleep(0.25)
        await asyncio.wait_for(windows.hit("k", limit=9, window_ms=60_000), TIMEOUT)
        assert len(fallbacks) == 2
        warnings = [r for r in caplog.records if "Redis is unreachable" in r.getMessage()]
        assert len(warnings) == 1
        await private_redis.astart()
        await asyncio.sleep(0.25)
        again = await asyncio.wait_for(windows.hit("k", limit=9, window_ms=60_000), TIMEOUT)
        assert again.count == 1  # a fresh Redis: its own count starts over
        assert len(fallbacks) == 2
    finally:
        await windows.stop()
