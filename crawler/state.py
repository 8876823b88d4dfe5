"""Crawl state in SQLite (WAL): one row per seed song, committed the moment its result is known.

Resumability is the point: a crawl of 100k+ songs at 2 s/request runs for days, so Ctrl-C,
``kill -9`` or a block must lose nothing and refetch nothing already finished. Each result is one
``UPDATE`` + ``COMMIT``; WAL makes those commits cheap and lets the labeller read while the
crawler writes. Lyrics stay in this local file only (they are copyrighted; never commit them).
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import aiosqlite

from crawler.arena import SongSeed

__all__ = [
    "FINAL_STATUSES",
    "STATUSES",
    "CrawlState",
    "LyricsRecord",
    "SongResult",
    "iter_lyrics",
]

Status = Literal["pending", "found", "no_lyrics", "not_found", "error"]
STATUSES: tuple[str, ...] = ("pending", "found", "no_lyrics", "not_found", "error")
FINAL_STATUSES = frozenset({"found", "no_lyrics", "not_found", "error"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS crawl_songs (
    seed_id        TEXT PRIMARY KEY,
    title          TEXT NOT NULL,
    artist         TEXT NOT NULL,
    album          TEXT,
    album_id       INTEGER,
    year           INTEGER,
    seed_json      TEXT NOT NULL,
    melon_id       INTEGER,
    status         TEXT NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending','found','no_lyrics','not_found','error')),
    reason         TEXT,
    attempts       INTEGER NOT NULL DEFAULT 0,
    fetched_at     TEXT,
    melon_title    TEXT,
    melon_artists  TEXT,
    melon_album    TEXT,
    release_date   TEXT,
    genre          TEXT,
    lyrics         TEXT
);
CREATE INDEX IF NOT EXISTS crawl_songs_status ON crawl_songs(status);
CREATE TABLE IF NOT EXISTS crawl_meta (key TEXT PRIMARY KEY, value TEXT);
"""


@dataclass(slots=True)
class SongResult:
    """The outcome of crawling one seed, as stored."""

    status: Status
    reason: str | None = None
    melon_id: int | None = None
    melon_title: str | None = None
    melon_artists: tuple[str, ...] = ()
    melon_album: str | None = None
    release_date: str | None = None
    genre: str | None = None
    lyrics: str | None = None


@dataclass(frozen=True, slots=True)
class LyricsRecord:
    """One crawled song with lyrics, for the labeller (``training/label``)."""

    seed_id: str
    melon_id: int | None
    title: str
    artist: str
    album: str | None
    release_date: str | None
    genre: str | None
    year: int | None
    lyrics: str


def _seed_to_json(seed: SongSeed) -> str:
    return json.dumps({"title": seed.title, "artists": list(seed.artists), "album": seed.album,
                       "album_id": seed.album_id, "genres": list(seed.genres), "year": seed.year},
                      ensure_ascii=False)


def seed_from_row(seed_id: str, seed_json: str) -> SongSeed:
    d = json.loads(seed_json)
    return SongSeed(seed_id=seed_id, title=d["title"], artists=tuple(d.get("artists") or ()),
                    album=d.get("album"), album_id=d.get("album_id"),
                    genres=tuple(d.get("genres") or ()), year=d.get("year"))


def _year_of(release_date: str | None, seed_year: int | None) -> int | None:
    if release_date and release_date[:4].isdigit():
        return int(release_date[:4])
    return seed_year


