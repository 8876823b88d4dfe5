"""End-to-end crawl against the fake Melon: matching, faults, statuses, reasons, iter_lyrics."""

from __future__ import annotations

from pathlib import Path

import pytest

from crawler.arena import SongSeed
from crawler.fake_melon import FakeMelon, FakeSong
from crawler.http import CrawlBlockedError, HttpConfig, PoliteHttp, RobotsDisallowedError
from crawler.melon import Crawler, MelonClient
from crawler.state import CrawlState, iter_lyrics


def catalogue() -> list[FakeSong]:
    return [
        FakeSong(101, "밤편지", ["아이유"], album_id=11, album="밤편지", release_date="2017.03.24"),
        FakeSong(102, "사랑", ["가수A"], album_id=12),
        FakeSong(103, "사랑 (Feat. 가수C)", ["IVE (아이브)", "가수C"], album_id=13,
                 lyrics="아이브의 사랑"),
        FakeSong(104, "준비중", ["밴드"], album_id=14, lyrics=None),
        FakeSong(105, "Explicit", ["래퍼"], album_id=15, adult=True),
        FakeSong(106, "Broken", ["밴드"], album_id=16, not_a_song_page=True),
        FakeSong(107, "Cut", ["밴드"], album_id=17, truncated=True),
        FakeSong(108, "Slow", ["밴드"], album_id=18),
        FakeSong(109, "Flaky", ["밴드"], album_id=19),
        FakeSong(110, "Limited", ["밴드"], album_id=20),
        FakeSong(111, "Hangs", ["밴드"], album_id=21),
        FakeSong(112, "Dead", ["밴드"], album_id=22),
        FakeSong(113, "Fallback", ["밴드"], album_id=23),
        FakeSong(114, "Glitch", ["밴드"], album_id=24),
    ]


def seeds() -> list[SongSeed]:
    def s(i: str, title: str, artist: str, album_id: int | None = None) -> SongSeed:
        return SongSeed(i, title, (artist,), album_id=album_id, year=2020)

    return [
        s("a1", "밤편지", "아이유", album_id=11),     # via album page
        s("a2", "사랑", "아이브"),                   # duplicate title: must pick IVE's (103)
        s("a3", "사랑", "가수A"),                    # ... and 가수A's (102)
        s("a4", "준비중", "밴드"),
        s("a5", "Explicit", "래퍼"),
        s("a6", "Broken", "밴드"),
        s("a7", "Cut", "밴드"),
        s("a8", "Slow", "밴드"),
        s("a9", "Flaky", "밴드"),
        s("a10", "Limited", "밴드"),
        s("a11", "Hangs", "밴드"),
        s("a12", "Dead", "밴드"),
        s("a13", "Fallback", "밴드", album_id=999),  # unknown album -> search fallback
        s("a14", "Glitch", "밴드"),
        s("a15", "없는노래", "아무개"),               # not on Melon
        s("a16", "사랑", "가수Z"),                    # title exists, artist does not
    ]


def config(base: str, **kw: object) -> HttpConfig:
    d: dict[str, object] = dict(base_url=base, min_interval=0.01, jitter=0.1, concurrency=4,
                                timeout=0.4, max_retries=2, backoff_base=0.01, backoff_max=0.05)
    d.update(kw)
    return HttpConfig(**d)  # type: ignore[arg-type]


async def crawl(fake: FakeMelon, db: Path, seed_list: list[SongSeed] | None = None,
                **kw: object) -> dict[str, dict[str, object]]:
    async with CrawlState(db) as state:
        await state.add_seeds(seed_list if seed_list is not None else seeds())
        async with PoliteHttp(config(fake.base_url, **kw)) as http:
            await Crawler(state, MelonClient(http), concurrency=4).run_pending()
        rows = {}
        for s in seed_list if seed_list is not None else seeds():
            row = await state.get(s.seed_id)
            assert row is not None
            rows[s.seed_id] = row
    return rows


async def test_full_crawl_statuses_and_reasons(tmp_path: Path) -> None:
    fake = FakeMelon(catalogue(), hang_s=1.0)
    fake.faults = {
        ("song", 108): ["slow:0.15"],
        ("song", 109): ["500", "503"],
        ("song", 110): ["429:0"],
        ("song", 111): ["hang"],
        ("song", 112): ["500"] * 10,
        ("song", 114): ["truncate"],
    }
    async with fake:
        rows = await crawl(fake, tmp_path / "crawl.sqlite3")

    def st(i: str) -> tuple[object, object, object]:
        return rows[i]["status"], rows[i]["reason"], rows[i]["melon_id"]

    assert st("a1") == ("found", None, 101)
    assert rows["a1"]["lyrics"] == "첫 줄 가사\n둘째 줄 가사\n\n셋째 줄"
    assert (rows["a1"]["melon_title"], rows["a1"]["release_date"], rows["a1"]["genre"]) == (
        "밤편지", "2017-03-24", "발라드")
    assert st("a2") == ("found", None, 103) and rows["a2"]["lyrics"] == "아이브의 사랑"
    assert st("a3") == ("found", None, 102)
    assert st("a4") == ("no_lyrics", "lyrics_not_ready", 104)
    assert st("a5") == ("no_lyrics", "adult_verification", 105)
    assert rows["a6"]["status"] == "error" and "parse_error" in str(rows["a6"]["reason"])
    assert rows["a7"]["status"] == "error" and "truncated" in str(rows["a7"]["reason"])
    for i in ("a8", "a9", "a10", "a11", "a13", "a14"):
        assert rows[i]["status"] == "found", (i, rows[i])
    assert st("a12") == ("error", "http_500", 112)
    assert st("a15") == ("not_found", "no_rows (search)", None)
    assert st("a16") == ("not_found", "artist_mismatch (search)", None)
    assert rows["a13"]["melon_id"] == 113
    assert all(r["attempts"] == 1 and r["fetched_at"] for r in rows.values())
    # Each song page fetched once, except the injected faults' retries.
    assert fake.hits[("song", 101)] == 1 and fake.hits[("song", 103)] == 1
    assert fake.hits[("song", 109)] == 3 and fake.hits[("song", 112)] == 3
    assert fake.hits[("song", 114)] == 2 and fake.hits[("song", 107)] == 2
    assert fake.hits[("album", 11)] == 1 and fake.hits[("album", 999)] == 1
    assert fake.hits[("robots", 0)] == 1

    found = list(iter_lyrics(tmp_path / "crawl.sqlite3"))
    assert {r.seed_id for r in found} == {"a1", "a2", "a3", "a8", "a9", "a10", "a11", "a13", "a14"}
    rec = next(r for r in found if r.seed_id == "a2")
    assert (rec.melon_id, rec.title, rec.artist, rec.year) == (
        103, "사랑 (Feat. 가수C)", "IVE (아이브), 가수C", 2020)


