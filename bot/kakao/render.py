"""Every word and bubble the Kakao skill sends: pure builders, each validated before it leaves."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from bot.engine import Recommendation
from bot.feedback import KAKAO_REPLIES, Signal
from bot.kakao.schema import LIMITS, validate_response
from inference.emotions import EMOTIONS, LABELS, index_of

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

