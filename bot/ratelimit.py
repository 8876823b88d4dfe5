"""Per-user sliding-window rate limit shared by every adapter.

One person pasting a script into the bot must not starve everyone else of the two CPU cores.
The limiter is synchronous and O(per_minute) per call; idle users are forgotten and the number
of keys is capped, so memory stays bounded (≈ 200 bytes a key) however many ids a caller
invents — ``benchmarks/memory.py`` sends a million.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["RateLimiter"]


class RateLimiter:
    """Allow at most ``per_minute`` events per key in any 60-second window."""

    def __init__(self, per_minute: int, *, window: float = 60.0,
                 clock: Callable[[], float] = time.monotonic, max_keys: int = 20_000) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be >= 1")
        self.per_minute = per_minute
        self.window = window
        self._clock = clock
        self._max_keys = max_keys
        # A plain list per key, not a deque: an empty deque alone costs ~600 bytes.
        self._hits: dict[str, list[float]] = {}

    def hit(self, key: str) -> float | None:
        """Record an event for ``key``; None if allowed, else seconds until the next is allowed.

        A refused event is not recorded, so someone who waits the returned time gets through.
        """
        now = self._clock()
        q = self._hits.get(key)
        if q is None:
            if len(self._hits) >= self._max_keys:
                self._prune(now)
            q = self._hits[key] = []
        cutoff = now - self.window
        if q and q[0] <= cutoff:
            q[:] = [t for t in q if t > cutoff]
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
