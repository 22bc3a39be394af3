"""Counting hits per key in fixed windows, the same way on one node or across a cluster.

HTTP rate limits (per caller) and the live notification throttle (per addressee) both ask
one question: "may this key have one more this minute, and when does its window renew?".
A window starts with a key's first hit and lasts ``window_ms``; every hit counts, refused
ones too, so a client that keeps knocking does not shorten its wait. Fixed windows let a
caller spend its whole allowance at the end of one window and again at the start of the
next (twice the limit within a moment), which is acceptable for limits meant to stop floods,
not to shape traffic; in exchange a hit costs one counter and one round trip.

:class:`MemoryWindows` serves one process (the embedded default);
``channels/redis_limits.py`` keeps the counters in Redis so every node sees the same counts.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["MemoryWindows", "Verdict", "WindowCounter"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """One hit's outcome: ``count`` hits so far in the key's window, which renews in
    ``reset_ms``."""

    limit: int
    count: int
    reset_ms: int

    @property
    def allowed(self) -> bool:
        return self.count <= self.limit

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)


class WindowCounter(ABC):
    """Hit counters per key, each in its own fixed window."""

    async def hit(self, key: str, *, limit: int, window_ms: int) -> Verdict:
        (verdict,) = await self.hit_many([key], limit=limit, window_ms=window_ms)
        return verdict

    @abstractmethod
    async def hit_many(
        self, keys: Sequence[str], *, limit: int, window_ms: int
    ) -> list[Verdict]:
        """Count one hit for each of ``keys`` (a key may repeat), in order; their verdicts."""

    @abstractmethod
    async def stop(self) -> None:
        """Release what the counter holds (a connection)."""


class MemoryWindows(WindowCounter):
    """Counters in this process. Windows that ended are swept now and then, so keys that
    come once (anonymous callers' addresses) do not pile up."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[int, float]] = {}  # key -> (count, ends at)
        self._next_sweep = 0.0

    async def hit_many(
        self, keys: Sequence[str], *, limit: int, window_ms: int
    ) -> list[Verdict]:
        return [self.hit_now(key, limit=limit, window_ms=window_ms) for key in keys]

    def hit_now(self, key: str, *, limit: int, window_ms: int) -> Verdict:
        """:meth:`hit` without awaiting: memory never makes anyone wait."""
        now = time.monotonic()
        if now >= self._next_sweep:
            self._sweep(now)
            self._next_sweep = now + window_ms / 1000
        count, ends = self._windows.get(key, (0, 0.0))
        if now >= ends:
            count, ends = 0, now + window_ms / 1000
        count += 1
        self._windows[key] = (count, ends)
        return Verdict(limit, count, max(1, round((ends - now) * 1000)))

    async def stop(self) -> None:
        self._windows.clear()

    def _sweep(self, now: float) -> None:
        self._windows = {k: w for k, w in self._windows.items() if w[1] > now}
