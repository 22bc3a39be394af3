"""Per-connection request rate: a token bucket, so short bursts pass and floods do not."""

from __future__ import annotations

import time

__all__ = ["TokenBucket"]


class TokenBucket:
    """``rate`` requests a second with bursts of twice that; rate 0 means unlimited."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.capacity = 2.0 * rate
        self.tokens = self.capacity
        self.stamp = time.monotonic()

    def take(self) -> float:
        """0 when a request may go ahead, else the seconds until one may."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate
