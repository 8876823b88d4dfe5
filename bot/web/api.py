"""The chat page's JSON API: ``/api/session``, ``/api/chat``, ``/api/feedback``, ``/api/history``,
``/api/forget-me``.

A thin adapter like Kakao's: read and check the request (session, CSRF, body, rate limit),
call the engine (``respond``, ``feedback_track``/``feedback_answer``, ``history``,
``forget_user``), shape its answer as JSON. Every failure is ``{"error": "<Korean> (<English>)",
"code": ...}`` with a 4xx/5xx status, which the page shows as is — never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from typing import Any

from aiohttp import web

from bot import ratelimit
from bot.dialogue import FEEDBACK_WORDS, Reply
from bot.engine import FeedbackUnavailableError, Recommender, UnknownAnswerError
from bot.feedback import Signal
from bot.kakao.app import json_error
from bot.kakao.render import top_mood
from bot.ratelimit import RateLimiter, SharedRateLimiter, adapter_limiters
from bot.settings import Settings
from bot.web.session import CsrfError, Sessions
from inference.emotions import LABELS
from inference.text import clean_text

log = logging.getLogger("moodtune.web")

__all__ = ["API_KEY", "MAX_BODY_BYTES", "SIGNALS", "WebApi", "add_api_routes"]

#: A chat message is at most MAX_INPUT_CHARS characters; a JSON body past this is refused
#: before parsing (4 bytes per escaped character leaves room for any allowed message).
MAX_BODY_BYTES = 32 * 1024
#: Signals the page may send (``play`` is implicit, recorded elsewhere).
SIGNALS = frozenset({Signal.LIKE, Signal.DISLIKE, Signal.LOVE, Signal.SKIP})
HISTORY_DEFAULT, HISTORY_MAX = 10, 50
BODY_TIMEOUT_S = 10.0


class ApiError(Exception):
    """A request the API refuses: becomes ``{"error", "code", ...extra}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


class WebApi:
    """State behind the API (one per app): the engine, sessions and per-user budgets.

    Budgets are separate per kind, like Kakao's: tapping 👍 never costs a recommendation.
    """

    def __init__(self, engine: Recommender, settings: Settings,
                 sessions: Sessions | None = None) -> None:
        self.engine = engine
        self.settings = settings
        self.sessions = sessions or Sessions(settings)
        self.limiter, self.feedback_limiter = adapter_limiters(engine, settings, "web")
        m = engine.metrics
        self.rate_limited = m.counter("moodtune_rate_limited_total",
                                      "Requests refused by the per-user rate limit.", ["channel"])
        self.replies = m.counter("moodtune_web_replies_total", "Web chat answers by kind.",
                                 ["kind"])

    # -- request checks --------------------------------------------------------------------
    def post_session(self, request: web.Request) -> str:
        try:
            return self.sessions.check_post(request)
        except CsrfError as exc:
            raise ApiError(403, exc.code, exc.message) from None

    async def spend(self, limiter: RateLimiter | SharedRateLimiter, user: str, what: str) -> None:
        wait = await ratelimit.hit(limiter, user)
        if wait is not None:
            self.rate_limited.inc(channel="web")
            retry = max(1, math.ceil(wait))
            raise ApiError(429, "rate_limited",
                           f"{what} 너무 빨라요. {retry}초 뒤에 다시 해 주세요. "
                           f"(rate limit: {limiter.per_minute} per minute; retry in {retry} s)",
                           retry_after=retry)


API_KEY: web.AppKey[WebApi] = web.AppKey("moodtune_web_api", WebApi)


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body, or an :class:`ApiError` that says what is wrong."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ApiError(413, "too_large", f"요청이 너무 커요. (body over {MAX_BODY_BYTES} bytes)")
    try:
        raw = await asyncio.wait_for(request.read(), BODY_TIMEOUT_S)
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, "too_large",
                       f"요청이 너무 커요. (body over {MAX_BODY_BYTES} bytes)") from None
    except TimeoutError:
        raise ApiError(408, "timeout", "요청을 다 받지 못했어요. "
                                       "(request body not received in time)") from None
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, "too_large", f"요청이 너무 커요. (body over {MAX_BODY_BYTES} bytes)")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # bad JSON, bad UTF-8, absurd nesting
        raise ApiError(400, "bad_json", "요청을 읽지 못했어요. "
                                        "(the body is not valid JSON)") from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "요청을 읽지 못했어요. (expected a JSON object)")
    return body


# -- shaping answers -----------------------------------------------------------------------
def emotion_json(emotion: tuple[float, ...] | None) -> dict[str, float] | None:
    if not emotion:
        return None
    return {label: round(float(p), 4) for label, p in zip(LABELS, emotion, strict=False)}


def reply_json(reply: Reply) -> dict[str, Any]:
    """A :class:`~bot.dialogue.Reply` as the page reads it (positions 1-based, as shown)."""
    return {
        "kind": reply.kind,
        "text": reply.text,
        "tracks": [{"position": i, "title": t.title, "artist": t.artist, "genre": t.genre,
                    "link": t.link, "reason": t.reason, "facets": dict(t.facets or {})}
                   for i, t in enumerate(reply.tracks, start=1)],
        "emotion": emotion_json(reply.emotion),
        "rec_id": reply.rec_id,
        "strategy": reply.strategy,
        "request": _jsonable(reply.request),
    }


def _jsonable(value: Any) -> Any:
    """``request`` holds what was understood; make sure it serialises (tuples, sets, enums)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _api_error(exc: ApiError) -> web.Response:
    resp = json_error(exc.status, exc.message, code=exc.code, **exc.extra)
    if exc.status == 429:
        resp.headers["Retry-After"] = str(exc.extra.get("retry_after", 1))
    return resp


# -- handlers ------------------------------------------------------------------------------
async def session_handler(request: web.Request) -> web.Response:
    """GET /api/session — the CSRF token for this browser's session (issued if it has none)."""
    api = request.app[API_KEY]
    sid, fresh = api.sessions.current(request)
    resp = web.json_response({"csrf": api.sessions.csrf_token(sid),
                              "max_chars": api.settings.max_input_chars},
                             headers={"Cache-Control": "no-store"})
    if fresh:
        api.sessions.set_cookie(resp, sid)
    return resp


async def chat_handler(request: web.Request) -> web.Response:
    """POST /api/chat {"text"} — one message through ``Recommender.respond``."""
    api = request.app[API_KEY]
    try:
        sid = api.post_session(request)
        body = await read_json_object(request)
        text = body.get("text")
        if not isinstance(text, str):
            raise ApiError(400, "bad_text", "메시지를 읽지 못했어요. "
                                            "(expected {\"text\": string})")
        cleaned = clean_text(text)
        if not cleaned.strip():
            raise ApiError(400, "empty", "메시지가 비어 있어요. 지금 기분을 말해 주세요. "
                                         "(the message is empty)")
        limit = api.settings.max_input_chars
        if len(cleaned) > limit:
            raise ApiError(400, "too_long",
                           f"메시지가 너무 길어요 ({len(cleaned):,}자). {limit:,}자 이내로 "
                           f"말해 주세요. (message over {limit} characters)")
        user = api.sessions.user_id(sid)
        await api.spend(api.limiter, user, "메시지를 보내는 속도가")
    except ApiError as exc:
        return _api_error(exc)
    reply = await api.engine.respond(user, cleaned, channel="web")
    api.replies.inc(kind=reply.kind)
    log.info("web chat %s: %s (%d tracks)", api.engine.user_ref(user), reply.kind,
             len(reply.tracks))
    return web.json_response(reply_json(reply))


async def feedback_handler(request: web.Request) -> web.Response:
    """POST /api/feedback {"rec_id", "position"?, "signal"} — 👍/👎/❤️/⏭ on a track or an answer."""
    api = request.app[API_KEY]
    try:
        sid = api.post_session(request)
        body = await read_json_object(request)
        rec_id, position, signal = _feedback_fields(body)
        user = api.sessions.user_id(sid)
        await api.spend(api.feedback_limiter, user, "평가를 보내는 속도가")
        try:
            if position is not None:
                _, new = await api.engine.feedback_track(user, rec_id, position - 1, signal,
                                                         channel="web")
            else:
                new = await api.engine.feedback_answer(user, rec_id, signal, channel="web") > 0
        except UnknownAnswerError as exc:
            raise ApiError(404, "unknown_answer", f"{exc} (unknown answer or position)") from None
        except FeedbackUnavailableError:
            raise ApiError(503, "no_store", "지금은 평가를 저장할 수 없어요. "
                                            "(feedback storage is not configured)") from None
    except ApiError as exc:
        return _api_error(exc)
    text = FEEDBACK_WORDS[signal] if new else "이미 반영했어요 🙂"
    return web.json_response({"ok": True, "new": bool(new), "text": text})


def _feedback_fields(body: dict[str, Any]) -> tuple[str, int | None, Signal]:
    rec_id = body.get("rec_id")
    if not isinstance(rec_id, str) or not rec_id or len(rec_id) > 64:
        raise ApiError(400, "bad_rec_id", "어떤 추천인지 알 수 없어요. (expected \"rec_id\": string)")
    position = body.get("position")
    if position is not None and (isinstance(position, bool) or not isinstance(position, int)
                                 or not 1 <= position <= 50):
        raise ApiError(400, "bad_position", "곡 번호가 올바르지 않아요. "
                                            "(\"position\" must be an integer from 1)")
    try:
        signal = Signal(body.get("signal"))
    except ValueError:
        signal = None
    if signal not in SIGNALS:
        raise ApiError(400, "bad_signal", "평가 종류가 올바르지 않아요. "
                                          "(\"signal\": like | dislike | love | skip)")
    return rec_id, position, signal


async def history_handler(request: web.Request) -> web.Response:
    """GET /api/history?limit=N — this session's last answers, newest first."""
    api = request.app[API_KEY]
    sid = api.sessions.read(request)
    try:
        limit = int(request.query.get("limit", HISTORY_DEFAULT))
    except ValueError:
        return json_error(400, "limit은 숫자여야 해요. (limit must be an integer)", code="bad_limit")
    limit = max(1, min(limit, HISTORY_MAX))
    items: list[dict[str, Any]] = []
    if sid is not None:
        index = api.engine.index
        for rec in await api.engine.history(api.sessions.user_id(sid), limit):
            tracks = []
            for song_id in rec.song_ids:
                song = index.get(song_id)
                tracks.append({"title": song.title, "artist": song.artist} if song is not None
                              else {"title": "(목록에서 빠진 곡)", "artist": ""})
            items.append({"rec_id": rec.rec_id, "created_at": rec.created_at,
                          "mood": top_mood(rec.emotion) if rec.emotion else None,
                          "tracks": tracks})
    return web.json_response({"items": items}, headers={"Cache-Control": "no-store"})


async def forget_handler(request: web.Request) -> web.Response:
    """POST /api/forget-me {"confirm": true} — delete everything kept about this session, then
    rotate its cookie so the browser starts over as a stranger."""
    api = request.app[API_KEY]
    try:
        sid = api.post_session(request)
        body = await read_json_object(request)
        if body.get("confirm") is not True:
            raise ApiError(400, "not_confirmed", "삭제하려면 확인이 필요해요. "
                                                 "(send {\"confirm\": true})")
    except ApiError as exc:
        return _api_error(exc)
    user = api.sessions.user_id(sid)
    deleted = await api.engine.forget_user(user)
    await ratelimit.reset(api.limiter, user)
    await ratelimit.reset(api.feedback_limiter, user)
    log.info("web forget-me %s: %s", api.engine.user_ref(user), deleted)
    new_sid = api.sessions.new_id()
    resp = web.json_response({"deleted": deleted, "csrf": api.sessions.csrf_token(new_sid)})
    api.sessions.set_cookie(resp, new_sid)
    return resp


def add_api_routes(app: web.Application, recommender: Recommender, settings: Settings,
                   sessions: Sessions | None = None) -> WebApi:
    """Mount the API on ``app`` (``/api/*``)."""
    api = app[API_KEY] = WebApi(recommender, settings, sessions)
    app.router.add_get("/api/session", session_handler)
    app.router.add_post("/api/chat", chat_handler)
    app.router.add_post("/api/feedback", feedback_handler)
    app.router.add_get("/api/history", history_handler)
    app.router.add_post("/api/forget-me", forget_handler)
    return api
