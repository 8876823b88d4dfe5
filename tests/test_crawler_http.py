"""Polite HTTP layer against a real aiohttp server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from aiohttp import web

import crawler.http as crawler_http
from crawler.http import (
    CrawlBlockedError,
    HostRateLimiter,
    HttpConfig,
    HttpStatusError,
    PoliteHttp,
    RobotsDisallowedError,
    TransportError,
    backoff_delay,
    is_melon_host,
    parse_retry_after,
)


def test_parse_retry_after() -> None:
    assert parse_retry_after("7", cap=60) == 7
    assert parse_retry_after("7000", cap=60) == 60
    now = time.time()
    date = format_datetime(datetime.fromtimestamp(now, UTC) + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(date, cap=300, now=now) == pytest.approx(30, abs=1)
    past = format_datetime(datetime.fromtimestamp(now, UTC) - timedelta(hours=1), usegmt=True)
    assert parse_retry_after(past, cap=300, now=now) == 0
    assert parse_retry_after("soon", cap=60) is None
    assert parse_retry_after(None, cap=60) is None
    assert parse_retry_after("", cap=60) is None


def test_backoff_grows_and_is_capped() -> None:
    rng = random.Random(1)
    for attempt in range(8):
        d = backoff_delay(attempt, 1.0, 10.0, rng)
        full = min(10.0, 2 ** attempt)
        assert full / 2 <= d <= full


def test_is_melon_host() -> None:
    assert is_melon_host("https://www.melon.com")
    assert is_melon_host("http://MELON.COM/x")
    assert not is_melon_host("http://127.0.0.1:8080")
    assert not is_melon_host("https://notmelon.com")


async def test_rate_limiter_spacing() -> None:
    lim = HostRateLimiter(0.05, jitter=0.2)
    starts: list[float] = []

    async def one() -> None:
        await lim.acquire("h")
        starts.append(time.monotonic())

    await asyncio.gather(*(one() for _ in range(8)))
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.05 - 1e-3
    # another host is not delayed by the first
    t = time.monotonic()
    await lim.acquire("other")
    assert time.monotonic() - t < 0.02


class Script:
    """A tiny server whose /x answers follow a script of statuses."""

    def __init__(self, script: list[str], robots: str = "User-agent: *\nAllow: /\n") -> None:
        self.script = list(script)
        self.robots = robots
        self.hits = 0
        self.robots_hits = 0

    async def handler(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        action = self.script.pop(0) if self.script else "200"
        if action == "hang":
            await asyncio.sleep(0.6)
        if action.startswith("429"):
            headers = {"Retry-After": action[4:]} if ":" in action else {}
            return web.Response(status=429, headers=headers)
        if action.isdigit() and action != "200":
            return web.Response(status=int(action), text="x")
        return web.Response(text="<html>ok</html>")

    async def robots_handler(self, request: web.Request) -> web.StreamResponse:
        self.robots_hits += 1
        if self.robots.isdigit():
            return web.Response(status=int(self.robots))
        return web.Response(text=self.robots)


@pytest.fixture
async def server():
    servers = []

    async def start(script: list[str], robots: str = "User-agent: *\nAllow: /\n"):
        s = Script(script, robots)
        app = web.Application()
        app.router.add_get("/x", s.handler)
        app.router.add_get("/private/y", s.handler)
        app.router.add_get("/robots.txt", s.robots_handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        servers.append(runner)
        return s, f"http://127.0.0.1:{port}"

    yield start
    for r in servers:
        await r.cleanup()


def cfg(base: str, **kw: object) -> HttpConfig:
    base_kw: dict[str, object] = dict(base_url=base, min_interval=0.0, jitter=0.0, timeout=0.5,
                                      max_retries=3, backoff_base=0.01, backoff_max=0.05)
    base_kw.update(kw)
    return HttpConfig(**base_kw)  # type: ignore[arg-type]


async def test_retries_500_then_ok(server) -> None:
    s, base = await server(["500", "503", "200"])
    async with PoliteHttp(cfg(base)) as http:
        res = await http.get("/x")
    assert res.status == 200 and s.hits == 3 and http.retries == 2


async def test_retry_after_seconds_honoured(server) -> None:
    s, base = await server(["429:1", "200"])
    async with PoliteHttp(cfg(base)) as http:
        t = time.monotonic()
        res = await http.get("/x")
        took = time.monotonic() - t
    assert res.status == 200 and s.hits == 2
    assert took >= 0.95  # waited Retry-After (1 s), not the 10 ms backoff


async def test_retry_after_capped(server) -> None:
    _s, base = await server(["429:3600", "200"])
    async with PoliteHttp(cfg(base, retry_after_cap=0.1)) as http:
        t = time.monotonic()
        await http.get("/x")
        assert time.monotonic() - t < 1.0


async def test_timeout_retried_then_gives_up(server) -> None:
    s, base = await server(["hang", "hang", "hang"])
    async with PoliteHttp(cfg(base, timeout=0.2, max_retries=2)) as http:
        with pytest.raises(TransportError) as ei:
            await http.get("/x")
    assert ei.value.reason == "timeout" and s.hits == 3


async def test_non_retryable_status(server) -> None:
    s, base = await server(["400"])
    async with PoliteHttp(cfg(base)) as http:
        with pytest.raises(HttpStatusError) as ei:
            await http.get("/x")
    assert ei.value.status == 400 and s.hits == 1


async def test_404_is_data(server) -> None:
    _s, base = await server(["404"])
    async with PoliteHttp(cfg(base)) as http:
        assert (await http.get("/x")).status == 404


async def test_consecutive_blocks_stop_everything(server) -> None:
    s, base = await server(["403", "429", "403", "200"])
    async with PoliteHttp(cfg(base, max_consecutive_blocks=3, max_retries=5)) as http:
        with pytest.raises(HttpStatusError):
            await http.get("/x")  # 403: not retried, 1 block
        with pytest.raises(CrawlBlockedError):
            await http.get("/x")  # 429 (retried) then 403 -> 3 consecutive blocks
        with pytest.raises(CrawlBlockedError):
            await http.get("/x")  # stays stopped: no further request
    assert s.hits == 3


async def test_blocks_reset_by_success(server) -> None:
    _s, base = await server(["403", "200", "403", "200"])
    async with PoliteHttp(cfg(base, max_consecutive_blocks=2)) as http:
        for _ in range(2):
            with pytest.raises(HttpStatusError):
                await http.get("/x")
            await http.get("/x")


async def test_robots_disallow(server) -> None:
    s, base = await server([], robots="User-agent: *\nDisallow: /private/\n")
    async with PoliteHttp(cfg(base)) as http:
        await http.get("/x")
        with pytest.raises(RobotsDisallowedError, match=r"robots\.txt disallows"):
            await http.get("/private/y")
        await http.get("/x")
    assert s.hits == 2 and s.robots_hits == 1  # robots.txt fetched once, no /private request
    async with PoliteHttp(cfg(base, respect_robots=False)) as http:
        await http.get("/private/y")


async def test_robots_for_our_agent_only(server) -> None:
    robots = "User-agent: moodtune-crawler\nDisallow: /\n\nUser-agent: *\nAllow: /\n"
    _s, base = await server([], robots=robots)
    async with PoliteHttp(cfg(base)) as http:
        with pytest.raises(RobotsDisallowedError):
            await http.get("/x")
    async with PoliteHttp(cfg(base, user_agent="otherbot/1.0")) as http:
        await http.get("/x")


@pytest.mark.parametrize(("robots_status", "allowed"), [("404", True), ("500", False),
                                                        ("403", False)])
async def test_robots_unavailable(server, robots_status: str, allowed: bool) -> None:
    _s, base = await server([], robots=robots_status)
    async with PoliteHttp(cfg(base, max_retries=0)) as http:
        if allowed:
            await http.get("/x")
        else:
            with pytest.raises(RobotsDisallowedError):
                await http.get("/x")


async def test_robots_crawl_delay_slows_the_host(server) -> None:
    # urllib.robotparser reads integers only: Request-rate 5/1 = one request per 0.2 s.
    _s, base = await server([], robots="User-agent: *\nRequest-rate: 5/1\nAllow: /\n")
    async with PoliteHttp(cfg(base)) as http:
        t = time.monotonic()
        await http.get("/x")
        await http.get("/x")
        assert time.monotonic() - t >= 0.4  # robots.txt, /x, /x each 0.2 s apart
        assert http.limiter.interval(base.split("//")[1]) == 0.2


# ---- the 2 s floor for the real site ---------------------------------------------------------

def test_melon_hosts_have_a_2s_floor(caplog: pytest.LogCaptureFixture) -> None:
    lim = HostRateLimiter(0.1)
    with caplog.at_level(logging.WARNING, logger="crawler.http"):
        assert lim.interval("www.melon.com") == 2.0
        assert lim.interval("www.melon.com") == 2.0
        assert lim.interval("MELON.COM:443") == 2.0
    assert lim.interval("127.0.0.1:8080") == lim.interval("localhost") == 0.1
    warned = [r.getMessage() for r in caplog.records if "floor" in r.getMessage()]
    assert len(warned) == 2 and all("\n" not in m for m in warned)  # one line, once per host
    assert HostRateLimiter(3.0).interval("www.melon.com") == 3.0  # slower is always fine


def test_library_callers_get_the_floor(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="crawler.http"):
        http = PoliteHttp(HttpConfig(base_url="https://www.melon.com", min_interval=0.5))
    assert http.limiter.interval("www.melon.com") == 2.0
    assert any("2.0" in r.getMessage() for r in caplog.records)  # warned when configured


async def test_floor_paces_melon_but_not_a_local_fake(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crawler_http, "MELON_MIN_INTERVAL", 0.1)
    lim = HostRateLimiter(0.0)
    starts: list[float] = []
    for _ in range(3):
        await lim.acquire("www.melon.com")
        starts.append(time.monotonic())
    assert min(b - a for a, b in itertools.pairwise(starts)) >= 0.1 - 1e-3
    t = time.monotonic()
    for _ in range(3):
        await lim.acquire("127.0.0.1:8080")
    assert time.monotonic() - t < 0.05
