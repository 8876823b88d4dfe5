"""A local stand-in for Melon's pages (aiohttp.web on 127.0.0.1), for tests, benchmarks and demos.

Why it lives in the product package: the crawler's behaviour under faults (retries, blocks,
robots.txt, redirects, pacing) can only be shown against a server, and nobody may hammer the
real Melon to do it. The benchmark and demos need it as much as the tests do, and benchmarks
must not import ``tests/``. It never talks to the network: it binds to 127.0.0.1 only.

Pages follow the structure of Melon's real search, album and song pages (the parts the crawler
reads; real-page samples are in ``tests/fixtures/melon/``, which this module does not need).
Faults are scripted per URL key — ``("song", 3)`` etc. — as a list of actions consumed one per
request, or injected at random (benchmark):

``"500"``, ``"403"``, ``"429"`` / ``"429:<retry-after>"``, ``"slow:<s>"`` (delay then serve),
``"hang"`` (sleep ``hang_s``, client times out), ``"truncate"``, ``"ok"``.

Redirects (to check that the crawler applies its own rules to every hop, never trusting the
site to send it somewhere it may go):

* ``redirects[key] = location`` — every request for that key (``("song", 3)``,
  ``("robots", 0)`` …) is answered ``redirect_status`` (302) with that ``Location``: a path on
  this host, or an absolute URL on another host.
* ``/hop/<name>`` answers a redirect to ``hops[name]`` (404 if unknown): chains and loops,
  e.g. ``hops = {"a": "/hop/b", "b": "/hop/a"}``.
* ``/moved/song/detail.htm`` and ``/private/song/detail.htm`` serve the same song page as
  ``/song/detail.htm``, counted as ``("moved/song", id)`` / ``("private/song", id)``: a
  same-host redirect target that robots.txt allows or (with ``Disallow: /private/``) forbids.

Every request is counted in ``hits[(kind, id)]`` and logged with its arrival time, so tests can
assert "no song fetched twice" and the benchmark can measure the real request rate.

Usage::

    async with FakeMelon([FakeSong(1, "밤편지", ["아이유"], album_id=11)]) as fake:
        ...  # crawl fake.base_url

    with ThreadedFakeMelon(FakeMelon(songs)) as fake:  # when the caller blocks (CLI, benchmark)
        ...
"""

from __future__ import annotations

import asyncio
import html
import random
import re
import threading
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class FakeSong:
    song_id: int
    title: str
    artists: list[str]
    album_id: int
    album: str = "Album"
    release_date: str = "2020.01.01"
    genre: str = "발라드"
    lyrics: str | None = "첫 줄 가사\n둘째 줄 가사\n\n셋째 줄"
    adult: bool = False          # 19금 badge + adult-verification notice instead of lyrics
    not_a_song_page: bool = False  # serve an error page without div.song_name
    truncated: bool = False      # always cut the page before </html>
    in_search: bool = True       # False -> search finds nothing (use album or not found)


def _esc(s: str) -> str:
    return html.escape(s, quote=True)


def _norm(s: str) -> str:
    """Loose search key: like Melon's search, "(Feat. …)" parts do not need to be typed."""
    s = re.sub(r"\([^)]*\)", "", unicodedata.normalize("NFKC", s))
    return "".join(ch for ch in s.lower() if ch.isalnum())


