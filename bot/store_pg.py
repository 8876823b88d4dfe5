"""The bot's memory on PostgreSQL: the same interface, records and semantics as :mod:`bot.store`.

Selected with ``DATABASE_URL=postgresql://…`` (see :class:`bot.settings.Settings`); SQLite stays
the default. Why it looks the way it does:

* **A pool, not one connection and a lock.** PostgreSQL runs concurrent transactions itself, so
  each call borrows a connection from an asyncpg pool for its whole exchange; several bot
  processes can share one database. Multi-statement writes run in one transaction
  (``conn.transaction()``), which asyncpg rolls back on any error or cancellation.
* **Migrations under an advisory lock.** Two processes starting at once would both see version
  N and both try N+1. ``pg_advisory_lock`` serialises them; the version is re-read under the lock
  and each migration runs in its own transaction (DDL is transactional in PostgreSQL), recorded
  in ``schema_version``. The files live in ``bot/migrations/postgres`` with the same numbers and
  meaning as the SQLite ones, so "schema version 3" means the same thing on both backends.
* **Same semantics.** Idempotent feedback (``ON CONFLICT DO NOTHING``), feedback only on tracks
  that were shown (checked in the same statement as the insert), forget-me deleting every row
  that names a person and detaching others' feedback, ``seq``/``id`` identity columns as the
  insertion-order tie-break SQLite gets from ``rowid``.
* **Errors that say what to do.** Connection refused, bad credentials, a missing database, a
  read-only server or a full disk raise :class:`StoreUnavailableError`; the password in the URL
  never appears in a message.

Not done here (see the README's scaling section): forget-me cannot zero freed pages the way
SQLite's ``secure_delete`` does; deleted rows leave the table files at the next ``VACUUM`` and
the WAL when its segments are recycled.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from bot.feedback import Signal
from bot.store import (
    _DAY,
    _FEEDBACK_COLUMNS,
    CF_MODELS_KEPT,
    SCOPES,
    FeedbackEvent,
    Migration,
    Store,
    StoredRecommendation,
    StoreError,
    StoreUnavailableError,
    UnknownRecommendationError,
    check_cf_model,
    load_migrations,
    prepare_recommendation,
    recommendation_records,
    stats_record,
    with_feedback,
)

log = logging.getLogger("moodtune.store")

__all__ = ["PgStore", "load_pg_migrations", "open_store", "redact_url"]

# pg_advisory_lock key for migrations: any fixed 64-bit number, the same in every process.
_MIGRATION_LOCK = 0x6D6F6F6474756E65  # "moodtune"
# First half of the two-int advisory lock that serialises one rate-limit key across replicas.
_RATE_LOCK_CLASS = 0x6D74  # "mt"


async def open_store(location: str | Path, *, store_message_text: bool = False,
                     **pg_options: Any) -> Store | PgStore:
    """The store at ``location``: a ``postgresql://`` URL opens :class:`PgStore` (with
    ``pg_options``, e.g. a pool size), anything else is a SQLite path for ``bot.store.Store``.
    One place decides the backend, for the bot and for the commands that open its database."""
    if str(location).lower().startswith(("postgresql://", "postgres://")):
        return await PgStore.open(str(location), store_message_text=store_message_text,
                                  **pg_options)
    return await Store.open(location, store_message_text=store_message_text)


def load_pg_migrations(directory: str | Path | None = None) -> list[Migration]:
    """The PostgreSQL migrations (default: the shipped ``bot/migrations/postgres``)."""
    if directory is None:
        directory = Path(__file__).resolve().parent / "migrations" / "postgres"
    return load_migrations(directory)


def redact_url(url: str) -> str:
    """``postgresql://user@host:port/db`` without the password, for messages and logs."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        port = f":{parts.port}" if parts.port else ""
        user = f"{parts.username}@" if parts.username else ""
        return f"{parts.scheme}://{user}{host}{port}{parts.path}"
    except ValueError:
        return "the configured DATABASE_URL"


