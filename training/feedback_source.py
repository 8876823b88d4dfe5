"""Read the bot's feedback from whichever store it runs on: a SQLite file or PostgreSQL.

Why one module: CF training (both engines) and the Parquet snapshot that Spark reads need the
same rows with the same window (``since <= created_at < until``, :func:`bot.store.
feedback_window`) and the same column order as :func:`bot.store.read_feedback_rows`
(``user_id, song_id, signal, scope, created_at``), whatever the backend. A ``source`` is either
a filesystem path (SQLite, opened ``mode=ro``) or a ``postgresql://`` / ``postgres://`` URL.

PostgreSQL is read through asyncpg in a private event loop (training runs in a worker process
or the CLI, never inside the bot's loop), inside one ``READ ONLY`` ``REPEATABLE READ``
transaction so the row count and the rows come from the same snapshot, with a server-side
cursor so millions of rows stream in batches and memory stays flat. ``created_at`` is a
``DOUBLE PRECISION`` of unix seconds there (bot/migrations/postgres/001_init.sql); a
``timestamptz`` (a hand-made or future schema) is converted to unix seconds too.

:func:`export_parquet` writes such a read as a Parquet snapshot, batch by batch, to a temp file
renamed into place: Spark (possibly on a cluster, from shared storage) trains from the
snapshot, not from the live database.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import Generator
from datetime import datetime
from pathlib import Path
from typing import Any

from training.cf import CFTrainingError

__all__ = ["COLUMNS", "describe_source", "export_parquet", "is_url", "iter_feedback_batches"]

COLUMNS: tuple[str, ...] = ("user_id", "song_id", "signal", "scope", "created_at")
_URL_SCHEMES = ("postgresql://", "postgres://")
_NOT_MOODTUNE = "is it a moodtune database? `moodtune run` creates one"
Batches = Generator[list[tuple[Any, ...]], None, None]


def is_url(source: str | os.PathLike[str]) -> bool:
    """True for a PostgreSQL URL, False for a filesystem path (SQLite)."""
    return isinstance(source, str) and source.lower().startswith(_URL_SCHEMES)


def describe_source(source: str | os.PathLike[str]) -> str:
    """The source for logs and ``cf.json``: an absolute path, or the URL without its password."""
    if is_url(source):
        from bot.store_pg import redact_url

        return redact_url(str(source))
    return str(Path(source).resolve())


def iter_feedback_batches(source: str | os.PathLike[str], since: float | None = None,
                          until: float | None = None, *, batch: int = 50_000
                          ) -> tuple[int, Batches]:
    """``(row count, iterator of row batches)`` in time order from a SQLite path or a URL.

    Rows are ``(user_id, song_id, signal, scope, created_at)`` with ``created_at`` in unix
    seconds. Raises :class:`training.cf.CFTrainingError` for a missing file, a malformed or
    unreachable URL, or a database without a feedback table; the iterator raises it too if the
    read fails midway. Exhaust or close the iterator to release the connection.
    """
    if batch < 1:
        raise ValueError("batch must be >= 1")
    if is_url(source):
        return _pg_batches(str(source), since, until, batch)
    if isinstance(source, str) and "://" in source:
        raise CFTrainingError(f"{source.split('://', 1)[0]}:// is not a supported database URL; "
                              "pass a SQLite path or a postgresql:// URL")
    return _sqlite_batches(Path(source), since, until, batch)


# ---- SQLite ---------------------------------------------------------------------------------
def _sqlite_batches(path: Path, since: float | None, until: float | None,
                    batch: int) -> tuple[int, Batches]:
    from bot.store import read_feedback_rows

    if not path.is_file():
        raise CFTrainingError(f"no database at {path}; pass --db (the bot's DATABASE_PATH, "
                              "default var/moodtune.sqlite3, or a postgresql:// URL)")
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error as exc:
        raise CFTrainingError(f"cannot open {path} read-only: {exc}") from exc
    try:
        total, rows = read_feedback_rows(con, since=since, until=until, batch=batch)
    except sqlite3.Error as exc:
        con.close()
        raise CFTrainingError(f"reading feedback from {path} failed: {exc} ({_NOT_MOODTUNE})"
                              ) from exc

    def batches() -> Batches:
        try:
            yield from rows  # FeedbackEvent named tuples: rows as they are, no copy
        except sqlite3.Error as exc:
            raise CFTrainingError(f"reading feedback from {path} failed: {exc} "
                                  f"({_NOT_MOODTUNE})") from exc
        finally:
            con.close()

    return total, batches()


# ---- PostgreSQL -----------------------------------------------------------------------------
def _unix(value: Any) -> float:
    """``created_at`` as unix seconds: a double passes through, a timestamptz is converted."""
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


def _pg_batches(url: str, since: float | None, until: float | None,
                batch: int) -> tuple[int, Batches]:
    """Open the connection, transaction and cursor in a private loop; stream from it."""
    import asyncpg

    from bot.store import _FEEDBACK_COLUMNS
    from bot.store_pg import _pg_window, redact_url

    where_url = redact_url(url)
    loop = asyncio.new_event_loop()
    state: dict[str, Any] = {}

    def fail(exc: BaseException, doing: str) -> CFTrainingError:
        if isinstance(exc, asyncpg.UndefinedTableError | asyncpg.UndefinedColumnError):
            return CFTrainingError(f"{doing} {where_url} failed: {exc} ({_NOT_MOODTUNE})")
        if isinstance(exc, OSError | TimeoutError | asyncpg.CannotConnectNowError):
            return CFTrainingError(f"cannot reach the database at {where_url} ({exc}); is the "
                                   "server running and the URL right?")
        return CFTrainingError(f"{doing} {where_url} failed: {type(exc).__name__}: {exc}")

    async def open_cursor() -> int:
        conn = await asyncpg.connect(url, timeout=10)
        state["conn"] = conn
        tr = conn.transaction(isolation="repeatable_read", readonly=True)
        await tr.start()
        state["tr"] = tr
        sql_types = await conn.fetch(
            "SELECT data_type FROM information_schema.columns "
            "WHERE table_name = 'feedback' AND column_name = 'created_at' "
            "AND table_schema = ANY (current_schemas(false))")
        if not sql_types:
            raise asyncpg.UndefinedTableError('relation "feedback" does not exist')
        where, args = _pg_window(since, until)
        if sql_types[0]["data_type"].startswith("timestamp"):  # compare as unix seconds
            where = where.replace("created_at", "extract(epoch FROM created_at)")
        total = await conn.fetchval(f"SELECT COUNT(*) FROM feedback{where}", *args)
        state["cursor"] = await conn.cursor(
            f"SELECT {_FEEDBACK_COLUMNS} FROM feedback{where} ORDER BY created_at, id", *args)
        return int(total)

    async def close() -> None:
        conn = state.pop("conn", None)
        if conn is not None:
            tr = state.pop("tr", None)
            try:
                if tr is not None:
                    await tr.rollback()  # read-only: nothing to keep
            finally:
                await conn.close(timeout=5)

    try:
        total = loop.run_until_complete(open_cursor())
    except ValueError as exc:  # asyncpg's URL parser
        loop.run_until_complete(close())
        loop.close()
        raise CFTrainingError(f"bad database URL {where_url}: {exc}") from exc
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        with contextlib.suppress(Exception):  # the original error is the one to report
            loop.run_until_complete(close())
        loop.close()
        raise fail(exc, "reading feedback from") from exc

    def batches() -> Batches:
        try:
            while True:
                try:
                    rows = loop.run_until_complete(state["cursor"].fetch(batch))
                except (OSError, TimeoutError, asyncpg.PostgresError,
                        asyncpg.InterfaceError) as exc:
                    raise fail(exc, "reading feedback from") from exc
                if not rows:
                    return
                yield [(r[0], r[1], r[2], r[3], _unix(r[4])) for r in rows]
        finally:
            try:
                loop.run_until_complete(close())
            finally:
                loop.close()

    return total, batches()


# ---- Parquet snapshot -----------------------------------------------------------------------
def export_parquet(source: str | os.PathLike[str], path: str | os.PathLike[str],
                   since: float | None = None, until: float | None = None, *,
                   batch: int = 100_000) -> dict[str, Any]:
    """Write the feedback in ``[since, until)`` as a Parquet file at ``path``; return
    ``{"path", "rows", "source"}``.

    Batch by batch (one row group each) into ``.<name>.tmp`` beside ``path``, renamed into place
    at the end: memory stays at one batch, and a reader never sees half a snapshot. An empty
    window still writes a valid, empty file (the trainer decides that there is nothing to learn).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([(c, pa.float64() if c == "created_at" else pa.string()) for c in COLUMNS])
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    total, batches = iter_feedback_batches(source, since, until, batch=batch)
    rows = 0
    try:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            for chunk in batches:
                cols = list(zip(*chunk, strict=True))
                writer.write_table(pa.Table.from_arrays(
                    [pa.array(c, type=f.type) for c, f in zip(cols, schema, strict=True)],
                    schema=schema))
                rows += len(chunk)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        batches.close()
    return {"path": str(out), "rows": rows, "expected_rows": total,
            "source": describe_source(source)}