def render_song(s: FakeSong) -> str:
    """A song detail page shaped like /song/detail.htm."""
    badge = ('<span class="bullet_icons age_19 large"><span class="none">19금</span></span>'
             if s.adult else "")
    artists = "".join(
        f'<a href="javascript:melon.link.goArtistDetail(\'{900 + i}\');" '
        f'title="{_esc(a)} - 페이지 이동" class="artist_name"><span>{_esc(a)}</span></a>'
        + ("<span>,</span>" if i < len(s.artists) - 1 else "")
        for i, a in enumerate(s.artists))
    if s.adult:
        lyric = ('<div class="lyric_none adult"><p>이 곡은 19세 이상 이용 가능합니다. '
                 '로그인 후 성인 인증을 해주세요.</p></div>')
    elif s.lyrics is None:
        lyric = '<div class="lyric_none"><p>가사 준비중입니다.</p></div>'
    else:
        body = "<br>\n".join(_esc(line) for line in s.lyrics.split("\n"))
        lyric = f'<div class="lyric" id="d_video_summary"><!-- height:auto; -->{body}<br></div>'
    return f"""<!DOCTYPE html>
<html lang="ko"><head><meta charset="UTF-8"><title>{_esc(s.title)} - 멜론</title></head>
<body><div id="wrap"><div id="conts">
<form id="downloadfrm" method="get"><div class="section_info"><div class="wrap_info">
<div class="thumb"><a href="#" class="image_typeAll"><img src="/img.jpg" alt=""></a></div>
<div class="entry"><div class="info">
<div class="song_name"><strong class="none">곡명</strong>{badge}
    {_esc(s.title)}
</div>
<div class="artist">{artists}</div>
</div>
<div class="meta"><dl class="list">
<dt>앨범</dt><dd><a href="javascript:melon.link.goAlbumDetail('{s.album_id}');">{_esc(s.album)}</a></dd>
<dt>발매일</dt><dd>{_esc(s.release_date)}</dd>
<dt>장르</dt><dd>{_esc(s.genre)}</dd>
<dt>FLAC</dt><dd>Flac 16/24bit</dd>
</dl></div></div></div></div></form>
<div class="section_lyric"><div class="wrap_lyric">{lyric}</div></div>
</div></div><div id="footer">Copyright Kakao Entertainment Corp.</div></body></html>
"""


def _artist_cell(artists: list[str], with_id: bool) -> str:
    links = "".join(
        f'<a href="javascript:melon.link.goArtistDetail(\'{900 + i}\');" '
        f'title="{_esc(a)} - 페이지 이동" class="fc_mgray">{_esc(a)}</a>'
        for i, a in enumerate(artists))
    ident = ' id="artistName"' if with_id else ""
    return (f'<div class="ellipsis rank02"{ident}>{links}'
            f'<span class="checkEllipsis" style="display: none;">{links}</span></div>')


def render_search(songs: list[FakeSong]) -> str:
    """A /search/song/index.htm?section=song result page (or Melon's no-result block)."""
    if not songs:
        return ('<!DOCTYPE html><html><body><div id="conts"><div class="section_no_data">'
                '<p class="no_data">검색결과가 없습니다.</p></div></div></body></html>')
    rows = []
    for n, s in enumerate(songs, 1):
        rows.append(f"""<tr>
<td><div class="wrap pd_none left"><input type="checkbox" title="{_esc(s.title)} 곡 선택" class="input_check check_song" name="input_check" value="{s.song_id}"></div></td>
<td><div class="wrap pd_none"><span class="no">{n}</span></div></td>
<td class="t_left"><div class="wrap pd_none left"><div class="ellipsis">
<a href="javascript:melon.link.goSongDetail('{s.song_id}');" class="btn btn_icon_detail" title="{_esc(s.title)} 상세정보 페이지 이동"><span class="odd_span">상세정보 페이지 이동</span></a>
<a href="javascript:searchLog('web_song','SONG','SO','{_esc(s.title)}','{s.song_id}');melon.play.playSong('', {s.song_id});" class="fc_gray" title="{_esc(s.title)} 재생">{_esc(s.title)}</a>
</div></div></td>
<td class="t_left"><div class="wrap">{_artist_cell(s.artists, True)}</div></td>
<td class="t_left"><div class="wrap"><div class="ellipsis"><a href="javascript:melon.link.goAlbumDetail('{s.album_id}');" class="fc_mgray">{_esc(s.album)}</a></div></div></td>
</tr>""")
    return f"""<!DOCTYPE html><html><head><meta charset="UTF-8"></head><body><div id="conts">
<form id="frm_defaultList" name="frm_defaultList" method="get">
<div class="tb_list d_song_list songTypeOne"><table border="1"><caption>곡 검색 결과</caption>
<thead><tr><th>선택</th><th>NO</th><th>곡명</th><th>아티스트</th><th>앨범</th></tr></thead>
<tbody>{"".join(rows)}</tbody></table></div></form></div></body></html>
"""


