"""moodtune on KakaoTalk: a Kakao i Open Builder skill server (aiohttp) over the shared engine.

``schema`` holds Kakao's response limits and the validator, ``parse`` turns a SkillPayload into a
:class:`SkillRequest` (400 on anything malformed), ``render`` builds every reply, ``callback``
decides where a late answer may be POSTed, ``skill`` routes a request to the engine inside
Kakao's 5-second deadline, and ``app`` is the HTTP layer (``create_app``, ``serve``).
"""

from bot.kakao.app import SECRET_HEADER, SKILL_PATH, create_app, runner_options, serve
from bot.kakao.callback import CallbackRefusedError, check_callback_url
from bot.kakao.parse import Command, SkillRequest, SkillRequestError, parse_skill_request
from bot.kakao.render import (
    TEXT_BUSY,
    TEXT_EMPTY,
    TEXT_ERROR,
    TEXT_FEEDBACK_DUP,
    TEXT_FEEDBACK_FAILED,
    TEXT_HELP,
    TEXT_NO_REC,
    TEXT_NO_WORDS,
    TEXT_TIMEOUT,
    callback_ack,
    recommendation_response,
    text_response,
)
from bot.kakao.schema import LIMITS, KakaoLimits, KakaoResponseError, validate_response
from bot.kakao.skill import ANSWER_DEADLINE_S, Skill

__all__ = [
    "ANSWER_DEADLINE_S",
    "LIMITS",
    "SECRET_HEADER",
    "SKILL_PATH",
    "TEXT_BUSY",
    "TEXT_EMPTY",
    "TEXT_ERROR",
    "TEXT_FEEDBACK_DUP",
    "TEXT_FEEDBACK_FAILED",
    "TEXT_HELP",
    "TEXT_NO_REC",
    "TEXT_NO_WORDS",
    "TEXT_TIMEOUT",
    "CallbackRefusedError",
    "Command",
    "KakaoLimits",
    "KakaoResponseError",
    "Skill",
    "SkillRequest",
    "SkillRequestError",
    "callback_ack",
    "check_callback_url",
    "create_app",
    "parse_skill_request",
    "recommendation_response",
    "runner_options",
    "serve",
    "text_response",
    "validate_response",
]
