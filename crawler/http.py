"""Polite HTTP for the crawler: bounded connections, per-host pacing, retries, robots.txt, stop.

Why each piece exists:

* **pacing** (:class:`HostRateLimiter`) — Melon blocks clients after ~1,000 fast detail-page
  requests; one request per host every ``min_interval`` s (+ jitter, never less) is the contract,
  however many workers run. The limiter spaces *actual* request starts, so concurrency only
  overlaps latency, it never raises the rate.
* **retries** — timeouts, resets, 429 and 5xx are usually transient; exponential backoff with
  jitter (and ``Retry-After`` when the server says how long) avoids hammering a struggling host.
* **global stop** (:class:`CrawlBlockedError`) — N consecutive 403/429 means we are blocked;
  carrying on would only deepen the block, so the whole crawl stops and can resume later.
* **robots.txt** — fetched once per host and obeyed unless the operator explicitly opts out.
* **redirects, followed by hand** (:class:`RedirectRefusedError`) — a ``Location`` header is the
  site's word, not the operator's: aiohttp would follow it anywhere (another host, a path
  robots.txt forbids, a non-HTTP scheme) before we could look. So aiohttp never follows
  redirects; we do, at most ``max_redirects`` hops, and check every hop like a first request:
  http/https only, host inside the crawl's allowed set, Melon only with permission, that host's
  robots.txt obeyed, that host's pace applied.
* **Melon's floor** (:data:`MELON_MIN_INTERVAL`) — the real site is never paced faster than one
  request per 2 s per host, whatever a caller asks; a local fake (127.0.0.1) may go faster.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
import urllib.robotparser
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urldefrag, urljoin, urlsplit

import aiohttp

__all__ = [
    "DEFAULT_USER_AGENT",
    "MELON_MIN_INTERVAL",
    "CrawlBlockedError",
    "CrawlHttpError",
    "FetchResult",
    "HostRateLimiter",
    "HttpConfig",
    "HttpStatusError",
    "PermissionRequiredError",
    "PoliteHttp",
    "RedirectRefusedError",
    "RobotsDisallowedError",
    "TransportError",
    "backoff_delay",
    "host_key",
    "is_melon_host",
    "min_interval_floor",
    "parse_retry_after",
]

log = logging.getLogger(__name__)

DEFAULT_USER_AGENT = "moodtune-crawler/0.1 (personal research crawler; polite, resumable)"
BLOCK_STATUSES = frozenset({403, 429})
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 520, 521, 522, 524})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: Seconds between requests to one Melon host, at least. Read at call time (tests shorten it).
MELON_MIN_INTERVAL = 2.0


class CrawlHttpError(Exception):
    """Base class: an HTTP fetch failed in a way the crawler records as an ``error``."""

    reason = "http_error"


class TransportError(CrawlHttpError):
    """Timeout or connection failure that persisted through all retries."""

    def __init__(self, url: str, kind: str, detail: str) -> None:
        super().__init__(f"{kind} fetching {url} after retries: {detail}")
        self.url, self.kind = url, kind
        self.reason = kind


class HttpStatusError(CrawlHttpError):
    """The server answered with an error status (after retries for retryable ones)."""

    def __init__(self, url: str, status: int) -> None:
        super().__init__(f"HTTP {status} for {url}")
        self.url, self.status = url, status
        self.reason = f"http_{status}"


class RobotsDisallowedError(CrawlHttpError):
    """robots.txt forbids this URL for our user agent (no request was made)."""

    reason = "robots_disallowed"

    def __init__(self, url: str, user_agent: str) -> None:
        super().__init__(
            f"robots.txt disallows {url} for user agent {user_agent!r}. The site asks crawlers not "
            "to fetch this; get the site's permission, and only then consider --ignore-robots.")
        self.url = url


class RedirectRefusedError(CrawlHttpError):
    """A redirect pointed somewhere this crawl may not go; that hop was not fetched.

    Why a separate error: the site, not the operator, chose the target, so it is refused the
    way a first request to it would be (or the chain is a loop / too long) — and it is a
    per-song failure, not a reason to stop the crawl. ``kind`` says why: ``scheme``,
    ``off_host``, ``permission``, ``robots``, ``loop`` or ``limit``; the crawl DB records
    ``reason = "redirect_<kind>"`` so ``--retry-errors`` can redo these songs after a fix.
    """

    def __init__(self, kind: str, source: str, target: str, hop: int, why: str) -> None:
        super().__init__(f"refused redirect hop {hop} from {source} to {target}: {why}")
        self.kind, self.source, self.target, self.hop = kind, source, target, hop
        self.reason = f"redirect_{kind}"


class CrawlBlockedError(CrawlHttpError):
    """Too many consecutive 403/429 answers: the host is blocking us. Stop everything."""

    reason = "blocked"


class PermissionRequiredError(Exception):
    """Crawling a real melon.com host without ``--i-have-permission``.

    Not a :class:`CrawlHttpError`: it is a configuration mistake that applies to every song,
    so it ends the crawl instead of being recorded once per song.
    """


def _is_melon_hostname(hostname: str) -> bool:
    host = hostname.lower().rstrip(".")
    return host == "melon.com" or host.endswith(".melon.com")


def is_melon_host(url: str) -> bool:
    """True for melon.com and its subdomains (the real service, as opposed to a test server)."""
    return _is_melon_hostname(urlsplit(url).hostname or "")


def min_interval_floor(host: str) -> float:
    """The shortest gap allowed between requests to ``host`` (``netloc`` or hostname).

    :data:`MELON_MIN_INTERVAL` for Melon hosts — the real site blocks fast clients and we are
    its guest, so no caller (CLI or library) may pace it faster — and 0 elsewhere, so a local
    fake site keeps tests and benchmarks fast.
    """
    hostname = urlsplit("//" + host).hostname or ""
    return MELON_MIN_INTERVAL if _is_melon_hostname(hostname) else 0.0


def host_key(url_or_host: str) -> str:
    """``host[:port]`` of a URL (or of a bare ``host[:port]``), lowercased, as allowed hosts are.

    Ports 80/443 are dropped so ``http://x`` and ``https://x`` count as one host (an upgrade
    redirect stays inside the crawl) while ``127.0.0.1:8001`` and ``127.0.0.1:8002`` are two.
    Raises ValueError when no host (or an invalid port) can be read.
    """
    text = url_or_host if "//" in url_or_host else "//" + url_or_host
    parts = urlsplit(text)
    hostname = (parts.hostname or "").rstrip(".")
    if not hostname:
        raise ValueError(f"no host in {url_or_host!r}")
    port = parts.port  # ValueError on a malformed port
    if ":" in hostname:  # IPv6 literal
        hostname = f"[{hostname}]"
    return hostname if port in (None, 80, 443) else f"{hostname}:{port}"


@dataclass(slots=True)
class HttpConfig:
    """Knobs for :class:`PoliteHttp`. Defaults are the polite production values."""

    base_url: str = "https://www.melon.com"
    user_agent: str = DEFAULT_USER_AGENT
    min_interval: float = 2.0
    jitter: float = 0.25
    concurrency: int = 2
    timeout: float = 20.0
    max_retries: int = 4
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    retry_after_cap: float = 300.0
    max_consecutive_blocks: int = 5
    respect_robots: bool = True
    #: Hosts besides ``base_url``'s that requests (i.e. redirects) may reach; ``host[:port]``.
    allowed_hosts: tuple[str, ...] = ()
    #: The operator confirmed they may crawl the real Melon (``--i-have-permission``).
    have_permission: bool = False
    max_redirects: int = 5

    def __post_init__(self) -> None:
        if self.min_interval < 0 or self.jitter < 0:
            raise ValueError("min_interval and jitter must be >= 0")
        if self.concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        if self.max_redirects < 0:
            raise ValueError("max_redirects must be >= 0")
        self.allowed_hosts = tuple(host_key(h) for h in self.allowed_hosts)


@dataclass(frozen=True, slots=True)
class FetchResult:
    """A 2xx or 404 answer (404 is data for the crawler: "no such song/album").

    ``url`` is where the page was finally found (after any redirects we followed).
    """

    url: str
    status: int
    text: str


@dataclass(frozen=True, slots=True)
class _Redirect:
    """A 3xx with a ``Location``: returned to :meth:`PoliteHttp._follow` to vet, never followed."""

    url: str       # the URL that answered
    status: int
    location: str  # absolute, fragment removed


def parse_retry_after(value: str | None, *, cap: float, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), capped.

    Returns None when absent or unparseable, so the caller falls back to its own backoff; a date
    in the past means 0. The cap protects against a header asking us to sleep for a day.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return min(float(value), cap)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now_ts = time.time() if now is None else now
    return max(0.0, min(cap, when.timestamp() - now_ts))


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random, never above ``cap``.

    The random half spreads workers that failed together; the fixed half guarantees real backoff.
    """
    r = rng or random
    d = min(cap, base * (2 ** attempt))
    return d / 2 + r.uniform(0, d / 2)