def render_album(album_id: int, songs: list[FakeSong]) -> str:
    """An /album/detail.htm track list (``goSongDetail('N')`` per row)."""
    rows = []
    for n, s in enumerate(songs, 1):
        rows.append(f"""<tr data-group-items="cd1">
<td><div class="wrap pd_none left"><input type="checkbox" class="input_check" name="input_check" value="{s.song_id}"></div></td>
<td><div class="wrap t_center"><span class="rank">{n}</span></div></td>
<td class="t_left"><div class="wrap pd_none left"><div class="wrap_song_info">
<div class="ellipsis"><a href="javascript:melon.play.playSong('19030101',{s.song_id});" title="{_esc(s.title)} 재생">{_esc(s.title)}</a></div>
{_artist_cell(s.artists, False)}
</div></div></td>
<td><div class="wrap"><a href="javascript:melon.link.goSongDetail('{s.song_id}');" title="{_esc(s.title)} 상세정보 페이지 이동" class="btn button_icons type03 song_info"><span class="none">곡정보</span></a></div></td>
</tr>""")
    title = _esc(songs[0].album) if songs else "Album"
    return f"""<!DOCTYPE html><html><head><meta charset="UTF-8"></head><body><div id="conts">
<div class="section_info"><div class="wrap_info"><div class="entry"><div class="info">
<div class="song_name"><strong class="none">앨범명</strong>{title}</div></div></div></div></div>
<form id="frm"><div class="section_contin"><table><caption>앨범 수록곡 {album_id}</caption>
<tbody>{"".join(rows)}</tbody></table></div></form></div></body></html>
"""


NOT_A_SONG_PAGE = ("<!DOCTYPE html><html><body><div class='error'>"
                   "<p>요청하신 페이지를 찾을 수 없습니다.</p></div></body></html>")


