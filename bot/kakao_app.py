"""KakaoTalk channel chatbot: a Kakao i Open Builder *skill server* on aiohttp.

Open Builder POSTs a SkillPayload (``userRequest.utterance``, ``userRequest.user.id``, the
tapped button's ``action.clientExtra``, and ``userRequest.callbackUrl`` when the block has
callbacks on) and shows whatever skill response JSON comes back — if it comes back within 5 s.
This module is the thin adapter between that contract and ``bot.engine.Recommender``:

    parse (400 on anything malformed) → rate-limit → engine → render (validated against
    Kakao's limits) → JSON

Three things are Kakao-specific and live here rather than in the engine:

* **The 5-second deadline.** When the engine is slow and the request carries a
  ``callbackUrl``, we answer ``useCallback`` at once and POST the real answer to that URL when
  it is ready (valid once, for a minute). Without one we wait up to ``deadline_s`` and then say
  politely that we are busy — a late answer is a lost answer on Kakao.
* **Rendering limits.** Kakao rejects a whole response if one list has six items or one label
  is too long, and the user then sees a generic error. Every builder therefore ends in
  ``validate_response``; tests run it against every response shape.
* **Feedback through quick replies.** "좋아요" / "별로예요" / "다른 노래" come back with the
  ``extra`` we attached (rec id, signal, mood, song ids), so feedback needs no server-side
  session; a small per-user memory covers users who type the words instead of tapping.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import inspect
import json
import logging
import math
import time
import unicodedata
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from bot.engine import InputTooLongError, Recommendation, Recommender, UnknownSongError
from bot.feedback import KAKAO_REPLIES, Signal
from bot.observability import Metrics, user_ref
from bot.ratelimit import RateLimiter
from bot.settings import Settings
from inference.emotions import EMOTIONS, LABELS, UnknownEmotionError, index_of, parse_emotion

log = logging.getLogger("moodtune.kakao")

__all__ = [
    "ANSWER_DEADLINE_S",
    "LIMITS",
    "SECRET_HEADER",
    "SKILL_PATH",
    "KakaoLimits",
    "KakaoResponseError",
    "SkillRequest",
    "SkillRequestError",
    "callback_ack",
    "create_app",
    "parse_skill_request",
    "recommendation_response",
    "serve",
    "text_response",
    "validate_response",
]

SKILL_PATH = "/kakao/skill"
SECRET_HEADER = "X-Moodtune-Secret"
#: Without a callback URL we must answer inside Kakao's 5 s; leave room for the network.
ANSWER_DEADLINE_S = 4.5
#: A callback URL is valid for one minute; give up on delivering a little before that.
CALLBACK_TTL_S = 55.0
CALLBACK_POST_TIMEOUT_S = 10.0
USER_PREFIX = "kakao:"  # engine user ids are namespaced per channel (Discord ids are numbers)

# ---- Kakao's response limits ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KakaoLimits:
    """Limits of the skill response format (v2.0).

    The counts and the simpleText / basicCard-description lengths are Kakao's documented hard
    limits; the list-item title/description lengths are display limits we hold ourselves to,
    because longer lines are cut mid-word on a phone anyway.
    """

    outputs: int = 3
    quick_replies: int = 10
    simple_text: int = 1000
    list_items: int = 5
    list_buttons: int = 2
    carousel_items: int = 10
    card_buttons: int = 3
    card_title: int = 50
    card_description: int = 230
    label: int = 14
    list_title: int = 50
    list_description: int = 50
    header_title: int = 40


LIMITS = KakaoLimits()
_OUTPUT_KINDS = frozenset({"simpleText", "listCard", "carousel", "basicCard"})


class KakaoResponseError(ValueError):
    """A response we built breaks Kakao's format; Kakao would reject it, so we never send it."""


def _need(cond: bool, where: str, what: str) -> None:
    if not cond:
        raise KakaoResponseError(f"{where}: {what}")


def _check_text(value: object, where: str, limit: int, *, required: bool = True) -> None:
    if value is None and not required:
        return
    _need(isinstance(value, str), where, "must be a string")
    assert isinstance(value, str)
    _need(bool(value.strip()) or not required, where, "must not be empty")
    _need(len(value) <= limit, where, f"{len(value)} chars > {limit}")


def _check_button(b: object, where: str) -> None:
    _need(isinstance(b, dict), where, "must be an object")
    assert isinstance(b, dict)
    _check_text(b.get("label"), f"{where}.label", LIMITS.label)
    action = b.get("action")
    _need(action in {"webLink", "message", "block"}, f"{where}.action", f"unknown {action!r}")
    key = {"webLink": "webLinkUrl", "message": "messageText", "block": "blockId"}[action]
    _check_text(b.get(key), f"{where}.{key}", 1000)


def _check_basic_card(card: object, where: str) -> None:
    _need(isinstance(card, dict), where, "must be an object")
    assert isinstance(card, dict)
    _check_text(card.get("title"), f"{where}.title", LIMITS.card_title, required=False)
    _check_text(card.get("description"), f"{where}.description", LIMITS.card_description,
                required=False)
    buttons = card.get("buttons", [])
    _need(isinstance(buttons, list) and len(buttons) <= LIMITS.card_buttons,
          f"{where}.buttons", f"at most {LIMITS.card_buttons}")
    for i, b in enumerate(buttons):
        _check_button(b, f"{where}.buttons[{i}]")


def _check_list_card(card: object, where: str) -> None:
    _need(isinstance(card, dict), where, "must be an object")
    assert isinstance(card, dict)
    header = card.get("header")
    _need(isinstance(header, dict), f"{where}.header", "must be an object")
    assert isinstance(header, dict)
    _check_text(header.get("title"), f"{where}.header.title", LIMITS.header_title)
    items = card.get("items")
    _need(isinstance(items, list) and 1 <= len(items) <= LIMITS.list_items,
          f"{where}.items", f"needs 1..{LIMITS.list_items} items")
    assert isinstance(items, list)
    for i, item in enumerate(items):
        w = f"{where}.items[{i}]"
        _need(isinstance(item, dict), w, "must be an object")
        _check_text(item.get("title"), f"{w}.title", LIMITS.list_title)
        _check_text(item.get("description"), f"{w}.description", LIMITS.list_description,
                    required=False)
        if "link" in item:
            _need(isinstance(item["link"], dict) and isinstance(item["link"].get("web"), str),
                  f"{w}.link", "must be {'web': url}")
    buttons = card.get("buttons", [])
    _need(isinstance(buttons, list) and len(buttons) <= LIMITS.list_buttons,
          f"{where}.buttons", f"at most {LIMITS.list_buttons}")
    for i, b in enumerate(buttons):
        _check_button(b, f"{where}.buttons[{i}]")


def validate_response(resp: Mapping[str, Any]) -> dict[str, Any]:
    """Check a skill response against Kakao's format and limits; return it unchanged.

    Every builder in this module calls it, so a layout change that would make Kakao reject
    the answer fails in tests, not in a user's chat.
    """
    _need(resp.get("version") == "2.0", "version", "must be '2.0'")
    if "useCallback" in resp:
        _need(resp["useCallback"] is True, "useCallback", "must be true")
        data = resp.get("data") or {}
        _check_text(data.get("text"), "data.text", LIMITS.simple_text, required=False)
        return dict(resp)
    template = resp.get("template")
    _need(isinstance(template, dict), "template", "must be an object")
    assert isinstance(template, dict)
    outputs = template.get("outputs")
    _need(isinstance(outputs, list) and 1 <= len(outputs) <= LIMITS.outputs,
          "template.outputs", f"needs 1..{LIMITS.outputs} outputs")
    assert isinstance(outputs, list)
    for i, out in enumerate(outputs):
        where = f"template.outputs[{i}]"
        _need(isinstance(out, dict) and len(out) == 1 and next(iter(out)) in _OUTPUT_KINDS,
              where, f"must be one of {sorted(_OUTPUT_KINDS)}")
        kind, body = next(iter(out.items()))
        where = f"{where}.{kind}"
        if kind == "simpleText":
            _need(isinstance(body, dict), where, "must be an object")
            _check_text(body.get("text"), f"{where}.text", LIMITS.simple_text)
        elif kind == "listCard":
            _check_list_card(body, where)
        elif kind == "basicCard":
            _check_basic_card(body, where)
        else:
            _need(isinstance(body, dict) and body.get("type") == "basicCard", where,
                  "only basicCard carousels are used")
            items = body.get("items")
            _need(isinstance(items, list) and 1 <= len(items) <= LIMITS.carousel_items,
                  f"{where}.items", f"needs 1..{LIMITS.carousel_items} cards")
            for j, card in enumerate(items):
                _check_basic_card(card, f"{where}.items[{j}]")
    replies = template.get("quickReplies", [])
    _need(isinstance(replies, list) and len(replies) <= LIMITS.quick_replies,
          "template.quickReplies", f"at most {LIMITS.quick_replies}")
    for i, qr in enumerate(replies):
        where = f"template.quickReplies[{i}]"
        _need(isinstance(qr, dict), where, "must be an object")
        _check_text(qr.get("label"), f"{where}.label", LIMITS.label)
        action = qr.get("action")
        _need(action in {"message", "block"}, f"{where}.action", f"unknown {action!r}")
        key = "messageText" if action == "message" else "blockId"
        _check_text(qr.get(key), f"{where}.{key}", LIMITS.simple_text)
        _need(isinstance(qr.get("extra", {}), dict), f"{where}.extra", "must be an object")
    return dict(resp)


# ---- response builders ---------------------------------------------------------------------

TEXT_EMPTY = "듣고 싶은 분위기나 지금 기분을 말해 주세요 🎧\n예: '오늘 좀 지쳤어', '/mood 평화'"
TEXT_NO_WORDS = ("이모티콘만으로는 기분을 읽기 어려워요 🙂 한두 마디 말로 알려 주시거나 "
                 "아래에서 분위기를 골라 주세요.")
TEXT_TIMEOUT = "노래를 고르는 데 시간이 걸리고 있어요. 잠시 후 다시 말해 주세요 🙏"
TEXT_WAIT = "기분에 맞는 노래를 고르고 있어요… 🎧"
TEXT_ERROR = "앗, 추천하다가 문제가 생겼어요. 잠시 후 다시 말해 주세요."
TEXT_NO_REC = "어떤 추천에 대한 답인지 찾지 못했어요. 지금 기분을 먼저 말해 주세요 🙂"
TEXT_FEEDBACK_FAILED = "지금은 피드백을 저장하지 못했어요. 잠시 후 다시 눌러 주세요."
TEXT_FEEDBACK_DUP = "이미 반영했어요 🙂"
TEXT_FEEDBACK = {
    Signal.LOVE: "최고라니 기뻐요! 취향에 꼭 반영할게요 ❤️",
    Signal.LIKE: "좋았다니 다행이에요! 취향에 반영할게요 🎵",
    Signal.PLAY: "즐겁게 들으세요 🎧",
    Signal.DISLIKE: "알려 줘서 고마워요. 다음엔 다르게 골라 볼게요.",
    Signal.SKIP: "다른 노래로 골라 봤어요.",
}
MORE_LABEL = "다른 노래 더 보기"
_REPLY_FOR_SIGNAL = {sig: label for label, sig in KAKAO_REPLIES.items()}


def clip(text: str, limit: int) -> str:
    """Shorten to ``limit`` characters with an ellipsis (Kakao rejects, it does not truncate)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: max(limit - 1, 0)].rstrip() + "…"


def clip_keep_lines(text: str, limit: int) -> str:
    """Like :func:`clip` but keeps line breaks (they matter in a chat bubble)."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def short_reason(reason: str, limit: int = LIMITS.list_description) -> str:
    """The engine's reason, fit for one list line: drop the parenthesised detail first."""
    if len(reason) <= limit:
        return reason
    head, sep, rest = reason.partition(" (")
    if sep and ")" in rest:
        tail = rest.split(")", 1)[1]
        reason = (head + tail).strip()
    return clip(reason, limit)


def _response(outputs: list[dict[str, Any]], quick_replies: Sequence[dict[str, Any]] = ()
              ) -> dict[str, Any]:
    template: dict[str, Any] = {"outputs": outputs}
    if quick_replies:
        template["quickReplies"] = list(quick_replies)
    return validate_response({"version": "2.0", "template": template})


def mood_quick_replies() -> list[dict[str, Any]]:
    """One tap per mood, for when we could not read one from the message."""
    return [{"label": f"{e.emoji} {e.ko}", "action": "message", "messageText": e.ko}
            for e in EMOTIONS]


def text_response(text: str, quick_replies: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """One simpleText bubble (clipped to Kakao's 1000 characters)."""
    return _response([{"simpleText": {"text": clip_keep_lines(text, LIMITS.simple_text)}}],
                     quick_replies)


def callback_ack(text: str = TEXT_WAIT) -> dict[str, Any]:
    """The immediate answer that tells Kakao the real one will arrive on the callback URL."""
    return validate_response({"version": "2.0", "useCallback": True,
                              "data": {"text": clip(text, LIMITS.simple_text)}})


def top_mood(rec: Recommendation) -> str:
    return LABELS[max(range(len(rec.emotion)), key=lambda i: rec.emotion[i])]


def mood_line(rec: Recommendation) -> str:
    """The mood we read, in words a person recognises: "😢 슬픔 72% · 😰 긴장 18%"."""
    if rec.source == "explicit":
        e = EMOTIONS[index_of(top_mood(rec))]
        return f"{e.emoji} {e.ko} 무드로 골라 봤어요."
    parts = [f"{EMOTIONS[index_of(label)].emoji} {label} {p:.0%}" for label, p in rec.dominant]
    if rec.source == "similar":
        return f"비슷한 분위기({' · '.join(parts)})의 노래예요."
    return f"지금 기분: {' · '.join(parts)}\n이런 노래 어때요?"


def feedback_extra(rec: Recommendation, signal: Signal) -> dict[str, str]:
    """What a quick reply carries back: enough to record feedback and re-recommend, statelessly.

    Flat string values only; song ids are comma-joined.
    """
    return {"rec_id": rec.rec_id, "signal": signal.value, "mood": top_mood(rec),
            "song_ids": ",".join(t.song_id for t in rec.tracks)}


def feedback_quick_replies(rec: Recommendation) -> list[dict[str, Any]]:
    return [{"label": label, "action": "message", "messageText": label,
             "extra": feedback_extra(rec, sig)} for label, sig in KAKAO_REPLIES.items()]


def recommendation_response(rec: Recommendation, intro: str | None = None) -> dict[str, Any]:
    """simpleText (the mood read) + listCard of up to 5 tracks, or a carousel for 6-10."""
    text = mood_line(rec) if intro is None else f"{intro}\n{mood_line(rec)}"
    outputs: list[dict[str, Any]] = [{"simpleText": {"text": clip_keep_lines(
        text, LIMITS.simple_text)}}]
    if not rec.tracks:
        outputs[0]["simpleText"]["text"] = clip_keep_lines(
            text + "\n아쉽게도 지금은 어울리는 노래를 찾지 못했어요.", LIMITS.simple_text)
        return _response(outputs, mood_quick_replies())
    more = {"label": MORE_LABEL, "action": "message",
            "messageText": _REPLY_FOR_SIGNAL[Signal.SKIP],
            "extra": feedback_extra(rec, Signal.SKIP)}
    e = EMOTIONS[index_of(top_mood(rec))]
    if len(rec.tracks) <= LIMITS.list_items:
        outputs.append({"listCard": {
            "header": {"title": clip(f"{e.emoji} {e.ko}에 어울리는 노래", LIMITS.header_title)},
            "items": [{"title": clip(f"{t.title} — {t.artist}", LIMITS.list_title),
                       "description": short_reason(t.reason),
                       "link": {"web": t.link}} for t in rec.tracks],
            "buttons": [more],
        }})
    else:
        outputs.append({"carousel": {"type": "basicCard", "items": [
            {"title": clip(f"{t.title} — {t.artist}", LIMITS.card_title),
             "description": clip(t.reason, LIMITS.card_description),
             "buttons": [{"label": "듣기", "action": "webLink", "webLinkUrl": t.link}]}
            for t in rec.tracks[: LIMITS.carousel_items]]}})
    return _response(outputs, feedback_quick_replies(rec))


def rate_limited_response(wait_s: float, per_minute: int) -> dict[str, Any]:
    seconds = max(1, math.ceil(wait_s))
    return text_response(f"조금만 천천히요! 1분에 {per_minute}번까지 추천해 드릴 수 있어요. "
                         f"{seconds}초 뒤에 다시 말해 주세요 🙏")


# ---- request parsing -----------------------------------------------------------------------


class SkillRequestError(ValueError):
    """The body is not a usable SkillPayload; the message says which field and why (→ 400)."""


@dataclass(frozen=True, slots=True)
class FeedbackTap:
    """A tapped feedback quick reply (or its typed equivalent)."""

    rec_id: str
    signal: Signal
    song_ids: tuple[str, ...] = ()
    mood: str | None = None


@dataclass(frozen=True, slots=True)
class SkillRequest:
    utterance: str
    user_id: str  # Kakao's id (botUserKey); see ``engine_user``
    user_type: str | None = None
    callback_url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    tap: FeedbackTap | None = None  # a tapped feedback quick reply (from ``extra``)

    @property
    def engine_user(self) -> str:
        return USER_PREFIX + self.user_id


def _feedback_tap(extra: Mapping[str, Any]) -> FeedbackTap | None:
    """The feedback carried by ``action.clientExtra``, if this request is a feedback tap."""
    if "signal" not in extra:
        return None
    raw = extra.get("signal")
    signal: Signal | None = None
    if isinstance(raw, str):
        signal = KAKAO_REPLIES.get(raw) or next((s for s in Signal if s.value == raw), None)
    if signal is None:
        raise SkillRequestError("action.clientExtra.signal must be one of "
                                + ", ".join(s.value for s in Signal) + f"; got {raw!r}")
    rec_id = extra.get("rec_id")
    if not isinstance(rec_id, str) or not rec_id or len(rec_id) > 64:
        raise SkillRequestError("action.clientExtra.rec_id must be a non-empty string "
                                "(≤ 64 chars) when signal is given")
    return FeedbackTap(rec_id, signal, _song_ids(extra), _mood(extra.get("mood")))


def _song_ids(extra: Mapping[str, Any]) -> tuple[str, ...]:
    raw: Any = extra.get("song_ids")
    if raw is None and extra.get("song_id") is not None:
        raw = [extra["song_id"]]
    if raw is None:
        return ()
    if isinstance(raw, str):
        raw = [s for s in raw.split(",") if s]
    if not isinstance(raw, list) or not all(isinstance(s, str) and 0 < len(s) <= 64
                                            for s in raw) or len(raw) > LIMITS.carousel_items:
        raise SkillRequestError("action.clientExtra.song_ids must be a comma-separated string "
                                f"or a list of at most {LIMITS.carousel_items} song ids")
    return tuple(raw)


def _mood(raw: object) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise SkillRequestError("action.clientExtra.mood must be a string")
    try:
        return LABELS[index_of(raw)]
    except UnknownEmotionError:
        return None  # a stale or foreign button: re-recommend from the user's last mood instead


def _field(obj: Mapping[str, Any], key: str, where: str, kind: type, *,
           required: bool = True) -> Any:
    """``obj[key]`` checked against a JSON type; null counts as missing."""
    value = obj.get(key)
    if value is None:
        if required:
            raise SkillRequestError(f"{where}{key} is missing")
        return None
    if not isinstance(value, kind):
        raise SkillRequestError(f"{where}{key} must be {_JSON_NAMES[kind]}, "
                                f"got {_json_type(value)}")
    return value


_JSON_NAMES: dict[type, str] = {dict: "an object", str: "a string", list: "an array"}


def parse_skill_request(body: object) -> SkillRequest:
    """Pull what we use out of a Kakao SkillPayload; anything malformed → SkillRequestError.

    Fields we do not use (intent, bot, params, detailParams, contexts, ...) are ignored so a
    format extension on Kakao's side does not break the skill.
    """
    if not isinstance(body, dict):
        raise SkillRequestError(
            f"request body must be a JSON object (a Kakao SkillPayload), got {_json_type(body)}")
    ureq = _field(body, "userRequest", "", dict)
    utterance = _field(ureq, "utterance", "userRequest.", str)
    user = _field(ureq, "user", "userRequest.", dict)
    user_id = _field(user, "id", "userRequest.user.", str)
    if not user_id.strip() or len(user_id) > 256:
        raise SkillRequestError("userRequest.user.id must be a non-empty string (≤ 256 chars)")
    user_type = _field(user, "type", "userRequest.user.", str, required=False)
    callback = _field(ureq, "callbackUrl", "userRequest.", str, required=False)
    if callback is not None:
        parts = urlsplit(callback)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SkillRequestError("userRequest.callbackUrl must be an http(s) URL")
    action = _field(body, "action", "", dict, required=False) or {}
    extra: Any = action.get("clientExtra")
    if extra is None or extra in ("", "null"):  # Kakao sends null (and, in old payloads, "null")
        extra = {}
    if not isinstance(extra, dict):
        raise SkillRequestError(
            f"action.clientExtra must be an object or null, got {_json_type(extra)}")
    return SkillRequest(utterance, user_id, user_type, callback, extra, _feedback_tap(extra))


def _json_type(value: object) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            int: "a number", float: "a number", type(None): "null"}.get(type(value), "a value")


def _has_words(text: str) -> bool:
    """True if the text has any letter or digit (Hangul jamo such as 'ㅠㅠ' count as letters)."""
    return any(unicodedata.category(c)[0] in "LN" for c in text)


def _is_blank(text: str) -> bool:
    return not any(not c.isspace() and unicodedata.category(c) != "Cf" for c in text)


# ---- the skill ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _LastRec:
    rec_id: str
    song_ids: tuple[str, ...]
    mood: str


class _LastRecs:
    """Bounded per-user memory of the last recommendation shown.

    Quick replies carry everything feedback needs; this only covers a user who *types*
    "다른 노래" (or a Kakao fallback block that drops ``extra``). Memory stays bounded however
    many users the channel has.
    """

    def __init__(self, max_users: int = 10_000) -> None:
        self._max = max_users
        self._d: OrderedDict[str, _LastRec] = OrderedDict()

    def put(self, user: str, rec: Recommendation) -> None:
        self._d[user] = _LastRec(rec.rec_id, tuple(t.song_id for t in rec.tracks), top_mood(rec))
        self._d.move_to_end(user)
        while len(self._d) > self._max:
            self._d.popitem(last=False)

    def get(self, user: str) -> _LastRec | None:
        return self._d.get(user)


class _Skill:
    """State and steps behind ``POST /kakao/skill`` (one instance per app)."""

    def __init__(self, recommender: Recommender, settings: Settings, metrics: Metrics,
                 deadline_s: float) -> None:
        self.engine = recommender
        self.settings = settings
        self.deadline_s = deadline_s
        self.limiter = RateLimiter(settings.rate_limit_per_minute)
        self.last = _LastRecs()
        self.session: aiohttp.ClientSession | None = None
        self.pending: set[asyncio.Task[None]] = set()
        self.started = time.time()
        # The store distinguishes per-track from per-message feedback (``scope``); pass it
        # through as soon as the engine's feedback() accepts it.
        try:
            self._scoped = "scope" in inspect.signature(recommender.feedback).parameters
        except (TypeError, ValueError):
            self._scoped = False
        m = metrics
        self.metrics = m
        self.replies = m.counter("moodtune_kakao_replies_total",
                                 "Kakao skill answers by kind.", ["kind"])
        self.feedbacks = m.counter("moodtune_feedback_total",
                                   "Feedback events recorded, by channel and signal.",
                                   ["channel", "signal"])
        self.engine_errors = m.counter("moodtune_engine_errors_total",
                                       "Engine calls that failed, by channel and error class.",
                                       ["channel", "error"])
        self.engine_seconds = m.histogram("moodtune_engine_seconds",
                                          "Engine call latency by channel and operation.",
                                          ["channel", "op"])
        self.callbacks = m.counter("moodtune_kakao_callbacks_total",
                                   "Answers delivered to Kakao callback URLs, by outcome.",
                                   ["outcome"])
        self.in_flight = m.gauge("moodtune_kakao_callbacks_in_flight",
                                 "Callback answers still being prepared or posted.")
        self.songs = m.gauge("moodtune_index_songs", "Songs in the serving index.")
        self.rate_limited = m.counter("moodtune_rate_limited_total",
                                      "Requests refused by the per-user rate limit.", ["channel"])

    # -- top level: deadline and callback ---------------------------------------------------
    async def respond(self, req: SkillRequest) -> dict[str, Any]:
        """Answer within Kakao's deadline: directly, via the callback URL, or with a busy note."""
        work = asyncio.ensure_future(self.answer(req))
        budget = (self.settings.kakao_callback_after_ms / 1000 if req.callback_url
                  else self.deadline_s)
        try:
            done, _ = await asyncio.wait({work}, timeout=budget)
        except asyncio.CancelledError:
            work.cancel()
            raise
        if done:
            return work.result()
        if req.callback_url:
            task = asyncio.create_task(self._deliver(req, work))
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)
            self.replies.inc(kind="callback")
            return callback_ack()
        work.cancel()
        self.replies.inc(kind="timeout")
        log.warning("engine missed the %.1fs deadline", budget,
                    extra={"user": user_ref(req.user_id)})
        return text_response(TEXT_TIMEOUT)

    async def _deliver(self, req: SkillRequest, work: asyncio.Future[dict[str, Any]]) -> None:
        """POST the late answer to the callback URL; failures are logged, never raised."""
        assert req.callback_url is not None
        host = urlsplit(req.callback_url).hostname  # the full URL is a one-time credential
        self.in_flight.inc()
        try:
            try:
                body = await asyncio.wait_for(work, CALLBACK_TTL_S)
            except TimeoutError:
                self.callbacks.inc(outcome="expired")
                log.warning("answer not ready before the callback URL expired",
                            extra={"callback_host": host})
                return
            if self.session is None:
                raise RuntimeError("callback session not started")
            async with self.session.post(
                    req.callback_url, json=body,
                    timeout=aiohttp.ClientTimeout(total=CALLBACK_POST_TIMEOUT_S)) as resp:
                await resp.read()
                if resp.status >= 400:
                    self.callbacks.inc(outcome="http_error")
                    log.warning("callback POST answered HTTP %d", resp.status,
                                extra={"callback_host": host})
                    return
            self.callbacks.inc(outcome="ok")
        except asyncio.CancelledError:
            self.callbacks.inc(outcome="cancelled")
            raise
        except Exception as exc:
            self.callbacks.inc(outcome="error")
            log.warning("callback POST failed: %s", type(exc).__name__,
                        extra={"callback_host": host})
        finally:
            self.in_flight.dec()

    # -- what to answer --------------------------------------------------------------------
    async def answer(self, req: SkillRequest) -> dict[str, Any]:
        """Route one request (feedback tap or mood message) to the engine and render the result.

        Never raises (except cancellation): every failure becomes a polite text, because the
        same answer may be posted to a callback URL where an exception would be lost.
        """
        t0 = time.perf_counter()
        kind, resp, rec_id = "error", text_response(TEXT_ERROR), None
        try:
            tap = req.tap
            typed = KAKAO_REPLIES.get(req.utterance.strip())
            if tap is None and typed is not None:
                last = self.last.get(req.engine_user)
                tap = FeedbackTap(last.rec_id, typed, last.song_ids, last.mood) if last else None
                if tap is None:
                    kind, resp = "prompt", text_response(TEXT_NO_REC, mood_quick_replies())
            if tap is not None:
                kind, resp, rec_id = await self._feedback(req, tap)
            elif typed is None:
                kind, resp, rec_id = await self._recommend(req)
        except Exception:
            log.exception("kakao answer failed", extra={"user": user_ref(req.user_id)})
        self.replies.inc(kind=kind)
        fields: dict[str, Any] = {"user": user_ref(req.user_id), "kind": kind,
                                  "ms": round((time.perf_counter() - t0) * 1000, 1)}
        if rec_id:
            fields["rec_id"] = rec_id
        if self.settings.store_message_text:
            fields["text"] = req.utterance
        log.info("kakao answer", extra=fields)
        return resp

    async def _recommend(self, req: SkillRequest, mood: str | None = None, intro: str | None = None
                         ) -> tuple[str, dict[str, Any], str | None]:
        text = req.utterance
        if mood is None:
            if _is_blank(text):
                return "prompt", text_response(TEXT_EMPTY, mood_quick_replies()), None
            if not _has_words(text) and parse_emotion(text) is None:
                return "prompt", text_response(TEXT_NO_WORDS, mood_quick_replies()), None
        t0 = time.perf_counter()
        try:
            if mood is None:  # explicit moods ("/mood 평화", "슬픔") are the engine's to spot
                rec = await self.engine.recommend(req.engine_user, text, channel="kakao")
            else:
                rec = await self.engine.recommend_mood(req.engine_user, mood, channel="kakao")
        except InputTooLongError as exc:
            return "too_long", text_response(str(exc)), None
        except UnknownSongError as exc:
            return "engine_error", text_response(str(exc)), None
        except Exception as exc:
            self.engine_errors.inc(channel="kakao", error=type(exc).__name__)
            log.error("recommend failed: %s", type(exc).__name__, exc_info=True,
                      extra={"user": user_ref(req.user_id)})
            return "error", text_response(TEXT_ERROR), None
        finally:
            self.engine_seconds.observe(time.perf_counter() - t0, channel="kakao",
                                        op="recommend")
        self.last.put(req.engine_user, rec)
        return ("more" if mood else "recommendation"), recommendation_response(rec, intro), rec.rec_id

    async def _feedback(self, req: SkillRequest, tap: FeedbackTap
                        ) -> tuple[str, dict[str, Any], str | None]:
        song_ids = tap.song_ids
        last = self.last.get(req.engine_user)
        if not song_ids and last is not None and last.rec_id == tap.rec_id:
            song_ids = last.song_ids
        new, failed = await self._record(req, tap.rec_id, song_ids, tap.signal)
        if tap.signal is Signal.SKIP:
            mood = tap.mood or (last.mood if last else None)
            if mood is None:
                return "prompt", text_response(TEXT_NO_REC, mood_quick_replies()), None
            return await self._recommend(req, mood=mood, intro=TEXT_FEEDBACK[Signal.SKIP])
        if not song_ids:
            return "feedback_unknown", text_response(TEXT_NO_REC, mood_quick_replies()), None
        if failed == len(song_ids):
            text = TEXT_FEEDBACK_FAILED
        elif new == 0:
            text = TEXT_FEEDBACK_DUP
        else:
            text = TEXT_FEEDBACK[tap.signal]
        extra = {"rec_id": tap.rec_id, "signal": Signal.SKIP.value, "song_ids": ",".join(song_ids)}
        mood = tap.mood or (last.mood if last else None)
        if mood:
            extra["mood"] = mood
        more = {"label": _REPLY_FOR_SIGNAL[Signal.SKIP], "action": "message",
                "messageText": _REPLY_FOR_SIGNAL[Signal.SKIP], "extra": extra}
        return "feedback", text_response(text, [more, *mood_quick_replies()]), tap.rec_id

    async def _record(self, req: SkillRequest, rec_id: str, song_ids: Sequence[str],
                      signal: Signal) -> tuple[int, int]:
        """Feedback on a whole message applies to each of its tracks; returns (new, failed)."""
        new = failed = 0
        errors: set[str] = set()
        kwargs = {"scope": "message"} if self._scoped else {}
        t0 = time.perf_counter()
        for sid in song_ids:
            try:
                if await self.engine.feedback(rec_id, sid, req.engine_user, signal, **kwargs):
                    new += 1
            except Exception as exc:
                # Store down or not configured, or a stale/forged rec (the store refuses songs
                # that were not shown): the chat goes on, the operator sees the count and a line.
                failed += 1
                errors.add(type(exc).__name__)
                self.engine_errors.inc(channel="kakao", error=type(exc).__name__)
        if song_ids:
            self.engine_seconds.observe(time.perf_counter() - t0, channel="kakao", op="feedback")
        if failed:
            log.warning("feedback not recorded for %d of %d tracks: %s", failed, len(song_ids),
                        ", ".join(sorted(errors)),
                        extra={"user": user_ref(req.user_id), "rec_id": rec_id})
        if new:
            self.feedbacks.inc(channel="kakao", signal=signal.value)
        return new, failed


# ---- HTTP layer ------------------------------------------------------------------------------

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
