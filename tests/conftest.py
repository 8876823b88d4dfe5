"""Fixtures shared across the suite (see ``tests/fakes.py`` for the doubles)."""

from __future__ import annotations

import pytest

from tests.fakes import make_settings


@pytest.fixture
def settings(tmp_path):
    """Settings isolated in ``tmp_path`` with a 300-song synthetic catalogue."""
    return make_settings(tmp_path)
