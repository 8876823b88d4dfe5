"""The bot's memory: what was shown to whom, what they said about it, and per-guild settings.

Why it looks the way it does:

* **One aiosqlite connection, one asyncio lock.** aiosqlite runs every statement on one worker
  thread, so statements never overlap, but *transactions* could: coroutine A's ``BEGIN`` … its
  ``INSERT`` … and in between coroutine B's statement would land inside A's transaction (and be
  lost if A rolls back). Every public method therefore holds ``self._lock`` for its whole
  exchange with the database, and every multi-statement write runs in ``BEGIN IMMEDIATE`` …
  ``COMMIT`` (``ROLLBACK`` on any error or cancellation). ``IMMEDIATE`` takes the write lock up
  front, so a second process makes us wait ``busy_timeout`` once instead of failing half-way.
* **WAL + synchronous=NORMAL.** Readers (CF training, ``stats``) never block the bot's writes, and
  a commit is an append to the WAL without an fsync: a committed row survives a crash or
  ``kill -9`` of the process (only an OS crash / power cut can drop the last few commits). The
  benchmark ``benchmarks/feedback.py`` measures this against the default rollback journal and
  kills a writer mid-run to check it.
* **Idempotent feedback.** Discord re-delivers reactions; a UNIQUE key on
  (rec_id, song_id, user_id, signal) with ``ON CONFLICT DO NOTHING`` turns a repeat into a no-op
  that reports ``False``. (``DO NOTHING`` rather than ``INSERT OR IGNORE``: ``OR IGNORE`` would
  also silently swallow CHECK and NOT NULL violations.)
* **Failures the engine can survive.** A locked, read-only, unopenable or full database raises
  :class:`StoreUnavailableError` with a message that says what to do; the engine catches it and
  keeps answering from memory.
* **Privacy.** The message text is stored only when ``store_message_text=True``
  (``STORE_MESSAGE_TEXT``) and is never logged. :meth:`Store.forget_user` removes every row that
  names a person, with ``secure_delete`` on so freed pages are zeroed, and a WAL checkpoint so
  the old page images do not linger in the ``-wal`` file.

Schema changes are numbered SQL files in ``bot/migrations`` (``NNN_name.sql``), applied in order
at :meth:`Store.open`, each in its own transaction, and recorded in ``schema_version``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

import aiosqlite

from bot.feedback import Signal
from inference.emotions import NUM_EMOTIONS

log = logging.getLogger("moodtune.store")

__all__ = [
    "CF_MODELS_KEPT",
    "SCOPES",
    "FeedbackEvent",
    "Migration",
    "Store",
    "StoreError",
    "StoreUnavailableError",
    "StoredItem",
    "StoredRecommendation",
    "UnknownRecommendationError",
    "check_cf_model",
    "feedback_window",
    "load_migrations",
    "prepare_recommendation",
    "read_feedback_moods",
    "read_feedback_rows",
    "recommendation_records",
    "split_sql",
    "stats_record",
    "with_feedback",
]

SCOPES: tuple[str, ...] = ("track", "message")
_MIGRATION_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
_DAY = 86_400.0
#: Shared CF models kept in ``cf_models``: the newest serves, two older ones cover a replica that
#: is still fetching when a newer one lands (each archive can be tens of MB).
CF_MODELS_KEPT = 3


class StoreError(RuntimeError):
    """Something went wrong in the store; the message says what and what to do about it."""


class StoreUnavailableError(StoreError):
    """The database cannot be used right now: locked, read-only, unopenable, full or broken.

    The engine catches this and keeps answering (no-repeat from memory, feedback refused).
    """


class UnknownRecommendationError(StoreError):
    """Feedback or a message link names a rec_id (or a song of it) that was never shown."""


class StoredItem(NamedTuple):
    """One track of a stored answer, in the order shown (position 0 = first)."""

    position: int
    song_id: str
    score: float


class FeedbackEvent(NamedTuple):
    """One row of the feedback table as CF and the engine read it."""

    user_id: str
    song_id: str
    signal: str
    scope: str
    created_at: float


@dataclass(frozen=True, slots=True)
class StoredRecommendation:
    """An answer as the store remembers it: what was shown to whom, and (in history) what
    that person said about each track."""

    rec_id: str
    user_id: str
    channel: str
    source: str
    emotion: tuple[float, ...]
    text: str | None
    created_at: float
    items: tuple[StoredItem, ...]
    feedback: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    request: Mapping[str, Any] | None = None  # what was understood (no raw text)

    @property
    def song_ids(self) -> tuple[str, ...]:
        return tuple(i.song_id for i in self.items)

    def song_at(self, position: int) -> str | None:
        """The song shown ``position``-th on screen (0-based), or None if there is no such track.

        Items are kept in stored-position order, so this is display order whatever numbering the
        rows use: a button saying "track 2" always means the second track shown.
        """
        return self.items[position].song_id if 0 <= position < len(self.items) else None


def feedback_window(since: float | None, until: float | None) -> tuple[str, tuple[float, ...]]:
    """The WHERE clause for a half-open time window ``since <= created_at < until``.

    One definition for the bot and CF training, so consecutive windows neither miss nor
    double-count an event whichever reader takes them.
    """
    clauses, args = [], []
    if since is not None:
        clauses.append("created_at >= ?")
        args.append(float(since))
    if until is not None:
        clauses.append("created_at < ?")
        args.append(float(until))
    return (f" WHERE {' AND '.join(clauses)}" if clauses else ""), tuple(args)


_FEEDBACK_COLUMNS = "user_id, song_id, signal, scope, created_at"


def read_feedback_rows(con: sqlite3.Connection, *, since: float | None = None,
                       until: float | None = None, batch: int = 50_000
                       ) -> tuple[int, Iterator[list[FeedbackEvent]]]:
    """``(row count, batches of FeedbackEvent)`` in time order from a plain sqlite3 connection.

    For readers outside the bot's event loop (CF training reads millions of rows in a separate
    process through a read-only connection); streaming in batches keeps its memory flat. The
    store's own :meth:`Store.feedback_events` uses the same window and columns.
    """
    where, args = feedback_window(since, until)
    total = int(con.execute(f"SELECT COUNT(*) FROM feedback{where}", args).fetchone()[0])
    cur = con.execute(f"SELECT {_FEEDBACK_COLUMNS} FROM feedback{where} ORDER BY created_at, rowid",
                      args)

    def batches() -> Iterator[list[FeedbackEvent]]:
        while rows := cur.fetchmany(batch):
            yield [FeedbackEvent(*r) for r in rows]

    return total, batches()


def read_feedback_moods(con: sqlite3.Connection) -> Iterator[tuple[str, str, list[float]]]:
    """``(song_id, signal, mood of the answer it was given on)`` for every feedback row whose
    answer is still stored: in which moods people liked or disliked each song.

    The catalogue build reads this (``moodtune build-catalog --feedback-db``) so that a song
    drifts, within bounds, toward the moods in which listeners actually like it.
    """
    cur = con.execute("SELECT f.song_id, f.signal, r.emotion FROM feedback f "
                      "JOIN recommendations r ON r.rec_id = f.rec_id")
    while rows := cur.fetchmany(10_000):
        for song_id, signal, emotion in rows:
            yield song_id, signal, json.loads(emotion)


def prepare_recommendation(rec_id: str, emotion: Sequence[float],
                           items: Sequence[tuple[str, float]], *, text: str | None,
                           request: Mapping[str, Any] | None, store_message_text: bool
                           ) -> tuple[list[float], list[tuple[str, int, str, float]], str | None,
                                      str | None]:
    """Validate an answer and shape its rows, the same way for every backend:
    ``(emotion, item rows, text kept, request JSON)``.

    One place decides what a stored answer may contain: six finite numbers, no song twice
    (feedback names a track by song id), the raw text only when the operator opted in.
    """
    vec = [float(x) for x in emotion]
    if len(vec) != NUM_EMOTIONS or not all(math.isfinite(x) for x in vec):
        raise ValueError(f"emotion must be {NUM_EMOTIONS} finite numbers in LABELS order, "
                         f"got {emotion!r}")
    rows = [(rec_id, pos, str(song_id), float(score))
            for pos, (song_id, score) in enumerate(items)]
    if len({r[2] for r in rows}) != len(rows):
        raise ValueError(f"recommendation {rec_id} lists a song twice; feedback could not "
                         "tell the copies apart")
    kept_text = text if store_message_text else None
    req_json = None
    if request:
        kept = {k: v for k, v in request.items() if k != "text" or store_message_text}
        req_json = json.dumps(kept, ensure_ascii=False)
    return vec, rows, kept_text, req_json


def with_feedback(recs: Sequence[StoredRecommendation],
                  rows: Iterable[Sequence[Any]]) -> list[StoredRecommendation]:
    """``recs`` with each person's own signals attached (``history``), from
    ``(rec_id, song_id, signal)`` rows in time order."""
    said: dict[str, dict[str, list[str]]] = {}
    for rec_id, song_id, signal in rows:
        said.setdefault(rec_id, {}).setdefault(song_id, []).append(signal)
    return [replace(r, feedback={song: tuple(sigs)
                                 for song, sigs in said.get(r.rec_id, {}).items()})
            for r in recs]


def recommendation_records(rows: Iterable[Sequence[Any]],
                           items: Iterable[Sequence[Any]]) -> list[StoredRecommendation]:
    """Typed records from ``(rec_id, user_id, channel, source, emotion JSON, text, created_at,
    request JSON)`` rows and ``(rec_id, position, song_id, score)`` item rows."""
    rows = list(rows)
    by_rec: dict[str, list[StoredItem]] = {r[0]: [] for r in rows}
    for rec_id, position, song_id, score in items:
        by_rec[rec_id].append(StoredItem(position, song_id, score))
    return [StoredRecommendation(r[0], r[1], r[2], r[3], tuple(json.loads(r[4])), r[5], r[6],
                                 tuple(by_rec[r[0]]), {}, json.loads(r[7]) if r[7] else None)
            for r in rows]


def stats_record(users: int, recs: int, by_signal: Mapping[str, int], links: int, recs_24: int,
                 active_24: int, fb_24: int, schema_version: int, journal_mode: str
                 ) -> dict[str, Any]:
    """The ``stats()`` dictionary every backend returns (one shape for /stats and the admin)."""
    return {
        "users": users,
        "recommendations": recs,
        "feedback": sum(by_signal.values()),
        "feedback_by_signal": dict(by_signal),
        "message_links": links,
        "last_24h": {"recommendations": recs_24, "active_users": active_24, "feedback": fb_24},
        "schema_version": schema_version,
        "journal_mode": journal_mode,
    }


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered schema change, ``NNN_name.sql``."""

    version: int
    name: str
    sql: str


