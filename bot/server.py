"""One aiohttp app for everything moodtune serves over HTTP, and ``serve`` to run it.

    GET  /                 the chat page (issues the mt_session cookie)
    GET  /static/*         its assets (bot/web/static/)
    *    /api/*            the page's JSON API (bot.web.api)
    *    /admin*           the admin dashboard (bot.web.admin)
    POST /kakao/skill      the Kakao skill (when KAKAO_ENABLED)
    GET  /healthz, /metrics

Why one app: one port to open, one place for the security headers, the JSON error middleware
and the request metrics, and one engine behind every door. Every response carries a strict
CSP (no inline script or style anywhere, so an injected tag is inert) plus nosniff,
no-referrer and DENY framing.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.engine import Recommender
from bot.kakao.app import (
    SKILL_PATH,
    add_health_routes,
    add_skill,
    json_error,
    observe_middleware,
    runner_options,
)
from bot.kakao.skill import ANSWER_DEADLINE_S
from bot.settings import Settings
from bot.web.admin import setup_admin
from bot.web.api import add_api_routes
from bot.web.session import CsrfError, Sessions, check_origin

log = logging.getLogger("moodtune.web")

__all__ = ["CSP", "SECURITY_HEADERS", "STATIC_DIR", "create_app", "listen_addresses", "serve"]

STATIC_DIR = Path(__file__).resolve().parent / "web" / "static"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
#: Static assets change with a deploy, not within a visit: a short cache, revalidated after.
STATIC_CACHE = "public, max-age=300"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SESSIONS_KEY: web.AppKey[Sessions] = web.AppKey("moodtune_web_sessions", Sessions)
#: Socket addresses ``(host, port)`` bound only for Kakao (KAKAO_HOST:KAKAO_PORT when it differs
#: from the web address); filled by :func:`serve` once the sockets exist (a port of 0 is only
#: known then).
KAKAO_ONLY: web.AppKey[set[tuple[str, int]]] = web.AppKey("moodtune_kakao_only", set)
#: What the Kakao-only listener answers: the skill, and the probes an operator points at it.
KAKAO_LISTENER_PATHS = frozenset({SKILL_PATH, "/healthz", "/metrics"})

_PLACEHOLDER = """<!doctype html>
<html lang="ko"><head><meta charset="utf-8"><title>moodtune</title></head>
<body><h1>moodtune 🎧</h1><p>The chat page (bot/web/static/index.html) is not installed.
The JSON API is at /api/chat.</p></body></html>
"""


def _adapter(route: str) -> str:
    """The metrics label of a route template: which door the request came through."""
    if route.startswith("/kakao"):
        return "kakao"
    if route.startswith(("/admin", "/api/admin")):
        return "admin"
    return "web"


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every response, errors and static files included, gets the headers."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.path.startswith("/static/") and response.status == 200:
        response.headers.setdefault("Cache-Control", STATIC_CACHE)


@web.middleware
async def _listener_guard(request: web.Request, handler: Any) -> web.StreamResponse:
    """On the Kakao-only port, answer only the skill and the probes.

    Why: operators open KAKAO_PORT to the internet for Kakao's servers while the web chat and
    the admin dashboard may be meant for an internal network on WEB_PORT; one app serves both
    listeners (one engine, one skill state), so the split is made here, by the local address.
    """
    kakao_only = request.app[KAKAO_ONLY]
    if kakao_only and request.path not in KAKAO_LISTENER_PATHS:
        sock = request.transport.get_extra_info("sockname") if request.transport else None
        if isinstance(sock, tuple) and tuple(sock[:2]) in kakao_only:
            return json_error(404, "not served on the Kakao skill port (the web chat and admin "
                                   "are on WEB_PORT)", code="kakao_port")
    return await handler(request)


@web.middleware
async def _origin_guard(request: web.Request, handler: Any) -> web.StreamResponse:
    """Refuse any state-changing request sent from another site (``Origin`` not ours).

    The Kakao skill is exempt: Kakao's servers call it, with their own secret header.
    """
    if request.method not in _SAFE_METHODS and request.path != SKILL_PATH:
        try:
            check_origin(request)
        except CsrfError as exc:
            return json_error(403, exc.message, code=exc.code)
    return await handler(request)


async def index_handler(request: web.Request) -> web.StreamResponse:
    """GET / — the chat page, with a session cookie for a browser that has none."""
    sessions: Sessions = request.app[SESSIONS_KEY]
    page = STATIC_DIR / "index.html"
    try:
        html = await asyncio.get_running_loop().run_in_executor(None, page.read_bytes)
    except OSError:
        html = _PLACEHOLDER.encode("utf-8")
    resp = web.Response(body=html, content_type="text/html", charset="utf-8",
                        headers={"Cache-Control": "no-cache"})
    sid, fresh = sessions.current(request)
    if fresh:
        sessions.set_cookie(resp, sid)
    return resp


def create_app(recommender: Recommender, settings: Settings | None = None, *,
               deadline_s: float = ANSWER_DEADLINE_S) -> web.Application:
    """The whole server: chat page, static assets, JSON API, admin, Kakao skill, health.

    The Kakao skill routes are added when ``KAKAO_ENABLED``; ``deadline_s`` is its answer
    deadline without a callback URL (tests shorten it).
    """
    settings = settings or recommender.settings
    app = web.Application(client_max_size=settings.kakao_max_body_bytes,
                          middlewares=[observe_middleware(recommender.metrics, _adapter),
                                       _listener_guard, _origin_guard])
    app[KAKAO_ONLY] = set()
    app.on_response_prepare.append(_security_headers)
    sessions = app[SESSIONS_KEY] = Sessions(settings)
    app.router.add_get("/", index_handler)
    if STATIC_DIR.is_dir():
        app.router.add_static("/static/", STATIC_DIR, follow_symlinks=False)
    add_api_routes(app, recommender, settings, sessions)
    add_health_routes(app, recommender, settings)
    if settings.kakao_enabled:
        add_skill(app, recommender, settings, deadline_s=deadline_s)
    setup_admin(app, recommender, settings)
    return app


def listen_addresses(settings: Settings) -> list[tuple[str, int]]:
    """Where ``serve`` listens: WEB_HOST:WEB_PORT, plus KAKAO_HOST:KAKAO_PORT when Kakao is on
    and that is another address (existing Open Builder skill URLs keep working)."""
    addrs = [(settings.web_host, settings.web_port)]
    kakao = (settings.kakao_host, settings.kakao_port)
    if settings.kakao_enabled and kakao != addrs[0]:
        addrs.append(kakao)
    return addrs


def _display_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


async def serve(recommender: Recommender, settings: Settings, *,
                started: asyncio.Event | None = None) -> None:
    """Run the app on :func:`listen_addresses` until cancelled; print the chat page's URL.

    ``handler_cancellation``: a browser or Kakao that hangs up cancels its handler, and the
    engine work with it, so an abandoned request stops holding an engine slot.
    """
    app = create_app(recommender, settings)
    runner = web.AppRunner(app, handler_cancellation=True, **runner_options(settings))
    await runner.setup()
    try:
        (web_host, web_port), *kakao_only = listen_addresses(settings)
        await web.TCPSite(runner, web_host, web_port).start()
        web_bound = set(runner.addresses)
        for host, port in kakao_only:
            await web.TCPSite(runner, host, port).start()
        app[KAKAO_ONLY].update(tuple(a[:2]) for a in runner.addresses
                               if isinstance(a, tuple) and a not in web_bound)
        bound = [a for a in runner.addresses if isinstance(a, tuple)]
        port = bound[0][1] if bound else settings.web_port
        print(f"moodtune web chat: {_display_url(settings.web_host, port)}", flush=True)
        if settings.kakao_enabled:
            print(f"moodtune kakao skill: POST {SKILL_PATH} on "
                  + ", ".join(f"{a[0]}:{a[1]}" for a in bound), file=sys.stderr, flush=True)
        log.info("web server listening on %s", ", ".join(f"{a[0]}:{a[1]}" for a in bound))
        if settings.resolved_shared_state and settings.secret_key is None:
            log.warning("SHARED_STATE is on but SECRET_KEY is unset: web CSRF tokens and Kakao "
                        "delete confirmations issued by this replica will be refused by the "
                        "others; set the same SECRET_KEY on every replica")
        if started is not None:
            started.set()
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
