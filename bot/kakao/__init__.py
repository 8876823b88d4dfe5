"""moodtune on KakaoTalk: a Kakao i Open Builder skill server (aiohttp) over the shared engine."""

from bot.kakao.app import SECRET_HEADER, SKILL_PATH, create_app, serve
from bot.kakao.parse import SkillRequest, SkillRequestError, parse_skill_request
from bot.kakao.render import (
    TEXT_EMPTY,
    TEXT_ERROR,
    TEXT_FEEDBACK_DUP,
    TEXT_FEEDBACK_FAILED,
    TEXT_NO_REC,
    TEXT_NO_WORDS,
    TEXT_TIMEOUT,
    callback_ack,
    recommendation_response,
    text_response,
)
from bot.kakao.schema import LIMITS, KakaoLimits, KakaoResponseError, validate_response
from bot.kakao.skill import ANSWER_DEADLINE_S

__all__ = [
    "ANSWER_DEADLINE_S", "LIMITS", "SECRET_HEADER", "SKILL_PATH", "TEXT_EMPTY", "TEXT_ERROR",
    "TEXT_FEEDBACK_DUP", "TEXT_FEEDBACK_FAILED", "TEXT_NO_REC", "TEXT_NO_WORDS", "TEXT_TIMEOUT",
    "KakaoLimits", "KakaoResponseError", "SkillRequest", "SkillRequestError", "callback_ack",
    "create_app", "parse_skill_request", "recommendation_response", "serve", "text_response",
    "validate_response",
]
