"""Per-install secrets, one per purpose, that every replica of one deployment agrees on.

Why: the web page's CSRF tokens and Kakao's "삭제할게요" confirmation are HMACs that one
process issues and another may check — behind a reverse proxy the next request of the same
person often lands on another replica. A key file beside each replica's database would differ
per replica, so with ``SECRET_KEY`` set (the same value everywhere) each purpose gets
``HMAC(SECRET_KEY, purpose)``. Without it (one process, the default) the key file beside the
database is used as before, so nothing changes for a single SQLite install. Keys are derived
per purpose so that a token minted for one use can never pass as another.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from pathlib import Path

from bot.engine import load_pseudonym_key
from bot.settings import Settings

__all__ = ["SignedTokens", "install_key"]


def install_key(settings: Settings, purpose: str, fallback: Path | None = None) -> bytes:
    """The key for ``purpose``: derived from ``SECRET_KEY`` when set, else from the key file
    ``fallback`` (default: the pseudonym key beside the database)."""
    raw = settings.secret_key
    secret = raw.get_secret_value() if hasattr(raw, "get_secret_value") else raw
    if secret:
        return hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).hexdigest().encode()
    base = load_pseudonym_key(fallback or settings.resolved_pseudonym_key_path)
    if fallback is not None:
        return base  # a purpose-specific file already (the web CSRF key): keep its tokens valid
    return hmac.new(base, purpose.encode(), hashlib.sha256).hexdigest().encode()


class SignedTokens:
    """Short-lived tokens bound to one user: ``<issued>-<mac>``, checked without any state.

    Any replica holding the same key can check a token another one issued, which is the point:
    no shared table, nothing to clean up, and a token for one user is useless for another.
    """

    def __init__(self, key: bytes, ttl_s: float, *,
                 clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self.ttl_s = ttl_s
        self.clock = clock  # wall time: replicas share no monotonic clock

    def _mac(self, user_id: str, issued: int) -> str:
        msg = f"{user_id}\x1f{issued}".encode()
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()[:24]

    def issue(self, user_id: str) -> str:
        issued = int(self.clock())
        return f"{issued}-{self._mac(user_id, issued)}"  # [0-9a-f-]: a Kakao extra value

    def check(self, user_id: str, token: str) -> bool:
        """True for a token issued to ``user_id`` by a process with this key, not expired."""
        issued_s, _, mac = token.partition("-")
        if not issued_s.isdigit() or not mac:
            return False
        issued = int(issued_s)
        age = self.clock() - issued
        if not (-5 <= age <= self.ttl_s):  # a few seconds of clock skew between replicas
            return False
        return hmac.compare_digest(mac, self._mac(user_id, issued))