class HostRateLimiter:
    """At most one request start per ``min_interval`` (+ up to ``jitter`` × interval) per host.

    The per-host lock is held across the wait and the gap is measured from the previous
    *actual* start, so late wake-ups can only lengthen gaps, never shorten them. No host is
    paced faster than :func:`min_interval_floor` allows (2 s for Melon): the floor lives here,
    in the one place every request passes, so no caller can get around it.
    """

    def __init__(self, min_interval: float, jitter: float = 0.0, rng: random.Random | None = None):
        self.min_interval = min_interval
        self.jitter = jitter
        self._rng = rng or random.Random()
        self._locks: dict[str, asyncio.Lock] = {}
        self._last: dict[str, float] = {}
        self._host_interval: dict[str, float] = {}
        self._warned: set[str] = set()

    def slow_down(self, host: str, min_interval: float) -> None:
        """Raise (never lower) one host's interval, e.g. to its robots.txt ``Crawl-delay``."""
        if min_interval > self._host_interval.get(host, self.min_interval):
            self._host_interval[host] = min_interval

    def interval(self, host: str) -> float:
        """Seconds between request starts to ``host``: asked for, raised by robots.txt, floored."""
        asked = self._host_interval.get(host, self.min_interval)
        floor = min_interval_floor(host)
        if asked >= floor:
            return asked
        if host not in self._warned:
            self._warned.add(host)
            log.warning("min interval %.2f s is below the %.1f s floor for the real Melon site "
                        "(%s): pacing it at %.1f s", asked, floor, host, floor)
        return floor

    async def acquire(self, host: str) -> None:
        lock = self._locks.setdefault(host, asyncio.Lock())
        async with lock:
            last = self._last.get(host)
            if last is not None:
                gap = self.interval(host) * (1.0 + self._rng.uniform(0, self.jitter))
                wait = last + gap - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            self._last[host] = time.monotonic()


