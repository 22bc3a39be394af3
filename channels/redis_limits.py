"""Hit counters in Redis, shared by every node of a cluster (see ``channels/limits.py``).

A key's window is a Redis counter that expires when the window ends: ``SET k 0 PX w NX``
starts a window if none runs, ``INCR`` counts the hit and ``PTTL`` says when the window
renews. Every key of a call goes in one pipeline, so a request costs one round trip.

When Redis cannot be reached the counter does not fail its caller: a limiter that is down
must not take the API down with it (``/readyz`` already reports the broker). It counts on
this node alone instead (each node then allows up to the limit, so the cluster as a whole
allows more for a while), says so in a warning at most once a minute and through
``on_fallback`` (a metric), and tries Redis again a second later.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from channels.limits import MemoryWindows, Verdict, WindowCounter

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisWindows"]

log = logging.getLogger(__name__)


class RedisWindows(WindowCounter):
    """Keys ``{prefix}:limit:{key}``, each living as long as its window."""

    def __init__(
        self, client: Redis, *, prefix: str, on_fallback: Callable[[], None] | None = None,
        retry_after: float = 1.0, warn_every: float = 60.0,
    ) -> None:
        self._r = client
        self._prefix = prefix
        self._on_fallback = on_fallback
        self._retry_after = retry_after
        self._warn_every = warn_every
        self._local = MemoryWindows()
        self._redis_again_at = 0.0  # monotonic time before which Redis is not asked
        self._warned_at: float | None = None

    @classmethod
    def from_url(
        cls, url: str, *, prefix: str, on_fallback: Callable[[], None] | None = None
    ) -> RedisWindows:
        from redis.asyncio import Redis

        # Short timeouts: every HTTP request waits for this answer, and an unreachable
        # Redis must cost a request half a second at worst, then nothing while it is down.
        return cls(Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5),
                   prefix=prefix, on_fallback=on_fallback)

    def _name(self, key: str) -> str:
        return f"{self._prefix}:limit:{key}"

    async def stop(self) -> None:
        await self._r.aclose()

    async def hit_many(
        self, keys: Sequence[str], *, limit: int, window_ms: int
    ) -> list[Verdict]:
        if not keys:
            return []
        if time.monotonic() < self._redis_again_at:
            return await self._local.hit_many(keys, limit=limit, window_ms=window_ms)
        try:
            async with self._r.pipeline(transaction=False) as pipe:
                for key in keys:
                    name = self._name(key)
                    pipe.set(name, 0, px=window_ms, nx=True)
                    pipe.incr(name)
                    pipe.pttl(name)
                replies = await pipe.execute()
            verdicts = []
            timeless = []
            for index, key in enumerate(keys):
                count, ttl = int(replies[3 * index + 1]), int(replies[3 * index + 2])
                if ttl < 0:
                    # The window ended between SET and INCR, and INCR began a counter that
                    # would never expire: give it its window.
                    timeless.append(self._name(key))
                    ttl = window_ms
                verdicts.append(Verdict(limit, count, max(1, ttl)))
            if timeless:
                async with self._r.pipeline(transaction=False) as pipe:
                    for name in timeless:
                        pipe.pexpire(name, window_ms)
                    await pipe.execute()
            return verdicts
        except (RedisError, OSError) as exc:
            self._fall_back(exc)
            return await self._local.hit_many(keys, limit=limit, window_ms=window_ms)

    def _fall_back(self, exc: BaseException) -> None:
        now = time.monotonic()
        self._redis_again_at = now + self._retry_after
        if self._on_fallback is not None:
            self._on_fallback()
        if self._warned_at is None or now - self._warned_at >= self._warn_every:
            self._warned_at = now
            log.warning("rate limits: Redis is unreachable (%s: %.200s); counting on this "
                        "node alone until it answers", type(exc).__name__, exc)
