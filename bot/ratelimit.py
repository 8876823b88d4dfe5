"""Per-user sliding-window rate limit shared by every adapter.

One person pasting a script into the bot must not starve everyone else of the two CPU cores.
The limiter is synchronous and O(per_minute) per call; idle users are forgotten and the number
of keys is capped, so memory stays bounded (≈ 200 bytes a key) however many ids a caller
invents — ``benchmarks/memory.py`` sends a million.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger("moodtune.ratelimit")

__all__ = ["RateLimiter", "SharedRateLimiter", "adapter_limiters", "hit", "rate_limiter_for",
           "reset"]


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


class RateStore(Protocol):
    """What :class:`SharedRateLimiter` needs from a store (``bot.store_pg.PgStore`` has it)."""

    async def rate_hit(self, key: str, limit: int, window: float, now: float) -> float | None: ...
    async def rate_reset(self, key: str) -> None: ...
    async def rate_prune(self, before: float) -> int: ...


class SharedRateLimiter:
    """:class:`RateLimiter`'s sliding window kept in the database, so replicas share it.

    Two web/skill processes behind one PostgreSQL each with their own in-memory limiter would
    let a person through twice as often; here every admitted event is a ``rate_events`` row,
    checked and written atomically per key (see ``PgStore.rate_hit``). The same semantics as
    :meth:`RateLimiter.hit` — None or seconds to wait, a refusal is not recorded — but async.

    ``name`` namespaces the keys, so a message budget and a feedback budget for the same person
    stay apart in the one table. The clock is wall time (``time.time``): replicas on different
    machines share no monotonic clock. Rows of keys nobody hits again are pruned at most once
    per window per process. If the store fails, this process falls back to its own in-memory
    limiter rather than refusing everyone or admitting everyone.
    """

    def __init__(self, store: RateStore, per_minute: int, *, name: str = "messages",
                 window: float = 60.0, clock: Callable[[], float] = time.time) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be >= 1")
        self.store = store
        self.per_minute = per_minute
        self.window = window
        self.name = name
        self._clock = clock
        self._pruned_at = float("-inf")
        self._fallback = RateLimiter(per_minute, window=window, clock=clock)

    def _key(self, key: str) -> str:
        return f"{self.name}:{key}"

    async def hit(self, key: str) -> float | None:
        """Record an event for ``key``; None if allowed, else seconds until the next is allowed."""
        now = self._clock()
        try:
            if now - self._pruned_at >= self.window:
                self._pruned_at = now
                await self.store.rate_prune(now - self.window)
            return await self.store.rate_hit(self._key(key), self.per_minute, self.window, now)
        except Exception:
            log.warning("shared rate limit unavailable; limiting this process alone",
                        exc_info=True)
            return self._fallback.hit(key)

    async def reset(self, key: str) -> None:
        """Forget ``key``'s events everywhere (and in this process's fallback)."""
        self._fallback.reset(key)
        try:
            await self.store.rate_reset(self._key(key))
        except Exception:
            log.warning("could not reset the shared rate limit", exc_info=True)


def rate_limiter_for(store: Any, per_minute: int, *, shared: bool, name: str = "messages",
                     window: float = 60.0) -> RateLimiter | SharedRateLimiter:
    """The limiter an adapter should use: shared through the store when replicas share it
    (``Settings.resolved_shared_state`` and a store with rate-limit methods, i.e. PostgreSQL),
    else the in-memory one — one SQLite process needs no round trip per request.

    ``per_minute`` events per ``window`` seconds (a once-only nonce is ``1`` per its lifetime).
    """
    if shared and store is not None and hasattr(store, "rate_hit"):
        return SharedRateLimiter(store, per_minute, name=name, window=window)
    return RateLimiter(per_minute, window=window)


def adapter_limiters(engine: Any, settings: Any, channel: str
                     ) -> tuple[RateLimiter | SharedRateLimiter, RateLimiter | SharedRateLimiter]:
    """``(messages, feedback)`` budgets for one adapter (``channel`` namespaces their keys).

    Shared through the engine's store when replicas share it (``SHARED_STATE``: one budget per
    person however the proxy spreads their requests); in memory for one SQLite process, where
    a database round trip per request would buy nothing. Feedback has its own budget, so
    tapping 👍 never costs a recommendation.
    """
    shared = settings.resolved_shared_state
    store = getattr(engine, "store", None)
    return (rate_limiter_for(store, settings.rate_limit_per_minute, shared=shared,
                             name=f"{channel}-messages"),
            rate_limiter_for(store, settings.feedback_rate_limit_per_minute, shared=shared,
                             name=f"{channel}-feedback"))


async def hit(limiter: RateLimiter | SharedRateLimiter, key: str) -> float | None:
    """``limiter.hit(key)`` for either kind: callers need not know which they were given."""
    wait = limiter.hit(key)
    return await wait if inspect.isawaitable(wait) else wait


async def reset(limiter: RateLimiter | SharedRateLimiter, key: str) -> None:
    """``limiter.reset(key)`` for either kind."""
    done = limiter.reset(key)
    if inspect.isawaitable(done):
        await done