def _pg_window(since: float | None, until: float | None) -> tuple[str, tuple[float, ...]]:
    """:func:`bot.store.feedback_window` with ``$n`` placeholders: the same half-open window."""
    clauses, args = [], []
    if since is not None:
        args.append(float(since))
        clauses.append(f"created_at >= ${len(args)}")
    if until is not None:
        args.append(float(until))
        clauses.append(f"created_at < ${len(args)}")
    return (f" WHERE {' AND '.join(clauses)}" if clauses else ""), tuple(args)


def _count(status: str) -> int:
    """Rows touched, from a command tag such as ``"DELETE 3"`` or ``"INSERT 0 1"``."""
    try:
        return max(int(status.rsplit(" ", 1)[-1]), 0)
    except ValueError:
        return 0


class PgStore:
    """Async PostgreSQL storage with :class:`bot.store.Store`'s public interface.

    Open with :meth:`open` (not the constructor), close with :meth:`close` or ``async with``.
    All methods are safe to call from many tasks (and many processes) at once.
    """

    def __init__(self, pool: asyncpg.Pool, url: str, *, store_message_text: bool,
                 clock: Callable[[], float]) -> None:
        self._pool: asyncpg.Pool | None = pool
        self.path = redact_url(url)  # what messages name; never the password
        self.store_message_text = store_message_text
        self._clock = clock
        self.journal_mode = "postgresql"
        self.schema_version = 0

    # ---- lifecycle -----------------------------------------------------------------------
    @classmethod
    async def open(cls, url: str, *, store_message_text: bool = False,
                   clock: Callable[[], float] = time.time,
                   migrations_dir: str | Path | None = None, min_size: int = 1,
                   max_size: int = 10, connect_timeout: float = 10.0) -> PgStore:
        """Connect a pool to ``url`` (``postgresql://user:pass@host:port/db``) and bring the
        schema up to date. Raises :class:`StoreUnavailableError` if the server cannot be reached
        or refuses us, :class:`StoreError` if the schema is newer than this code."""
        migrations = load_pg_migrations(migrations_dir)
        where = redact_url(url)
        try:
            pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size,
                                             timeout=connect_timeout)
        except (TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError, ValueError) as exc:
            raise _translate(exc, where, "connecting to the database") from exc
        store = cls(pool, url, store_message_text=store_message_text, clock=clock)
        try:
            await store._migrate(migrations)
        except BaseException:
            await store.close()
            raise
        return store

    async def _migrate(self, migrations: Sequence[Migration]) -> None:
        """Apply the migrations newer than the database, each atomically, in order, holding
        the advisory lock so a second process waits and then finds nothing left to do."""
        known = migrations[-1].version if migrations else 0
        async with self._conn("applying database migrations") as conn:
            current = await self._applied_version(conn)
            self._refuse_newer(current, known)
            if current < known:  # only then write: an up-to-date read-only database opens
                await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
                try:
                    await self._apply(conn, migrations, known)
                finally:
                    await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
            self.schema_version = await self._applied_version(conn)

    async def _apply(self, conn: asyncpg.Connection, migrations: Sequence[Migration],
                     known: int) -> None:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
            "name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)")
        current = await self._applied_version(conn)  # re-read under the lock
        self._refuse_newer(current, known)
        for mig in migrations:
            if mig.version <= current:
                continue
            try:
                async with conn.transaction():
                    await conn.execute(mig.sql)  # simple query protocol: many statements
                    await conn.execute(
                        "INSERT INTO schema_version (version, name, applied_at) "
                        "VALUES ($1, $2, $3)", mig.version, mig.name, self._clock())
            except asyncpg.PostgresError as exc:
                raise _translate(exc, self.path,
                                 f"applying database migration {mig.name}") from exc
            log.info("database %s: applied migration %s", self.path, mig.name)

    @staticmethod
    async def _applied_version(conn: asyncpg.Connection) -> int:
        if await conn.fetchval("SELECT to_regclass('schema_version')") is None:
            return 0
        return int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))

    def _refuse_newer(self, current: int, known: int) -> None:
        if current > known:
            raise StoreError(
                f"the database at {self.path} has schema version {current}, newer than this "
                f"moodtune knows ({known}); upgrade moodtune or point DATABASE_URL elsewhere")

    async def close(self) -> None:
        """Close the pool (idempotent); waits for borrowed connections to come back."""
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), timeout=10)
            except (TimeoutError, asyncpg.InterfaceError, OSError):
                pool.terminate()

    async def __aenter__(self) -> PgStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def closed(self) -> bool:
        return self._pool is None

    # ---- the one way in: a pooled connection, error translation ---------------------------
    @asynccontextmanager
    async def _conn(self, op: str) -> AsyncIterator[asyncpg.Connection]:
        """A connection from the pool; asyncpg errors become :class:`StoreError`s naming
        ``op``. Reads and single statements run in autocommit."""
        pool = self._pool
        if pool is None:
            raise StoreError("the store is closed; open it again with PgStore.open(url)")
        try:
            async with pool.acquire() as conn:
                yield conn
        except (TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise _translate(exc, self.path, op) from exc

    @asynccontextmanager
    async def _transaction(self, op: str) -> AsyncIterator[asyncpg.Connection]:
        """``BEGIN`` … ``COMMIT`` on a pooled connection; rolled back on any exception or
        cancellation (asyncpg's transaction block does that, and the pool resets the
        connection before lending it again)."""
        async with self._conn(op) as conn, conn.transaction():
            yield conn

    # ---- recommendations ------------------------------------------------------------------
    async def save_recommendation(self, rec_id: str, user_id: str, channel: str,
                                  emotion: Sequence[float], items: Sequence[tuple[str, float]],
                                  *, source: str, text: str | None = None,
                                  request: Mapping[str, Any] | None = None) -> None:
        """Remember an answer atomically (see :meth:`bot.store.Store.save_recommendation`)."""
        vec, rows, kept_text, req_json = prepare_recommendation(
            rec_id, emotion, items, text=text, request=request,
            store_message_text=self.store_message_text)
        now = self._clock()
        try:
            async with self._transaction(f"saving recommendation {rec_id}") as conn:
                await conn.execute(
                    "INSERT INTO users (user_id, channel, first_seen, last_seen) "
                    "VALUES ($1, $2, $3, $3) ON CONFLICT (user_id) DO UPDATE SET "
                    "channel = excluded.channel, "
                    "last_seen = GREATEST(users.last_seen, excluded.last_seen)",
                    user_id, channel, now)
                await conn.execute(
                    "INSERT INTO recommendations (rec_id, user_id, channel, source, emotion, "
                    "text, created_at, request) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    rec_id, user_id, channel, source, json.dumps(vec), kept_text, now, req_json)
                if rows:
                    await conn.executemany(
                        "INSERT INTO recommendation_items (rec_id, position, song_id, score) "
                        "VALUES ($1, $2, $3, $4)", rows)
        except StoreError as exc:
            cause = exc.__cause__
            if isinstance(cause, asyncpg.UniqueViolationError) and \
                    cause.constraint_name == "recommendations_pkey":
                raise StoreError(f"recommendation {rec_id} is already stored; rec_ids must be "
                                 "unique (generate a new one)") from cause
            raise

    async def recent_song_ids(self, user_id: str, last_n_recs: int) -> list[str]:
        """Songs of the user's last ``last_n_recs`` answers, newest first, without duplicates."""
        if last_n_recs <= 0:
            return []
        async with self._conn(f"reading recent songs of {user_id}") as conn:
            rows = await conn.fetch(
                "SELECT i.song_id FROM (SELECT rec_id, created_at, seq "
                "  FROM recommendations WHERE user_id = $1 "
                "  ORDER BY created_at DESC, seq DESC LIMIT $2) r "
                "JOIN recommendation_items i ON i.rec_id = r.rec_id "
                "ORDER BY r.created_at DESC, r.seq DESC, i.position", user_id, last_n_recs)
        return list(dict.fromkeys(row[0] for row in rows))

    async def recommendation(self, rec_id: str) -> StoredRecommendation | None:
        """One stored answer, or None (never shown, or its owner was forgotten)."""
        async with self._conn(f"reading recommendation {rec_id}") as conn:
            recs = await self._load_recs(conn, "WHERE rec_id = $1", (rec_id,))
        return recs[0] if recs else None

    async def last_recommendation(self, user_id: str) -> StoredRecommendation | None:
        """The newest answer shown to ``user_id``."""
        async with self._conn(f"reading the last answer of {user_id}") as conn:
            recs = await self._load_recs(
                conn, "WHERE user_id = $1 ORDER BY created_at DESC, seq DESC LIMIT 1",
                (user_id,))
        return recs[0] if recs else None

    async def history(self, user_id: str, limit: int = 10) -> list[StoredRecommendation]:
        """The user's answers, newest first, each with what *this user* said per track."""
        if limit <= 0:
            return []
        async with self._conn(f"reading history of {user_id}") as conn:
            recs = await self._load_recs(
                conn, "WHERE user_id = $1 ORDER BY created_at DESC, seq DESC LIMIT $2",
                (user_id, limit))
            if not recs:
                return []
            rows = await conn.fetch(
                "SELECT rec_id, song_id, signal FROM feedback WHERE user_id = $1 AND "
                "rec_id = ANY($2::text[]) ORDER BY created_at, id",
                user_id, [r.rec_id for r in recs])
        return with_feedback(recs, rows)

    @staticmethod
    async def _load_recs(conn: asyncpg.Connection, where: str,
                         args: tuple[Any, ...]) -> list[StoredRecommendation]:
        rows = await conn.fetch(
            "SELECT rec_id, user_id, channel, source, emotion, text, created_at, request "
            f"FROM recommendations {where}", *args)
        if not rows:
            return []
        items = await conn.fetch(
            "SELECT rec_id, position, song_id, score FROM recommendation_items "
            "WHERE rec_id = ANY($1::text[]) ORDER BY rec_id, position", [r[0] for r in rows])
        return recommendation_records(rows, items)

    # ---- feedback -------------------------------------------------------------------------
    async def add_feedback(self, rec_id: str, song_id: str, user_id: str, signal: Signal | str,
                           *, scope: str = "track") -> bool:
        """Store a signal; ``True`` if new, ``False`` if this exact one was already stored.
        Raises :class:`UnknownRecommendationError` if ``song_id`` was not shown in ``rec_id``."""
        sig = Signal(signal)
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
        unknown = UnknownRecommendationError(
            f"no recommendation {rec_id} showing song {song_id} is stored; feedback can only be "
            "given on tracks that were shown (the answer may be older than a forget request, or "
            "it was not saved because the database was unavailable)")
        try:
            async with self._conn(f"storing feedback on {rec_id}") as conn:
                # One statement: the "was it shown?" check and the insert are not separable.
                status = await conn.execute(
                    "INSERT INTO feedback (rec_id, song_id, user_id, signal, scope, created_at) "
                    "SELECT $1::text, $2::text, $3::text, $4::text, $5::text, "
                    "$6::double precision WHERE EXISTS (SELECT 1 FROM recommendation_items "
                    "WHERE rec_id = $1 AND song_id = $2) "
                    "ON CONFLICT (rec_id, song_id, user_id, signal) DO NOTHING",
                    rec_id, song_id, user_id, sig.value, scope, self._clock())
                if _count(status) == 1:
                    return True
                shown = await conn.fetchval(
                    "SELECT 1 FROM recommendation_items WHERE rec_id = $1 AND song_id = $2",
                    rec_id, song_id)
        except StoreError as exc:
            # The answer was forgotten between the check and the insert (read committed).
            if isinstance(exc.__cause__, asyncpg.ForeignKeyViolationError):
                raise unknown from exc.__cause__
            raise
        if shown:
            return False
        raise unknown

    async def remove_feedback(self, rec_id: str, song_id: str, user_id: str,
                              signal: Signal | str) -> bool:
        """Withdraw a signal (a Discord reaction removed); ``True`` if a row was deleted."""
        sig = Signal(signal)
        async with self._conn(f"removing feedback on {rec_id}") as conn:
            status = await conn.execute(
                "DELETE FROM feedback WHERE rec_id = $1 AND song_id = $2 AND user_id = $3 "
                "AND signal = $4", rec_id, song_id, user_id, sig.value)
        return _count(status) > 0

    async def feedback_events(self, *, since: float | None = None,
                              until: float | None = None) -> list[FeedbackEvent]:
        """Feedback rows in time order within ``since <= created_at < until``."""
        where, args = _pg_window(since, until)
        async with self._conn("reading feedback events") as conn:
            rows = await conn.fetch(
                f"SELECT {_FEEDBACK_COLUMNS} FROM feedback{where} ORDER BY created_at, id", *args)
        return [FeedbackEvent(*r) for r in rows]

    # ---- health ---------------------------------------------------------------------------
    async def check_writable(self) -> None:
        """Prove the database takes a write right now (for /healthz); raise if it does not
        (a hot-standby replica or ``default_transaction_read_only`` still answers reads)."""
        async with self._transaction("checking that the database is writable") as conn:
            await conn.execute(
                "INSERT INTO health_probe (id, checked_at) VALUES (1, $1) "
                "ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at", self._clock())

    # ---- Discord message links ------------------------------------------------------------
    async def link_message(self, message_id: str, rec_id: str) -> None:
        """Remember which answer a Discord message shows (re-linking a message replaces it)."""
        try:
            async with self._conn(f"linking message {message_id}") as conn:
                await conn.execute(
                    "INSERT INTO message_links (message_id, rec_id, created_at) "
                    "VALUES ($1, $2, $3) "
                    "ON CONFLICT (message_id) DO UPDATE SET rec_id = excluded.rec_id",
                    str(message_id), rec_id, self._clock())
        except StoreError as exc:
            if isinstance(exc.__cause__, asyncpg.ForeignKeyViolationError):
                raise UnknownRecommendationError(
                    f"cannot link message {message_id}: recommendation {rec_id} is not stored"
                ) from exc.__cause__
            raise

    async def rec_for_message(self, message_id: str) -> str | None:
        """The rec_id a Discord message shows, or None."""
        async with self._conn(f"looking up message {message_id}") as conn:
            return await conn.fetchval(
                "SELECT rec_id FROM message_links WHERE message_id = $1", str(message_id))

    # ---- privacy --------------------------------------------------------------------------
    async def forget_user(self, user_id: str) -> dict[str, int]:
        """Delete every row that names ``user_id`` in one transaction; counts per table.

        The same steps as :meth:`bot.store.Store.forget_user`: others' feedback on this user's
        answers stays for CF with its ``rec_id`` cleared (``feedback_detached``).
        """
        own = "SELECT rec_id FROM recommendations WHERE user_id = $1"
        counts: dict[str, int] = {}
        async with self._transaction(f"forgetting user {user_id}") as conn:
            steps = (
                ("feedback", "DELETE FROM feedback WHERE user_id = $1"),
                ("feedback_detached", f"UPDATE feedback SET rec_id = NULL WHERE rec_id IN ({own})"),
                ("message_links", f"DELETE FROM message_links WHERE rec_id IN ({own})"),
                ("recommendation_items",
                 f"DELETE FROM recommendation_items WHERE rec_id IN ({own})"),
                ("recommendations", "DELETE FROM recommendations WHERE user_id = $1"),
                ("users", "DELETE FROM users WHERE user_id = $1"),
            )
            for table, sql in steps:
                counts[table] = _count(await conn.execute(sql, user_id))
        log.info("forgot a user: %s", counts)
        return counts

    # ---- stats ----------------------------------------------------------------------------
    async def stats(self) -> dict[str, Any]:
        """Counts for /stats and the admin CLI, the same keys as the SQLite store."""
        since = self._clock() - _DAY
        async with self._conn("reading stats") as conn:
            row = await conn.fetchrow(
                "SELECT (SELECT COUNT(*) FROM users), (SELECT COUNT(*) FROM recommendations), "
                "(SELECT COUNT(*) FROM recommendations WHERE created_at >= $1), "
                "(SELECT COUNT(DISTINCT user_id) FROM recommendations WHERE created_at >= $1), "
                "(SELECT COUNT(*) FROM feedback WHERE created_at >= $1), "
                "(SELECT COUNT(*) FROM message_links)", since)
            by_signal = dict.fromkeys((s.value for s in Signal), 0)
            for sig, n in await conn.fetch(
                    "SELECT signal, COUNT(*) FROM feedback GROUP BY signal"):
                by_signal[sig] = int(n)
        users, recs, recs_24, active_24, fb_24, links = (int(x) for x in row)
        return stats_record(users, recs, by_signal, links, recs_24, active_24, fb_24,
                            self.schema_version, self.journal_mode)

    # ---- per-guild settings ---------------------------------------------------------------
    async def set_channel_enabled(self, guild_id: str, channel_id: str, enabled: bool) -> None:
        """Let the bot answer in a channel without being mentioned (or stop it)."""
        async with self._conn(f"updating channel settings of guild {guild_id}") as conn:
            await conn.execute(
                "INSERT INTO guild_channels (guild_id, channel_id, enabled, updated_at) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (guild_id, channel_id) DO UPDATE SET "
                "enabled = excluded.enabled, updated_at = excluded.updated_at",
                str(guild_id), str(channel_id), int(bool(enabled)), self._clock())

    async def is_channel_enabled(self, guild_id: str, channel_id: str) -> bool:
        async with self._conn(f"reading channel settings of guild {guild_id}") as conn:
            value = await conn.fetchval(
                "SELECT enabled FROM guild_channels WHERE guild_id = $1 AND channel_id = $2",
                str(guild_id), str(channel_id))
        return bool(value)

    async def enabled_channels(self, guild_id: str) -> list[str]:
        """Channel ids where the bot talks without a mention, sorted."""
        async with self._conn(f"reading channel settings of guild {guild_id}") as conn:
            rows = await conn.fetch(
                "SELECT channel_id FROM guild_channels WHERE guild_id = $1 AND enabled = 1 "
                "ORDER BY channel_id COLLATE \"C\"", str(guild_id))
        return [r[0] for r in rows]

    # ---- shared rate limits (bot.ratelimit.SharedRateLimiter) ------------------------------
    async def rate_hit(self, key: str, limit: int, window: float, now: float) -> float | None:
        """Record one event for ``key`` unless ``limit`` happened in the last ``window`` s.

        None when admitted, else the seconds until the next would be. Check and insert run in
        one transaction holding a per-key advisory lock, so two replicas hitting the same key
        at once cannot both take the last slot; other keys never wait. The key's expired rows
        are deleted on the way (other keys' by :meth:`rate_prune`).
        """
        cutoff = now - window
        async with self._transaction("checking a rate limit") as conn:
            # Two-int form: its own key space, apart from the migrations' bigint lock.
            await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))",
                               _RATE_LOCK_CLASS, key)
            await conn.execute("DELETE FROM rate_events WHERE key = $1 AND at <= $2", key, cutoff)
            row = await conn.fetchrow(
                "SELECT COUNT(*), MIN(at) FROM rate_events WHERE key = $1", key)
            if row[0] >= limit:
                return max(0.0, float(row[1]) + window - now)
            await conn.execute("INSERT INTO rate_events (key, at) VALUES ($1, $2)", key, now)
        return None

    async def rate_reset(self, key: str) -> None:
        """Forget ``key``'s events (``/forget-me`` starts the person over, on every replica)."""
        async with self._conn("resetting a rate limit") as conn:
            await conn.execute("DELETE FROM rate_events WHERE key = $1", key)

    async def rate_prune(self, before: float) -> int:
        """Delete every event at or before ``before`` (keys nobody hits again); rows deleted."""
        async with self._conn("pruning rate-limit events") as conn:
            return _count(await conn.execute("DELETE FROM rate_events WHERE at <= $1", before))

    # ---- shared CF models (bot.cf_share.CFSync) -------------------------------------------
    async def cf_publish(self, model_id: str, trained_at: float, archive: bytes) -> bool:
        """Offer a packed CF model to every replica; ``True`` if it is new here.

        Idempotent (``ON CONFLICT DO NOTHING``: two replicas publishing one model store it
        once); only the :data:`bot.store.CF_MODELS_KEPT` newest by ``trained_at`` stay.
        """
        check_cf_model(model_id, trained_at, archive)
        async with self._transaction(f"publishing CF model {model_id}") as conn:
            status = await conn.execute(
                "INSERT INTO cf_models (model_id, trained_at, published_at, archive) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (model_id) DO NOTHING",
                model_id, float(trained_at), self._clock(), bytes(archive))
            await conn.execute(
                "DELETE FROM cf_models WHERE model_id NOT IN (SELECT model_id FROM cf_models "
                "ORDER BY trained_at DESC, model_id DESC LIMIT $1)", CF_MODELS_KEPT)
        return _count(status) == 1

    async def cf_latest(self) -> tuple[str, float] | None:
        """``(model_id, trained_at)`` of the newest shared CF model, or None if none is."""
        async with self._conn("reading the newest shared CF model") as conn:
            row = await conn.fetchrow(
                "SELECT model_id, trained_at FROM cf_models "
                "ORDER BY trained_at DESC, model_id DESC LIMIT 1")
        return None if row is None else (str(row[0]), float(row[1]))

    async def cf_archive(self, model_id: str) -> bytes | None:
        """The packed artifact of a shared CF model, or None (never published, or pruned)."""
        async with self._conn(f"reading shared CF model {model_id}") as conn:
            value = await conn.fetchval(
                "SELECT archive FROM cf_models WHERE model_id = $1", model_id)
        return None if value is None else bytes(value)


