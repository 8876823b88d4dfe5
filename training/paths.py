"""Where the shared training/evaluation data lives (``../shared`` beside the checkout by default)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    """``MOODTUNE_SHARED`` if set, else the ``shared/`` folder beside the repository."""
    env = os.environ.get("MOODTUNE_SHARED")
    return Path(env) if env else REPO_ROOT.parent / "shared"


def emotion_csv() -> Path:
    return shared_dir() / "data" / "emotion" / "single_turn_7emotions.csv"


def songs_csv() -> Path:
    return shared_dir() / "data" / "songs" / "melon_lyrics.csv"


def kote_dir() -> Path:
    return shared_dir() / "data" / "emotion" / "kote"
