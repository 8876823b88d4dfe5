"""Anonymous web sessions and CSRF tokens for the chat page.

Why a cookie at all: the engine keys conversation threads, no-repeat lists, history and
deletion by user id, and a browser has none. A random 128-bit id in an HttpOnly cookie gives
one without accounts; the engine sees ``web:<id>``. Why CSRF on top of SameSite=Lax: older
browsers ignore SameSite, and a cross-site form could otherwise make someone's session post
chat or delete their data. The token is an HMAC of the session id under a per-install key
kept beside the database (like the log pseudonym key), so no server-side session table is
needed and tokens survive restarts.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from bot.keys import install_key
from bot.settings import Settings

__all__ = [
    "COOKIE_NAME",
    "CSRF_HEADER",
    "SESSION_MAX_AGE_S",
    "CsrfError",
    "Sessions",
    "web_key_path",
]

COOKIE_NAME = "mt_session"
CSRF_HEADER = "X-CSRF-Token"
#: How long a browser keeps its anonymous session (and so its history): 30 days.
SESSION_MAX_AGE_S = 30 * 24 * 3600
_SID = re.compile(r"[0-9a-f]{32}")


class CsrfError(Exception):
    """A state-changing request that does not prove it came from our own page."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def web_key_path(settings: Settings) -> Path:
    """``<database>.web-key``: the CSRF key, beside the database like the pseudonym key."""
    db = settings.resolved_database_path
    return db.with_name(db.name + ".web-key")


class Sessions:
    """Issue, read and rotate ``mt_session``; mint and check its CSRF token."""

    def __init__(self, settings: Settings, key: bytes | None = None) -> None:
        self.secure = settings.web_cookie_secure
        self._key = key if key is not None else install_key(settings, "web-csrf",
                                                               web_key_path(settings))

    # -- the cookie ----------------------------------------------------------------------
    @staticmethod
    def new_id() -> str:
        return secrets.token_hex(16)  # 128 random bits

    @staticmethod
    def read(request: web.Request) -> str | None:
        """The request's session id, or None when absent or not one we could have issued."""
        sid = request.cookies.get(COOKIE_NAME, "")
        return sid if _SID.fullmatch(sid) else None

    def set_cookie(self, response: web.StreamResponse, sid: str) -> None:
        response.set_cookie(COOKIE_NAME, sid, max_age=SESSION_MAX_AGE_S, path="/",
                            httponly=True, samesite="Lax", secure=self.secure)

    def current(self, request: web.Request) -> tuple[str, bool]:
        """``(session id, fresh)``: the request's session, or a new id (``fresh`` True) that
        the caller must send with :meth:`set_cookie`."""
        sid = self.read(request)
        return (sid, False) if sid is not None else (self.new_id(), True)

    @staticmethod
    def user_id(sid: str) -> str:
        """The engine's user id for a session (its own namespace next to Discord/Kakao ids)."""
        return f"web:{sid}"

    # -- CSRF ----------------------------------------------------------------------------
    def csrf_token(self, sid: str) -> str:
        return hmac.new(self._key, sid.encode("ascii"), hashlib.sha256).hexdigest()

    def check_post(self, request: web.Request) -> str:
        """The session id of a state-changing request that passed every check, else raise.

        Checks, in order: the Origin (when sent) is this server; there is a session; the
        ``X-CSRF-Token`` header matches it; the body is declared JSON (a cross-site HTML form
        cannot send that without a CORS preflight we never grant).
        """
        check_origin(request)
        sid = self.read(request)
        if sid is None:
            raise CsrfError("no_session", "세션이 없어요. 페이지를 새로고침해 주세요. "
                                          "(no session cookie; reload the page)")
        given = request.headers.get(CSRF_HEADER, "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(given, self.csrf_token(sid).encode("ascii")):
            raise CsrfError("csrf", "보안 토큰이 맞지 않아요. 페이지를 새로고침해 주세요. "
                                    f"(missing or wrong {CSRF_HEADER} header; reload the page)")
        if request.content_type != "application/json":
            raise CsrfError("content_type", "요청 형식이 올바르지 않아요. "
                                            "(the body must be JSON: Content-Type: application/json)")
        return sid


def check_origin(request: web.Request) -> None:
    """Refuse a request another site made: ``Sec-Fetch-Site`` cross-site/same-site, or an
    ``Origin`` header that is present and not this server.

    Compared on host[:port] only: behind a TLS proxy the page's origin is https while this
    server sees http, and the Host header is what the browser addressed either way. ``Origin:
    null`` is what a browser sends for a same-origin POST from a page whose Referrer-Policy is
    no-referrer (ours), and also what a sandboxed foreign frame sends; it is accepted only with
    ``Sec-Fetch-Site: same-origin``, which page scripts cannot set.
    """
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site in ("cross-site", "same-site"):
        raise CsrfError("origin", "다른 사이트에서 보낸 요청은 받을 수 없어요. "
                                  "(cross-origin request refused)")
    origin = request.headers.get("Origin")
    if origin is None or (origin == "null" and fetch_site == "same-origin"):
        return
    try:
        parts = urlsplit(origin)
        scheme, netloc = parts.scheme, parts.netloc.lower()
    except ValueError:  # garbage is refused like a foreign origin
        scheme, netloc = "", ""
    if scheme not in ("http", "https") or not netloc or netloc != request.host.lower():
        raise CsrfError("origin", "다른 사이트에서 보낸 요청은 받을 수 없어요. "
                                  "(cross-origin request refused)")
