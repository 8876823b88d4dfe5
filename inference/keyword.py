"""A keyword lexicon "classifier" with the :class:`~inference.classifier.EmotionClassifier`
interface.

Why it exists: adapter tests and load benchmarks measure what happens *around* the model
(parsing, ranking, storage, HTTP), so they want a stand-in that is deterministic, needs no model
files and costs microseconds — or, with ``delay``, costs a fixed amount of CPU time like a busy
model. It is never used to answer real users.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from inference.emotions import LABELS, NUM_EMOTIONS, index_of

__all__ = ["KEYWORDS", "KeywordClassifier"]

KEYWORDS: dict[str, str] = {
    "화나": "분노", "짜증": "분노", "열받": "분노",
    "떨려": "긴장", "불안": "긴장", "무서": "긴장",
    "우울": "슬픔", "슬퍼": "슬픔", "지치": "슬픔",
    "편안": "평화", "여유": "평화", "차분": "평화",
    "신나": "기쁨", "행복": "기쁨", "좋아": "기쁨",
}


class KeywordClassifier:
    """Same interface as ``inference.EmotionClassifier``; keyword → mood, else 중립.

    ``delay`` seconds are spent (sleeping, outside the GIL) per ``predict`` call, to stand in
    for a slow model in load tests.
    """

    fingerprint = "keyword-fake-0001"
    labels = LABELS

    def __init__(self, delay: float = 0.0) -> None:
        self.calls = 0
        self.delay = delay

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("predict() takes a list of strings")
        if self.delay:
            time.sleep(self.delay)
        self.calls += len(texts)
        out = np.full((len(texts), NUM_EMOTIONS), 0.02, dtype=np.float32)
        for r, t in enumerate(texts):
            hit = next((m for k, m in KEYWORDS.items() if k in t), "중립")
            out[r, index_of(hit)] = 0.9
        return out / out.sum(axis=1, keepdims=True)

    def predict_one(self, text: str) -> np.ndarray:
        return self.predict([text])[0]
