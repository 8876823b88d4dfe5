"""Per-user sliding-window rate limit shared by every adapter.

One person pasting a script into the bot must not starve everyone else of the two CPU cores.
The limiter is synchronous and O(1) amortised per call; idle users are forgotten so memory stays
bounded however many people ever talked to the bot.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

__all__ = ["RateLimiter"]


class RateLimiter:
    """Allow at most ``per_minute`` events per key in any 60-second window."""

    def __init__(self, per_minute: int, *, window: float = 60.0,
                 clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be >= 1")
        self.per_minute = per_minute
        self.window = window
        self._clock = clock
        self._max_keys = max_keys
        self._hits: dict[str, deque[float]] = {}

    def hit(self, key: str) -> float | None:
        """Record an event for ``key``; None if allowed, else seconds until the next is allowed.

        A refused event is not recorded, so someone who waits the returned time gets through.
        """
        now = self._clock()
        q = self._hits.get(key)
        if q is None:
            if len(self._hits) >= self._max_keys:
                self._prune(now)
            q = self._hits[key] = deque()
        cutoff = now - self.window
        while q and q[0] <= cutoff:
            q.popleft()
        if len(q) >= self.per_minute:
            return max(0.0, q[0] + self.window - now)
        q.append(now)
        return None

    def reset(self, key: str) -> None:
        self._hits.pop(key, None)

    def _prune(self, now: float) -> None:
        cutoff = now - self.window
        for k in [k for k, q in self._hits.items() if not q or q[-1] <= cutoff]:
            del self._hits[k]
        if len(self._hits) >= self._max_keys:  # everyone is active: drop the oldest half
            oldest = sorted(self._hits, key=lambda k: self._hits[k][-1])
            for k in oldest[: len(oldest) // 2]:
                del self._hits[k]
