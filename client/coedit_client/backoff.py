"""How long to wait before the next attempt: exponential growth with full jitter, so a node's
thousand clients that lost it at once do not all come back in the same millisecond."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass
class Backoff:
    initial: float = 0.1
    maximum: float = 5.0
    multiplier: float = 2.0
    _attempt: int = field(default=0, init=False)
    _random: random.Random = field(default_factory=random.Random, init=False, repr=False)

    def next_delay(self) -> float:
        """A delay drawn uniformly from ``[0, min(maximum, initial * multiplier**n)]``."""
        ceiling = min(self.maximum, self.initial * self.multiplier ** self._attempt)
        self._attempt += 1
        return self._random.uniform(0, ceiling)

    def reset(self) -> None:
        self._attempt = 0
