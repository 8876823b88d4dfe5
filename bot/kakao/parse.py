"""SkillPayload → :class:`SkillRequest`; anything malformed is a :class:`SkillRequestError` (400)."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from bot.feedback import KAKAO_REPLIES, Signal
from bot.kakao.schema import LIMITS
from inference.emotions import LABELS, UnknownEmotionError, index_of

USER_PREFIX = "kakao:"  # engine user ids are namespaced per channel (Discord ids are numbers)


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

