"""Hit counters in Redis, shared by every node of a cluster (see ``channels/limits.py``).

A key's window is a Redis counter that expires when the window ends: a small script counts
the hit (``INCR``), gives a counter it just began its lifetime (``PEXPIRE``) and says when the
window renews (``PTTL``). Every key of a call goes to one script call: a request costs one
round trip, and a burst of notifications too. On a Redis Cluster a script may only touch keys
of one hash slot: the keys of a call are grouped by slot and each group is one script call
(all sent at once), so a single key (an HTTP request) is still one round trip. A script
rather than a pipeline of three commands, because redis-py spends more CPU per command than
Redis does, and this runs on every HTTP request.

When Redis cannot be reached the counter does not fail its caller: a limiter that is down
must not take the API down with it (``/readyz`` already reports the broker). It counts on
this node alone instead (each node then allows up to the limit, so the cluster as a whole
allows more for a while), says so in a warning at most once a minute and through
``on_fallback`` (a metric), and tries Redis again a second later.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from channels.limits import MemoryWindows, Verdict, WindowCounter
from channels.redis_client import connect, is_cluster

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

__all__ = ["RedisWindows"]

log = logging.getLogger(__name__)

# KEYS: counters; ARGV[1]: the window in ms. Returns count and ms left for each key, in order.
_HIT = """
local out = {}
for i, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  local left = redis.call('PTTL', key)
  if left < 0 then
    redis.call('PEXPIRE', key, ARGV[1])
    left = tonumber(ARGV[1])
  end
  out[2 * i - 1] = count
  out[2 * i] = left
end
return out
"""


class RedisWindows(WindowCounter):
    """Keys ``{prefix}:limit:{key}``, each living as long as its window."""

    def __init__(
        self, client: Redis | RedisCluster, *, prefix: str,
        on_fallback: Callable[[], None] | None = None, retry_after: float = 1.0,
        warn_every: float = 60.0,
    ) -> None:
        self._r = client
        self._prefix = prefix
        self._on_fallback = on_fallback
        self._retry_after = retry_after
        self._warn_every = warn_every
        self._hit = client.register_script(_HIT)
        self._cluster = is_cluster(client)
        self._local = MemoryWindows()
        self._redis_again_at = 0.0  # monotonic time before which Redis is not asked
        self._warned_at: float | None = None

    @classmethod
    def from_url(
        cls, url: str, *, prefix: str, on_fallback: Callable[[], None] | None = None
    ) -> RedisWindows:
        # Short timeouts: every HTTP request waits for this answer, and an unreachable
        # Redis must cost a request half a second at worst, then nothing while it is down.
        return cls(connect(url, socket_timeout=0.5, socket_connect_timeout=0.5),
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
            names = [self._name(k) for k in keys]
            replies = (await self._hit_by_slot(names, window_ms) if self._cluster
                       else await self._hit(keys=names, args=[window_ms]))
            return [Verdict(limit, int(replies[i]), max(1, int(replies[i + 1])))
                    for i in range(0, 2 * len(keys), 2)]
        except (RedisError, OSError) as exc:
            self._fall_back(exc)
            return await self._local.hit_many(keys, limit=limit, window_ms=window_ms)

    async def _hit_by_slot(self, names: list[str], window_ms: int) -> list[Any]:
        """The script once per hash slot, concurrently; replies back in the keys' order (a
        repeated key has one slot, so its hits still count up in order)."""
        slot_of = self._r.keyslot  # type: ignore[union-attr]
        groups: dict[int, list[int]] = {}
        for position, name in enumerate(names):
            groups.setdefault(slot_of(name), []).append(position)
        answers = await asyncio.gather(*(
            self._hit(keys=[names[p] for p in positions], args=[window_ms])
            for positions in groups.values()))
        replies: list[Any] = [0] * (2 * len(names))
        for positions, answer in zip(groups.values(), answers, strict=True):
            for n, position in enumerate(positions):
                replies[2 * position], replies[2 * position + 1] = answer[2 * n : 2 * n + 2]
        return replies

    def _fall_back(self, exc: BaseException) -> None:
        now = time.monotonic()
        self._redis_again_at = now + self._retry_after
        if self._on_fallback is not None:
            self._on_fallback()
        if self._warned_at is None or now - self._warned_at >= self._warn_every:
            self._warned_at = now
            log.warning("rate limits: Redis is unreachable (%s: %.200s); counting on this "
                        "node alone until it answers", type(exc).__name__, exc)
