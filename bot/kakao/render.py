"""Every word and bubble the Kakao skill sends: pure builders, each validated before it leaves.

Kakao rejects (it does not truncate) a response that breaks a limit, so each builder clips its
text and ends in :func:`~bot.kakao.schema.validate_response`. Quick replies carry a small flat
``extra`` (the answer's id, the signal, the mood); the feedback path no longer depends on it,
because Kakao fallback blocks can drop it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

from bot.engine import BUSY_TEXT, Recommendation
from bot.feedback import KAKAO_REPLIES, Signal
from bot.kakao.parse import CANCEL_LABEL, CONFIRM_LABEL
from bot.kakao.schema import LIMITS, validate_response
from inference.emotions import EMOTIONS, LABELS, index_of

__all__ = [
    "TEXT_BUSY", "TEXT_EMPTY", "TEXT_ERROR", "TEXT_FEEDBACK", "TEXT_FEEDBACK_DUP", "TEXT_FEEDBACK_FAILED",
    "TEXT_FORGET_CANCELLED", "TEXT_FORGET_EXPIRED", "TEXT_FORGET_FAILED", "TEXT_HELP",
    "TEXT_NO_REC", "TEXT_NO_WORDS", "TEXT_TIMEOUT", "TEXT_WAIT",
    "busy_response", "callback_ack", "clip", "feedback_response", "forget_done_response",
    "forget_question_response", "help_response", "mood_quick_replies", "rate_limited_response",
    "recommendation_response", "text_response", "top_mood",
]

TEXT_EMPTY = "듣고 싶은 분위기나 지금 기분을 말해 주세요 🎧\n예: '오늘 좀 지쳤어', '/mood 평화'"
TEXT_NO_WORDS = ("이모티콘만으로는 기분을 읽기 어려워요 🙂 한두 마디 말로 알려 주시거나 "
                 "아래에서 분위기를 골라 주세요.")
#: The engine's own words when it refuses (EngineBusyError); used as-is for our delivery cap.
TEXT_BUSY = BUSY_TEXT  # one sentence for every adapter (bot.engine)
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
TEXT_HELP = (
    "🎧 moodtune은 지금 기분에 어울리는 노래를 골라 드려요.\n\n"
    "• 기분을 한두 마디로 말해 주세요. 예: '오늘 좀 지쳤어', '시험 끝나서 신나'\n"
    "• 분위기를 바로 고를 수도 있어요: 분노 · 긴장 · 슬픔 · 평화 · 기쁨 · 중립 "
    "(예: '/mood 평화')\n"
    "• 추천이 마음에 들면 '좋아요', 아니면 '별로예요', 다른 곡을 원하면 '다른 노래'를 눌러 "
    "주세요. 다음 추천에 반영돼요.\n"
    "• '내 정보 삭제'라고 보내면 저장된 추천 기록과 피드백을 모두 지워요.")
TEXT_FORGET_QUESTION = (
    "저장된 내 정보(추천 기록, 피드백)를 모두 삭제할까요? 되돌릴 수 없어요.\n"
    "{minutes}분 안에 '삭제할게요'를 눌러 주세요.")
TEXT_FORGET_CANCELLED = "취소했어요. 아무것도 지우지 않았어요 🙂"
TEXT_FORGET_EXPIRED = ("확인 시간이 지났거나 삭제 요청을 찾지 못했어요. "
                       "지우려면 다시 '내 정보 삭제'라고 보내 주세요.")
TEXT_FORGET_FAILED = "지금은 정보를 삭제하지 못했어요. 잠시 후 다시 '삭제할게요'를 눌러 주세요."
MORE_LABEL = "다른 노래 더 보기"
_REPLY_FOR_SIGNAL = {sig: label for label, sig in KAKAO_REPLIES.items()}
#: How the store's per-table counts read to a person (tables not listed are not mentioned).
_FORGOT = (("recommendations", "추천 기록"), ("feedback", "피드백"))


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


@functools.lru_cache(maxsize=8)
def busy_response(text: str) -> dict[str, Any]:
    """The engine is full: say so now (the engine's words), with a tap per mood to retry.

    Cached: under a flood this is most of what the server sends, and building and validating
    the same bubble thousands of times a second would take CPU from the requests admitted.
    The dict is shared; responses are never modified after they are built.
    """
    return text_response(text, mood_quick_replies())


def help_response() -> dict[str, Any]:
    return text_response(TEXT_HELP, mood_quick_replies())


def callback_ack(text: str = TEXT_WAIT) -> dict[str, Any]:
    """The immediate answer that tells Kakao the real one will arrive on the callback URL."""
    return validate_response({"version": "2.0", "useCallback": True,
                              "data": {"text": clip(text, LIMITS.simple_text)}})


def top_mood(emotion: Sequence[float]) -> str:
    """The label of the strongest emotion in a LABELS-ordered vector."""
    return LABELS[max(range(len(emotion)), key=lambda i: emotion[i])]


def mood_line(rec: Recommendation) -> str:
    """The mood we read, in words a person recognises: "😢 슬픔 72% · 😰 긴장 18%"."""
    if rec.source == "explicit":
        e = EMOTIONS[index_of(top_mood(rec.emotion))]
        return f"{e.emoji} {e.ko} 무드로 골라 봤어요."
    parts = [f"{EMOTIONS[index_of(label)].emoji} {label} {p:.0%}" for label, p in rec.dominant]
    if rec.source == "similar":
        return f"비슷한 분위기({' · '.join(parts)})의 노래예요."
    return f"지금 기분: {' · '.join(parts)}\n이런 노래 어때요?"


def feedback_extra(rec_id: str, signal: Signal, mood: str | None) -> dict[str, str]:
    """What a quick reply carries back: the answer, the signal and the mood (flat strings)."""
    extra = {"rec_id": rec_id, "signal": signal.value}
    if mood:
        extra["mood"] = mood
    return extra


def feedback_quick_replies(rec: Recommendation) -> list[dict[str, Any]]:
    mood = top_mood(rec.emotion)
    return [{"label": label, "action": "message", "messageText": label,
             "extra": feedback_extra(rec.rec_id, sig, mood)}
            for label, sig in KAKAO_REPLIES.items()]


def recommendation_response(rec: Recommendation, intro: str | None = None) -> dict[str, Any]:
    """simpleText (the mood read) + listCard of up to 5 tracks, or a carousel for 6-10."""
    text = mood_line(rec) if intro is None else f"{intro}\n{mood_line(rec)}"
    outputs: list[dict[str, Any]] = [{"simpleText": {"text": clip_keep_lines(
        text, LIMITS.simple_text)}}]
    if not rec.tracks:
        outputs[0]["simpleText"]["text"] = clip_keep_lines(
            text + "\n아쉽게도 지금은 어울리는 노래를 찾지 못했어요.", LIMITS.simple_text)
        return _response(outputs, mood_quick_replies())
    mood = top_mood(rec.emotion)
    more = {"label": MORE_LABEL, "action": "message",
            "messageText": _REPLY_FOR_SIGNAL[Signal.SKIP],
            "extra": feedback_extra(rec.rec_id, Signal.SKIP, mood)}
    e = EMOTIONS[index_of(mood)]
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


def feedback_response(text: str, rec_id: str | None, mood: str | None) -> dict[str, Any]:
    """The thanks for a "좋아요"/"별로예요", with "다른 노래" for the same answer and the moods."""
    replies = mood_quick_replies()
    if rec_id:
        label = _REPLY_FOR_SIGNAL[Signal.SKIP]
        replies.insert(0, {"label": label, "action": "message", "messageText": label,
                           "extra": feedback_extra(rec_id, Signal.SKIP, mood)})
    return text_response(text, replies)


def rate_limited_response(wait_s: float, per_minute: int, *, feedback: bool = False
                          ) -> dict[str, Any]:
    seconds = max(1, math.ceil(wait_s))
    if feedback:
        return text_response(f"조금만 천천히요! 피드백은 1분에 {per_minute}번까지 받을 수 있어요. "
                             f"{seconds}초 뒤에 다시 눌러 주세요 🙏")
    return text_response(f"조금만 천천히요! 1분에 {per_minute}번까지 추천해 드릴 수 있어요. "
                         f"{seconds}초 뒤에 다시 말해 주세요 🙏")


def forget_question_response(token: str, window_s: float) -> dict[str, Any]:
    """"Delete everything?" with the two answers; the confirm tap carries ``token``."""
    minutes = max(1, round(window_s / 60))
    return text_response(TEXT_FORGET_QUESTION.format(minutes=minutes), [
        {"label": CONFIRM_LABEL, "action": "message", "messageText": CONFIRM_LABEL,
         "extra": {"forget": token}},
        {"label": CANCEL_LABEL, "action": "message", "messageText": CANCEL_LABEL},
    ])


def forget_done_response(counts: Mapping[str, int]) -> dict[str, Any]:
    """What was deleted, in words: "추천 기록 3건, 피드백 5건"."""
    parts = [f"{name} {counts.get(table, 0):,}건" for table, name in _FORGOT]
    stored = ", ".join(parts) if counts else "저장된 기록 없음"
    return text_response(f"삭제했어요 🗑️ {stored}.\n"
                         "대화 중 기억하던 내용도 모두 지웠어요. 다시 기분을 말해 주시면 새로 "
                         "시작해요.", mood_quick_replies())
