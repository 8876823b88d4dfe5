"""bot/store.py and bot/store_pg.py: schema and migrations, the engine's API, privacy,
concurrency, failure modes, on both backends.

Every test that goes through the ``open_store`` / ``store`` fixtures runs twice: on SQLite (a
file under ``tmp_path``) and on PostgreSQL (a fresh database per path on a throwaway server that
the session starts, see ``tests/pg_support.py``). ``db.fetch`` inspects the database behind the
store's back, where the point is what is *stored*, not what the API reports. Tests about SQLite
mechanics (WAL, PRAGMAs, file permissions, ``mode=ro``, locking) are marked ``sqlite_only``; the
PostgreSQL variants skip with a reason when its binaries are not installed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sqlite3
from pathlib import Path

import asyncpg
import pytest

from bot.feedback import Signal
from bot.store import (
    Store,
    StoredItem,
    StoredRecommendation,
    StoreError,
    StoreUnavailableError,
    UnknownRecommendationError,
    load_migrations,
    split_sql,
)
from bot.store_pg import PgStore, load_pg_migrations
from tests.pg_support import PgServer, server_or_skip

MOOD = (0.02, 0.02, 0.9, 0.02, 0.02, 0.02)
LATEST = load_migrations()[-1].version


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def tick(self, dt: float = 1.0) -> float:
        self.t += dt
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


MIGRATION_DIRS = {
    "sqlite": Path(__file__).resolve().parent.parent / "bot" / "migrations",
    "pg": Path(__file__).resolve().parent.parent / "bot" / "migrations" / "postgres",
}


def sqlite_only(reason: str):
    """Run a test on SQLite only (its ``pg`` variant skips, giving ``reason``).

    An attribute rather than a custom pytest marker: nothing to register in the shared config.
    """

    def mark(fn):
        fn.sqlite_only = reason
        return fn

    return mark


@pytest.fixture(scope="session")
def pg_server() -> PgServer:
    """One PostgreSQL server for the whole run (about 3 s), stopped and deleted at the end."""
    yield from server_or_skip()


class Backend:
    """Opens stores and peeks into their databases, the same way for SQLite and PostgreSQL.

    A test names a database by a file path; on PostgreSQL each distinct path is its own fresh
    database, so reopening "the same file" reopens the same database.
    """

    def __init__(self, name: str, server: PgServer | None) -> None:
        self.name = name
        self.server = server
        self._dbs: dict[str, str] = {}

    async def url(self, path: str | Path) -> str:
        assert self.server is not None
        key = str(path)
        if key not in self._dbs:
            self._dbs[key] = await self.server.create_database()
        return self.server.url(self._dbs[key])

    async def open(self, path: str | Path, **kw) -> Store | PgStore:
        if self.name == "sqlite":
            return await Store.open(path, **kw)
        return await PgStore.open(await self.url(path), **kw)

    async def fetch(self, path: str | Path, sql: str, *args) -> list[tuple]:
        """Run one statement on a separate connection; ``?`` placeholders on both backends."""
        if self.name == "sqlite":
            conn = raw(Path(path))
            try:
                return [tuple(r) for r in conn.execute(sql, args).fetchall()]
            finally:
                conn.close()
        parts = sql.split("?")
        sql = parts[0] + "".join(f"${i}{p}" for i, p in enumerate(parts[1:], 1))
        conn = await asyncpg.connect(await self.url(path))
        try:
            return [tuple(r) for r in await conn.fetch(sql, *args)]
        finally:
            await conn.close()

    async def tables(self, path: str | Path) -> list[str]:
        if self.name == "sqlite":
            return [r[0] for r in await self.fetch(
                path, "SELECT name FROM sqlite_master WHERE type='table' "
                      "AND name NOT LIKE 'sqlite_%'")]
        return [r[0] for r in await self.fetch(
            path, "SELECT table_name FROM information_schema.tables "
                  "WHERE table_schema = 'public'")]

    async def columns(self, path: str | Path, table: str) -> list[str]:
        if self.name == "sqlite":
            return [r[1] for r in await self.fetch(path, f"PRAGMA table_info({table})")]
        return [r[0] for r in await self.fetch(
            path, "SELECT column_name FROM information_schema.columns "
                  "WHERE table_schema = 'public' AND table_name = ?", table)]


@pytest.fixture(params=["sqlite", "pg"])
def db(request: pytest.FixtureRequest) -> Backend:
    """The backend under test; ``pg`` skips for ``sqlite_only`` tests and without PostgreSQL."""
    if request.param == "pg":
        reason = getattr(request.function, "sqlite_only", None)
        if reason is not None:
            pytest.skip(f"SQLite-specific: {reason}")
        return Backend("pg", request.getfixturevalue("pg_server"))
    return Backend("sqlite", None)


@pytest.fixture
async def open_store(db: Backend):
    """Open a store on the backend under test; closes whatever it opened when the test ends,
    even on failure (aiosqlite's worker thread is not a daemon: a store left open would hang
    pytest's exit; an asyncpg pool left open would leak server connections)."""
    opened: list[Store | PgStore] = []

    async def _open(path, **kw) -> Store | PgStore:
        s = await db.open(path, **kw)
        opened.append(s)
        return s

    yield _open
    for s in opened:
        await s.close()


@pytest.fixture
async def store(open_store, tmp_path: Path, clock: Clock) -> Store:
    return await open_store(tmp_path / "db" / "moodtune.sqlite3", clock=clock)


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def songs(prefix: str, n: int) -> list[tuple[str, float]]:
    return [(f"{prefix}{i}", round(1.0 - i / 100, 3)) for i in range(n)]


def tables(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")]


# ---- migrations -------------------------------------------------------------------------------
@sqlite_only("a folder, a file and WAL mode")
async def test_open_creates_folder_schema_and_wal(open_store, tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "a" / "b" / "moodtune.sqlite3"
    s = await open_store(path, clock=clock)
    try:
        assert s.journal_mode == "wal" and s.schema_version == LATEST
    finally:
        await s.close()
    with raw(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT version, name, applied_at FROM schema_version").fetchall() \
            == [(m.version, m.name, clock.t) for m in load_migrations()]
        assert {"users", "recommendations", "recommendation_items", "feedback", "message_links",
                "guild_channels", "schema_version"} <= set(tables(conn))
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert {"recommendations_user_time", "feedback_time", "message_links_rec"} <= indexes


async def test_reopen_is_idempotent_and_keeps_data(
        open_store, db: Backend, tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "m.sqlite3"
    s = await open_store(path, clock=clock)
    await s.save_recommendation("r1", "u1", "console", MOOD, songs("s", 3), source="text")
    await s.close()
    clock.tick(100)
    for _ in range(2):
        s = await open_store(path, clock=clock)
        assert s.schema_version == LATEST
        assert await s.recent_song_ids("u1", 5) == ["s0", "s1", "s2"]
        await s.close()
    # still one row each, with the first open's timestamp
    assert await db.fetch(path, "SELECT version, applied_at FROM schema_version "
                                "ORDER BY version") == [
        (m.version, clock.t - 100) for m in load_migrations()]


async def test_new_migration_applies_and_a_broken_one_rolls_back(
        open_store, db: Backend, tmp_path: Path) -> None:
    mig = tmp_path / "migrations"
    shutil.copytree(MIGRATION_DIRS[db.name], mig)
    for later in mig.glob("0[0-9][0-9]_*.sql"):  # start from 001 alone: 002+ are added below
        if not later.name.startswith("001_"):
            later.unlink()
    path = tmp_path / "m.sqlite3"
    s = await open_store(path, migrations_dir=mig)
    assert s.schema_version == 1
    await s.close()

    (mig / "002_notes.sql").write_text(
        "-- a comment; with a semicolon\nCREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT "
        "DEFAULT 'a;b');\nINSERT INTO notes (id, body) VALUES (1, 'x');\n", encoding="utf-8")
    s = await open_store(path, migrations_dir=mig)
    assert s.schema_version == 2
    await s.close()

    (mig / "003_broken.sql").write_text(
        "CREATE TABLE half_done (id INTEGER);\nINSERT INTO no_such_table VALUES (1);\n",
        encoding="utf-8")
    with pytest.raises(StoreError, match="003_broken"):
        await open_store(path, migrations_dir=mig)
    assert "half_done" not in await db.tables(path)  # the whole migration rolled back
    assert await db.fetch(path, "SELECT MAX(version) FROM schema_version") == [(2,)]
    assert await db.fetch(path, "SELECT body FROM notes") == [("x",)]

    (mig / "003_broken.sql").write_text("CREATE TABLE half_done (id INTEGER);\n", encoding="utf-8")
    s = await open_store(path, migrations_dir=mig)
    assert s.schema_version == 3
    await s.close()


async def test_database_newer_than_code_is_refused(
        open_store, db: Backend, tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite3"
    await (await open_store(path)).close()
    await db.fetch(path, "INSERT INTO schema_version VALUES (99, '099_future.sql', 0)")
    with pytest.raises(StoreError, match="newer than this moodtune"):
        await open_store(path)


def test_split_sql_respects_strings_comments_and_triggers() -> None:
    script = """
    -- header; not a statement
    CREATE TABLE t (a TEXT DEFAULT ';');  /* trailing; comment */
    CREATE TRIGGER tr AFTER INSERT ON t BEGIN
        UPDATE t SET a = 'x;y' WHERE rowid = new.rowid;
    END;
    -- footer
    """
    stmts = split_sql(script)
    assert len(stmts) == 2
    assert stmts[1].rstrip().endswith("END;")
    with pytest.raises(StoreError, match="no terminating"):
        split_sql("CREATE TABLE a (x);\nCREATE TABLE b (y)")
    assert len(split_sql(load_migrations()[0].sql)) >= 6


def test_duplicate_migration_numbers_are_an_error(tmp_path: Path) -> None:
    (tmp_path / "001_a.sql").write_text("SELECT 1;")
    (tmp_path / "001_b.sql").write_text("SELECT 2;")
    with pytest.raises(StoreError, match="two migrations numbered 001"):
        load_migrations(tmp_path)


@sqlite_only(":memory: is an SQLite path")
async def test_memory_database_works(open_store, clock: Clock) -> None:
    s = await open_store(":memory:", clock=clock)
    try:
        await s.save_recommendation("r", "u", "console", MOOD, songs("s", 2), source="text")
        assert await s.add_feedback("r", "s1", "u", Signal.LIKE) is True
        assert (await s.stats())["feedback"] == 1
    finally:
        await s.close()


# ---- recommendations --------------------------------------------------------------------------
async def test_save_and_read_back_a_recommendation(store: Store, clock: Clock) -> None:
    await store.save_recommendation("r1", "u1", "discord", MOOD, [("a", 0.91), ("b", 0.5)],
                                    source="explicit")
    rec = await store.recommendation("r1")
    assert rec == StoredRecommendation(
        "r1", "u1", "discord", "explicit", tuple(MOOD), None, clock.t,
        (StoredItem(0, "a", 0.91), StoredItem(1, "b", 0.5)))
    assert rec.song_ids == ("a", "b") and rec.song_at(1) == "b" and rec.song_at(2) is None
    assert await store.recommendation("nope") is None


async def test_recent_song_ids_is_a_window_over_the_last_n_recs(store: Store, clock: Clock) -> None:
    for i in range(4):  # r0 oldest … r3 newest
        await store.save_recommendation(f"r{i}", "u1", "console", MOOD, songs(f"s{i}-", 2),
                                        source="text")
        clock.tick()
    await store.save_recommendation("other", "u2", "console", MOOD, songs("x", 2), source="text")
    assert await store.recent_song_ids("u1", 2) == ["s3-0", "s3-1", "s2-0", "s2-1"]
    assert set(await store.recent_song_ids("u1", 100)) == {f"s{i}-{j}" for i in range(4)
                                                           for j in range(2)}
    assert await store.recent_song_ids("u1", 0) == []
    assert await store.recent_song_ids("nobody", 5) == []


async def test_recent_song_ids_orders_by_insertion_when_the_clock_stands_still(
        store: Store) -> None:
    await store.save_recommendation("r0", "u", "console", MOOD, [("old", 1.0), ("both", 0.9)],
                                    source="text")
    await store.save_recommendation("r1", "u", "console", MOOD, [("new", 1.0), ("both", 0.9)],
                                    source="text")
    assert await store.recent_song_ids("u", 1) == ["new", "both"]
    assert await store.recent_song_ids("u", 2) == ["new", "both", "old"]  # deduplicated


async def test_bad_saves_are_refused_and_leave_nothing_behind(
        store: Store, db: Backend, tmp_path: Path) -> None:
    await store.save_recommendation("r1", "u1", "console", MOOD, songs("s", 2), source="text")
    with pytest.raises(StoreError, match="already stored"):
        # A new user and a reused rec_id: the user upsert must roll back with the failed insert.
        await store.save_recommendation("r1", "newcomer", "kakao", MOOD, songs("t", 2),
                                        source="text")
    with pytest.raises(ValueError, match="6 finite numbers"):
        await store.save_recommendation("r2", "u1", "console", (0.5, 0.5), [], source="text")
    with pytest.raises(ValueError, match="lists a song twice"):
        await store.save_recommendation("r3", "u1", "console", MOOD, [("a", 1), ("a", 0.5)],
                                        source="text")
    path = tmp_path / "db" / "moodtune.sqlite3"
    assert await db.fetch(path, "SELECT user_id FROM users") == [("u1",)]
    assert await db.fetch(path, "SELECT song_id FROM recommendation_items ORDER BY position"
                          ) == [("s0",), ("s1",)]
    assert await store.save_recommendation("r2", "u1", "console", MOOD, [], source="text") is None


async def test_text_is_not_stored_by_default(open_store, db: Backend, tmp_path: Path) -> None:
    path = tmp_path / "private.sqlite3"
    secret = "오늘 너무 우울해 secret-message-9431"
    s = await open_store(path)
    await s.save_recommendation("r1", "u1", "console", MOOD, songs("s", 1), source="text",
                                text=secret)
    assert (await s.recommendation("r1")).text is None
    await s.close()
    assert await db.fetch(path, "SELECT text FROM recommendations") == [(None,)]
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert b"secret-message-9431" not in blob


async def test_text_is_stored_when_opted_in(open_store, tmp_path: Path) -> None:
    path = tmp_path / "opted.sqlite3"
    s = await open_store(path, store_message_text=True)
    await s.save_recommendation("r1", "u1", "console", MOOD, songs("s", 1), source="text",
                                text="오늘 너무 우울해")
    assert (await s.recommendation("r1")).text == "오늘 너무 우울해"
    await s.close()


# ---- feedback ---------------------------------------------------------------------------------
async def test_feedback_is_idempotent_and_checked_against_what_was_shown(
        store: Store, db: Backend, tmp_path: Path) -> None:
    await store.save_recommendation("r1", "owner", "discord", MOOD, songs("s", 3), source="text")
    assert await store.add_feedback("r1", "s0", "owner", Signal.LIKE) is True
    assert await store.add_feedback("r1", "s0", "owner", Signal.LIKE) is False  # re-delivered
    assert await store.add_feedback("r1", "s0", "owner", "like") is False
    assert await store.add_feedback("r1", "s0", "owner", Signal.LOVE) is True  # another signal
    # Someone else in the channel reacts to the whole message: stored under them.
    assert await store.add_feedback("r1", "s1", "bystander", Signal.DISLIKE,
                                    scope="message") is True
    for sig in Signal:  # every Signal value passes the schema's CHECK
        await store.add_feedback("r1", "s2", "owner", sig)

    with pytest.raises(UnknownRecommendationError, match="r1 showing song nope"):
        await store.add_feedback("r1", "nope", "owner", Signal.LIKE)
    with pytest.raises(UnknownRecommendationError):
        await store.add_feedback("never-shown", "s0", "owner", Signal.LIKE)
    with pytest.raises(ValueError):
        await store.add_feedback("r1", "s0", "owner", "meh")
    with pytest.raises(ValueError, match="scope"):
        await store.add_feedback("r1", "s0", "owner", Signal.LIKE, scope="guild")

    path = tmp_path / "db" / "moodtune.sqlite3"
    rows = await db.fetch(path, "SELECT rec_id, song_id, user_id, signal, scope FROM feedback "
                                "WHERE song_id != 's2' ORDER BY id")
    assert rows == [("r1", "s0", "owner", "like", "track"),
                    ("r1", "s0", "owner", "love", "track"),
                    ("r1", "s1", "bystander", "dislike", "message")]
    assert await db.fetch(path, "SELECT COUNT(*) FROM feedback WHERE song_id='s2'") \
        == [(len(Signal),)]


async def test_remove_feedback(store: Store) -> None:
    await store.save_recommendation("r1", "u", "discord", MOOD, songs("s", 2), source="text")
    await store.add_feedback("r1", "s0", "u", Signal.LIKE)
    await store.add_feedback("r1", "s0", "v", Signal.LIKE)
    assert await store.remove_feedback("r1", "s0", "u", Signal.LIKE) is True
    assert await store.remove_feedback("r1", "s0", "u", Signal.LIKE) is False
    assert await store.remove_feedback("r1", "s1", "u", Signal.LIKE) is False
    assert [e[0] for e in await store.feedback_events()] == ["v"]  # only u's row went
    assert await store.add_feedback("r1", "s0", "u", Signal.LIKE) is True  # and may come back


async def test_feedback_events_are_time_ordered_and_windowed(store: Store, clock: Clock) -> None:
    await store.save_recommendation("r1", "u", "console", MOOD, songs("s", 5), source="text")
    base = clock.t
    # Written out of time order (clock set per event) to prove the read sorts by created_at.
    for song, dt, user in (("s3", 30, "a"), ("s0", 0, "b"), ("s2", 20, "a"), ("s1", 10, "c"),
                           ("s4", 40, "b")):
        clock.t = base + dt
        await store.add_feedback("r1", song, user, Signal.LIKE, scope="track")
    events = await store.feedback_events()
    assert [e[1] for e in events] == ["s0", "s1", "s2", "s3", "s4"]
    assert events[0] == ("b", "s0", "like", "track", base)
    window = await store.feedback_events(since=base + 10, until=base + 30)  # [since, until)
    assert [e[1] for e in window] == ["s1", "s2"]
    assert [e[1] for e in await store.feedback_events(since=base + 30)] == ["s3", "s4"]
    assert [e[1] for e in await store.feedback_events(until=base + 10)] == ["s0"]
    assert await store.feedback_events(since=base + 41) == []


# ---- message links, history, settings, stats --------------------------------------------------
async def test_message_links(store: Store) -> None:
    await store.save_recommendation("r1", "u", "discord", MOOD, songs("s", 1), source="text")
    await store.save_recommendation("r2", "u", "discord", MOOD, songs("t", 1), source="text")
    await store.link_message("1234567890123", "r1")
    assert await store.rec_for_message("1234567890123") == "r1"
    assert await store.rec_for_message("999") is None
    await store.link_message("1234567890123", "r2")  # message edited to show another answer
    assert await store.rec_for_message("1234567890123") == "r2"
    with pytest.raises(UnknownRecommendationError, match="not stored"):
        await store.link_message("555", "no-such-rec")
    assert await store.rec_for_message("555") is None


async def test_history_is_newest_first_with_the_users_own_feedback(
        store: Store, clock: Clock) -> None:
    for i in range(3):
        await store.save_recommendation(f"r{i}", "u", "discord", MOOD, songs(f"s{i}-", 2),
                                        source="text")
        clock.tick()
    await store.save_recommendation("x", "other", "discord", MOOD, songs("x", 1), source="text")
    await store.add_feedback("r2", "s2-0", "u", Signal.LIKE)
    clock.tick()
    await store.add_feedback("r2", "s2-0", "u", Signal.LOVE)
    await store.add_feedback("r2", "s2-1", "other", Signal.DISLIKE)  # a bystander's, not u's
    await store.add_feedback("r0", "s0-1", "u", Signal.SKIP)

    hist = await store.history("u", limit=2)
    assert [h.rec_id for h in hist] == ["r2", "r1"]
    assert hist[0].feedback == {"s2-0": ("like", "love")}
    assert hist[1].feedback == {}
    assert hist[0].items == ((0, "s2-0", 1.0), (1, "s2-1", 0.99))
    full = await store.history("u")
    assert [h.rec_id for h in full] == ["r2", "r1", "r0"]
    assert full[2].feedback == {"s0-1": ("skip",)}
    assert (await store.last_recommendation("u")).rec_id == "r2"
    assert await store.last_recommendation("nobody") is None
    assert await store.history("nobody") == []


async def test_channel_settings_per_guild(store: Store) -> None:
    assert await store.is_channel_enabled("g1", "c1") is False
    await store.set_channel_enabled("g1", "c2", True)
    await store.set_channel_enabled("g1", "c1", True)
    await store.set_channel_enabled("g2", "c9", True)
    assert await store.enabled_channels("g1") == ["c1", "c2"]
    await store.set_channel_enabled("g1", "c2", False)
    assert await store.is_channel_enabled("g1", "c2") is False
    assert await store.is_channel_enabled("g1", "c1") is True
    assert await store.enabled_channels("g1") == ["c1"]
    assert await store.enabled_channels("g2") == ["c9"]
    assert await store.is_channel_enabled("g2", "c1") is False


async def test_stats(store: Store, clock: Clock) -> None:
    await store.save_recommendation("old", "u1", "console", MOOD, songs("s", 2), source="text")
    await store.add_feedback("old", "s0", "u1", Signal.SKIP)
    clock.tick(2 * 86_400)
    await store.save_recommendation("new", "u2", "kakao", MOOD, songs("s", 2), source="text")
    await store.add_feedback("new", "s0", "u2", Signal.LIKE)
    await store.add_feedback("new", "s1", "u2", Signal.LIKE)
    st = await store.stats()
    assert st["users"] == 2 and st["recommendations"] == 2 and st["feedback"] == 3
    assert st["feedback_by_signal"] == {"love": 0, "like": 2, "play": 0, "skip": 1, "dislike": 0}
    assert st["last_24h"] == {"recommendations": 1, "active_users": 1, "feedback": 2}


# ---- privacy: forget_user ---------------------------------------------------------------------
async def test_forget_user_leaves_nothing_of_them_anywhere(open_store, db: Backend,
                                                           tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "forget.sqlite3"
    gone, stays = "discord:FORGET-ME-7f3a", "discord:stays-21c9"
    s = await open_store(path, clock=clock, store_message_text=True)
    await s.save_recommendation("rec-gone-1", gone, "discord", MOOD, songs("g", 3), source="text",
                                text="msg of the forgotten")
    await s.save_recommendation("rec-gone-2", gone, "kakao", MOOD, songs("h", 2), source="text")
    await s.save_recommendation("rec-stays", stays, "discord", MOOD, songs("k", 2), source="text")
    await s.link_message("m-gone", "rec-gone-1")
    await s.link_message("m-stays", "rec-stays")
    await s.add_feedback("rec-gone-1", "g0", gone, Signal.LIKE)
    await s.add_feedback("rec-stays", "k0", gone, Signal.LOVE)  # gone reacted on stays' answer
    await s.add_feedback("rec-gone-1", "g1", stays, Signal.DISLIKE, scope="message")  # vice versa
    await s.add_feedback("rec-stays", "k1", stays, Signal.LIKE)
    await s.set_channel_enabled("guild", "chan", True)

    counts = await s.forget_user(gone)
    # Not in live pages, freed pages or the WAL, while the bot is still running (secure_delete
    # zeroes freed cells; the TRUNCATE checkpoint drops the old page images from the -wal).
    # (PostgreSQL's files are the server's; only the rows are checked there, below.)
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert b"FORGET-ME-7f3a" not in blob
    assert b"msg of the forgotten" not in blob
    assert counts == {"feedback": 2, "feedback_detached": 1, "message_links": 1,
                      "recommendation_items": 5, "recommendations": 2, "users": 1}
    assert await s.history(gone) == []
    assert await s.recent_song_ids(gone, 10) == []
    assert await s.rec_for_message("m-gone") is None
    with pytest.raises(UnknownRecommendationError):
        await s.add_feedback("rec-gone-1", "g0", stays, Signal.LIKE)
    # The other user's data is intact, including their reaction on the forgotten user's answer.
    assert await s.rec_for_message("m-stays") == "rec-stays"
    assert await s.recent_song_ids(stays, 5) == ["k0", "k1"]
    assert sorted((e[0], e[1], e[2]) for e in await s.feedback_events()) == [
        (stays, "g1", "dislike"), (stays, "k1", "like")]
    assert await s.forget_user(gone) == dict.fromkeys(counts, 0)  # idempotent
    await s.close()

    # Every column of every table, including tables a later migration adds.
    for table in await db.tables(path):
        for col in await db.columns(path, table):
            hits = await db.fetch(
                path, f'SELECT COUNT(*) FROM "{table}" WHERE CAST("{col}" AS TEXT) LIKE ?',
                "%FORGET-ME-7f3a%")
            assert hits == [(0,)], f"{table}.{col} still names the forgotten user"
            for rec_id in ("rec-gone-1", "rec-gone-2", "m-gone"):
                assert await db.fetch(
                    path, f'SELECT COUNT(*) FROM "{table}" WHERE CAST("{col}" AS TEXT) = ?',
                    rec_id) == [(0,)], (table, col, rec_id)
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert b"FORGET-ME-7f3a" not in blob


# ---- concurrency ------------------------------------------------------------------------------
async def test_200_concurrent_writers_lose_nothing_and_duplicate_nothing(
        open_store, db: Backend, tmp_path: Path) -> None:
    """200 users x 50 reactions at once, with re-deliveries, interleaved multi-statement saves
    and a task whose transactions keep failing and rolling back: every write that reported
    success is on disk exactly once, and no rollback took someone else's write with it."""
    path = tmp_path / "busy.sqlite3"
    s = await open_store(path)
    n_users, per_user = 200, 50
    for u in range(n_users):
        await s.save_recommendation(f"r{u}", f"u{u}", "discord", MOOD, songs(f"u{u}s", per_user),
                                    source="text")

    async def user(u: int) -> tuple[list[bool], list[bool]]:
        first, again = [], []
        for i in range(per_user):
            first.append(await s.add_feedback(f"r{u}", f"u{u}s{i}", f"u{u}", Signal.LIKE))
            if i % 10 == 0:  # Discord re-delivers some reactions
                again.append(await s.add_feedback(f"r{u}", f"u{u}s{i}", f"u{u}", "like"))
            if u % 10 == 0 and i % 10 == 5:  # multi-statement transactions interleave
                await s.save_recommendation(f"extra{u}-{i}", f"u{u}", "discord", MOOD,
                                            songs("e", 5), source="text")
        return first, again

    async def failing_saves() -> int:
        failed = 0
        for _ in range(200):  # BEGIN, upsert user, INSERT fails (reused rec_id), ROLLBACK
            with pytest.raises(StoreError, match="already stored"):
                await s.save_recommendation("r0", "intruder", "discord", MOOD, songs("i", 3),
                                            source="text")
            failed += 1
        return failed

    *results, failed = await asyncio.gather(*(user(u) for u in range(n_users)), failing_saves())
    assert failed == 200
    assert sum(sum(first) for first, _ in results) == n_users * per_user
    assert not any(any(again) for _, again in results)
    await s.close()
    assert await db.fetch(path, "SELECT COUNT(*) FROM feedback") == [(n_users * per_user,)]
    assert await db.fetch(path, "SELECT COUNT(*) FROM (SELECT DISTINCT rec_id, song_id, "
                                "user_id, signal FROM feedback) AS d") == [(n_users * per_user,)]
    assert await db.fetch(path, "SELECT COUNT(*) FROM recommendation_items WHERE rec_id LIKE "
                                "'extra%'") == [(5 * 5 * (n_users // 10),)]
    assert await db.fetch(path, "SELECT COUNT(*) FROM users WHERE user_id = 'intruder'"
                          ) == [(0,)]


async def test_cancelled_saves_are_all_or_nothing(store: Store) -> None:
    """A task cancelled anywhere inside a save leaves either the whole answer or none of it,
    and never a connection stuck inside an open transaction."""
    outcomes = set()
    for attempt in range(40):
        rec_id = f"c{attempt}"
        task = asyncio.create_task(store.save_recommendation(
            rec_id, "u", "console", MOOD, songs(f"c{attempt}-", 5), source="text"))
        for _ in range(attempt % 8):
            await asyncio.sleep(0)
        task.cancel()
        try:
            await task
            outcomes.add("done")
        except asyncio.CancelledError:
            outcomes.add("cancelled")
        rec = await store.recommendation(rec_id)
        assert rec is None or len(rec.items) == 5
        await store.save_recommendation(f"ok{attempt}", "u", "console", MOOD, songs("z", 1),
                                        source="text")
    assert "cancelled" in outcomes


# ---- unavailable database ---------------------------------------------------------------------
@sqlite_only("SQLite file locking and busy_timeout")
async def test_locked_database_raises_unavailable_then_recovers(open_store, tmp_path: Path) -> None:
    path = tmp_path / "locked.sqlite3"
    s = await open_store(path, busy_timeout_ms=50)
    await s.save_recommendation("r1", "u", "console", MOOD, songs("s", 2), source="text")
    other = raw(path)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreUnavailableError, match="locked by another process") as err:
            await s.save_recommendation("r2", "u", "console", MOOD, songs("t", 2), source="text")
        assert "DATABASE_PATH" in str(err.value) and str(path) in str(err.value)
        with pytest.raises(StoreUnavailableError, match="locked"):
            await s.add_feedback("r1", "s0", "u", Signal.LIKE)
        assert await s.recent_song_ids("u", 5) == ["s0", "s1"]  # WAL: reads still work
    finally:
        other.rollback()
        other.close()
    await s.save_recommendation("r2", "u", "console", MOOD, songs("t", 2), source="text")
    assert await s.add_feedback("r1", "s0", "u", Signal.LIKE) is True
    assert await s.recent_song_ids("u", 1) == ["t0", "t1"]
    await s.close()


@sqlite_only("SQLite file locking")
async def test_open_while_another_process_holds_the_lock(open_store, tmp_path: Path) -> None:
    path = tmp_path / "fresh.sqlite3"
    other = raw(path)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreUnavailableError, match="locked"):
            await Store.open(path, busy_timeout_ms=50)
    finally:
        other.rollback()
        other.close()
    s = await open_store(path, busy_timeout_ms=50)
    assert s.schema_version == LATEST
    await s.close()


@sqlite_only("a mode=ro file: URI (PostgreSQL: test_pg_read_only_database)")
async def test_read_only_uri_reads_but_refuses_writes(open_store, tmp_path: Path) -> None:
    path = tmp_path / "ro.sqlite3"
    s = await open_store(path)
    await s.save_recommendation("r1", "u", "console", MOOD, songs("s", 2), source="text")
    await s.close()
    ro = await open_store(f"file:{path}?mode=ro")
    try:
        assert await ro.recent_song_ids("u", 5) == ["s0", "s1"]
        with pytest.raises(StoreUnavailableError, match="read-only") as err:
            await ro.save_recommendation("r2", "u", "console", MOOD, songs("t", 1), source="text")
        assert "writable" in str(err.value)
        with pytest.raises(StoreUnavailableError, match="read-only"):
            await ro.add_feedback("r1", "s0", "u", Signal.LIKE)
    finally:
        await ro.close()


async def test_read_only_uri_of_a_missing_database_cannot_open(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailableError, match="cannot open"):
        await Store.open(f"file:{tmp_path / 'missing.sqlite3'}?mode=ro")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="running as root: file permissions do not stop root from writing; "
                           "the mode=ro URI test covers the read-only path")
@sqlite_only("file permissions")
async def test_read_only_file_permissions(open_store, tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    path = folder / "moodtune.sqlite3"
    s = await open_store(path)
    await s.save_recommendation("r1", "u", "console", MOOD, songs("s", 2), source="text")
    await s.close()
    path.chmod(0o444)
    folder.chmod(0o555)
    try:
        try:
            ro = await open_store(path)
        except StoreUnavailableError:
            return  # WAL needs the -shm file next to the database: refusing to open is fine too
        try:
            with pytest.raises(StoreUnavailableError):
                await ro.save_recommendation("r2", "u", "console", MOOD, [], source="text")
        finally:
            await ro.close()
    finally:
        folder.chmod(0o755)
        path.chmod(0o644)


async def test_folder_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreUnavailableError, match="cannot create the folder"):
        await Store.open(blocker / "sub" / "db.sqlite3")


async def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "junk.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreUnavailableError, match="cannot be read or written"):
        await Store.open(path)


async def test_closed_store(open_store, tmp_path: Path) -> None:
    s = await open_store(tmp_path / "c.sqlite3")
    await s.close()
    await s.close()  # idempotent
    assert s.closed
    with pytest.raises(StoreError, match="closed"):
        await s.recent_song_ids("u", 5)


@sqlite_only("a mode=ro file: URI (PostgreSQL: test_pg_read_only_database)")
async def test_check_writable_passes_on_a_writable_database_and_fails_on_a_read_only_one(
        open_store, tmp_path: Path) -> None:
    """/healthz relies on this: reads still work on a read-only file, writes do not."""
    path = tmp_path / "h.sqlite3"
    s = await open_store(path)
    await s.check_writable()
    await s.close()
    ro = await open_store(f"file:{path}?mode=ro")
    with pytest.raises(StoreUnavailableError, match="read-only"):
        await ro.check_writable()
    await ro.close()


# ---- PostgreSQL only --------------------------------------------------------------------------
async def test_pg_schema_is_the_numbered_postgres_migrations(pg_server: PgServer,
                                                             clock: Clock) -> None:
    db = Backend("pg", pg_server)
    s = await db.open("schema", clock=clock)
    try:
        assert s.schema_version == LATEST
        assert [m.version for m in load_pg_migrations()] == [m.version for m in load_migrations()]
    finally:
        await s.close()
    assert await db.fetch("schema", "SELECT version, name, applied_at FROM schema_version "
                                    "ORDER BY version") == [
        (m.version, m.name, clock.t) for m in load_pg_migrations()]
    assert {"users", "recommendations", "recommendation_items", "feedback", "message_links",
            "guild_channels", "health_probe", "schema_version"} <= set(await db.tables("schema"))


async def test_pg_processes_starting_at_once_migrate_once(pg_server: PgServer) -> None:
    """The advisory lock: five stores opening one empty database at the same moment."""
    db = Backend("pg", pg_server)
    url = await db.url("race")
    stores = await asyncio.gather(*(PgStore.open(url, min_size=1, max_size=2) for _ in range(5)))
    try:
        assert {s.schema_version for s in stores} == {LATEST}
        await stores[0].save_recommendation("r", "u", "console", MOOD, songs("s", 2),
                                            source="text")
        assert await stores[4].add_feedback("r", "s0", "u", Signal.LIKE) is True
        assert await stores[3].add_feedback("r", "s0", "u", Signal.LIKE) is False
    finally:
        for s in stores:
            await s.close()
    assert await db.fetch("race", "SELECT COUNT(*) FROM schema_version") == [(LATEST,)]


async def test_pg_read_only_database(pg_server: PgServer) -> None:
    """A read-only server (a replica, default_transaction_read_only) opens and reads, but
    writes and the /healthz probe fail with a message that says so."""
    db = Backend("pg", pg_server)
    s = await db.open("ro")
    await s.save_recommendation("r1", "u", "console", MOOD, songs("s", 2), source="text")
    await s.check_writable()
    await s.close()
    name = (await db.url("ro")).rsplit("/", 1)[1]
    await db.fetch("ro", f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    ro = await db.open("ro")
    try:
        assert await ro.recent_song_ids("u", 5) == ["s0", "s1"]
        with pytest.raises(StoreUnavailableError, match="read-only") as err:
            await ro.check_writable()
        assert "replica" in str(err.value)
        with pytest.raises(StoreUnavailableError, match="read-only"):
            await ro.add_feedback("r1", "s0", "u", Signal.LIKE)
        with pytest.raises(StoreUnavailableError, match="read-only"):
            await ro.save_recommendation("r2", "u", "console", MOOD, [], source="text")
    finally:
        await ro.close()


async def test_pg_connection_errors_say_what_to_do_and_hide_the_password(
        pg_server: PgServer) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    cases = (
        (f"postgresql://postgres:hunter2-pw@127.0.0.1:{dead}/x", "connection refused"),
        (f"postgresql://postgres:hunter2-pw@127.0.0.1:{pg_server.port}/no_such_db",
         "does not exist.*createdb"),
        (f"postgresql://nobody:hunter2-pw@127.0.0.1:{pg_server.port}/postgres",
         "refused the login"),
    )
    for url, expected in cases:
        with pytest.raises(StoreUnavailableError, match=expected) as err:
            await PgStore.open(url, connect_timeout=5)
        assert "hunter2-pw" not in str(err.value)
        assert "DATABASE_URL" in str(err.value)


# ---- selection: DATABASE_URL ------------------------------------------------------------------
async def test_database_url_selects_the_postgresql_store(pg_server: PgServer,
                                                         tmp_path: Path) -> None:
    """The engine opens PgStore for DATABASE_URL, and still SQLite (DATABASE_PATH) without it."""
    from bot.engine import Recommender
    from tests.fakes import KeywordClassifier, make_settings

    pg_url = await Backend("pg", pg_server).url("engine")
    rec = await Recommender.open(make_settings(tmp_path, n_songs=50, database_url=pg_url),
                                 classifier=KeywordClassifier())
    try:
        assert isinstance(rec.store, PgStore) and rec.store.schema_version == LATEST
    finally:
        await rec.close()
    assert not (tmp_path / "var" / "moodtune.sqlite3").exists()
    rec = await Recommender.open(make_settings(tmp_path, n_songs=50),
                                 classifier=KeywordClassifier())
    try:
        assert isinstance(rec.store, Store)
    finally:
        await rec.close()


def test_database_url_must_be_postgresql_or_empty(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from tests.fakes import make_settings

    assert make_settings(tmp_path, n_songs=5).database_url is None
    assert make_settings(tmp_path, n_songs=5, database_url="").database_url is None
    with pytest.raises(ValidationError, match="postgresql://"):
        make_settings(tmp_path, n_songs=5, database_url="sqlite:///var/x.sqlite3")
