"""Melon look-up and the crawl loop: seed → Melon song id → song page → crawl DB.

The song id comes from the album page when the Arena gave us ``album_id`` (it *is* Melon's
albumId, and the album lists few rows so matching is unambiguous), otherwise from song search
matched on normalised title + artist. Every seed ends in a final status with a reason, so a
summary can tell "Melon has no such song" from "our matching failed" from "the site failed".
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncIterable, Callable, Iterable
from dataclasses import dataclass

from crawler.arena import SongSeed
from crawler.http import (
    CrawlBlockedError,
    CrawlHttpError,
    PoliteHttp,
    utcnow_iso,
)
from crawler.parse import (
    MelonParseError,
    SearchRow,
    SongPage,
    choose_row,
    parse_album,
    parse_search,
    parse_song,
)
from crawler.state import CrawlState, SongResult

__all__ = ["ALBUM_PATH", "SEARCH_PATH", "SONG_PATH", "Crawler", "Lookup", "MelonClient"]

log = logging.getLogger(__name__)

SEARCH_PATH = "/search/song/index.htm"
ALBUM_PATH = "/album/detail.htm"
SONG_PATH = "/song/detail.htm"


@dataclass(frozen=True, slots=True)
class Lookup:
    """Result of finding a seed's Melon song id; ``reason`` explains a miss."""

    song_id: int | None
    reason: str
    via: str  # "album" | "search" | "search after album: <why the album did not match>"


class MelonClient:
    """Melon page fetching + parsing on top of :class:`PoliteHttp`.

    Album pages are cached (small LRU): Arena seeds arrive album by album, and fetching the same
    track list once per song would multiply requests to the site for nothing.
    """

    def __init__(self, http: PoliteHttp, *, album_cache: int = 256, parse_retries: int = 1) -> None:
        self.http = http
        self._albums: OrderedDict[int, list[SearchRow] | None] = OrderedDict()
        self._album_cache = album_cache
        self.parse_retries = parse_retries

    async def _fetch_parsed(self, path: str, params: dict[str, str | int],
                            parser: Callable[[str], object]) -> tuple[int, object]:
        """GET + parse; a truncated page is refetched ``parse_retries`` times (often transient)."""
        for attempt in range(self.parse_retries + 1):
            res = await self.http.get(path, params)
            if res.status == 404:
                return 404, None
            try:
                return res.status, parser(res.text)
            except MelonParseError as exc:
                if "truncated" not in str(exc) or attempt >= self.parse_retries:
                    raise
                log.info("truncated page %s, refetching", res.url)
        raise AssertionError("unreachable")

    async def album_rows(self, album_id: int) -> list[SearchRow] | None:
        """Track rows of an album; None when Melon has no such album (404 / not an album)."""
        if album_id in self._albums:
            self._albums.move_to_end(album_id)
            return self._albums[album_id]
        try:
            status, rows = await self._fetch_parsed(ALBUM_PATH, {"albumId": album_id}, parse_album)
        except MelonParseError:
            rows, status = None, 0
        result = rows if status != 404 and isinstance(rows, list) else None
        self._albums[album_id] = result
        if len(self._albums) > self._album_cache:
            self._albums.popitem(last=False)
        return result

    async def search_rows(self, query: str) -> list[SearchRow]:
        _, rows = await self._fetch_parsed(
            SEARCH_PATH, {"q": query, "section": "song"}, parse_search)
        return rows if isinstance(rows, list) else []

    async def find_song_id(self, seed: SongSeed) -> Lookup:
        """Album page first (if known), then search ``"title artist"``; reason on a miss."""
        album_reason = None
        if seed.album_id:
            rows = await self.album_rows(seed.album_id)
            if rows is None:
                album_reason = "album_not_found"
            else:
                out = choose_row(rows, seed.title, seed.artists, require_artist=False)
                if out.row is not None:
                    return Lookup(out.row.song_id, "matched", "album")
                album_reason = out.reason
        query = seed.title if not seed.artists else f"{seed.title} {seed.artists[0]}"
        rows = await self.search_rows(query)
        out = choose_row(rows, seed.title, seed.artists, require_artist=True)
        via = f"search after album: {album_reason}" if album_reason else "search"
        if out.row is not None:
            return Lookup(out.row.song_id, "matched", via)
        return Lookup(None, out.reason, via)

    async def song_page(self, song_id: int) -> SongPage | None:
        """Parsed song detail page; None on 404."""
        _, page = await self._fetch_parsed(
            SONG_PATH, {"songId": song_id}, lambda html: parse_song(html, song_id))
        return page if isinstance(page, SongPage) else None

    async def crawl_one(self, seed: SongSeed) -> SongResult:
        """Seed → final :class:`SongResult`. Only :class:`CrawlBlockedError` escapes."""
        melon_id: int | None = None
        try:
            found = await self.find_song_id(seed)
            if found.song_id is None:
                return SongResult("not_found", f"{found.reason} ({found.via})")
            melon_id = found.song_id
            page = await self.song_page(melon_id)
            if page is None:
                return SongResult("not_found", "song_page_404", melon_id=melon_id)
        except CrawlBlockedError:
            raise
        except MelonParseError as exc:
            return SongResult("error", f"parse_error: {exc}", melon_id=melon_id)
        except CrawlHttpError as exc:
            return SongResult("error", exc.reason, melon_id=melon_id)
        except (ValueError, LookupError, AttributeError, TypeError) as exc:
            # A page shape the parser did not foresee must not end a days-long crawl:
            # record it (retryable once fixed, via --retry-errors) and keep going.
            log.exception("unexpected failure on seed %s (melon id %s)", seed.seed_id, melon_id)
            return SongResult("error", f"unexpected: {type(exc).__name__}: {exc}"[:300],
                              melon_id=melon_id)
        return SongResult(
            status=page.status, reason=page.reason, melon_id=melon_id, melon_title=page.title,
            melon_artists=page.artists, melon_album=page.album, release_date=page.release_date,
            genre=page.genre, lyrics=page.lyrics)