def load_migrations(directory: str | Path | None = None) -> list[Migration]:
    """Read ``NNN_name.sql`` files in version order (default: the shipped ``bot/migrations``).

    Files not matching the pattern are ignored (README, editor backups); two files with one number
    are an error, because which one ran would depend on directory order.
    """
    if directory is None:
        root: Any = resources.files("bot").joinpath("migrations")
    else:
        root = Path(directory)
    found: dict[int, Migration] = {}
    for entry in root.iterdir():
        m = _MIGRATION_NAME.match(entry.name)
        if not m:
            continue
        version = int(m.group(1))
        if version == 0:
            raise StoreError(f"migration {entry.name}: numbering starts at 001")
        if version in found:
            raise StoreError(f"two migrations numbered {version:03d}: {found[version].name} and "
                             f"{entry.name}; renumber one of them")
        found[version] = Migration(version, entry.name, entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)


def split_sql(script: str, name: str = "<sql>") -> list[str]:
    """Split a migration into statements, so each runs inside *our* transaction.

    ``sqlite3.executescript`` would be simpler but commits any open transaction first, which
    would make a migration non-atomic. ``sqlite3.complete_statement`` understands strings,
    comments and trigger bodies, so a ``;`` inside them does not split.
    """
    out: list[str] = []
    start = 0
    for i, ch in enumerate(script):
        if ch == ";" and sqlite3.complete_statement(script[start : i + 1]):
            stmt = script[start : i + 1].strip()
            if _COMMENTS.sub("", stmt).strip(" \t\r\n;"):
                out.append(stmt)
            start = i + 1
    rest = _COMMENTS.sub("", script[start:]).strip()
    if rest:
        raise StoreError(f"migration {name}: the last statement has no terminating ';' "
                         f"({rest[:60]!r}…)")
    return out


