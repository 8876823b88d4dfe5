"""Fixtures shared across the suite (see ``tests/fakes.py`` for the doubles)."""

from __future__ import annotations

import pytest

from tests.fakes import make_settings
from tests.kakao_support import build_test_index


@pytest.fixture
def settings(tmp_path):
    """Settings isolated in ``tmp_path`` with a 300-song synthetic catalogue."""
    return make_settings(tmp_path)


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    """The shipped model's index over a small catalogue, built once per module (the Kakao and
    web adapter tests); test modules with their own ``index`` fixture override it."""
    yield from build_test_index(tmp_path_factory)
