"""Polite HTTP layer against a real aiohttp server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import socket
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

import crawler.http as crawler_http
from crawler.fake_melon import FakeMelon, FakeSong
from crawler.http import (
    CrawlBlockedError,
    HostRateLimiter,
    HttpConfig,
    HttpStatusError,
    PermissionRequiredError,
    PoliteHttp,
    RedirectRefusedError,
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


# ---- redirects: every hop is checked like a first request -----------------------------------

SONG = "/song/detail.htm"


@pytest.fixture
async def fakes():
    started: list[FakeMelon] = []

    async def start(**kw: object) -> FakeMelon:
        f = FakeMelon([FakeSong(101, "밤편지", ["아이유"], album_id=11)], **kw)  # type: ignore[arg-type]
        await f.start()
        started.append(f)
        return f

    yield start
    for f in started:
        await f.close()


def host_of(url: str) -> str:
    return urlsplit(url).netloc


def server_gap(fake: FakeMelon, first: str, then: str) -> float:
    """Seconds between two requests' arrival at the fake (by kind, not position: retries ok).

    Measured server-side, where the first request also paid for the TCP connect: allow
    ~50 ms of slack when comparing with a client-side interval.
    """
    arrivals = {kind: t for t, kind in reversed(fake.log)}  # first arrival of each kind
    return arrivals[then] - arrivals[first]


async def test_redirect_within_the_rules_is_followed(fakes) -> None:
    fake = await fakes()
    fake.redirects[("song", 101)] = "/hop/a"
    fake.hops["a"] = "/moved/song/detail.htm?songId=101"
    async with PoliteHttp(cfg(fake.base_url)) as http:
        res = await http.get(SONG, {"songId": 101})
    assert res.status == 200 and "/moved/song/" in res.url and "밤편지" in res.text
    assert fake.hits[("moved/song", 101)] == 1 and fake.hits[("robots", 0)] == 1


async def test_redirect_to_robots_disallowed_path_is_refused(fakes) -> None:
    fake = await fakes(robots="User-agent: *\nDisallow: /private/\n")
    fake.redirects[("song", 101)] = "/private/song/detail.htm?songId=101"
    async with PoliteHttp(cfg(fake.base_url)) as http:
        with pytest.raises(RedirectRefusedError, match=r"robots\.txt") as ei:
            await http.get(SONG, {"songId": 101})
        assert http.refusals["redirect_robots"] == 1
    assert ei.value.kind == "robots" and ei.value.reason == "redirect_robots"
    assert "/private/song/detail.htm" in str(ei.value)
    assert fake.hits[("private/song", 101)] == 0
    # --ignore-robots is the operator's explicit opt-out, for hops as for first requests
    async with PoliteHttp(cfg(fake.base_url, respect_robots=False)) as http:
        assert (await http.get(SONG, {"songId": 101})).status == 200
    assert fake.hits[("private/song", 101)] == 1


async def test_redirect_to_another_host_is_refused(fakes) -> None:
    fake, other = await fakes(), await fakes()
    fake.redirects[("song", 101)] = f"{other.base_url}/song/detail.htm?songId=101"
    async with PoliteHttp(cfg(fake.base_url)) as http:
        with pytest.raises(RedirectRefusedError, match="allowed hosts") as ei:
            await http.get(SONG, {"songId": 101})
    assert ei.value.kind == "off_host" and ei.value.reason == "redirect_off_host"
    assert host_of(other.base_url) in str(ei.value)
    assert not other.hits  # not even its robots.txt


async def test_redirect_to_an_allowed_host_obeys_that_hosts_robots_and_pace(fakes) -> None:
    fake = await fakes()
    other = await fakes(robots="User-agent: *\nRequest-rate: 5/1\nDisallow: /song/\n")
    fake.redirects[("song", 101)] = f"{other.base_url}/song/detail.htm?songId=101"
    fake.redirects[("album", 11)] = f"{other.base_url}/moved/song/detail.htm?songId=101"
    async with PoliteHttp(cfg(fake.base_url, allowed_hosts=(host_of(other.base_url),),
                              timeout=5.0)) as http:
        with pytest.raises(RedirectRefusedError) as ei:
            await http.get(SONG, {"songId": 101})
        assert ei.value.kind == "robots"
        res = await http.get("/album/detail.htm", {"albumId": 11})
        assert res.status == 200 and res.url.startswith(other.base_url)
        assert http.limiter.interval(host_of(other.base_url)) == 0.2
    assert other.hits[("robots", 0)] == 1 and other.hits[("song", 101)] == 0
    assert other.hits[("moved/song", 101)] == 1
    assert server_gap(other, "robots", "moved/song") >= 0.2 - 0.05  # that host's own pace


async def test_redirect_loop_is_refused(fakes) -> None:
    fake = await fakes()
    fake.redirects[("song", 101)] = "/hop/a"
    fake.hops.update(a="/hop/b", b="/hop/a")
    async with PoliteHttp(cfg(fake.base_url)) as http:
        with pytest.raises(RedirectRefusedError, match="loop") as ei:
            await http.get(SONG, {"songId": 101})
    assert ei.value.kind == "loop"
    assert fake.hits[("hop", "a")] == 1 and fake.hits[("hop", "b")] == 1


async def test_redirect_chain_is_bounded(fakes) -> None:
    fake = await fakes()
    fake.redirects[("song", 101)] = "/hop/1"
    fake.hops.update({str(i): f"/hop/{i + 1}" for i in range(1, 7)})
    fake.hops["7"] = "/moved/song/detail.htm?songId=101"
    async with PoliteHttp(cfg(fake.base_url)) as http:
        with pytest.raises(RedirectRefusedError, match="more than 5 redirects") as ei:
            await http.get(SONG, {"songId": 101})
    assert ei.value.kind == "limit"
    assert sum(n for (kind, _), n in fake.hits.items() if kind == "hop") == 5
    assert fake.hits[("moved/song", 101)] == 0


@pytest.mark.parametrize("target", ["ftp://127.0.0.1/song.txt", "file:///etc/passwd"])
async def test_redirect_to_a_non_http_scheme_is_refused(fakes, target: str) -> None:
    fake = await fakes()
    fake.redirects[("song", 101)] = target
    async with PoliteHttp(cfg(fake.base_url)) as http:
        with pytest.raises(RedirectRefusedError, match="http") as ei:
            await http.get(SONG, {"songId": 101})
    assert ei.value.kind == "scheme"


class _LoopbackResolver(AbstractResolver):
    """Every hostname is 127.0.0.1: 'www.melon.com:<port>' reaches a local fake, no network."""

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        return [ResolveResult(hostname=host, host="127.0.0.1", port=port, family=socket.AF_INET,
                              proto=0, flags=socket.AI_NUMERICHOST)]

    async def close(self) -> None:
        return None


@pytest.fixture
def melon_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    real = aiohttp.TCPConnector
    monkeypatch.setattr(aiohttp, "TCPConnector",
                        lambda **kw: real(resolver=_LoopbackResolver(), **kw))


async def test_redirect_to_melon_needs_permission_and_gets_its_floor(
        fakes, melon_on_loopback: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crawler_http, "MELON_MIN_INTERVAL", 0.3)  # the 2 s floor, shortened
    fake, melon = await fakes(), await fakes()
    melon_host = f"www.melon.com:{urlsplit(melon.base_url).port}"
    fake.redirects[("song", 101)] = f"http://{melon_host}/song/detail.htm?songId=101"
    async with PoliteHttp(cfg(fake.base_url, allowed_hosts=(melon_host,))) as http:
        with pytest.raises(RedirectRefusedError, match="--i-have-permission") as ei:
            await http.get(SONG, {"songId": 101})
    assert ei.value.kind == "permission" and not melon.hits
    async with PoliteHttp(cfg(fake.base_url, allowed_hosts=(melon_host,), have_permission=True,
                              timeout=5.0)) as http:
        res = await http.get(SONG, {"songId": 101})
    assert res.status == 200 and melon.hits[("robots", 0)] == 1 and melon.hits[("song", 101)] == 1
    assert server_gap(melon, "robots", "song") >= 0.3 - 0.05  # the floor, though min_interval=0


async def test_first_request_obeys_the_same_scope(fakes, melon_on_loopback: None) -> None:
    melon = await fakes()
    base = f"http://www.melon.com:{urlsplit(melon.base_url).port}"
    async with PoliteHttp(cfg(base)) as http:  # a library caller that forgot the permission
        with pytest.raises(PermissionRequiredError, match="--i-have-permission"):
            await http.get(SONG, {"songId": 101})
    async with PoliteHttp(cfg(melon.base_url)) as http:
        with pytest.raises(ValueError, match="allowed hosts"):
            await http.get("http://127.0.0.1:9/x")  # an absolute URL elsewhere
    assert not melon.hits


async def test_robots_txt_redirects_are_checked_too(fakes) -> None:
    fake, other = await fakes(), await fakes(robots="User-agent: *\nDisallow: /song/\n")
    fake.redirects[("robots", 0)] = f"{other.base_url}/robots.txt"
    # Off-host robots.txt: not fetched, so robots.txt is unreachable -> everything disallowed.
    async with PoliteHttp(cfg(fake.base_url)) as http:
        with pytest.raises(RobotsDisallowedError):
            await http.get(SONG, {"songId": 101})
    assert not other.hits and fake.hits[("song", 101)] == 0
    # Allowed host: its robots.txt is read (and disallows /song/ only).
    async with PoliteHttp(cfg(fake.base_url, allowed_hosts=(host_of(other.base_url),))) as http:
        with pytest.raises(RobotsDisallowedError):
            await http.get(SONG, {"songId": 101})
        assert (await http.get("/album/detail.htm", {"albumId": 11})).status == 200
    assert other.hits[("robots", 0)] == 1


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