class Store:
    """Async SQLite storage for recommendations, feedback, message links and guild settings.

    Open with :meth:`open` (not the constructor), close with :meth:`close` or ``async with``.
    All methods are safe to call from many tasks at once.
    """

    def __init__(self, db: aiosqlite.Connection, path: str, *, store_message_text: bool,
                 busy_timeout_ms: int, clock: Callable[[], float], in_memory: bool) -> None:
        self._db: aiosqlite.Connection | None = db
        self.path = path
        self.store_message_text = store_message_text
        self.busy_timeout_ms = busy_timeout_ms
        self._clock = clock
        self._in_memory = in_memory
        self._lock = asyncio.Lock()
        self.journal_mode = "unknown"
        self.schema_version = 0

    # ---- lifecycle -----------------------------------------------------------------------
    @classmethod
    async def open(cls, path: str | Path, *, store_message_text: bool = False,
                   busy_timeout_ms: int = 5000, clock: Callable[[], float] = time.time,
                   migrations_dir: str | Path | None = None) -> Store:
        """Open (creating if needed) the database at ``path`` and bring its schema up to date.

        ``path`` may be a file path, ``":memory:"`` (tests) or a ``file:…`` URI (e.g.
        ``?mode=ro`` for a read-only view). ``clock`` returns unix seconds; tests inject one to
        control time. ``migrations_dir`` replaces the shipped migrations (tests, tools).
        Raises :class:`StoreUnavailableError` if the file cannot be opened or is locked.
        """
        if busy_timeout_ms < 0:
            raise ValueError("busy_timeout_ms must be >= 0")
        raw = str(path)
        in_memory = raw == ":memory:" or "mode=memory" in raw
        uri = raw.startswith("file:")
        if not in_memory and not uri:
            file = Path(raw).expanduser()
            try:
                file.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreUnavailableError(
                    f"cannot create the folder {file.parent} for the database ({exc.strerror}); "
                    "create it with write permission for this user or point DATABASE_PATH "
                    "elsewhere") from exc
            raw = str(file)
        migrations = load_migrations(migrations_dir)
        try:
            db = await aiosqlite.connect(raw, uri=uri, isolation_level=None,
                                         timeout=busy_timeout_ms / 1000)
        except sqlite3.Error as exc:
            raise _translate(exc, raw, "opening the database", busy_timeout_ms) from exc
        store = cls(db, raw, store_message_text=store_message_text,
                    busy_timeout_ms=busy_timeout_ms, clock=clock, in_memory=in_memory)
        try:
            await store._configure()
            await store._migrate(migrations)
        except BaseException:
            await store.close()  # the worker thread is not a daemon: never leak it
            raise
        return store

    async def _configure(self) -> None:
        db = self._conn()
        try:
            # busy_timeout first, so switching to WAL also waits for a briefly busy file.
            await db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
            rows = await db.execute_fetchall("PRAGMA journal_mode=WAL")
            self.journal_mode = str(next(iter(rows))[0]).lower()
            if self.journal_mode != "wal" and not self._in_memory:
                # e.g. a network file system without shared memory: still correct, slower.
                log.warning("database %s runs in journal_mode=%s, not WAL; readers will block "
                            "writers", self.path, self.journal_mode)
            await db.execute("PRAGMA synchronous=NORMAL")
            await db.execute("PRAGMA foreign_keys=ON")
            # forget_user must not leave deleted rows readable in free pages.
            await db.execute("PRAGMA secure_delete=ON")
        except sqlite3.Error as exc:
            raise _translate(exc, self.path, "configuring the database",
                             self.busy_timeout_ms) from exc

    async def _applied_version(self) -> int:
        db = self._conn()
        rows = await db.execute_fetchall(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_version'")
        if not list(rows):
            return 0
        rows = await db.execute_fetchall("SELECT COALESCE(MAX(version), 0) FROM schema_version")
        return int(next(iter(rows))[0])

    async def _migrate(self, migrations: Sequence[Migration]) -> None:
        """Apply the migrations newer than the database, each atomically, in order.

        The version is re-read inside each ``BEGIN IMMEDIATE``, so two processes starting at once
        apply each migration exactly once. A database that needs nothing is not written to at
        all, which is what lets a read-only file (or ``mode=ro``) open for reading.
        """
        op = "applying database migrations"
        known = migrations[-1].version if migrations else 0
        try:
            current = await self._applied_version()
        except sqlite3.Error as exc:
            raise _translate(exc, self.path, op, self.busy_timeout_ms) from exc
        if current > known:
            raise StoreError(
                f"the database at {self.path} has schema version {current}, newer than this "
                f"moodtune knows ({known}); upgrade moodtune or point DATABASE_PATH elsewhere")
        for mig in migrations:
            if mig.version <= current:
                continue
            statements = split_sql(mig.sql, mig.name)
            async with self._transaction(f"{op} ({mig.name})") as db:
                await db.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                    "name TEXT NOT NULL, applied_at REAL NOT NULL)")
                rows = await db.execute_fetchall(
                    "SELECT 1 FROM schema_version WHERE version = ?", (mig.version,))
                if list(rows):  # another process got there first
                    continue
                for stmt in statements:
                    await db.execute(stmt)
                await db.execute("INSERT INTO schema_version (version, name, applied_at) "
                                 "VALUES (?, ?, ?)", (mig.version, mig.name, self._clock()))
            log.info("database %s: applied migration %s", self.path, mig.name)
        try:
            self.schema_version = await self._applied_version()
        except sqlite3.Error as exc:
            raise _translate(exc, self.path, op, self.busy_timeout_ms) from exc

    async def close(self) -> None:
        """Close the connection (idempotent). Waits for a running operation to finish."""
        db = self._db
        if db is None:
            return
        async with self._lock:
            self._db = None
            await db.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def closed(self) -> bool:
        return self._db is None

    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError("the store is closed; open it again with Store.open(path)")
        return self._db

    # ---- the one way in: lock, optional transaction, error translation --------------------
    @asynccontextmanager
    async def _session(self, op: str) -> AsyncIterator[aiosqlite.Connection]:
        """Exclusive use of the connection for reads or a single autocommit statement."""
        async with self._lock:
            db = self._conn()
            try:
                yield db
            except sqlite3.Error as exc:
                raise _translate(exc, self.path, op, self.busy_timeout_ms) from exc

    @asynccontextmanager
    async def _transaction(self, op: str) -> AsyncIterator[aiosqlite.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` under the lock; ``ROLLBACK`` on any exception.

        The rollback is issued even when the failure (or a cancellation) hit while ``BEGIN``
        itself was in flight: aiosqlite runs queued statements in order, so the ``ROLLBACK``
        lands after it and the connection is never left inside a stale transaction.
        """
        async with self._lock:
            db = self._conn()
            try:
                await db.execute("BEGIN IMMEDIATE")
                yield db
                await db.execute("COMMIT")
            except BaseException as exc:
                await _rollback_quietly(db)
                if isinstance(exc, sqlite3.Error):
                    raise _translate(exc, self.path, op, self.busy_timeout_ms) from exc
                raise

    # ---- recommendations ------------------------------------------------------------------
    async def save_recommendation(self, rec_id: str, user_id: str, channel: str,
                                  emotion: Sequence[float], items: Sequence[tuple[str, float]],
                                  *, source: str, text: str | None = None,
                                  request: Mapping[str, Any] | None = None) -> None:
        """Remember an answer: upsert the user, the recommendation and its tracks, atomically.

        ``text`` is dropped unless the store was opened with ``store_message_text=True``; callers
        may always pass it, so the privacy decision is made in exactly one place. Raises
        :class:`StoreError` if ``rec_id`` is already stored (rec_ids are never reused).
        """
        vec, rows, kept_text, req_json = prepare_recommendation(
            rec_id, emotion, items, text=text, request=request,
            store_message_text=self.store_message_text)
        now = self._clock()
        try:
            async with self._transaction(f"saving recommendation {rec_id}") as db:
                await db.execute(
                    "INSERT INTO users (user_id, channel, first_seen, last_seen) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET "
                    "channel = excluded.channel, last_seen = MAX(last_seen, excluded.last_seen)",
                    (user_id, channel, now, now))
                await db.execute(
                    "INSERT INTO recommendations (rec_id, user_id, channel, source, emotion, "
                    "text, created_at, request) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (rec_id, user_id, channel, source, json.dumps(vec), kept_text, now,
                     req_json))
                if rows:
                    await db.executemany(
                        "INSERT INTO recommendation_items (rec_id, position, song_id, score) "
                        "VALUES (?, ?, ?, ?)", rows)
        except StoreError as exc:
            cause = exc.__cause__
            if isinstance(cause, sqlite3.IntegrityError) and "recommendations.rec_id" in str(cause):
                raise StoreError(f"recommendation {rec_id} is already stored; rec_ids must be "
                                 "unique (generate a new one)") from exc.__cause__
            raise

    async def recent_song_ids(self, user_id: str, last_n_recs: int) -> list[str]:
        """Songs of the user's last ``last_n_recs`` answers, newest first, without duplicates.

        The engine excludes these from the next search (no-repeat window).
        """
        if last_n_recs <= 0:
            return []
        async with self._session(f"reading recent songs of {user_id}") as db:
            rows = await db.execute_fetchall(
                "SELECT i.song_id FROM (SELECT rec_id, created_at, rowid AS seq "
                "  FROM recommendations WHERE user_id = ? "
                "  ORDER BY created_at DESC, rowid DESC LIMIT ?) r "
                "JOIN recommendation_items i ON i.rec_id = r.rec_id "
                "ORDER BY r.created_at DESC, r.seq DESC, i.position", (user_id, last_n_recs))
        return list(dict.fromkeys(row[0] for row in rows))

    async def recommendation(self, rec_id: str) -> StoredRecommendation | None:
        """One stored answer, or None (never shown, or its owner was forgotten)."""
        async with self._session(f"reading recommendation {rec_id}") as db:
            recs = await self._load_recs(db, "WHERE rec_id = ?", (rec_id,))
        return recs[0] if recs else None

    async def last_recommendation(self, user_id: str) -> StoredRecommendation | None:
        """The newest answer shown to ``user_id``: what "좋아요" or "다른 노래" typed (or tapped
        after a restart, or through a block that dropped the button's data) refers to."""
        async with self._session(f"reading the last answer of {user_id}") as db:
            recs = await self._load_recs(
                db, "WHERE user_id = ? ORDER BY created_at DESC, rowid DESC LIMIT 1", (user_id,))
        return recs[0] if recs else None

    async def history(self, user_id: str, limit: int = 10) -> list[StoredRecommendation]:
        """The user's answers, newest first, each with ``feedback``: ``{song_id: (signals)}``.

        ``feedback`` holds what *this user* said about each track (their /history); reactions by
        other people in the channel count for CF but are theirs, not part of this history.
        """
        if limit <= 0:
            return []
        async with self._session(f"reading history of {user_id}") as db:
            recs = await self._load_recs(
                db, "WHERE user_id = ? ORDER BY created_at DESC, rowid DESC LIMIT ?",
                (user_id, limit))
            if not recs:
                return []
            marks = ",".join("?" * len(recs))
            rows = await db.execute_fetchall(
                f"SELECT rec_id, song_id, signal FROM feedback WHERE user_id = ? AND "
                f"rec_id IN ({marks}) ORDER BY created_at, id",
                (user_id, *(r.rec_id for r in recs)))
        return with_feedback(recs, rows)

    @staticmethod
    async def _load_recs(db: aiosqlite.Connection, where: str,
                         args: tuple[Any, ...]) -> list[StoredRecommendation]:
        rows = list(await db.execute_fetchall(
            "SELECT rec_id, user_id, channel, source, emotion, text, created_at, request "
            f"FROM recommendations {where}", args))
        if not rows:
            return []
        marks = ",".join("?" * len(rows))
        items = await db.execute_fetchall(
            f"SELECT rec_id, position, song_id, score FROM recommendation_items "
            f"WHERE rec_id IN ({marks}) ORDER BY rec_id, position", tuple(r[0] for r in rows))
        return recommendation_records(rows, items)

    # ---- feedback -------------------------------------------------------------------------
    async def add_feedback(self, rec_id: str, song_id: str, user_id: str, signal: Signal | str,
                           *, scope: str = "track") -> bool:
        """Store a signal; ``True`` if new, ``False`` if this exact one was already stored.

        The reacting user need not own the recommendation (others in a Discord channel react
        too); the row is stored under ``user_id``. ``scope`` is ``"track"`` (a button, console or
        Kakao reply about one track) or ``"message"`` (a reaction on the whole reply, recorded for
        each track); CF weighs them differently. Raises :class:`UnknownRecommendationError` if
        ``song_id`` was not among the tracks of ``rec_id``.
        """
        sig = Signal(signal)  # ValueError for an unknown signal, before touching the database
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
        async with self._session(f"storing feedback on {rec_id}") as db:
            # One statement = one atomic autocommit transaction: the "was it shown?" check and
            # the insert cannot be separated by another writer.
            cur = await db.execute(
                "INSERT INTO feedback (rec_id, song_id, user_id, signal, scope, created_at) "
                "SELECT ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM recommendation_items "
                "WHERE rec_id = ? AND song_id = ?) "
                "ON CONFLICT (rec_id, song_id, user_id, signal) DO NOTHING",
                (rec_id, song_id, user_id, sig.value, scope, self._clock(), rec_id, song_id))
            if cur.rowcount == 1:
                return True
            shown = await db.execute_fetchall(
                "SELECT 1 FROM recommendation_items WHERE rec_id = ? AND song_id = ?",
                (rec_id, song_id))
        if list(shown):
            return False
        raise UnknownRecommendationError(
            f"no recommendation {rec_id} showing song {song_id} is stored; feedback can only be "
            "given on tracks that were shown (the answer may be older than a forget request, or "
            "it was not saved because the database was unavailable)")

    async def remove_feedback(self, rec_id: str, song_id: str, user_id: str,
                              signal: Signal | str) -> bool:
        """Withdraw a signal (a Discord reaction removed); ``True`` if a row was deleted."""
        sig = Signal(signal)
        async with self._session(f"removing feedback on {rec_id}") as db:
            cur = await db.execute(
                "DELETE FROM feedback WHERE rec_id = ? AND song_id = ? AND user_id = ? "
                "AND signal = ?", (rec_id, song_id, user_id, sig.value))
            return cur.rowcount > 0

    async def feedback_events(self, *, since: float | None = None,
                              until: float | None = None) -> list[FeedbackEvent]:
        """Feedback rows in time order within ``since <= created_at < until``
        (:func:`feedback_window`, the same window CF training reads)."""
        where, args = feedback_window(since, until)
        async with self._session("reading feedback events") as db:
            rows = await db.execute_fetchall(
                f"SELECT {_FEEDBACK_COLUMNS} FROM feedback{where} ORDER BY created_at, rowid", args)
        return [FeedbackEvent(*r) for r in rows]

    # ---- health ---------------------------------------------------------------------------
    async def check_writable(self) -> None:
        """Prove the database takes a write right now (for /healthz); raise if it does not.

        Reading works on a full disk or a read-only file, so a health check that only reads
        says "ok" while every feedback write fails. This commits a one-row update instead.
        Raises :class:`StoreUnavailableError` (or :class:`StoreError`) with the reason.
        """
        async with self._transaction("checking that the database is writable") as db:
            await db.execute(
                "INSERT INTO health_probe (id, checked_at) VALUES (1, ?) "
                "ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
                (self._clock(),))

    # ---- Discord message links ------------------------------------------------------------
    async def link_message(self, message_id: str, rec_id: str) -> None:
        """Remember which answer a Discord message shows (re-linking a message replaces it)."""
        try:
            async with self._session(f"linking message {message_id}") as db:
                await db.execute(
                    "INSERT INTO message_links (message_id, rec_id, created_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (message_id) DO UPDATE SET rec_id = excluded.rec_id",
                    (str(message_id), rec_id, self._clock()))
        except StoreError as exc:
            if isinstance(exc.__cause__, sqlite3.IntegrityError):
                raise UnknownRecommendationError(
                    f"cannot link message {message_id}: recommendation {rec_id} is not stored"
                ) from exc.__cause__
            raise

    async def rec_for_message(self, message_id: str) -> str | None:
        """The rec_id a Discord message shows, or None (not ours, or its owner was forgotten)."""
        async with self._session(f"looking up message {message_id}") as db:
            rows = await db.execute_fetchall(
                "SELECT rec_id FROM message_links WHERE message_id = ?", (str(message_id),))
        return next((r[0] for r in rows), None)

    # ---- privacy --------------------------------------------------------------------------
    async def forget_user(self, user_id: str) -> dict[str, int]:
        """Delete every row that names ``user_id``; return how many rows went, per table.

        Goes: the users row, their recommendations with items and message links, and all
        feedback they gave (on anyone's answers). Feedback *other* people gave on this user's
        answers is theirs and stays for CF, but its ``rec_id`` is cleared
        (``feedback_detached``) so nothing links back to the forgotten person. Afterwards the WAL
        is checkpointed and truncated so deleted page images do not linger on disk.
        """
        own = "SELECT rec_id FROM recommendations WHERE user_id = ?"
        counts: dict[str, int] = {}
        async with self._transaction(f"forgetting user {user_id}") as db:
            steps = (
                ("feedback", "DELETE FROM feedback WHERE user_id = ?"),
                ("feedback_detached", f"UPDATE feedback SET rec_id = NULL WHERE rec_id IN ({own})"),
                ("message_links", f"DELETE FROM message_links WHERE rec_id IN ({own})"),
                ("recommendation_items",
                 f"DELETE FROM recommendation_items WHERE rec_id IN ({own})"),
                ("recommendations", "DELETE FROM recommendations WHERE user_id = ?"),
                ("users", "DELETE FROM users WHERE user_id = ?"),
            )
            for table, sql in steps:
                cur = await db.execute(sql, (user_id,))
                counts[table] = max(cur.rowcount, 0)
        if not self._in_memory:
            try:
                async with self._session("checkpointing after forget") as db:
                    rows = await db.execute_fetchall("PRAGMA wal_checkpoint(TRUNCATE)")
                busy = next(iter(rows))[0] if rows else 0
                if busy:
                    log.warning("forget_user: a reader kept the WAL busy; deleted pages leave the "
                                "-wal file at the next checkpoint")
            except StoreUnavailableError:
                log.warning("forget_user: WAL checkpoint postponed (database busy)")
        log.info("forgot a user: %s", counts)
        return counts

    # ---- stats ----------------------------------------------------------------------------
    async def stats(self) -> dict[str, Any]:
        """Counts for /stats and the admin CLI: totals, feedback by signal, the last 24 hours."""
        since = self._clock() - _DAY
        async with self._session("reading stats") as db:

            async def one(sql: str, *args: Any) -> int:
                rows = await db.execute_fetchall(sql, args)
                return int(next(iter(rows))[0])

            users = await one("SELECT COUNT(*) FROM users")
            recs = await one("SELECT COUNT(*) FROM recommendations")
            by_signal = dict.fromkeys((s.value for s in Signal), 0)
            for sig, n in await db.execute_fetchall(
                    "SELECT signal, COUNT(*) FROM feedback GROUP BY signal"):
                by_signal[sig] = n
            recs_24 = await one("SELECT COUNT(*) FROM recommendations WHERE created_at >= ?",
                                since)
            active_24 = await one("SELECT COUNT(DISTINCT user_id) FROM recommendations "
                                  "WHERE created_at >= ?", since)
            fb_24 = await one("SELECT COUNT(*) FROM feedback WHERE created_at >= ?", since)
            links = await one("SELECT COUNT(*) FROM message_links")
        return stats_record(users, recs, by_signal, links, recs_24, active_24, fb_24,
                            self.schema_version, self.journal_mode)

    # ---- per-guild settings ---------------------------------------------------------------
    async def set_channel_enabled(self, guild_id: str, channel_id: str, enabled: bool) -> None:
        """Let the bot answer in a channel without being mentioned (or stop it)."""
        async with self._session(f"updating channel settings of guild {guild_id}") as db:
            await db.execute(
                "INSERT INTO guild_channels (guild_id, channel_id, enabled, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (guild_id, channel_id) DO UPDATE SET "
                "enabled = excluded.enabled, updated_at = excluded.updated_at",
                (str(guild_id), str(channel_id), int(bool(enabled)), self._clock()))

    async def is_channel_enabled(self, guild_id: str, channel_id: str) -> bool:
        async with self._session(f"reading channel settings of guild {guild_id}") as db:
            rows = await db.execute_fetchall(
                "SELECT enabled FROM guild_channels WHERE guild_id = ? AND channel_id = ?",
                (str(guild_id), str(channel_id)))
        return bool(next((r[0] for r in rows), 0))

    async def enabled_channels(self, guild_id: str) -> list[str]:
        """Channel ids where the bot talks without a mention, sorted."""
        async with self._session(f"reading channel settings of guild {guild_id}") as db:
            rows = await db.execute_fetchall(
                "SELECT channel_id FROM guild_channels WHERE guild_id = ? AND enabled = 1 "
                "ORDER BY channel_id", (str(guild_id),))
        return [r[0] for r in rows]

    # ---- shared CF models (bot.cf_share.CFSync) -------------------------------------------
    async def cf_publish(self, model_id: str, trained_at: float, archive: bytes) -> bool:
        """Offer a packed CF model to every process on this database; ``True`` if it is new.

        Idempotent (a model id is stored once); only the :data:`CF_MODELS_KEPT` newest by
        ``trained_at`` stay, so publishing an old model may drop it again at once.
        """
        check_cf_model(model_id, trained_at, archive)
        async with self._transaction(f"publishing CF model {model_id}") as db:
            cur = await db.execute(
                "INSERT INTO cf_models (model_id, trained_at, published_at, archive) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (model_id) DO NOTHING",
                (model_id, float(trained_at), self._clock(), bytes(archive)))
            new = cur.rowcount == 1
            await db.execute(
                "DELETE FROM cf_models WHERE model_id NOT IN (SELECT model_id FROM cf_models "
                "ORDER BY trained_at DESC, model_id DESC LIMIT ?)", (CF_MODELS_KEPT,))
        return new

    async def cf_latest(self) -> tuple[str, float] | None:
        """``(model_id, trained_at)`` of the newest shared CF model, or None if none is."""
        async with self._session("reading the newest shared CF model") as db:
            rows = await db.execute_fetchall(
                "SELECT model_id, trained_at FROM cf_models "
                "ORDER BY trained_at DESC, model_id DESC LIMIT 1")
        return next(((str(r[0]), float(r[1])) for r in rows), None)

    async def cf_archive(self, model_id: str) -> bytes | None:
        """The packed artifact of a shared CF model, or None (never published, or pruned)."""
        async with self._session(f"reading shared CF model {model_id}") as db:
            rows = await db.execute_fetchall(
                "SELECT archive FROM cf_models WHERE model_id = ?", (model_id,))
        return next((bytes(r[0]) for r in rows), None)


def check_cf_model(model_id: str, trained_at: float, archive: bytes) -> None:
    """Refuse a shared CF model row that no replica could use (both stores call this)."""
    if not isinstance(model_id, str) or not model_id.strip():
        raise ValueError(f"a CF model needs a non-empty model_id, got {model_id!r}")
    if not math.isfinite(float(trained_at)):
        raise ValueError(f"CF model {model_id}: trained_at must be finite, got {trained_at!r}")
    if not isinstance(archive, (bytes, bytearray, memoryview)) or len(archive) == 0:
        raise ValueError(f"CF model {model_id}: the archive is empty; pack it with "
                         "bot.cf_share.pack_cf")


async def _rollback_quietly(db: aiosqlite.Connection) -> None:
    """ROLLBACK, ignoring "no transaction is active" (BEGIN failed, or SQLite already rolled
    back after e.g. SQLITE_FULL). Shielded so a second cancellation cannot skip it."""
    with contextlib.suppress(sqlite3.Error, ValueError):  # ValueError: connection closed
        await asyncio.shield(db.execute("ROLLBACK"))


def _translate(exc: sqlite3.Error, path: str, op: str, busy_timeout_ms: int) -> StoreError:
    """Turn a sqlite3 error into one that says what failed and what the operator can do."""
    code = getattr(exc, "sqlite_errorname", "") or ""
    msg = str(exc)
    low = msg.lower()
    where = f"the database at {path}"
    if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in low:
        return StoreUnavailableError(
            f"{op} failed: {where} is locked by another process (waited {busy_timeout_ms} ms: "
            f"{msg}); close the other program using it (a second bot instance, a DB browser) or "
            "point DATABASE_PATH elsewhere")
    if code.startswith("SQLITE_READONLY") or "readonly" in low or "read-only" in low:
        return StoreUnavailableError(
            f"{op} failed: {where} is read-only ({msg}); make the file, its -wal/-shm files and "
            "its folder writable by this user, or point DATABASE_PATH at a writable location")
    if code.startswith(("SQLITE_CANTOPEN", "SQLITE_PERM")) or "unable to open" in low:
        return StoreUnavailableError(
            f"{op} failed: cannot open {where} ({msg}); check that the folder exists and this "
            "user may write to it, or point DATABASE_PATH elsewhere")
    if code.startswith("SQLITE_FULL") or "disk is full" in low:
        return StoreUnavailableError(
            f"{op} failed: the disk holding {where} is full ({msg}); free some space or move "
            "DATABASE_PATH to a larger disk")
    if code.startswith(("SQLITE_IOERR", "SQLITE_NOTADB", "SQLITE_CORRUPT")) or \
            "not a database" in low or "malformed" in low or "disk i/o" in low:
        return StoreUnavailableError(
            f"{op} failed: {where} cannot be read or written ({msg}); check the disk, restore the "
            "file from a backup or point DATABASE_PATH at a new file")
    return StoreError(f"{op} failed on {where}: {msg}")