@dataclass
class FakeMelon:
    """The fake site. ``await start()`` returns the base URL (127.0.0.1, random port)."""

    songs: list[FakeSong]
    robots: str = "User-agent: *\nAllow: /\n"
    latency: float = 0.0          # added to every request
    error_rate: float = 0.0       # random fault probability (benchmark)
    hang_s: float = 5.0           # how long "hang" sleeps (longer than the client timeout)
    rng_seed: int = 0
    faults: dict[tuple[str, int | str], list[str]] = field(default_factory=dict)
    hits: Counter[tuple[str, int | str]] = field(default_factory=Counter)
    log: list[tuple[float, str]] = field(default_factory=list)  # (arrival time, kind)
    statuses: Counter[int] = field(default_factory=Counter)
    redirects: dict[tuple[str, int | str], str] = field(default_factory=dict)
    hops: dict[str, str] = field(default_factory=dict)
    redirect_status: int = 302

    def __post_init__(self) -> None:
        self._rng = random.Random(self.rng_seed)
        self._by_id = {s.song_id: s for s in self.songs}
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/robots.txt", self._robots)
        app.router.add_get("/search/song/index.htm", self._search)
        app.router.add_get("/album/detail.htm", self._album)
        app.router.add_get("/song/detail.htm", self._song)
        app.router.add_get("/moved/song/detail.htm", self._song)
        app.router.add_get("/private/song/detail.htm", self._song)
        app.router.add_get("/hop/{name}", self._hop)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sockets = site._server.sockets  # type: ignore[union-attr]
        self.base_url = f"http://{host}:{sockets[0].getsockname()[1]}"
        return self.base_url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeMelon:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- fault machinery -------------------------------------------------------------------

    def _next_action(self, key: tuple[str, int | str]) -> str:
        script = self.faults.get(key)
        if script:
            return script.pop(0)
        if self.error_rate and self._rng.random() < self.error_rate:
            return self._rng.choice(["500", "hang"])
        return "ok"

    def _redirect(self, location: str) -> web.StreamResponse:
        self.statuses[self.redirect_status] += 1
        return web.Response(status=self.redirect_status, headers={"Location": location},
                            text="moved")

    async def _serve(self, key: tuple[str, int | str], render: object) -> web.StreamResponse:
        self.hits[key] += 1
        self.log.append((time.monotonic(), key[0]))
        if key in self.redirects:
            return self._redirect(self.redirects[key])
        action = self._next_action(key)
        if self.latency:
            await asyncio.sleep(self.latency)
        status = 200
        try:
            if action.startswith("slow:"):
                await asyncio.sleep(float(action.split(":", 1)[1]))
            elif action == "hang":
                await asyncio.sleep(self.hang_s)
            elif action in {"500", "503", "403"}:
                status = int(action)
                return web.Response(status=status, text="error")
            elif action.startswith("429"):
                status = 429
                headers = {"Retry-After": action.split(":", 1)[1]} if ":" in action else {}
                return web.Response(status=429, text="too many requests", headers=headers)
            body = render() if callable(render) else str(render)
            if body is None:
                status = 404
                return web.Response(status=404, text="not found")
            if action == "truncate":
                body = body[: len(body) // 2]
            return web.Response(text=body, content_type="text/html", charset="utf-8")
        finally:
            self.statuses[status] += 1

    # ---- handlers --------------------------------------------------------------------------

    async def _robots(self, request: web.Request) -> web.StreamResponse:
        self.hits[("robots", 0)] += 1
        self.log.append((time.monotonic(), "robots"))
        if ("robots", 0) in self.redirects:
            return self._redirect(self.redirects[("robots", 0)])
        return web.Response(text=self.robots, content_type="text/plain")

    async def _hop(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.hits[("hop", name)] += 1
        self.log.append((time.monotonic(), "hop"))
        if name not in self.hops:
            self.statuses[404] += 1
            return web.Response(status=404, text="no such hop")
        return self._redirect(self.hops[name])

    async def _search(self, request: web.Request) -> web.StreamResponse:
        q = request.query.get("q", "")
        nq = _norm(q)
        matches = [s for s in self.songs if s.in_search and _norm(s.title) and _norm(s.title) in nq]
        return await self._serve(("search", q), lambda: render_search(matches[:50]))

    async def _album(self, request: web.Request) -> web.StreamResponse:
        album_id = int(request.query.get("albumId", "0") or 0)
        songs = [s for s in self.songs if s.album_id == album_id]
        return await self._serve(("album", album_id),
                                 lambda: render_album(album_id, songs) if songs else None)

    async def _song(self, request: web.Request) -> web.StreamResponse:
        song_id = int(request.query.get("songId", "0") or 0)
        song = self._by_id.get(song_id)
        prefix = request.path.rsplit("/song/", 1)[0].strip("/")
        kind = f"{prefix}/song" if prefix else "song"

        def render() -> str | None:
            if song is None:
                return None
            if song.not_a_song_page:
                return NOT_A_SONG_PAGE
            page = render_song(song)
            return page[: len(page) * 2 // 3] if song.truncated else page

        return await self._serve((kind, song_id), render)


class ThreadedFakeMelon:
    """Run a :class:`FakeMelon` on its own event loop in a daemon thread.

    For callers that need the server while they block (``asyncio.run`` inside the CLI, a
    subprocess crawl, the benchmark measuring the client without sharing its loop).
    """

    def __init__(self, fake: FakeMelon) -> None:
        self.fake = fake
        self.loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> FakeMelon:
        started = threading.Event()

        def main() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.fake.start())
            started.set()
            self.loop.run_forever()

        self._thread = threading.Thread(target=main, name="fake-melon", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("fake Melon did not start")
        return self.fake

    def __exit__(self, *exc: object) -> None:
        fut = asyncio.run_coroutine_threadsafe(self.fake.close(), self.loop)
        try:
            fut.result(10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            if self._thread is not None:
                self._thread.join(10)
            self.loop.close()