class CrawlState:
    """Async access to the crawl DB. ``async with CrawlState(path) as st: ...``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db: aiosqlite.Connection | None = None

    async def __aenter__(self) -> CrawlState:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self.path)
        await self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a committed row survives a process crash / kill -9 (only an OS
        # crash or power loss can drop the last commits), at far lower cost than FULL.
        await self._db.execute("PRAGMA synchronous=NORMAL")
        await self._db.execute("PRAGMA busy_timeout=5000")
        await self._db.executescript(_SCHEMA)
        await self._db.commit()

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("CrawlState is not open")
        return self._db

    async def add_seeds(self, seeds: Iterable[SongSeed], batch: int = 2000) -> int:
        """Insert new seeds as ``pending``; existing rows (any status) are left untouched."""
        added = 0
        buf: list[tuple[object, ...]] = []

        async def flush() -> None:
            nonlocal added
            before = self.db.total_changes
            await self.db.executemany(
                "INSERT OR IGNORE INTO crawl_songs (seed_id,title,artist,album,album_id,year,"
                "seed_json) VALUES (?,?,?,?,?,?,?)", buf)
            await self.db.commit()
            added += self.db.total_changes - before
            buf.clear()

        for s in seeds:
            buf.append((s.seed_id, s.title, s.artist, s.album, s.album_id, s.year,
                        _seed_to_json(s)))
            if len(buf) >= batch:
                await flush()
        if buf:
            await flush()
        return added

    async def todo_count(self, *, retry_errors: bool = False, refetch: bool = False) -> int:
        where, args = self._todo_where(retry_errors, refetch)
        async with self.db.execute(f"SELECT COUNT(*) FROM crawl_songs WHERE {where}", args) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    @staticmethod
    def _todo_where(retry_errors: bool, refetch: bool) -> tuple[str, tuple[object, ...]]:
        if refetch:
            return "1=1", ()
        if retry_errors:
            return "status IN ('pending','error')", ()
        return "status = 'pending'", ()

    async def iter_todo(self, *, retry_errors: bool = False, refetch: bool = False,
                        limit: int | None = None, page: int = 500) -> AsyncIterator[SongSeed]:
        """Seeds still to crawl, in insertion order, read a page at a time (700k rows fit badly).

        With ``refetch`` every row is yielded once (keyset pagination on rowid, so rows updated
        during the run are not revisited).
        """
        where, args = self._todo_where(retry_errors, refetch)
        last_rowid = 0
        yielded = 0
        while True:
            n = page if limit is None else min(page, limit - yielded)
            if n <= 0:
                return
            async with self.db.execute(
                    f"SELECT rowid, seed_id, seed_json FROM crawl_songs WHERE ({where}) AND "
                    "rowid > ? ORDER BY rowid LIMIT ?", (*args, last_rowid, n)) as cur:
                rows = list(await cur.fetchall())
            if not rows:
                return
            for rowid, seed_id, seed_json in rows:
                last_rowid = rowid
                yielded += 1
                yield seed_from_row(seed_id, seed_json)

    async def record(self, seed_id: str, result: SongResult, fetched_at: str) -> None:
        """Store one result and commit now, so an interruption right after loses nothing."""
        await self.db.execute(
            "UPDATE crawl_songs SET status=?, reason=?, melon_id=COALESCE(?, melon_id), "
            "attempts=attempts+1, fetched_at=?, melon_title=?, melon_artists=?, melon_album=?, "
            "release_date=?, genre=?, lyrics=? WHERE seed_id=?",
            (result.status, result.reason, result.melon_id, fetched_at, result.melon_title,
             json.dumps(list(result.melon_artists), ensure_ascii=False)
             if result.melon_artists else None,
             result.melon_album, result.release_date, result.genre, result.lyrics, seed_id))
        await self.db.commit()

    async def counts(self) -> Counter[str]:
        """Rows per status (all statuses present, zeros included)."""
        c: Counter[str] = Counter(dict.fromkeys(STATUSES, 0))
        async with self.db.execute("SELECT status, COUNT(*) FROM crawl_songs GROUP BY status") as cur:
            for status, n in await cur.fetchall():
                c[status] = n
        return c

    async def reasons(self) -> Counter[tuple[str, str]]:
        """(status, reason) counts for the final summary (reasons explain not_found/errors)."""
        c: Counter[tuple[str, str]] = Counter()
        async with self.db.execute(
                "SELECT status, COALESCE(reason,''), COUNT(*) FROM crawl_songs "
                "WHERE status != 'pending' GROUP BY 1, 2") as cur:
            for status, reason, n in await cur.fetchall():
                c[(status, reason)] = n
        return c

    async def get(self, seed_id: str) -> dict[str, object] | None:
        """One row as a dict (tests, debugging)."""
        self.db.row_factory = aiosqlite.Row
        try:
            async with self.db.execute("SELECT * FROM crawl_songs WHERE seed_id=?", (seed_id,)) as cur:
                row = await cur.fetchone()
        finally:
            self.db.row_factory = None
        return dict(row) if row is not None else None

    async def iter_lyrics(self) -> AsyncIterator[LyricsRecord]:
        """Async twin of :func:`iter_lyrics` for callers already on an event loop."""
        async with self.db.execute(_LYRICS_SQL) as cur:
            async for row in cur:
                yield _lyrics_record(row)


_LYRICS_SQL = (
    "SELECT seed_id, melon_id, COALESCE(melon_title, title), "
    "COALESCE(melon_artists, ''), artist, COALESCE(melon_album, album), release_date, genre, "
    "year, lyrics FROM crawl_songs WHERE status='found' AND lyrics IS NOT NULL ORDER BY rowid")


def _lyrics_record(row: tuple) -> LyricsRecord:  # type: ignore[type-arg]
    seed_id, melon_id, title, melon_artists, artist, album, release_date, genre, year, lyrics = row
    if melon_artists:
        artist = ", ".join(json.loads(melon_artists))
    return LyricsRecord(seed_id=seed_id, melon_id=melon_id, title=title, artist=artist,
                        album=album, release_date=release_date, genre=genre,
                        year=_year_of(release_date, year), lyrics=lyrics)


def iter_lyrics(path: str | Path) -> Iterator[LyricsRecord]:
    """Yield every ``found`` song with its Melon metadata and lyrics (synchronous, read-only).

    The labeller is a batch job without an event loop, so this uses plain ``sqlite3``; opening
    read-only means it can run while a crawl is still writing (WAL).
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"crawl database {p} not found: run `moodtune crawl` first")
    con = sqlite3.connect(f"file:{p.resolve()}?mode=ro", uri=True)
    try:
        for row in con.execute(_LYRICS_SQL):
            yield _lyrics_record(row)
    finally:
        con.close()
