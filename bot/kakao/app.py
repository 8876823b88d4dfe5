"""The skill server's HTTP layer: routes, body reading, middleware, ``create_app`` and ``serve``.

    parse (400 on anything malformed, 408 on a body that never finishes, 413 on a huge one)
    → callback URL policy (400) → rate-limit → engine → render (validated) → JSON

Clients that misbehave at the transport level are the HTTP layer's job: a body is read under
``KAKAO_BODY_TIMEOUT_S``; idle connections and headers that never end are closed after three
times that; a client that hangs up mid-request is logged at DEBUG and counted as 499 (nginx's
"client closed request"), not as a server error. ``/metrics`` can require a bearer token.

The pieces are also added one by one to a larger app (``bot.server.create_app``, the web chat
and the skill on one port): ``add_skill``, ``add_health_routes`` and ``observe_middleware``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp
from aiohttp import web

from bot.engine import Recommender
from bot.kakao.callback import (
    REQUEST_DNS_TIMEOUT_S,
    CallbackRefusedError,
    CheckedResolver,
    check_callback_url,
    resolve_checked,
)
from bot.kakao.parse import SkillRequest, SkillRequestError, parse_skill_request
from bot.kakao.skill import ANSWER_DEADLINE_S, Skill
from bot.observability import Metrics
from bot.settings import Settings

log = logging.getLogger("moodtune.kakao")

__all__ = ["HEALTH_KEY", "SECRET_HEADER", "SKILL_KEY", "SKILL_PATH", "Health", "add_health_routes",
           "add_skill", "create_app", "json_error", "observe_middleware", "runner_options",
           "serve"]

SKILL_PATH = "/kakao/skill"
SECRET_HEADER = "X-Moodtune-Secret"
#: Status recorded for a request whose client disconnected before the answer (nginx's code).
CLIENT_CLOSED = 499

SKILL_KEY: web.AppKey[Skill] = web.AppKey("moodtune_kakao_skill", Skill)


class Health:
    """What ``/healthz`` and ``/metrics`` need, apart from any adapter: they serve the whole
    process (web chat, admin and skill alike), so they must not depend on Kakao being on."""

    def __init__(self, engine: Recommender, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.metrics = engine.metrics
        self.started = time.time()
        self.songs = engine.metrics.gauge("moodtune_index_songs", "Songs in the serving index.")


HEALTH_KEY: web.AppKey[Health] = web.AppKey("moodtune_health", Health)


class _HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _ClientGone(Exception):
    """The client hung up while we read its request."""


def json_error(status: int, message: str, headers: Mapping[str, str] | None = None,
               **extra: Any) -> web.Response:
    """Every error this server sends: ``{"error": message, ...}``, never an HTML page."""
    return web.json_response({"error": message, **extra}, status=status, headers=headers)




def _check_secret(request: web.Request, settings: Settings) -> None:
    if settings.kakao_secret is None:
        return
    expected = settings.kakao_secret.get_secret_value().encode("utf-8")
    given = request.headers.get(SECRET_HEADER, "").encode("utf-8", "surrogateescape")
    if not hmac.compare_digest(given, expected):
        raise _HTTPError(401, f"missing or wrong {SECRET_HEADER} header")


async def _read_json(request: web.Request, limit: int, timeout: float) -> object:
    if request.content_length is not None and request.content_length > limit:
        raise _HTTPError(413, f"request body is {request.content_length} bytes; "
                              f"the limit is {limit} (KAKAO_MAX_BODY_BYTES)")
    try:
        # read() stops at client_max_size even without Content-Length; the timeout stops a
        # client that sends headers and then trickles (or never sends) the body.
        raw = await asyncio.wait_for(request.read(), timeout)
    except web.HTTPRequestEntityTooLarge:
        raise _HTTPError(413, f"request body exceeds {limit} bytes (KAKAO_MAX_BODY_BYTES)"
                         ) from None
    except TimeoutError:
        raise _HTTPError(408, f"request body not received within {timeout:g} s "
                              "(KAKAO_BODY_TIMEOUT_S)") from None
    except (ConnectionError, aiohttp.ClientConnectionError) as exc:
        raise _ClientGone(type(exc).__name__) from None
    if not raw.strip():
        raise _HTTPError(400, "request body is empty; expected a Kakao SkillPayload JSON object")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, absurd nesting
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        raise _HTTPError(400, f"request body is not valid JSON ({reason})") from None


async def _check_callback(req: SkillRequest, settings: Settings) -> None:
    """The callback URL's policy, before any work: URL checks, then the name's addresses.

    A name that does not resolve in time is left to the delivery (which checks again and
    fails safe); a name that resolves to a forbidden address is refused now.
    """
    if req.callback_url is None:
        return
    target = check_callback_url(req.callback_url, settings)
    if target.ip is not None or settings.kakao_callback_allow_insecure:
        return
    try:
        await asyncio.wait_for(resolve_checked(target.host, target.port, settings),
                               REQUEST_DNS_TIMEOUT_S)
    except (OSError, TimeoutError) as exc:
        log.info("callback host %s did not resolve now (%s); the delivery will check again",
                 target.host, type(exc).__name__)


async def skill_handler(request: web.Request) -> web.Response:
    """POST /kakao/skill — read, parse, check the callback URL, then let the skill answer."""
    skill = request.app[SKILL_KEY]
    settings = skill.settings
    try:
        _check_secret(request, settings)
        body = await _read_json(request, settings.kakao_max_body_bytes,
                                settings.kakao_body_timeout_s)
        req = parse_skill_request(body)
        await _check_callback(req, settings)
    except _HTTPError as exc:
        resp = json_error(exc.status, exc.message)
        if exc.status in (408, 413):
            resp.force_close()  # the rest of the body is not worth waiting for
        return resp
    except SkillRequestError as exc:
        return json_error(400, str(exc))
    except CallbackRefusedError as exc:
        skill.callbacks.inc(outcome="refused")
        log.warning("callback URL refused: %s", exc)
        return json_error(400, str(exc))
    return web.json_response(await skill.handle(req))


async def healthz_handler(request: web.Request) -> web.Response:
    """GET /healthz — the engine's health (songs served, database writable) plus uptime.

    503 when degraded, so a load balancer stops sending traffic to a replica whose disk is
    read-only even though it still answers reads.
    """
    state = request.app[HEALTH_KEY]
    health = await state.engine.health()
    state.songs.set(health.get("songs", 0))
    body = {**health, "uptime_s": round(time.time() - state.started, 1)}
    return web.json_response(body, status=200 if health.get("status") == "ok" else 503)


def _metrics_allowed(request: web.Request, settings: Settings) -> bool:
    if settings.metrics_token is None:
        return True
    expected = b"Bearer " + settings.metrics_token.get_secret_value().encode("utf-8")
    given = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
    return hmac.compare_digest(given, expected)


async def metrics_handler(request: web.Request) -> web.Response:
    """GET /metrics — Prometheus text format (the engine's registry, Kakao's metrics in it)."""
    state = request.app[HEALTH_KEY]
    if not _metrics_allowed(request, state.settings):
        return json_error(401, "missing or wrong 'Authorization: Bearer <token>' (METRICS_TOKEN)",
                      headers={"WWW-Authenticate": 'Bearer realm="moodtune-metrics"'})
    with contextlib.suppress(Exception):
        state.songs.set(len(state.engine.index))
    return web.Response(body=state.metrics.render().encode("utf-8"),
                        headers={"Content-Type": Metrics.CONTENT_TYPE})


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def observe_middleware(metrics: Metrics, adapter: str | Callable[[str], str] = "kakao") -> Any:
    """Counting, timing and JSON-errors middleware; ``adapter`` labels the series (a function
    of the route template when one app serves several adapters)."""
    adapter_of = adapter if callable(adapter) else (lambda _route, name=adapter: name)
    requests = metrics.counter("moodtune_http_requests_total",
                               "HTTP requests by adapter, route, method and status "
                               "(499: the client closed the connection first).",
                               ["adapter", "route", "method", "status"])
    latency = metrics.histogram("moodtune_http_request_seconds",
                                "HTTP request latency by adapter and route.",
                                ["adapter", "route"])

    @web.middleware
    async def observe(request: web.Request, handler: Any) -> web.StreamResponse:
        """Count and time every request; turn stray errors into JSON, never a bare 500 page."""
        t0 = time.perf_counter()
        resource = request.match_info.route.resource
        # Route templates, not raw paths: a scanner must not mint one series per URL.
        route = resource.canonical if resource is not None else "unmatched"
        status = 500
        try:
            resp = await handler(request)
            status = resp.status
            return resp
        except web.HTTPException as exc:
            status = exc.status
            if status < 400:
                raise
            return json_error(status, exc.reason, headers={
                k: v for k, v in exc.headers.items() if k.lower() == "allow"})
        except asyncio.CancelledError:
            # aiohttp cancels the handler when the client disconnects; a shutdown does too.
            status = CLIENT_CLOSED if _client_gone(request) else 503
            log.debug("client closed the connection during %s %s", request.method, route)
            raise
        except (_ClientGone, ConnectionError, aiohttp.ClientConnectionError):
            status = CLIENT_CLOSED
            log.debug("client closed the connection during %s %s", request.method, route)
            return json_error(CLIENT_CLOSED, "client closed the connection")
        except Exception:
            log.exception("unhandled error on %s", route)
            return json_error(500, "internal error; the request was logged")
        finally:
            name = adapter_of(route)
            requests.inc(adapter=name, route=route, method=request.method, status=status)
            latency.observe(time.perf_counter() - t0, adapter=name, route=route)

    return observe


def add_skill(app: web.Application, recommender: Recommender, settings: Settings, *,
              deadline_s: float = ANSWER_DEADLINE_S) -> Skill:
    """Add ``POST /kakao/skill`` and its callback client session to ``app``.

    ``app`` must allow bodies of ``KAKAO_MAX_BODY_BYTES`` (``client_max_size``); the skill reads
    under that limit and answers 413 past it.
    """
    skill = Skill(recommender, settings, deadline_s)
    app[SKILL_KEY] = skill

    async def client_session(app: web.Application) -> AsyncIterator[None]:
        # Every delivery resolves afresh through the checking resolver (no DNS cache), and at
        # most max_deliveries connections are open at once.
        connector = aiohttp.TCPConnector(resolver=CheckedResolver(settings), use_dns_cache=False,
                                         limit=skill.max_deliveries)
        skill.session = aiohttp.ClientSession(connector=connector,
                                              headers={"Content-Type": "application/json"})
        try:
            yield
        finally:
            if skill.deliveries:  # let answers already on their way land, briefly
                _, still = await asyncio.wait(set(skill.deliveries), timeout=2.0)
                for task in still:
                    task.cancel()
                await asyncio.gather(*still, return_exceptions=True)
            await skill.session.close()
            skill.session = None

    app.cleanup_ctx.append(client_session)
    app.router.add_post(SKILL_PATH, skill_handler)
    return skill


def add_health_routes(app: web.Application, recommender: Recommender,
                      settings: Settings) -> Health:
    """Add ``GET /healthz`` and ``GET /metrics`` (optional bearer token) to ``app``."""
    state = app[HEALTH_KEY] = Health(recommender, settings)
    app.router.add_get("/healthz", healthz_handler)
    app.router.add_get("/metrics", metrics_handler)
    return state


def create_app(recommender: Recommender, settings: Settings, *,
               deadline_s: float = ANSWER_DEADLINE_S) -> web.Application:
    """The skill server alone as an aiohttp app (routes, limits, metrics, callback session).

    Metrics go to the engine's registry (``recommender.metrics``), so one ``/metrics`` shows
    the engine's own numbers and every adapter's. ``deadline_s`` is how long to wait for the
    engine when there is no callback URL. ``bot.server.create_app`` builds the same routes
    into the web chat's app; this one stays for a skill-only deployment and its tests.
    """
    app = web.Application(client_max_size=settings.kakao_max_body_bytes,
                          middlewares=[observe_middleware(recommender.metrics)])
    add_skill(app, recommender, settings, deadline_s=deadline_s)
    add_health_routes(app, recommender, settings)
    return app


def runner_options(settings: Settings) -> dict[str, Any]:
    """``AppRunner`` options: no access log (the middleware logs and counts instead), and idle
    connections — including ones whose headers never end — closed after 3 × the body timeout
    (aiohttp's default holds them for an hour)."""
    return {"access_log": None, "keepalive_timeout": settings.kakao_body_timeout_s * 3}


async def serve(recommender: Recommender, settings: Settings) -> None:
    """Run the skill server on ``settings.kakao_host:kakao_port`` until cancelled.

    ``handler_cancellation``: when Kakao hangs up (its 5 s passed), the handler is cancelled
    and its engine work with it, so an abandoned request stops holding an engine slot.
    """
    app = create_app(recommender, settings)
    runner = web.AppRunner(app, handler_cancellation=True, **runner_options(settings))
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.kakao_host, settings.kakao_port)
        await site.start()
        log.info("kakao skill server listening on %s",
                 ", ".join(f"{a[0]}:{a[1]}" for a in runner.addresses if isinstance(a, tuple))
                 or f"{settings.kakao_host}:{settings.kakao_port}")
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