ProgressFn = Callable[[SongSeed, SongResult], None]


class Crawler:
    """Worker pool: N workers pull seeds, crawl, and commit each result immediately.

    Concurrency overlaps network latency; the host rate limit still caps requests/s. On
    :class:`CrawlBlockedError` all workers stop and the error propagates (rows in flight stay
    ``pending`` and are crawled on the next run).
    """

    def __init__(self, state: CrawlState, client: MelonClient, *, concurrency: int = 2,
                 on_result: ProgressFn | None = None) -> None:
        self.state = state
        self.client = client
        self.concurrency = max(1, concurrency)
        self.on_result = on_result
        self.done = 0

    async def run(self, seeds: AsyncIterable[SongSeed] | Iterable[SongSeed]) -> int:
        """Crawl every seed; returns how many were finished in this run."""
        queue: asyncio.Queue[SongSeed | None] = asyncio.Queue(maxsize=self.concurrency * 2)

        async def produce() -> None:
            if isinstance(seeds, AsyncIterable):
                async for s in seeds:
                    await queue.put(s)
            else:
                for s in seeds:
                    await queue.put(s)
            for _ in range(self.concurrency):
                await queue.put(None)

        async def work() -> None:
            while True:
                seed = await queue.get()
                if seed is None:
                    return
                result = await self.client.crawl_one(seed)
                await self.state.record(seed.seed_id, result, utcnow_iso())
                self.done += 1
                if self.on_result is not None:
                    self.on_result(seed, result)

        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(produce())
                for _ in range(self.concurrency):
                    tg.create_task(work())
        except ExceptionGroup as eg:
            # Surface the root cause (e.g. CrawlBlockedError) itself, not a group of one.
            leaves = _leaves(eg)
            blocked = [e for e in leaves if isinstance(e, CrawlBlockedError)]
            raise (blocked or leaves)[0] from None
        return self.done

    async def run_pending(self, *, retry_errors: bool = False, refetch: bool = False,
                          limit: int | None = None) -> int:
        """Crawl the DB's to-do rows (the resume path)."""
        return await self.run(self.state.iter_todo(retry_errors=retry_errors, refetch=refetch,
                                                   limit=limit))


def _leaves(eg: BaseExceptionGroup) -> list[BaseException]:  # type: ignore[type-arg]
    out: list[BaseException] = []
    for e in eg.exceptions:
        out.extend(_leaves(e) if isinstance(e, BaseExceptionGroup) else [e])
    return out