class PoliteHttp:
    """One aiohttp session with pacing, retries, robots.txt, vetted redirects and the block breaker.

    Use as ``async with PoliteHttp(cfg) as http: await http.get("/path", params)``.
    ``refusals`` counts what was not fetched on purpose, by reason (``robots_disallowed``,
    ``redirect_off_host`` …), for summaries.
    """

    def __init__(self, config: HttpConfig, *, rng: random.Random | None = None) -> None:
        self.config = config
        self._rng = rng or random.Random()
        self.limiter = HostRateLimiter(config.min_interval, config.jitter, self._rng)
        self._session: aiohttp.ClientSession | None = None
        self._robots: dict[str, urllib.robotparser.RobotFileParser] = {}
        self._robots_lock = asyncio.Lock()
        self._consecutive_blocks = 0
        self.blocked: CrawlBlockedError | None = None
        self.requests = 0
        self.retries = 0
        self.refusals: Counter[str] = Counter()
        self._allowed = frozenset({host_key(config.base_url), *config.allowed_hosts})
        self._refusal_logged: set[tuple[str, str]] = set()
        self.limiter.interval(urlsplit(config.base_url).netloc)  # warn now if it gets floored

    async def __aenter__(self) -> PoliteHttp:
        cfg = self.config
        connector = aiohttp.TCPConnector(limit=cfg.concurrency, limit_per_host=cfg.concurrency,
                                         ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=cfg.timeout, sock_connect=min(cfg.timeout, 10.0)),
            headers={"User-Agent": cfg.user_agent,
                     "Accept-Language": "ko-KR,ko;q=0.9,en;q=0.5",
                     "Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"},
            raise_for_status=False,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def url(self, path: str) -> str:
        return urljoin(self.config.base_url.rstrip("/") + "/", path.lstrip("/"))

    # ---- robots ----------------------------------------------------------------------------

    async def _robots_for(self, url: str) -> urllib.robotparser.RobotFileParser:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        cached = self._robots.get(origin)
        if cached is not None:  # fast path: no lock once fetched
            return cached
        async with self._robots_lock:
            rp = self._robots.get(origin)
            if rp is not None:
                return rp
            rp = urllib.robotparser.RobotFileParser(origin + "/robots.txt")
            try:
                res = await self._follow(origin + "/robots.txt", None, robots=True)
            except CrawlBlockedError:
                raise
            except CrawlHttpError as exc:
                # RFC 9309: robots.txt unreachable (5xx / network) => assume full disallow.
                log.warning("robots.txt unreachable (%s): treating %s as disallowed", exc, origin)
                rp.disallow_all = True
            else:
                if res.status in (401, 403):
                    rp.disallow_all = True
                elif 400 <= res.status < 500:
                    rp.allow_all = True
                elif not 200 <= res.status < 300:  # e.g. a 3xx without Location
                    log.warning("robots.txt answered HTTP %d: treating %s as disallowed",
                                res.status, origin)
                    rp.disallow_all = True
                else:
                    rp.parse(res.text.splitlines())
                    delay = _robots_delay(rp, self.config.user_agent)
                    if delay:
                        log.info("robots.txt asks for %.1fs between requests to %s", delay, origin)
                        self.limiter.slow_down(parts.netloc, delay)
            rp.modified()
            self._robots[origin] = rp
            return rp

    async def _robots_allow(self, url: str) -> bool:
        if not self.config.respect_robots:
            return True
        rp = await self._robots_for(url)
        return rp.can_fetch(self.config.user_agent, url)

    async def check_robots(self, url: str) -> None:
        """Raise :class:`RobotsDisallowedError` if robots.txt forbids ``url`` (when respected)."""
        if not await self._robots_allow(url):
            self.refusals[RobotsDisallowedError.reason] += 1
            raise RobotsDisallowedError(url, self.config.user_agent)

    # ---- scope: which URLs this crawl may fetch at all ------------------------------------

    def _scope_refusal(self, url: str) -> tuple[str, str] | None:
        """``(kind, why)`` when ``url`` is outside this crawl, else None.

        The same rules for a first request and for every redirect hop: http/https only, a host
        in the allowed set (``base_url``'s + ``allowed_hosts``), Melon only with permission.
        """
        try:
            scheme = urlsplit(url).scheme.lower()
        except ValueError as exc:
            return "scheme", f"unreadable URL ({exc})"
        if scheme not in ("http", "https"):
            return "scheme", (f"only http/https URLs are fetched, not {scheme or 'scheme-less'!r} "
                              "ones")
        try:
            key = host_key(url)
        except ValueError as exc:
            return "off_host", f"unusable host ({exc})"
        if key not in self._allowed:
            allowed = ", ".join(sorted(self._allowed))
            return "off_host", (
                f"host {key} is outside this crawl's allowed hosts ({allowed}); if you may "
                f"crawl it too, allow it explicitly (--allow-host {key})")
        if is_melon_host(url) and not self.config.have_permission:
            return "permission", (
                f"{key} is the real Melon site, which is crawled only with --i-have-permission "
                "(HttpConfig.have_permission)")
        return None

    def _refuse(self, exc: RedirectRefusedError) -> RedirectRefusedError:
        """Count a refused hop and log it (a warning once per kind and host, then debug)."""
        self.refusals[exc.reason] += 1
        try:
            where = host_key(exc.target)
        except ValueError:
            where = exc.target
        first = (exc.kind, where) not in self._refusal_logged
        self._refusal_logged.add((exc.kind, where))
        log.log(logging.WARNING if first else logging.DEBUG, "%s", exc)
        return exc

    # ---- requests --------------------------------------------------------------------------

    def _note_status(self, status: int) -> None:
        if status in BLOCK_STATUSES:
            self._consecutive_blocks += 1
            if self._consecutive_blocks >= self.config.max_consecutive_blocks:
                self.blocked = CrawlBlockedError(
                    f"{self._consecutive_blocks} consecutive HTTP 403/429 answers: the site is "
                    "blocking this crawler. Stopped; wait (hours), slow down (--min-interval) "
                    "and rerun to resume.")
                raise self.blocked
        elif status < 400 or status == 404:
            self._consecutive_blocks = 0

    async def get(self, path: str, params: Mapping[str, str | int] | None = None) -> FetchResult:
        """GET ``base_url + path``: scope and robots checks, pacing, retries, vetted redirects.

        2xx/404 return; anything else raises a :class:`CrawlHttpError` (per-song), except
        :class:`PermissionRequiredError` for Melon without permission (a config mistake).
        """
        url = self.url(path)
        refusal = self._scope_refusal(url)
        if refusal is not None:
            kind, why = refusal
            if kind == "permission":
                raise PermissionRequiredError(f"refusing to fetch {url}: {why}")
            raise ValueError(f"refusing to fetch {url}: {why}")
        await self.check_robots(url)
        return await self._follow(url, params)

    async def _follow(self, url: str, params: Mapping[str, str | int] | None, *,
                      robots: bool = False) -> FetchResult:
        """Fetch ``url``, following redirects ourselves, each hop vetted like a first request.

        ``url`` itself was already vetted by the caller. A hop is refused (scope, that host's
        robots.txt unless ``robots`` — we are fetching robots.txt itself), after a loop, or
        past ``max_redirects``; each fetched hop goes through :meth:`_request`, so its host's
        pace and the retries apply to it as to any request.
        """
        cfg = self.config
        seen: set[tuple[str, str, str, str]] = set()
        current, current_params = url, params
        hop = 0
        while True:
            res = await self._request(current, current_params, robots=robots)
            if isinstance(res, FetchResult):
                return res
            hop += 1
            seen.add(_identity(res.url))
            target = res.location
            refusal: tuple[str, str] | None
            if hop > cfg.max_redirects:
                refusal = "limit", (f"more than {cfg.max_redirects} redirects in a row starting "
                                    f"at {url}; the site keeps sending the crawler elsewhere")
            else:
                refusal = self._scope_refusal(target)
                if refusal is None and _identity(target) in seen:
                    refusal = "loop", "redirect loop: this URL was already visited in this chain"
                if refusal is None and not robots and not await self._robots_allow(target):
                    origin = "{0.scheme}://{0.netloc}".format(urlsplit(target))
                    refusal = "robots", (
                        f"the robots.txt of {origin} disallows it for user agent "
                        f"{cfg.user_agent!r}; only with the site's permission consider "
                        "--ignore-robots")
            if refusal is not None:
                raise self._refuse(RedirectRefusedError(refusal[0], res.url, target, hop,
                                                        refusal[1]))
            log.debug("following HTTP %d redirect %s -> %s", res.status, res.url, target)
            current, current_params = target, None

    async def _request(self, url: str, params: Mapping[str, str | int] | None, *,
                       robots: bool = False) -> FetchResult | _Redirect:
        if self._session is None:
            raise RuntimeError("PoliteHttp used outside 'async with'")
        cfg = self.config
        host = urlsplit(url).netloc
        attempt = 0
        while True:
            if self.blocked is not None:
                raise self.blocked
            await self.limiter.acquire(host)
            self.requests += 1
            retry_after: float | None = None
            failure: CrawlHttpError
            try:
                # Never let aiohttp follow a redirect: _follow vets every hop first.
                async with self._session.get(url, params=params, allow_redirects=False) as resp:
                    status = resp.status
                    location = resp.headers.get("Location")
                    if status in REDIRECT_STATUSES and location:
                        self._note_status(status)
                        here = str(resp.url)
                        try:
                            target = urldefrag(urljoin(here, location)).url
                        except ValueError:  # e.g. a broken IPv6 literal: refused in _follow
                            target = location
                        return _Redirect(here, status, target)
                    if status < 300 or status == 404 or (robots and status < 500):
                        text = await resp.text(errors="replace")
                        self._note_status(status)
                        return FetchResult(str(resp.url), status, text)
                    self._note_status(status)
                    failure = HttpStatusError(str(resp.url), status)
                    if status not in RETRY_STATUSES:
                        raise failure
                    retry_after = parse_retry_after(resp.headers.get("Retry-After"),
                                                    cap=cfg.retry_after_cap)
            except TimeoutError as exc:
                failure = TransportError(url, "timeout", str(exc) or type(exc).__name__)
            except aiohttp.ClientPayloadError as exc:
                failure = TransportError(url, "truncated_body", str(exc))
            except aiohttp.ClientError as exc:
                failure = TransportError(url, "connection_error", f"{type(exc).__name__}: {exc}")
            if attempt >= cfg.max_retries:
                raise failure
            delay = backoff_delay(attempt, cfg.backoff_base, cfg.backoff_max, self._rng)
            if retry_after is not None:
                delay = max(delay, retry_after)
            attempt += 1
            self.retries += 1
            log.debug("retry %d for %s in %.2fs (%s)", attempt, url, delay, failure)
            await asyncio.sleep(delay)


def _identity(url: str) -> tuple[str, str, str, str]:
    """What makes two URLs in a redirect chain "the same" for loop detection."""
    parts = urlsplit(url)
    return parts.scheme.lower(), host_key(url), parts.path or "/", parts.query


def _robots_delay(rp: urllib.robotparser.RobotFileParser, user_agent: str) -> float | None:
    """Seconds between requests asked by robots.txt (``Crawl-delay`` or ``Request-rate``)."""
    delays = []
    crawl_delay = rp.crawl_delay(user_agent)
    if crawl_delay:
        delays.append(float(crawl_delay))
    rate = rp.request_rate(user_agent)
    if rate and rate.requests:
        delays.append(rate.seconds / rate.requests)
    return max(delays) if delays else None


def utcnow_iso() -> str:
    """UTC timestamp for the crawl DB (seconds precision)."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()
