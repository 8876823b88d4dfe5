"""The skill server's HTTP layer: routes, body reading, middleware, ``create_app`` and ``serve``."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
from aiohttp import web

from bot.engine import Recommender
from bot.kakao.parse import SkillRequestError, parse_skill_request
from bot.kakao.render import rate_limited_response
from bot.kakao.skill import ANSWER_DEADLINE_S, _Skill
from bot.observability import Metrics
from bot.settings import Settings

log = logging.getLogger("moodtune.kakao")

SKILL_PATH = "/kakao/skill"
SECRET_HEADER = "X-Moodtune-Secret"

SKILL_KEY: web.AppKey[_Skill] = web.AppKey("moodtune_kakao_skill", _Skill)
METRICS_KEY: web.AppKey[Metrics] = web.AppKey("moodtune_metrics", Metrics)


class _HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def _check_secret(request: web.Request, settings: Settings) -> None:
    if settings.kakao_secret is None:
        return
    expected = settings.kakao_secret.get_secret_value().encode("utf-8")
    given = request.headers.get(SECRET_HEADER, "").encode("utf-8", "surrogateescape")
    if not hmac.compare_digest(given, expected):
        raise _HTTPError(401, f"missing or wrong {SECRET_HEADER} header")


async def _read_json(request: web.Request, limit: int) -> object:
    if request.content_length is not None and request.content_length > limit:
        raise _HTTPError(413, f"request body is {request.content_length} bytes; "
                              f"the limit is {limit} (KAKAO_MAX_BODY_BYTES)")
    try:
        raw = await request.read()  # stops at client_max_size even without Content-Length
    except web.HTTPRequestEntityTooLarge:
        raise _HTTPError(413, f"request body exceeds {limit} bytes (KAKAO_MAX_BODY_BYTES)"
                         ) from None
    if not raw.strip():
        raise _HTTPError(400, "request body is empty; expected a Kakao SkillPayload JSON object")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, absurd nesting
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        raise _HTTPError(400, f"request body is not valid JSON ({reason})") from None


async def skill_handler(request: web.Request) -> web.Response:
    """POST /kakao/skill — parse, rate-limit, answer (see ``_Skill.respond``)."""
    skill = request.app[SKILL_KEY]
    try:
        _check_secret(request, skill.settings)
        body = await _read_json(request, skill.settings.kakao_max_body_bytes)
        req = parse_skill_request(body)
    except _HTTPError as exc:
        return _error(exc.status, exc.message)
    except SkillRequestError as exc:
        return _error(400, str(exc))
    wait = skill.limiter.hit(req.user_id)
    if wait is not None:
        skill.rate_limited.inc(channel="kakao")
        skill.replies.inc(kind="rate_limited")
        return web.json_response(rate_limited_response(wait, skill.limiter.per_minute))
    return web.json_response(await skill.respond(req))


async def healthz_handler(request: web.Request) -> web.Response:
    """GET /healthz — liveness plus what is being served (for deploy checks)."""
    skill = request.app[SKILL_KEY]
    engine = skill.engine
    index = engine.index
    try:
        songs = len(index)
    except Exception:
        songs = 0
    body = {
        "status": "ok" if songs > 0 else "degraded",
        "songs": songs,
        "model_fingerprint": getattr(engine.classifier, "fingerprint", None),
        "index_fingerprint": getattr(index, "fingerprint", None),
        "store": engine.store is not None,
        "cf": getattr(engine, "cf", None) is not None,
        "uptime_s": round(time.time() - skill.started, 1),
    }
    return web.json_response(body, status=200 if songs > 0 else 503)


async def metrics_handler(request: web.Request) -> web.Response:
    """GET /metrics — Prometheus text format."""
    skill = request.app[SKILL_KEY]
    with contextlib.suppress(Exception):
        skill.songs.set(len(skill.engine.index))
    return web.Response(body=request.app[METRICS_KEY].render().encode("utf-8"),
                        headers={"Content-Type": Metrics.CONTENT_TYPE})


def _observe_middleware(metrics: Metrics) -> Any:
    requests = metrics.counter("moodtune_http_requests_total",
                               "HTTP requests by adapter, route, method and status.",
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
            return _error(status, exc.reason, headers={
                k: v for k, v in exc.headers.items() if k.lower() == "allow"})
        except Exception:
            log.exception("unhandled error on %s", route)
            return _error(500, "internal error; the request was logged")
        finally:
            requests.inc(adapter="kakao", route=route, method=request.method, status=status)
            latency.observe(time.perf_counter() - t0, adapter="kakao", route=route)

    return observe


def create_app(recommender: Recommender, settings: Settings, *, metrics: Metrics | None = None,
               deadline_s: float = ANSWER_DEADLINE_S) -> web.Application:
    """The skill server as an aiohttp app (routes, limits, metrics, callback client session).

    ``metrics`` lets adapters share one registry (Discord and Kakao in one process);
    ``deadline_s`` is how long to wait for the engine when there is no callback URL.
    """
    metrics = metrics or Metrics()
    app = web.Application(client_max_size=settings.kakao_max_body_bytes,
                          middlewares=[_observe_middleware(metrics)])
    skill = _Skill(recommender, settings, metrics, deadline_s)
    app[SKILL_KEY] = skill
    app[METRICS_KEY] = metrics

    async def client_session(app: web.Application) -> AsyncIterator[None]:
        skill.session = aiohttp.ClientSession(headers={"Content-Type": "application/json"})
        try:
            yield
        finally:
            if skill.pending:  # let answers already on their way land, briefly
                _, still = await asyncio.wait(set(skill.pending), timeout=2.0)
                for task in still:
                    task.cancel()
                await asyncio.gather(*still, return_exceptions=True)
            await skill.session.close()
            skill.session = None

    app.cleanup_ctx.append(client_session)
    app.router.add_post(SKILL_PATH, skill_handler)
    app.router.add_get("/healthz", healthz_handler)
    app.router.add_get("/metrics", metrics_handler)
    return app


async def serve(recommender: Recommender, settings: Settings, *,
                metrics: Metrics | None = None) -> None:
    """Run the skill server on ``settings.kakao_host:kakao_port`` until cancelled."""
    app = create_app(recommender, settings, metrics=metrics)
    runner = web.AppRunner(app, access_log=None)  # the middleware logs/metrics instead
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
