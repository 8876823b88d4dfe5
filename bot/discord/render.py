"""What the Discord bot says and draws — pure functions from engine results to text and embeds.

Kept apart from the handlers so every word and every bar can be unit-tested without a gateway,
and so the cogs stay "parse → engine → render". Nothing here touches the network, the store or
the event loop; the one exception-free rule is that bad data (a missing title, a vector that does
not sum to one) still renders something readable instead of raising inside a handler.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import discord

from bot.engine import Reply
from bot.feedback import REACTIONS, Signal
from inference.emotions import EMOTIONS, LABELS

__all__ = [
    "ADMIN_ONLY",
    "BOT_REACTIONS",
    "CF_UNAVAILABLE",
    "DISCORD_HELP",
    "EMPTY_MESSAGE",
    "ENGINE_FAILED",
    "FEEDBACK_NOT_SAVED",
    "FEEDBACK_UNKNOWN",
    "FORGET_PROMPT",
    "NOTE_NO_FEEDBACK",
    "NOT_CURRENT_THREAD",
    "STORE_UNAVAILABLE",
    "Answer",
    "button_ack",
    "channel_list_text",
    "channel_toggle_text",
    "forget_done_text",
    "history_embed",
    "mood_bar",
    "mood_lines",
    "rate_limited_text",
    "reaction_signal",
    "recommendation_embed",
    "reindex_done_text",
    "retrain_done_text",
    "stats_embed",
    "strip_bot_mention",
    "user_key",
]

# ---- fixed texts ----------------------------------------------------------------------------
EMPTY_MESSAGE = (
    "안녕하세요! 🎧 지금 기분을 한두 문장으로 말해 주면 어울리는 노래를 골라 드릴게요.\n"
    "예: `오늘 너무 지치고 우울해` · 분위기를 바로 고르려면 `/mood`")
ENGINE_FAILED = "추천하는 중에 문제가 생겼어요. 잠시 후 다시 시도해 주세요. 🙏"
FEEDBACK_NOT_SAVED = "지금은 피드백을 저장할 수 없어요. 잠시 후 다시 눌러 주세요. 🙏"
FEEDBACK_UNKNOWN = "이 추천은 기록에 없어서 피드백을 남길 수 없어요. 새로 추천받아 주세요."
STORE_UNAVAILABLE = "지금은 기록 저장소를 쓸 수 없어요. 잠시 후 다시 시도해 주세요."
ADMIN_ONLY = "관리자만 쓸 수 있어요. (서버 관리 권한이 필요해요)"
CF_UNAVAILABLE = ("협업 필터링(CF) 학습은 아직 준비되지 않았어요. 지금은 기분과 곡의 감정만으로 "
                  "추천하고 있어요.")
NOTE_NO_FEEDBACK = "⚠️ 지금은 피드백을 저장할 수 없어요"
#: The question before deleting someone's data (``/forget-me``, or "내 기록 지워 줘" in chat).
#: The engine's own privacy text asks for a typed answer; on Discord a button is safer.
FORGET_PROMPT = "🧹 추천 기록과 피드백을 **모두** 지울까요? 되돌릴 수 없어요."
#: What Discord adds to the engine's help text: the ways in that only exist here.
DISCORD_HELP = ("디스코드에서는 `/recommend`, `/mood`로도 물어볼 수 있고, 추천 아래 버튼으로 곡마다 "
                "👍/👎, **다른 노래** · **더 신나게** · **더 잔잔하게**를 고를 수 있어요. "
                "⏭️ 반응도 다른 노래를 불러와요. 기록 삭제는 `/forget-me`.")
NOT_CURRENT_THREAD = ("이 버튼은 추천을 받은 분이 가장 최근 추천에서 쓸 수 있어요. 새로 추천받으려면 "
                      "저를 멘션하고 기분을 말해 주세요 🙂")

#: Reactions the bot puts under its reply, in display order. Each one, with the emoji variation
#: selector stripped (as discord.py may report it), is a key of ``bot.feedback.REACTIONS``.
BOT_REACTIONS: tuple[str, ...] = ("👍", "❤️", "👎", "⏭️")

_SIGNAL_WORDS: dict[Signal, tuple[str, str]] = {
    Signal.LOVE: ("❤️", "최고예요"),
    Signal.LIKE: ("👍", "좋아요"),
    Signal.DISLIKE: ("👎", "별로예요"),
    Signal.SKIP: ("⏭️", "다음에"),
    Signal.PLAY: ("▶️", "들어봤어요"),
}

# Embed colour by dominant mood, keyed by English name so no column index is hard-coded here.
_MOOD_COLOURS: dict[str, int] = {
    "anger": 0xE74C3C, "tension": 0xE67E22, "sadness": 0x3498DB,
    "peace": 0x2ECC71, "joy": 0xF1C40F, "neutral": 0x95A5A6,
}

_TITLE_MAX = 80
_REASON_MAX = 180
_INTRO_MAX = 600
_CONTENT_MAX = 2000  # Discord's limit for a message's text
_BAR_WIDTH = 10
_MOOD_LINES = 3


def user_key(discord_user_id: int) -> str:
    """The engine/store user id for a Discord account.

    Namespaced so a Discord snowflake can never collide with a Kakao ``botUserKey`` or a console
    user in the shared store, and so ``/forget-me`` deletes exactly this door's identity.
    """
    return f"discord:{int(discord_user_id)}"


def strip_bot_mention(content: str, bot_id: int) -> str:
    """The message without the bot's own mention(s) (``<@id>`` and the legacy ``<@!id>``).

    The classifier should read what the person said, not the ping that addressed the bot.
    """
    return re.sub(rf"<@!?{int(bot_id)}>", " ", content).strip()


def _clip(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _link_text(text: str) -> str:
    """Markdown-safe text for inside ``[...]``: no brackets, then every markdown char escaped.

    Brackets go first: ``escape_markdown`` treats ``[x](y)`` as a link and then leaves the
    ``**`` inside it alone, which would end the bold around the track line early.
    """
    return discord.utils.escape_markdown(text.replace("[", "(").replace("]", ")"))


def _safe_url(url: str) -> str:
    """A URL that cannot end a markdown link early (``)`` and spaces encoded)."""
    return url.replace(" ", "%20").replace("(", "%28").replace(")", "%29")


# ---- mood -----------------------------------------------------------------------------------
def mood_bar(p: float, width: int = _BAR_WIDTH) -> str:
    """``███████░░░`` for 0.68: filled cells = share rounded to the nearest cell."""
    p = 0.0 if not math.isfinite(p) else min(max(p, 0.0), 1.0)
    filled = round(p * width)
    return "█" * filled + "░" * (width - filled)


def mood_lines(emotion: Sequence[float], *, top: int | None = None) -> list[str]:
    """One ``😢 슬픔 ███████░░░ 68%`` line per mood, strongest first.

    The vector is normalised to shares first: classifier output already sums to one, but a
    "more like this" answer uses a song's raw vector, and bars over 100 % would look broken.
    """
    values = [max(float(x), 0.0) if math.isfinite(float(x)) else 0.0 for x in emotion]
    total = sum(values)
    shares = [v / total for v in values] if total > 0 else [0.0] * len(values)
    order = sorted(range(len(shares)), key=lambda i: -shares[i])
    if top is not None:
        order = order[:top]
    return [f"{EMOTIONS[i].emoji} {EMOTIONS[i].ko} {mood_bar(shares[i])} {round(shares[i] * 100)}%"
            for i in order if i < len(EMOTIONS)]


def _dominant(emotion: Sequence[float]) -> int:
    return max(range(min(len(emotion), len(EMOTIONS))), key=lambda i: float(emotion[i]))


# ---- recommendation -------------------------------------------------------------------------
def recommendation_embed(reply: Reply, *, note: str | None = None) -> discord.Embed:
    """The answer: what was understood, the tracks as links with their reasons, the mood bars,
    the rec id in the footer.

    ``reply.text`` (the engine's intro: "지금 기분: 😢 슬픔 62%", "운동에 어울리는 곡 골라 봤어요")
    heads the description, so the person sees what was understood before the songs. The rec id
    is shown because it is what a person quotes in a bug report and what ties their reactions
    to this exact answer; ``note`` carries a warning such as "feedback not saved".
    """
    emotion = reply.emotion
    mood = EMOTIONS[_dominant(emotion)] if emotion else None
    if reply.source == "explicit" and mood is not None:
        title = f"🎧 {mood.emoji} {mood.ko} 분위기의 노래"
    elif reply.source == "similar":
        title = "🎧 이 노래와 비슷한 분위기의 노래"
    else:
        title = "🎧 지금 기분에 어울리는 노래"
    lines = []
    intro = (reply.text or "").strip()
    if intro:
        lines += [discord.utils.escape_markdown(line)
                  for line in _clip_text(intro, _INTRO_MAX).splitlines()]
        lines.append("")
    for n, t in enumerate(reply.tracks, 1):
        name = _link_text(_clip(t.title, _TITLE_MAX))
        artist = discord.utils.escape_markdown(_clip(t.artist, 60)) if t.artist else "알 수 없음"
        genre = getattr(t, "genre", None)
        extra = f" · {discord.utils.escape_markdown(_clip(genre, 30))}" if genre else ""
        lines.append(f"**{n}. [{name}]({_safe_url(t.link)})** — {artist}{extra}")
        if t.reason:
            lines.append(f"└ {discord.utils.escape_markdown(_clip(t.reason, _REASON_MAX))}")
    if not reply.tracks:
        lines.append("지금은 어울리는 곡을 찾지 못했어요. 다르게 한 번 더 말해 주세요.")
    colour = _MOOD_COLOURS.get(mood.en, 0x5865F2) if mood is not None else 0x5865F2
    embed = discord.Embed(title=title, description="\n".join(lines), colour=colour)
    if emotion:
        heading = "요청한 분위기" if reply.source == "explicit" else "기분 읽기"
        # Top three: the remaining moods of a softmax are ~2 % each and only add noise.
        shown = 1 if reply.source == "explicit" else _MOOD_LINES
        embed.add_field(name=heading, value="\n".join(mood_lines(emotion, top=shown)) or "—",
                        inline=False)
    footer = f"rec {reply.rec_id} · {' '.join(BOT_REACTIONS)} 반응이나 아래 버튼으로 알려 주세요"
    if note:
        footer = f"{note} · rec {reply.rec_id}"
    embed.set_footer(text=footer)
    return embed


@dataclass(frozen=True, slots=True)
class Answer:
    """One engine :class:`~bot.engine.Reply` as Discord shows it (built by :meth:`of`, pure).

    Exactly one of three shapes: an ``embed`` (kind "recommend": tracks, buttons, reactions),
    the forget ``confirm`` prompt (kind "privacy": deleting someone's data takes a deliberate
    click), or a ``content`` line (smalltalk, help, feedback in words, busy, error). The cogs
    only choose *where* to send it.
    """

    reply: Reply
    content: str | None = None
    embed: discord.Embed | None = None
    confirm: bool = False

    @property
    def kind(self) -> str:
        return self.reply.kind

    @classmethod
    def of(cls, reply: Reply) -> Answer:
        if reply.kind == "recommend":
            return cls(reply, embed=recommendation_embed(reply))
        if reply.kind == "privacy":
            return cls(reply, content=FORGET_PROMPT, confirm=True)
        text = (reply.text or "").strip() or ENGINE_FAILED
        if reply.kind == "help":
            text = f"{text}\n\n{DISCORD_HELP}"
        return cls(reply, content=_clip_text(text, _CONTENT_MAX))


def _clip_text(text: str, limit: int) -> str:
    """Like :func:`_clip` but keeping line breaks (help and smalltalk are multi-line)."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def button_ack(signal: Signal, title: str | None, new: bool) -> str:
    """Ephemeral confirmation for a button press (only the presser sees it)."""
    emoji, word = _SIGNAL_WORDS.get(signal, ("✅", str(signal)))
    what = f"「{_clip(title, _TITLE_MAX)}」" if title else "이 곡"
    if not new:
        return f"{emoji} {what}은(는) 이미 '{word}'(으)로 기록돼 있어요."
    return f"{emoji} {what}을(를) '{word}'(으)로 기록했어요. 다음 추천에 반영할게요!"


def rate_limited_text(wait_seconds: float) -> str:
    """Polite refusal that says when to come back (rounded up, never "0초")."""
    secs = max(1, math.ceil(wait_seconds))
    return f"조금 천천히 말해 주세요 🙏 {secs}초 뒤에 다시 추천해 드릴게요."


# ---- history / forget -----------------------------------------------------------------------
def _when(ts: Any) -> str:
    try:
        return discord.utils.format_dt(dt.datetime.fromtimestamp(float(ts), tz=dt.UTC), "R")
    except (TypeError, ValueError, OverflowError, OSError):
        return "언젠가"


def history_embed(entries: Sequence[Any],
                  title_of: Callable[[str], str | None]) -> discord.Embed:
    """A person's recent answers: when, which mood, which songs.

    ``title_of`` maps a song id to its title (the index knows titles; the store keeps only ids),
    returning None for songs that left the catalogue — those are shown by id.
    """
    embed = discord.Embed(title="🕘 최근 추천 기록", colour=0x5865F2)
    if not entries:
        embed.description = "아직 추천 기록이 없어요. 지금 기분을 말해 주세요!"
        return embed
    lines: list[str] = []
    for entry in entries:  # bot.store.StoredRecommendation
        emotion = entry.emotion or ()
        mood = ""
        if len(emotion) == len(LABELS):
            e = EMOTIONS[_dominant(emotion)]
            mood = f"{e.emoji} {e.ko}"
        names = [discord.utils.escape_markdown(_clip(title_of(song_id) or song_id, 40))
                 for song_id in entry.song_ids[:5]]
        songs = ", ".join(names) if names else "—"
        lines.append(f"{_when(entry.created_at)} {mood} · {songs} `{entry.rec_id}`")
    embed.description = _clip_lines(lines, 4000)
    return embed


def _clip_lines(lines: Iterable[str], limit: int) -> str:
    out: list[str] = []
    used = 0
    for line in lines:
        if used + len(line) + 1 > limit:
            out.append("…")
            break
        out.append(line)
        used += len(line) + 1
    return "\n".join(out)


def forget_done_text(counts: Mapping[str, int]) -> str:
    """What ``/forget-me`` deleted, so the person can see it actually happened."""
    parts = [f"{k} {v}건" for k, v in counts.items() if v]
    detail = " · ".join(parts) if parts else "저장된 기록이 없었어요"
    return f"🧹 기록을 모두 지웠어요. ({detail})"


# ---- admin ----------------------------------------------------------------------------------
def reindex_done_text(result: Mapping[str, Any]) -> str:
    return (f"✅ 인덱스를 바꿨어요: {result.get('previous', '?')}곡 → {result.get('songs', '?')}곡 "
            f"({result.get('seconds', '?')}초). 추천은 그동안에도 계속됐어요.")


def retrain_done_text(result: Any) -> str:
    if isinstance(result, Mapping):
        detail = ", ".join(f"{k}={v}" for k, v in result.items())
        return f"✅ CF 모델을 다시 학습했어요. ({detail})"
    if result is False or result is None:
        return "ℹ️ CF 학습을 마쳤지만 새 모델은 적용되지 않았어요 (데이터가 부족할 수 있어요)."
    return "✅ CF 모델을 다시 학습했어요."


def stats_embed(stats: Mapping[str, Any], *, songs: int | None, cf_loaded: bool) -> discord.Embed:
    """Store counters plus what only the engine knows (index size, whether CF is serving)."""
    embed = discord.Embed(title="📊 moodtune 통계", colour=0x5865F2)
    # Discord allows 25 fields; keep two for the engine's numbers below.
    for key, value in list(stats.items())[:23]:
        if isinstance(value, Mapping):
            value = ", ".join(f"{k}: {v}" for k, v in value.items()) or "—"
        embed.add_field(name=str(key), value=_clip(str(value), 1000) or "—", inline=True)
    embed.add_field(name="인덱스 곡 수", value="?" if songs is None else f"{songs:,}", inline=True)
    embed.add_field(name="CF 모델", value="사용 중" if cf_loaded else "없음", inline=True)
    return embed


def channel_toggle_text(enabled: bool) -> str:
    if enabled:
        return ("✅ 이제 이 채널에서는 멘션 없이도 노래 요청이나 기분 이야기에 대답할게요. "
                "'ㅇㅋ', 'ㅋㅋ' 같은 잡담에는 조용히 있을게요.")
    return "🔕 이 채널에서는 이제 멘션하거나 DM을 보낼 때만 대답할게요."


def channel_list_text(channel_ids: Iterable[int | str]) -> str:
    ids = list(channel_ids)
    if not ids:
        return "멘션 없이 대답하는 채널이 없어요. `/channel enable`로 켤 수 있어요."
    return "멘션 없이 대답하는 채널: " + ", ".join(f"<#{c}>" for c in ids)


def reaction_signal(emoji_name: str | None) -> Signal | None:
    """The signal of a reaction emoji, tolerant of the U+FE0F variation selector."""
    if not emoji_name:
        return None
    return REACTIONS.get(emoji_name.replace("\ufe0f", ""))
