"""Per-user in-memory state, bounded by count and by age.

Why one structure: a chat bot's callers choose their user ids (a Kakao skill without a secret
takes whatever ``user.id`` arrives), so anything kept per id is an unbounded-memory hole unless
it is capped. Every piece of per-user memory the engine keeps (recent songs for no-repeat, the
conversation thread) lives in one :class:`UserStateCache`: least-recently-used ids are evicted
past ``max_users`` and idle ones expire after ``ttl_s``. The store remains the durable copy;
this is only the fast path and the fallback when the database is down.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["UserState", "UserStateCache"]


@dataclass(slots=True)
class UserState:
    """What the engine remembers about one user between messages.

    ``recent`` holds the song ids of the last few answers (no-repeat); ``thread`` is the
    conversation state (the last request and answer) that refinements build on.
    """

    recent: list[tuple[str, ...]] = field(default_factory=list)
    thread: Any = None
    touched: float = 0.0


class UserStateCache:
    """An LRU map ``user_id → UserState`` with a size cap and an idle time-to-live.

    O(1) per access (``OrderedDict``); expired entries are dropped lazily from the cold end on
    each access, so there is no sweeper task to manage. Not thread-safe: the engine touches it
    only from the event loop.
    """

    def __init__(self, max_users: int = 100_000, ttl_s: float = 6 * 3600.0, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_users < 1:
            raise ValueError("max_users must be >= 1")
        if ttl_s <= 0:
            raise ValueError("ttl_s must be > 0")
        self.max_users = max_users
        self.ttl_s = ttl_s
        self._clock = clock
        self._d: OrderedDict[str, UserState] = OrderedDict()
        self.evicted = 0  # by the cap (the TTL is the expected way out)

    def __len__(self) -> int:
        return len(self._d)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._d

    def _expire(self, now: float) -> None:
        cutoff = now - self.ttl_s
        while self._d:
            user_id, state = next(iter(self._d.items()))
            if state.touched > cutoff:
                break
            del self._d[user_id]

    def peek(self, user_id: str) -> UserState | None:
        """The state if present and fresh, without creating one (and without refreshing it)."""
        now = self._clock()
        self._expire(now)
        return self._d.get(user_id)

    def get(self, user_id: str) -> UserState:
        """The user's state, created empty if absent; marks it most recently used."""
        now = self._clock()
        self._expire(now)
        state = self._d.get(user_id)
        if state is None:
            state = self._d[user_id] = UserState()
            while len(self._d) > self.max_users:
                self._d.popitem(last=False)
                self.evicted += 1
        else:
            self._d.move_to_end(user_id)
        state.touched = now
        return state

    def pop(self, user_id: str) -> UserState | None:
        """Forget a user entirely (``/forget-me``)."""
        return self._d.pop(user_id, None)

