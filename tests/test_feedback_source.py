"""training.feedback_source: the same feedback rows from SQLite and PostgreSQL, windows, the
Parquet snapshot, and clear errors."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from bot.store import Store
from tests.pg_support import server_or_skip
from training.cf import CFTrainingError, read_feedback
from training.feedback_source import describe_source, export_parquet, iter_feedback_batches

T0 = 1_767_225_600.0
EMOTION = [0.5, 0.1, 0.1, 0.1, 0.1, 0.1]
# (clock, rec_id, song, user, signal, scope): two answers, per-track and message reactions
CALLS = [
    (T0 + 10, "r1", "s1", "u1", "love", "track"),
    (T0 + 20, "r1", "s2", "u1", "dislike", "track"),
    (T0 + 30, "r1", "s1", "u2", "like", "message"),
    (T0 + 40, "r2", "s3", "u2", "skip", "track"),
    (T0 + 50, "r2", "s3", "u1", "play", "track"),
]


async def _fill(store: object, clock: list[float]) -> None:
    clock[0] = T0
    await store.save_recommendation("r1", "u1", "test", EMOTION, [("s1", 0.9), ("s2", 0.8)],
                                    source="text")
    await store.save_recommendation("r2", "u2", "test", EMOTION, [("s3", 0.7)], source="text")
    for t, rec, song, user, signal, scope in CALLS:
        clock[0] = t
        assert await store.add_feedback(rec, song, user, signal, scope=scope)


def _all(source: object, since: float | None = None, until: float | None = None) -> list[tuple]:
    total, batches = iter_feedback_batches(source, since, until, batch=2)
    rows = [r for b in batches for r in b]
    assert total == len(rows)
    return rows


EXPECTED = [(u, s, sig, scope, t) for t, _r, s, u, sig, scope in CALLS]


@pytest.fixture(scope="module")
def sqlite_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("fs") / "bot.sqlite3"
    clock = [T0]

    async def go() -> None:
        store = await Store.open(db, clock=lambda: clock[0])
        try:
            await _fill(store, clock)
        finally:
            await store.close()

    asyncio.run(go())
    return db


@pytest.fixture(scope="module")
def pg_server():
    yield from server_or_skip()


@pytest.fixture(scope="module")
def pg_url(pg_server) -> str:
    from bot.store_pg import PgStore

    clock = [T0]

    async def go() -> str:
        url = pg_server.url(await pg_server.create_database())
        store = await PgStore.open(url, clock=lambda: clock[0])
        try:
            await _fill(store, clock)
        finally:
            await store.close()
        return url

    return asyncio.run(go())


def test_sqlite_rows_and_window(sqlite_db: Path) -> None:
    assert _all(sqlite_db) == EXPECTED
    assert _all(str(sqlite_db), T0 + 20, T0 + 50) == EXPECTED[1:4]  # since <= t < until
    assert _all(sqlite_db, until=T0) == []


def test_postgres_rows_match_sqlite(pg_url: str, sqlite_db: Path) -> None:
    rows = _all(pg_url)
    assert rows == _all(sqlite_db) == EXPECTED
    assert all(isinstance(r[4], float) for r in rows)
    assert _all(pg_url, T0 + 20, T0 + 50) == EXPECTED[1:4]
    assert _all(pg_url, since=T0 + 50) == EXPECTED[4:]
    events = read_feedback(pg_url)  # training.cf reads a URL too
    assert len(events) == len(CALLS) and set(events.user_ids) == {"u1", "u2"}


def test_postgres_timestamptz_column(pg_server) -> None:
    """A hand-made table with a timestamptz created_at still comes back as unix seconds."""
    import asyncpg

    async def go() -> str:
        url = pg_server.url(await pg_server.create_database())
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("CREATE TABLE feedback (id BIGSERIAL PRIMARY KEY, user_id TEXT, "
                               "song_id TEXT, signal TEXT, scope TEXT, created_at TIMESTAMPTZ)")
            await conn.execute("INSERT INTO feedback (user_id, song_id, signal, scope, created_at)"
                               " VALUES ('u', 's', 'like', 'track', to_timestamp($1)), "
                               "('u', 't', 'love', 'track', to_timestamp($2))", T0, T0 + 5)
        finally:
            await conn.close()
        return url

    url = asyncio.run(go())
    assert _all(url) == [("u", "s", "like", "track", T0), ("u", "t", "love", "track", T0 + 5)]
    assert _all(url, since=T0 + 1) == [("u", "t", "love", "track", T0 + 5)]


def test_export_parquet_both_stores(tmp_path: Path, sqlite_db: Path, pg_url: str) -> None:
    for name, source in (("lite", sqlite_db), ("pg", pg_url)):
        out = tmp_path / name / "feedback.parquet"
        info = export_parquet(source, out, batch=2)
        assert info["rows"] == len(CALLS) and out.is_file()
        table = pq.read_table(out)
        assert table.column_names == ["user_id", "song_id", "signal", "scope", "created_at"]
        assert [tuple(r.values()) for r in table.to_pylist()] == EXPECTED
        assert not list(out.parent.glob(".*.tmp"))
    assert "postgres@" in describe_source(pg_url)
    empty = export_parquet(sqlite_db, tmp_path / "empty.parquet", since=T0 + 1000)
    assert empty["rows"] == 0 and pq.read_table(tmp_path / "empty.parquet").num_rows == 0


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(CFTrainingError, match="no database at"):
        iter_feedback_batches(tmp_path / "missing.sqlite3")
    with pytest.raises(CFTrainingError, match="not a supported database URL"):
        iter_feedback_batches("mysql://x@localhost/db")
    with pytest.raises(CFTrainingError, match="cannot reach the database"):
        iter_feedback_batches("postgresql://nobody@127.0.0.1:1/db")
    not_moodtune = tmp_path / "other.sqlite3"
    import sqlite3

    sqlite3.connect(not_moodtune).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(CFTrainingError, match="moodtune database"):
        iter_feedback_batches(not_moodtune)
    with pytest.raises(CFTrainingError, match="no database at"):
        export_parquet(tmp_path / "missing.sqlite3", tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet").exists()


def test_postgres_without_feedback_table(pg_server) -> None:
    url = pg_server.url(asyncio.run(pg_server.create_database()))
    with pytest.raises(CFTrainingError, match="moodtune database"):
        iter_feedback_batches(url)


def _cli_args(*argv: str):
    import argparse

    from training import train_cf_cli

    parser = argparse.ArgumentParser()
    train_cf_cli.configure(parser)
    return train_cf_cli, parser.parse_args(list(argv))


def test_cli_export_only_reads_database_url(tmp_path: Path, pg_url: str, monkeypatch,
                                            capsys) -> None:
    """No --db: $DATABASE_URL (the PostgreSQL store) is the source."""
    monkeypatch.setenv("DATABASE_URL", pg_url)
    cli, args = _cli_args("--export-only", "--snapshot", str(tmp_path / "s.parquet"), "--json")
    assert cli.run(args) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == len(CALLS)
    assert pq.read_table(tmp_path / "s.parquet").num_rows == len(CALLS)
    cli, args = _cli_args("--export-only")
    assert cli.run(args) == 2


def test_cli_engine_spark_without_spark_exits_2(tmp_path: Path, sqlite_db: Path, monkeypatch,
                                                capsys) -> None:
    import training.spark

    why = "no Java runtime: install Java 17"

    def no_session(*a: object, **k: object) -> None:
        raise training.spark.SparkUnavailableError(why)

    monkeypatch.setattr(training.spark, "spark_available", lambda: why)
    monkeypatch.setattr(training.spark, "session", no_session)
    try:
        from pyspark.sql import SparkSession

        monkeypatch.setattr(SparkSession, "getActiveSession", staticmethod(lambda: None))
    except ImportError:
        pass
    cli, args = _cli_args("--engine", "spark", "--db", str(sqlite_db), "--out",
                          str(tmp_path / "cf"), "--no-progress")
    assert cli.run(args) == 2
    assert why in capsys.readouterr().err
    assert not (tmp_path / "cf").exists()
