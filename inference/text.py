"""Text clean-up shared by training and inference, so both see sentences the same way.

Chat messages carry things the training corpus rarely has: emoji-only replies, laughter runs,
zero-width characters, pasted essays. Normalising them here (one function, used on both sides)
keeps the classifier's input distribution close to what it was trained on.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["EMOJI_WORDS", "MAX_CHARS", "is_blank", "normalize_text"]

# Characters kept before tokenising. Tokenisers truncate to max_length tokens anyway; cutting the
# raw text first keeps a 100k-character paste from costing 100k characters of tokenisation.
MAX_CHARS = 1000

# Emoji carry mood but are rare in the training data; spell the common ones out in words the
# model knows, so "😭😭" reads as sadness instead of [UNK].
EMOJI_WORDS: dict[str, str] = {
    "😭": "너무 슬퍼", "😢": "슬퍼", "😥": "슬퍼", "😞": "우울해", "😔": "우울해", "💔": "마음 아파",
    "🥲": "슬퍼", "😿": "슬퍼",
    "😡": "화나", "😠": "화나", "🤬": "진짜 화나", "💢": "짜증나", "👿": "화나",
    "😰": "불안해", "😨": "무서워", "😱": "무서워", "😬": "긴장돼", "😟": "걱정돼", "😧": "불안해",
    "🥶": "무서워", "😖": "괴로워",
    "😌": "편안해", "🍵": "여유롭다", "☕": "여유롭다", "🌿": "편안해", "🧘": "마음이 평온해",
    "😴": "나른하고 편안해", "🛀": "편안해", "🌙": "고요해",
    "😄": "기뻐", "😀": "기뻐", "😁": "신나", "😆": "신나", "😊": "행복해", "🥰": "행복해",
    "😍": "너무 좋아", "🤩": "신나", "🎉": "신나", "🥳": "신나", "❤️": "좋아", "❤": "좋아",
    "💕": "좋아", "😂": "웃겨", "🤣": "웃겨", "👍": "좋아",
    "😐": "그냥 그래", "😑": "그냥 그래", "🙂": "괜찮아", "😶": "그냥 그래",
}
_EMOJI_RE = re.compile("|".join(re.escape(e) for e in sorted(EMOJI_WORDS, key=len, reverse=True)))
_INVISIBLE = re.compile("[\u200b-\u200f\u2060-\u2064\ufeff\ufe0e\ufe0f]")
_SPACES = re.compile(r"\s+")
_REPEAT = re.compile(r"(.)\1{4,}")


def normalize_text(text: str, max_chars: int = MAX_CHARS) -> str:
    """NFC, invisible characters out, emoji spelled out, runs ("ㅋㅋㅋㅋㅋㅋㅋ") shortened."""
    if not isinstance(text, str):
        raise TypeError(f"expected str, got {type(text).__name__}")
    text = unicodedata.normalize("NFC", text[: max_chars * 4])
    text = _INVISIBLE.sub("", text)
    text = _EMOJI_RE.sub(lambda m: f" {EMOJI_WORDS[m.group(0)]} ", text)
    text = _REPEAT.sub(lambda m: m.group(1) * 4, text)
    return _SPACES.sub(" ", text).strip()[:max_chars]


def is_blank(text: str) -> bool:
    """True when nothing readable is left after normalisation (empty, spaces, zero-widths)."""
    return not normalize_text(text)
