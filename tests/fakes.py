"""Test doubles shared by the adapter tests.

Adapter tests (Discord, Kakao, console) check what a handler does with the engine's answer, not
what the ONNX model thinks of a sentence, so they run on a deterministic keyword classifier and
a small synthetic catalogue. Engine and classifier tests use the real shipped model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bot.settings import Settings
from indexing.synthetic import synthetic_catalog
from inference.emotions import LABELS, NUM_EMOTIONS, index_of

KEYWORDS: dict[str, str] = {
    "화나": "분노", "짜증": "분노", "열받": "분노",
    "떨려": "긴장", "불안": "긴장", "무서": "긴장",
    "우울": "슬픔", "슬퍼": "슬픔", "지치": "슬픔",
    "편안": "평화", "여유": "평화", "차분": "평화",
    "신나": "기쁨", "행복": "기쁨", "좋아": "기쁨",
}


class KeywordClassifier:
    """Same interface as ``inference.EmotionClassifier``; keyword → mood, else 중립."""

    fingerprint = "keyword-fake-0001"
    labels = LABELS

    def __init__(self) -> None:
        self.calls = 0

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("predict() takes a list of strings")
        self.calls += len(texts)
        out = np.full((len(texts), NUM_EMOTIONS), 0.02, dtype=np.float32)
        for r, t in enumerate(texts):
            hit = next((m for k, m in KEYWORDS.items() if k in t), "중립")
            out[r, index_of(hit)] = 0.9
        return out / out.sum(axis=1, keepdims=True)

    def predict_one(self, text: str) -> np.ndarray:
        return self.predict([text])[0]


def make_settings(tmp: Path, n_songs: int = 300, **overrides) -> Settings:
    """Settings rooted in ``tmp`` with a synthetic catalogue written there (never reads .env)."""
    catalog = tmp / "catalog.jsonl"
    if not catalog.exists():
        synthetic_catalog(n_songs, seed=7).save(catalog)
    values = {"data_dir": tmp / "var", "catalog_path": catalog, **overrides}
    return Settings(_env_file=None, **values)
