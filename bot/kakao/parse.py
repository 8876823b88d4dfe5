"""SkillPayload → :class:`SkillRequest`; anything malformed is a :class:`SkillRequestError` (400).

This is the edge: the utterance is cleaned here, once (``inference.text.clean_text``: a lone
surrogate such as ``"\\ud800"`` is valid JSON but not valid Unicode, and would break the
tokenizer, SQLite and log sinks further in), and Kakao's own command words (help, "내 정보 삭제"
and its confirmation, the feedback quick-reply labels) are recognised here, so the skill only
routes. Everything else — moods, requests, refinements, "2번 좋다", smalltalk — is free text for
the engine (``Recommender.respond``) to understand; the parser does not guess at it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from bot.feedback import KAKAO_REPLIES, Signal
from bot.kakao.schema import LIMITS
from inference.emotions import LABELS, UnknownEmotionError, index_of
from inference.text import clean_text

__all__ = [
    "CANCEL_LABEL",
    "CONFIRM_LABEL",
    "USER_PREFIX",
    "Command",
    "FeedbackTap",
    "SkillRequest",
    "SkillRequestError",
    "parse_skill_request",
]

USER_PREFIX = "kakao:"  # engine user ids are namespaced per channel (Discord ids are numbers)
CONFIRM_LABEL = "삭제할게요"
CANCEL_LABEL = "취소"
_REC_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MAX_CALLBACK_URL = 2048


def _key(text: str) -> str:
    """Spacing and case do not matter in a command word: "내 정보  삭제" == "내정보삭제"."""
    return "".join(text.split()).casefold()


_HELP = frozenset(map(_key, ("도움말", "help", "/help", "/도움말", "사용법")))
_FORGET = frozenset(map(_key, ("내 정보 삭제", "정보 삭제", "/forget-me", "/forget_me")))
_TYPED_FEEDBACK = {_key(label): sig for label, sig in KAKAO_REPLIES.items()}


class Command(StrEnum):
    """What a message asks for, as far as the words alone tell (the skill resolves the rest)."""

    RECOMMEND = "recommend"  # free text: ``Recommender.respond`` decides what it asks for
    FEEDBACK = "feedback"
    HELP = "help"
    FORGET = "forget"  # "내 정보 삭제": ask for confirmation
    FORGET_CONFIRM = "forget_confirm"  # "삭제할게요" (tapped or typed)
    FORGET_CANCEL = "forget_cancel"  # "취소": only a command while a deletion is pending


class SkillRequestError(ValueError):
    """The body is not a usable SkillPayload; the message says which field and why (→ 400)."""


@dataclass(frozen=True, slots=True)
class FeedbackTap:
    """A feedback quick reply, tapped (``rec_id`` from its ``extra``) or typed (no ``rec_id``:
    the engine's record of the user's last answer decides what it is about)."""

    signal: Signal
    rec_id: str | None = None
    mood: str | None = None


@dataclass(frozen=True, slots=True)
class SkillRequest:
    utterance: str  # cleaned (clean_text)
    user_id: str  # Kakao's id (botUserKey); see ``engine_user``
    user_type: str | None = None
    callback_url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    command: Command = Command.RECOMMEND
    tap: FeedbackTap | None = None  # when ``command`` is FEEDBACK
    forget_token: str | None = None  # the confirmation a tapped "삭제할게요" carries
    cancel_token: str | None = None  # the same question's token on a tapped "취소"

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
    if not isinstance(rec_id, str) or not _REC_ID.match(rec_id):
        raise SkillRequestError("action.clientExtra.rec_id must be a non-empty string "
                                "(≤ 64 chars of A-Z, a-z, 0-9, _ and -) when signal is given")
    _check_song_ids(extra)
    return FeedbackTap(signal, rec_id, _mood(extra.get("mood")))


def _check_song_ids(extra: Mapping[str, Any]) -> None:
    """Older buttons carried the shown song ids; the engine now reads them from the store, but a
    malformed value still marks a forged or broken payload."""
    raw: Any = extra.get("song_ids")
    if raw is None:
        return
    if isinstance(raw, str):
        raw = [s for s in raw.split(",") if s]
    if not isinstance(raw, list) or not all(isinstance(s, str) and 0 < len(s) <= 64
                                            for s in raw) or len(raw) > LIMITS.carousel_items:
        raise SkillRequestError("action.clientExtra.song_ids must be a comma-separated string "
                                f"or a list of at most {LIMITS.carousel_items} song ids")


def _mood(raw: object) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise SkillRequestError("action.clientExtra.mood must be a string")
    try:
        return LABELS[index_of(raw)]
    except UnknownEmotionError:
        return None  # a stale or foreign button: re-recommend from the user's last mood instead


def _forget_token(extra: Mapping[str, Any], key: str = "forget") -> str | None:
    raw = extra.get(key)
    if raw is None:
        return None
    if not isinstance(raw, str) or not _REC_ID.match(raw):
        raise SkillRequestError(f"action.clientExtra.{key} must be a short token string")
    return raw


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


def _command(utterance: str, tap: FeedbackTap | None, token: str | None,
             cancel: str | None = None) -> Command:
    key = _key(utterance)
    if cancel is not None:
        return Command.FORGET_CANCEL
    if token is not None or key == _key(CONFIRM_LABEL):
        return Command.FORGET_CONFIRM
    if tap is not None or key in _TYPED_FEEDBACK:
        return Command.FEEDBACK
    if key in _HELP:
        return Command.HELP
    if key in _FORGET:
        return Command.FORGET
    if key == _key(CANCEL_LABEL):
        return Command.FORGET_CANCEL
    return Command.RECOMMEND


def parse_skill_request(body: object) -> SkillRequest:
    """Pull what we use out of a Kakao SkillPayload; anything malformed → SkillRequestError.

    Fields we do not use (intent, bot, params, detailParams, contexts, ...) are ignored so a
    format extension on Kakao's side does not break the skill. Where a callback URL may point
    is policy (``bot.kakao.callback``), checked after parsing.
    """
    if not isinstance(body, dict):
        raise SkillRequestError(
            f"request body must be a JSON object (a Kakao SkillPayload), got {_json_type(body)}")
    ureq = _field(body, "userRequest", "", dict)
    utterance = clean_text(_field(ureq, "utterance", "userRequest.", str))
    user = _field(ureq, "user", "userRequest.", dict)
    user_id = _field(user, "id", "userRequest.user.", str)
    if not user_id.strip() or len(user_id) > 256 or clean_text(user_id) != user_id:
        raise SkillRequestError("userRequest.user.id must be a non-empty string (≤ 256 chars, "
                                "no control characters)")
    user_type = _field(user, "type", "userRequest.user.", str, required=False)
    callback = _field(ureq, "callbackUrl", "userRequest.", str, required=False)
    if callback is not None:
        try:
            parts = urlsplit(callback)
        except ValueError:
            parts = None
        if (parts is None or parts.scheme not in ("http", "https") or not parts.hostname
                or len(callback) > _MAX_CALLBACK_URL):
            raise SkillRequestError("userRequest.callbackUrl must be an http(s) URL")
    action = _field(body, "action", "", dict, required=False) or {}
    extra: Any = action.get("clientExtra")
    if extra is None or extra in ("", "null"):  # Kakao sends null (and, in old payloads, "null")
        extra = {}
    if not isinstance(extra, dict):
        raise SkillRequestError(
            f"action.clientExtra must be an object or null, got {_json_type(extra)}")
    tap = _feedback_tap(extra)
    token = _forget_token(extra)
    cancel = _forget_token(extra, "forget_cancel")
    command = _command(utterance, tap, token, cancel)
    if command is Command.FEEDBACK and tap is None:  # typed, or a tap whose extra was lost
        tap = FeedbackTap(_TYPED_FEEDBACK[_key(utterance)])
    return SkillRequest(utterance, user_id, user_type, callback, extra, command, tap, token,
                        cancel)


_JSON_NAMES: dict[type, str] = {dict: "an object", list: "an array", str: "a string",
                                bool: "a boolean", int: "a number", float: "a number",
                                type(None): "null"}


def _json_type(value: object) -> str:
    return _JSON_NAMES.get(type(value), "a value")


def has_words(text: str) -> bool:
    """True if the text has any letter or digit (Hangul jamo such as 'ㅠㅠ' count as letters)."""
    return any(unicodedata.category(c)[0] in "LN" for c in text)


def is_blank(text: str) -> bool:
    return not any(not c.isspace() and unicodedata.category(c) != "Cf" for c in text)
