"""Text clean-up shared by training and inference, so both see sentences the same way.

Chat messages carry things the training corpus rarely has: emoji-only replies, laughter runs,
zero-width characters, pasted essays. Normalising them here (one function, used on both sides)
keeps the classifier's input distribution close to what it was trained on.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["EMOJI_WORDS", "INVISIBLE", "MAX_CHARS", "clean_text", "is_blank", "normalize_text"]

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
INVISIBLE = re.compile("[\u200b-\u200f\u2060-\u2064\ufeff\ufe0e\ufe0f]")
_SPACES = re.compile(r"\s+")
_REPEAT = re.compile(r"(.)\1{4,}")


# Lone surrogates (U+D800–U+DFFF: what a broken JSON "\\ud800" escape decodes to), C0/C1
# control characters other than tab and newline, and Unicode noncharacters.
_INVALID = re.compile("[\ud800-\udfff\x00-\x08\x0b-\x1f\x7f-\x9f\ufdd0-\ufdef\ufffe\uffff]")


def clean_text(text: str) -> str:
    """Make text from the outside world safe to hand to the tokenizer, a log line or SQLite.

    Every adapter calls this once, at the edge, on whatever a person sent. A lone surrogate
    cannot be encoded as UTF-8, so the Rust tokenizer raises ``TypeError`` on it and SQLite
    refuses it; control characters garble logs. They become U+FFFD (surrogates) or vanish
    (controls), and carriage returns become newlines. Nothing else changes, so a message that
    was fine reads exactly the same afterwards.
    """
    if not isinstance(text, str):
        raise TypeError(f"expected str, got {type(text).__name__}")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _INVALID.sub(lambda m: "\ufffd" if "\ud800" <= m.group(0) <= "\udfff" else "", text)


def normalize_text(text: str, max_chars: int = MAX_CHARS) -> str:
    """NFC, invisible characters out, emoji spelled out, runs ("ㅋㅋㅋㅋㅋㅋㅋ") shortened."""
    if not isinstance(text, str):
        raise TypeError(f"expected str, got {type(text).__name__}")
    text = clean_text(text[: max_chars * 4])  # a lone surrogate would crash the tokenizer
    text = unicodedata.normalize("NFC", text)
    text = INVISIBLE.sub("", text)
    text = _EMOJI_RE.sub(lambda m: f" {EMOJI_WORDS[m.group(0)]} ", text)
    text = _REPEAT.sub(lambda m: m.group(1) * 4, text)
    return _SPACES.sub(" ", text).strip()[:max_chars]


def is_blank(text: str) -> bool:
    """True when nothing readable is left after normalisation (empty, spaces, zero-widths)."""
    return not normalize_text(text)