async def test_rerun_skips_finished_and_retry_errors(tmp_path: Path) -> None:
    fake = FakeMelon(catalogue())
    fake.faults = {("song", 112): ["500"] * 3}
    db = tmp_path / "c.sqlite3"
    async with fake:
        first = await crawl(fake, db, max_retries=2)
        assert first["a12"]["status"] == "error"
        before = sum(fake.hits.values())
        await crawl(fake, db)  # nothing pending: no page requested again
        assert sum(fake.hits.values()) == before
        async with CrawlState(db) as state, PoliteHttp(config(fake.base_url)) as http:
            n = await Crawler(state, MelonClient(http)).run_pending(retry_errors=True)
            row = await state.get("a12")
            lyrics_ids = [r.seed_id async for r in state.iter_lyrics()]
    assert "a12" in lyrics_ids and "a4" not in lyrics_ids
    assert n == 3  # the three error rows (Broken, Cut, Dead)
    assert row is not None and row["status"] == "found" and row["attempts"] == 2


async def test_robots_disallow_stops_before_fetching(tmp_path: Path) -> None:
    fake = FakeMelon(catalogue(), robots="User-agent: *\nDisallow: /song/\n")
    async with fake, CrawlState(tmp_path / "c.sqlite3") as state:
        await state.add_seeds(seeds()[:2])
        async with PoliteHttp(config(fake.base_url)) as http:
            await Crawler(state, MelonClient(http)).run_pending()
            with pytest.raises(RobotsDisallowedError):
                await http.check_robots(http.url("/song/detail.htm?songId=1"))
        row = await state.get("a1")
    assert row is not None and (row["status"], row["reason"]) == ("error", "robots_disallowed")
    assert not any(k[0] == "song" for k in fake.hits)


async def test_blocked_crawl_stops_and_keeps_rows_pending(tmp_path: Path) -> None:
    fake = FakeMelon(catalogue())
    fake.faults = {("album", 11): ["403"] * 5}
    for q in ("사랑 아이브", "사랑 가수A", "준비중 밴드", "Explicit 래퍼"):
        fake.faults[("search", q)] = ["429:0"] * 5
    async with fake, CrawlState(tmp_path / "c.sqlite3") as state:
        await state.add_seeds(seeds())
        async with PoliteHttp(config(fake.base_url, max_consecutive_blocks=3)) as http:
            with pytest.raises(CrawlBlockedError, match="blocking"):
                await Crawler(state, MelonClient(http), concurrency=4).run_pending()
        counts = await state.counts()
    assert counts["pending"] >= len(seeds()) - 4
    assert sum(fake.hits.values()) < 20


async def test_unexpected_parser_failure_is_recorded_not_fatal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import crawler.melon as melon_mod

    real = melon_mod.parse_song

    def flaky(html: str, song_id: int | None = None):  # type: ignore[no-untyped-def]
        if song_id == 102:
            raise KeyError("surprise")
        return real(html, song_id)

    monkeypatch.setattr(melon_mod, "parse_song", flaky)
    async with FakeMelon(catalogue()) as fake:
        rows = await crawl(fake, tmp_path / "c.sqlite3", seeds()[:3])
    assert rows["a3"]["status"] == "error" and "unexpected: KeyError" in str(rows["a3"]["reason"])
    assert rows["a1"]["status"] == rows["a2"]["status"] == "found"


async def test_refused_redirects_mark_the_song_and_the_crawl_goes_on(tmp_path: Path) -> None:
    fake = FakeMelon(catalogue(), robots="User-agent: *\nDisallow: /private/\n")
    other = FakeMelon(catalogue())  # would serve the page: following it is the defect
    async with fake, other:
        fake.redirects[("song", 101)] = "/private/song/detail.htm?songId=101"
        fake.redirects[("song", 102)] = f"{other.base_url}/song/detail.htm?songId=102"
        fake.redirects[("song", 103)] = "/hop/a"
        fake.hops.update(a="/hop/b", b="/hop/a")
        fake.redirects[("song", 104)] = "/moved/song/detail.htm?songId=104"
        rows = await crawl(fake, tmp_path / "c.sqlite3", seeds()[:4])
        assert fake.hits[("private/song", 101)] == 0 and not other.hits

    def st(i: str) -> tuple[object, object, object]:
        return rows[i]["status"], rows[i]["reason"], rows[i]["melon_id"]

    assert st("a1") == ("error", "redirect_robots", 101)
    assert st("a3") == ("error", "redirect_off_host", 102)
    assert st("a2") == ("error", "redirect_loop", 103)
    assert st("a4") == ("no_lyrics", "lyrics_not_ready", 104)  # an allowed redirect is followed
