"""Test doubles shared by the adapter tests.

Adapter tests (Discord, Kakao, console) check what a handler does with the engine's answer, not
what the ONNX model thinks of a sentence, so they run on a deterministic keyword classifier and
a small synthetic catalogue. Engine and classifier tests use the real shipped model.
"""

from __future__ import annotations

from pathlib import Path

from bot.settings import Settings
from indexing.synthetic import synthetic_catalog
from inference.keyword import KEYWORDS, KeywordClassifier

__all__ = ["KEYWORDS", "KeywordClassifier", "make_settings"]


def make_settings(tmp: Path, n_songs: int = 300, **overrides) -> Settings:
    """Settings rooted in ``tmp`` with a synthetic catalogue written there (never reads .env)."""
    catalog = tmp / "catalog.jsonl"
    if not catalog.exists():
        synthetic_catalog(n_songs, seed=7).save(catalog)
    # Deterministic ranking unless a test asks for exploration (it is tested on its own).
    values = {"data_dir": tmp / "var", "catalog_path": catalog, "rank_exploration": 0.0,
              **overrides}
    return Settings(_env_file=None, **values)
