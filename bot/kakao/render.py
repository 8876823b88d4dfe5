"""Every word and bubble the Kakao skill sends: pure builders, each validated before it leaves.

Kakao rejects (it does not truncate) a response that breaks a limit, so each builder clips its
text and ends in :func:`~bot.kakao.schema.validate_response`. What to *say* comes from the
engine (``Recommender.respond``'s :class:`~bot.dialogue.Reply`); this module only lays it out.
Feedback quick replies carry a small flat ``extra`` (the answer's id, the signal, the mood); the
feedback path no longer depends on it, because Kakao fallback blocks can drop it. Refinement
quick replies ("더 신나게") carry none: they are typed text to the engine, whose thread (memory
and store) says what they refine.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

from bot.dialogue import Reply
from bot.engine import BUSY_TEXT
from bot.feedback import KAKAO_REPLIES, Signal
from bot.kakao.parse import CANCEL_LABEL, CONFIRM_LABEL
from bot.kakao.schema import LIMITS, validate_response
from inference.emotions import EMOTIONS, LABELS, UnknownEmotionError, index_of

__all__ = [
    "OTHER_TEXT", "REFINE_LABELS", "TEXT_BUSY", "TEXT_EMPTY", "TEXT_ERROR", "TEXT_FEEDBACK",
    "TEXT_FEEDBACK_DUP", "TEXT_FEEDBACK_FAILED", "TEXT_FORGET_CANCELLED", "TEXT_FORGET_EXPIRED",
    "TEXT_FORGET_FAILED", "TEXT_HELP", "TEXT_NO_REC", "TEXT_NO_WORDS", "TEXT_TIMEOUT", "TEXT_WAIT",
    "answer_quick_replies", "busy_response", "callback_ack", "clip", "feedback_response",
    "forget_done_response", "forget_question_response", "help_response", "mood_quick_replies",
    "rate_limited_response", "recommendation_response", "text_response", "top_mood",
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
    "• 듣고 싶은 걸 그대로 말해도 돼요. 예: '신나는 힙합 틀어줘', '아이유 노래', "
    "'밤편지 같은 노래', '우울한데 신나는 걸로 바꾸고 싶어'\n"
    "• 추천이 마음에 들면 '좋아요', 아니면 '별로예요', 다른 곡을 원하면 '다른 노래'를 눌러 "
    "주세요. 다음 추천에 반영돼요. '2번 좋다', '1번 별로'처럼 곡을 골라 말해도 돼요.\n"
    "• 방금 추천을 다듬을 수도 있어요: '더 신나게', '더 잔잔하게', '다른 거', '발라드로', "
    "'2번 같은 거'\n"
    "• '내 정보 삭제'라고 보내면 저장된 추천 기록과 피드백을 모두 지워요.")
TEXT_FORGET_QUESTION = (
    "저장된 내 정보(추천 기록, 피드백)를 모두 삭제할까요? 되돌릴 수 없어요.\n"
    "{minutes}분 안에 '삭제할게요'를 눌러 주세요.")
TEXT_FORGET_CANCELLED = "취소했어요. 아무것도 지우지 않았어요 🙂"
TEXT_FORGET_EXPIRED = ("확인 시간이 지났거나 삭제 요청을 찾지 못했어요. "
                       "지우려면 다시 '내 정보 삭제'라고 보내 주세요.")
TEXT_FORGET_FAILED = "지금은 정보를 삭제하지 못했어요. 잠시 후 다시 '삭제할게요'를 눌러 주세요."
MORE_LABEL = "다른 노래 더 보기"
#: Quick replies that refine the last answer; each is sent as typed text ("더 신나게" is a
#: refinement the engine understands from the thread it keeps, so it survives a restart).
REFINE_LABELS = ("더 신나게", "더 잔잔하게")
#: What "다른 노래" asks the engine after recording the skip: a refinement of the same thread.
OTHER_TEXT = "다른 거"
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


def feedback_extra(rec_id: str, signal: Signal, mood: str | None) -> dict[str, str]:
    """What a quick reply carries back: the answer, the signal and the mood (flat strings).

    The mood lets "다른 노래" still answer for the same mood when the engine no longer has
    the thread (the user deleted their data since).
    """
    extra = {"rec_id": rec_id, "signal": signal.value}
    if mood:
        extra["mood"] = mood
    return extra


def refine_quick_replies() -> list[dict[str, Any]]:
    """"더 신나게" / "더 잔잔하게": plain messages, so tapping one is the same as typing it."""
    return [{"label": label, "action": "message", "messageText": label}
            for label in REFINE_LABELS]


def answer_quick_replies(rec_id: str, mood: str | None) -> list[dict[str, Any]]:
    """After an answer: 좋아요 / 별로예요 / 다른 노래 (feedback on it) + the refinements."""
    feedback = [{"label": label, "action": "message", "messageText": label,
                 "extra": feedback_extra(rec_id, sig, mood)}
                for label, sig in KAKAO_REPLIES.items()]
    return feedback + refine_quick_replies()


def _mood_of(reply: Reply) -> str | None:
    return top_mood(reply.emotion) if reply.emotion else None


def _header(reply: Reply, mood: str | None) -> str:
    """The listCard title: the mood the songs are for (the goal, when lifting a mood), and the
    genre asked for, so the card still reads right when it is all someone looks at."""
    goal = reply.request.get("target_mood") if reply.strategy == "lift" else None
    genres = reply.request.get("genres") or ()
    title = "🎧 추천 노래"
    try:
        if goal:
            e = EMOTIONS[index_of(goal)]
            title = f"{e.emoji} {e.ko} 쪽으로 가는 노래"
        elif mood:
            e = EMOTIONS[index_of(mood)]
            title = f"{e.emoji} {e.ko}에 어울리는 노래"
    except UnknownEmotionError:
        pass
    if genres:
        title += f" · {'/'.join(map(str, genres))}"
    return clip(title, LIMITS.header_title)


def recommendation_response(reply: Reply, intro: str | None = None) -> dict[str, Any]:
    """The engine's intro (what it understood) + a listCard of up to 5 tracks, each described by
    its own reason, or a basicCard carousel for 6-10; feedback and refinement quick replies."""
    text = reply.text if intro is None else f"{intro}\n{reply.text}"
    outputs: list[dict[str, Any]] = [{"simpleText": {"text": clip_keep_lines(
        text, LIMITS.simple_text)}}]
    if not reply.tracks or not reply.rec_id:  # the engine's text already says nothing fitted
        return _response(outputs, mood_quick_replies())
    mood = _mood_of(reply)
    more = {"label": MORE_LABEL, "action": "message",
            "messageText": _REPLY_FOR_SIGNAL[Signal.SKIP],
            "extra": feedback_extra(reply.rec_id, Signal.SKIP, mood)}
    if len(reply.tracks) <= LIMITS.list_items:
        outputs.append({"listCard": {
            "header": {"title": _header(reply, mood)},
            "items": [{"title": clip(f"{t.title} — {t.artist}", LIMITS.list_title),
                       "description": short_reason(t.reason),
                       "link": {"web": t.link}} for t in reply.tracks],
            "buttons": [more],
        }})
    else:
        outputs.append({"carousel": {"type": "basicCard", "items": [
            {"title": clip(f"{t.title} — {t.artist}", LIMITS.card_title),
             "description": clip(t.reason, LIMITS.card_description),
             "buttons": [{"label": "듣기", "action": "webLink", "webLinkUrl": t.link}]}
            for t in reply.tracks[: LIMITS.carousel_items]]}})
    return _response(outputs, answer_quick_replies(reply.rec_id, mood))


def feedback_response(text: str, rec_id: str | None, mood: str | None) -> dict[str, Any]:
    """The thanks for a "좋아요"/"별로예요": "다른 노래" for the same answer, the refinements,
    and the moods (to start afresh)."""
    replies = mood_quick_replies()
    if rec_id:
        label = _REPLY_FOR_SIGNAL[Signal.SKIP]
        replies[:0] = [{"label": label, "action": "message", "messageText": label,
                        "extra": feedback_extra(rec_id, Signal.SKIP, mood)},
                       *refine_quick_replies()]
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
    """"Delete everything?" with the two answers; both taps carry ``token`` (signed, so the
    replica that receives the answer need not be the one that asked)."""
    minutes = max(1, round(window_s / 60))
    return text_response(TEXT_FORGET_QUESTION.format(minutes=minutes), [
        {"label": CONFIRM_LABEL, "action": "message", "messageText": CONFIRM_LABEL,
         "extra": {"forget": token}},
        {"label": CANCEL_LABEL, "action": "message", "messageText": CANCEL_LABEL,
         "extra": {"forget_cancel": token}},
    ])


def forget_done_response(counts: Mapping[str, int]) -> dict[str, Any]:
    """What was deleted, in words: "추천 기록 3건, 피드백 5건"."""
    parts = [f"{name} {counts.get(table, 0):,}건" for table, name in _FORGOT]
    stored = ", ".join(parts) if counts else "저장된 기록 없음"
    return text_response(f"삭제했어요 🗑️ {stored}.\n"
                         "대화 중 기억하던 내용도 모두 지웠어요. 다시 기분을 말해 주시면 새로 "
                         "시작해요.", mood_quick_replies())