def _translate(exc: BaseException, where: str, op: str) -> StoreError:
    """Turn an asyncpg / socket error into one that says what failed and what to do.

    ``where`` is the redacted URL: a message never carries the password.
    """
    msg = str(exc) or type(exc).__name__
    if isinstance(exc, ConnectionRefusedError) or (
            isinstance(exc, OSError) and getattr(exc, "errno", None) == 111):
        return StoreUnavailableError(
            f"{op} failed: connection refused by {where} ({msg}); start PostgreSQL or fix the "
            "host and port in DATABASE_URL")
    if isinstance(exc, (asyncpg.InvalidPasswordError,
                        asyncpg.InvalidAuthorizationSpecificationError)):
        return StoreUnavailableError(
            f"{op} failed: {where} refused the login ({msg}); check the user and password in "
            "DATABASE_URL and the server's pg_hba.conf")
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return StoreUnavailableError(
            f"{op} failed: the database named in {where} does not exist ({msg}); create it "
            "(createdb) or fix the database name in DATABASE_URL")
    if isinstance(exc, asyncpg.ReadOnlySQLTransactionError):
        return StoreUnavailableError(
            f"{op} failed: {where} is read-only ({msg}); point DATABASE_URL at the writable "
            "primary, not a replica")
    if isinstance(exc, asyncpg.DiskFullError):
        return StoreUnavailableError(
            f"{op} failed: the disk of {where} is full ({msg}); free some space on the server")
    if isinstance(exc, (asyncpg.TooManyConnectionsError, asyncpg.CannotConnectNowError,
                        asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError,
                        TimeoutError)):
        return StoreUnavailableError(
            f"{op} failed: cannot reach {where} ({msg}); check that PostgreSQL is running and "
            "reachable and DATABASE_URL is right")
    return StoreError(f"{op} failed on {where}: {msg}")
