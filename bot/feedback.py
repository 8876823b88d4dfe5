"""Feedback signals: one table from what a person does to what the store and CF read.

Discord reactions and buttons, Kakao quick replies and console commands all land here, so a 👍
means the same thing whichever door it came through. How much each signal weighs in training is
CF's business (``training.cf``); this module only names them.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["BUTTONS", "KAKAO_REPLIES", "REACTIONS", "Signal", "parse_signal"]


class Signal(StrEnum):
    """What a person told us about a track. Stored by value in SQLite."""

    LOVE = "love"  # ❤️ — strongest positive
    LIKE = "like"  # 👍 / "좋아요" / console "+"
    PLAY = "play"  # opened the link (implicit, weak positive)
    SKIP = "skip"  # ⏭️ / "다른 노래" — weak negative: not now
    DISLIKE = "dislike"  # 👎 / "별로예요" / console "-"

    @property
    def positive(self) -> bool:
        return self in (Signal.LOVE, Signal.LIKE, Signal.PLAY)


# Discord reactions (unicode emoji as discord.py reports them; variation selector stripped).
REACTIONS: dict[str, Signal] = {
    "❤": Signal.LOVE,
    "👍": Signal.LIKE,
    "👎": Signal.DISLIKE,
    "⏭": Signal.SKIP,
}

# Discord buttons: custom_id action → signal.
BUTTONS: dict[str, Signal] = {"love": Signal.LOVE, "like": Signal.LIKE, "dislike": Signal.DISLIKE}

# Kakao quick-reply labels.
KAKAO_REPLIES: dict[str, Signal] = {
    "좋아요": Signal.LIKE,
    "별로예요": Signal.DISLIKE,
    "다른 노래": Signal.SKIP,
}

_TOKENS: dict[str, Signal] = {
    "+": Signal.LIKE, "like": Signal.LIKE, "좋아": Signal.LIKE, "좋아요": Signal.LIKE,
    "++": Signal.LOVE, "love": Signal.LOVE, "최고": Signal.LOVE,
    "-": Signal.DISLIKE, "dislike": Signal.DISLIKE, "별로": Signal.DISLIKE, "별로예요": Signal.DISLIKE,
    ">": Signal.SKIP, "skip": Signal.SKIP, "패스": Signal.SKIP, "다른 노래": Signal.SKIP,
    "play": Signal.PLAY,
}


def parse_signal(token: str) -> Signal | None:
    """A signal from an emoji, a Signal value, a Korean word or a console mark; else None."""
    t = token.strip().replace("\ufe0f", "")
    if not t:
        return None
    if t in REACTIONS:
        return REACTIONS[t]
    return _TOKENS.get(t.casefold())
