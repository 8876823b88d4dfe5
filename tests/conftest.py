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


@pytest.fixture(scope="session")
def spark():
    """One local Spark (``local[2]``) for the whole run: it takes ~5 s to start, so the Spark
    CF and labelling tests share it. Skips without pyspark/Java unless
    ``MOODTUNE_REQUIRE_SERVICES`` is set (CI, after installing them), where it fails instead."""
    import os

    from training.spark import SparkUnavailableError, session, spark_available

    why = spark_available()
    if why and not os.environ.get("MOODTUNE_REQUIRE_SERVICES"):
        pytest.skip(f"Spark tests need pyspark and Java 17: {why}")
    try:
        s = session("moodtune-tests", master="local[2]", partitions=4, driver_memory="1g")
    except SparkUnavailableError as exc:
        if os.environ.get("MOODTUNE_REQUIRE_SERVICES"):
            raise
        pytest.skip(str(exc))
    yield s
    s.stop()
