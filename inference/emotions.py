"""The six moods moodtune speaks in — defined once, used everywhere.

Every emotion vector in the project (classifier output, song vectors, index rows, stored
recommendations) uses the column order below. Code elsewhere must look indices up here
(``index_of``) instead of hard-coding them, so that a model trained with another label order
can be remapped on load without touching the rest of the system.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = [
    "EMOTIONS",
    "LABELS",
    "LABELS_EN",
    "NUM_EMOTIONS",
    "Emotion",
    "UnknownEmotionError",
    "index_of",
    "parse_emotion",
]


@dataclass(frozen=True, slots=True)
class Emotion:
    """One mood: its Korean label (the canonical name), English name and display emoji."""

    index: int
    ko: str
    en: str
    emoji: str
    aliases: tuple[str, ...] = ()


EMOTIONS: tuple[Emotion, ...] = (
    Emotion(0, "분노", "anger", "😠", ("화남", "화나", "짜증", "빡침", "angry", "mad", "혐오")),
    Emotion(1, "긴장", "tension", "😰", ("불안", "걱정", "초조", "공포", "두려움", "놀람", "anxious", "fear", "nervous")),
    Emotion(2, "슬픔", "sadness", "😢", ("슬퍼", "우울", "눈물", "sad", "blue", "depressed")),
    Emotion(3, "평화", "peace", "😌", ("편안", "평온", "차분", "여유", "힐링", "잔잔", "calm", "relaxed", "chill")),
    Emotion(4, "기쁨", "joy", "😄", ("행복", "신남", "즐거움", "설렘", "happy", "joyful", "excited")),
    Emotion(5, "중립", "neutral", "😐", ("보통", "그냥", "무난", "neutral", "normal")),
)

LABELS: tuple[str, ...] = tuple(e.ko for e in EMOTIONS)
LABELS_EN: tuple[str, ...] = tuple(e.en for e in EMOTIONS)
NUM_EMOTIONS: int = len(EMOTIONS)

_LOOKUP: dict[str, int] = {}
for _e in EMOTIONS:
    for _name in (_e.ko, _e.en, _e.emoji, *_e.aliases):
        _LOOKUP.setdefault(_name.casefold(), _e.index)


class UnknownEmotionError(ValueError):
    """Raised when a name is not one of the six moods (or a known alias of one)."""


def _norm(name: str) -> str:
    return unicodedata.normalize("NFC", name).strip().strip("/#!").casefold()


def index_of(name: str) -> int:
    """Column of a mood given its Korean/English name, emoji or alias.

    Model configs and user commands name emotions in many ways; mapping them here keeps the
    column order a private detail of this module.
    """
    key = _norm(name)
    if key in _LOOKUP:
        return _LOOKUP[key]
    raise UnknownEmotionError(
        f"unknown emotion {name!r}; use one of: "
        + ", ".join(f"{e.ko} ({e.en})" for e in EMOTIONS)
    )


_WORD = re.compile(r"[\w\u3131-\u318e\uac00-\ud7a3]+|[^\w\s]", re.UNICODE)


def parse_emotion(text: str) -> int | None:
    """Return the mood a short message names explicitly ("슬픔", "/mood 평화", "calm"), else None.

    Only short messages count: "슬픔" is a request for sad songs, while a long sentence that
    happens to contain "슬픔" is something the classifier should read in context.
    """
    t = _norm(text)
    if t.startswith("mood "):
        t = t[5:].strip()
    if not t or len(t) > 12:
        return None
    if t in _LOOKUP:
        return _LOOKUP[t]
    tokens = _WORD.findall(t)
    if len(tokens) == 1 and tokens[0] in _LOOKUP:
        return _LOOKUP[tokens[0]]
    return None
