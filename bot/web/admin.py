"""The operator's dashboard (issue 13): ``/admin`` and ``/api/admin/*`` on the web server.

What an operator otherwise learns from Discord's /stats, ``/metrics`` and the logs is gathered
on one page — what the catalogue holds (moods, genres), how listeners react (feedback per day),
which CF model and index are serving, live request rate and latency, health — plus the two
maintenance actions Discord offers (/reindex, /retrain) as background jobs with progress.

Auth. Nothing here is ever open: without ``ADMIN_TOKEN`` every route answers 403 saying to set
it. With it, a request must carry ``Authorization: Bearer <ADMIN_TOKEN>`` (scripts, curl) or
the ``mt_admin`` session cookie that ``POST /admin/login`` sets after checking the token with
:func:`hmac.compare_digest`. The cookie holds ``<issued>.<nonce>.<mac>`` where ``mac`` is an
HMAC of the issue time and a random nonce under a key derived from the token — never the token
itself — so it expires (12 h), a logout revokes it, and rotating ``ADMIN_TOKEN`` invalidates
every session at once. It is HttpOnly and SameSite=Strict (and Secure over https).

CSRF. Both defences, because SameSite alone trusts every browser to implement it: a POST that
authenticates with the cookie must send ``X-CSRF-Token`` — an HMAC of the session's nonce, from
``GET /api/admin/session`` — and a POST whose ``Origin`` header is present must name this host.
A bearer request needs neither: a browser never attaches ``Authorization`` by itself.
``POST /admin/login`` checks ``Origin`` too, and repeated wrong tokens from one address are
throttled.

The page itself (``static/admin.html`` + ``admin.js`` + ``admin.css``) is served with a strict
CSP (``script-src 'self'``, no inline script or style): the charts are SVG built by admin.js.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import math
import re
import secrets
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import web

from bot.web.session import CsrfError, check_origin
from inference.emotions import EMOTIONS, NUM_EMOTIONS

log = logging.getLogger("moodtune.web.admin")

__all__ = [
    "ADMIN_COOKIE",
    "CSP",
    "AdminAuth",
    "JobRegistry",
    "LiveSampler",
    "setup_admin",
]

ADMIN_COOKIE = "mt_admin"
CSRF_HEADER = "X-CSRF-Token"
SESSION_MAX_AGE_S = 12 * 3600
STATIC_DIR = Path(__file__).resolve().parent / "static"
#: No inline script or style anywhere on the admin pages; data: images only for the favicon.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
#: Engine operations that are a listener's request (feedback/withdraw are taps, not requests).
REQUEST_OPS = frozenset({"respond", "recommend", "recommend_mood", "more_like"})
HISTOGRAM = "moodtune_engine_seconds"
FEEDBACK_DAYS = 30
#: The feedback-per-day aggregate reads 30 days of rows; the page refreshes every 5 s, so the
#: aggregate is reused this long (the numbers move by the day, not the second).
FEEDBACK_CACHE_S = 15.0
TOP_GENRES = 15
SAMPLE_EVERY_S = 5.0
JOB_HISTORY = 50
LOGIN_FAILURES_PER_MINUTE = 5
_NO_TOKEN = ("관리자 화면이 꺼져 있어요: ADMIN_TOKEN 환경 변수를 설정하고 다시 시작하세요. "
             "(The admin dashboard is disabled: set ADMIN_TOKEN and restart.)")

_KEY_AUTH = web.AppKey("moodtune_admin_auth", object)
_KEY_STATE = web.AppKey("moodtune_admin_state", object)
#: How the request proved it is the admin's ("bearer" | "cookie") and, for a cookie, its nonce.
_REQ_VIA = web.RequestKey("moodtune_admin_via", str)
_REQ_NONCE = web.RequestKey("moodtune_admin_nonce", str)


# ---- auth --------------------------------------------------------------------------------
def _secret(value: Any) -> str | None:
    """ADMIN_TOKEN as a plain string (SecretStr or str), None when unset or blank."""
    if value is None:
        return None
    raw = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
    return raw or None


class AdminAuth:
    """Checks bearer tokens, issues and verifies session cookies and their CSRF tokens.

    Stateless on purpose (no session table): the MAC proves the server issued the cookie, the
    issue time bounds its life, and only logouts need memory (a small revocation map).
    """

    def __init__(self, token: str | None, *, max_age_s: int = SESSION_MAX_AGE_S,
                 clock: Callable[[], float] = time.time) -> None:
        self.token = token
        self.max_age_s = max_age_s
        self._clock = clock
        # Derived from the token: a new ADMIN_TOKEN ends every session issued under the old one.
        self._key = hmac.new(token.encode(), b"moodtune-admin-session-v1",
                             hashlib.sha256).digest() if token else b""
        self._revoked: dict[str, float] = {}
        self._failures: dict[str, deque[float]] = {}

    @property
    def enabled(self) -> bool:
        return self.token is not None

    def _mac(self, message: str) -> str:
        return hmac.new(self._key, message.encode(), hashlib.sha256).hexdigest()

    def check_token(self, candidate: str) -> bool:
        if not self.token or not candidate:
            return False
        return hmac.compare_digest(candidate.encode(), self.token.encode())

    def check_bearer(self, header: str | None) -> bool:
        if not header:
            return False
        scheme, _, value = header.partition(" ")
        return scheme.lower() == "bearer" and self.check_token(value.strip())

    def issue(self) -> str:
        """A new session cookie value: ``<issued>.<nonce>.<HMAC(issued.nonce)>``."""
        payload = f"{int(self._clock())}.{secrets.token_urlsafe(18)}"
        return f"{payload}.{self._mac(payload)}"

    def session(self, cookie: str | None) -> str | None:
        """The session's nonce when ``cookie`` is genuine, unexpired and not logged out."""
        if not self.enabled or not cookie:
            return None
        payload, _, mac = cookie.rpartition(".")
        issued, _, nonce = payload.partition(".")
        if not nonce or not hmac.compare_digest(mac.encode(), self._mac(payload).encode()):
            return None
        try:
            age = self._clock() - int(issued)
        except ValueError:
            return None
        if age < -60 or age > self.max_age_s or nonce in self._revoked:
            return None
        return nonce

    def csrf(self, nonce: str) -> str:
        return self._mac(f"csrf:{nonce}")

    def revoke(self, nonce: str) -> None:
        now = self._clock()
        self._revoked = {n: t for n, t in self._revoked.items() if t > now}
        self._revoked[nonce] = now + self.max_age_s

    def throttled(self, peer: str) -> bool:
        """Too many wrong tokens from ``peer`` in the last minute (guessing is slowed down)."""
        q = self._failures.get(peer)
        now = self._clock()
        while q and q[0] < now - 60:
            q.popleft()
        return bool(q) and len(q) >= LOGIN_FAILURES_PER_MINUTE

    def failed(self, peer: str) -> None:
        if len(self._failures) > 10_000:  # bounded: a spray of addresses cannot grow memory
            self._failures.clear()
        self._failures.setdefault(peer, deque(maxlen=LOGIN_FAILURES_PER_MINUTE)).append(
            self._clock())


def _json(data: Any, status: int = 200, **headers: str) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps,
                             headers={"Cache-Control": "no-store", **headers})


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, default=_default)


def _default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8",
                        headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store",
                                 "X-Content-Type-Options": "nosniff",
                                 # not no-referrer: with it browsers send "Origin: null"
                                 # on same-origin POSTs, and the origin check refuses those
                                 "Referrer-Policy": "same-origin", "X-Frame-Options": "DENY"})


def _login_page(message: str = "", status: int = 401) -> web.Response:
    note = f'<p class="login-error" role="alert">{_escape(message)}</p>' if message else ""
    return _html(f"""<!doctype html>
<html lang="ko"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>moodtune 관리자 로그인</title><link rel="icon" href="data:,">
<link rel="stylesheet" href="/admin/assets/admin.css"></head>
<body class="login"><main class="login-box">
<h1>moodtune 관리자</h1>{note}
<form method="post" action="/admin/login">
<label for="token">관리자 토큰 (ADMIN_TOKEN)</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">로그인</button></form></main></body></html>""", status)


def _disabled_page() -> web.Response:
    return _html(f"""<!doctype html>
<html lang="ko"><head><meta charset="utf-8"><title>moodtune 관리자</title>
<link rel="stylesheet" href="/admin/assets/admin.css"></head>
<body class="login"><main class="login-box"><h1>moodtune 관리자</h1>
<p>{_escape(_NO_TOKEN)}</p></main></body></html>""", 403)


def _escape(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def _same_origin(request: web.Request) -> bool:
    """The chat page's origin rule (``bot.web.session.check_origin``), which the app's
    middleware already applies to every POST, and one stricter point: ``Origin: null`` is
    refused even with ``Sec-Fetch-Site: same-origin`` (the admin page never sends it)."""
    if request.headers.get("Origin") == "null":
        return False
    try:
        check_origin(request)
    except CsrfError:
        return False
    return True


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _guarded(*, page: bool = False, post: bool = False) -> Callable[[Handler], Handler]:
    """Refuse unless the request is the admin's; for POSTs also demand CSRF proof.

    ``page``: answer a browser with the login page (401) instead of JSON.
    """

    def wrap(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            auth: AdminAuth = request.app[_KEY_AUTH]  # type: ignore[assignment]
            if not auth.enabled:
                return _disabled_page() if page else _json(
                    {"error": "admin_disabled", "message": _NO_TOKEN}, 403)
            nonce = None
            if auth.check_bearer(request.headers.get("Authorization")):
                request[_REQ_VIA] = "bearer"
            else:
                nonce = auth.session(request.cookies.get(ADMIN_COOKIE))
                if nonce is None:
                    if page:
                        return _login_page()
                    return _json({"error": "unauthorized",
                                  "message": "관리자 토큰이 필요해요 (Authorization: Bearer "
                                             "<ADMIN_TOKEN> 또는 /admin 로그인)."}, 401,
                                 **{"WWW-Authenticate": 'Bearer realm="moodtune-admin"'})
                request[_REQ_VIA] = "cookie"
                request[_REQ_NONCE] = nonce
            if post:
                if not _same_origin(request):
                    return _json({"error": "bad_origin",
                                  "message": "다른 사이트에서 온 요청은 받지 않아요."}, 403)
                if nonce is not None and not hmac.compare_digest(
                        request.headers.get(CSRF_HEADER, "").encode(), auth.csrf(nonce).encode()):
                    return _json({"error": "csrf",
                                  "message": f"{CSRF_HEADER} 헤더가 없거나 맞지 않아요 "
                                             "(GET /api/admin/session 에서 받으세요)."}, 403)
            return await handler(request)

        guarded.__doc__ = handler.__doc__
        guarded.__name__ = handler.__name__
        return guarded

    return wrap


# ---- background jobs ----------------------------------------------------------------------
@dataclass
class Job:
    """One /reindex or /retrain run, as the page polls it."""

    id: str
    kind: str
    state: str = "running"
    started: float = field(default_factory=time.time)
    finished: float | None = None
    result: Any = None
    error: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "kind": self.kind, "state": self.state,
                               "started": self.started, "finished": self.finished,
                               "seconds": round((self.finished or time.time()) - self.started, 3)}
        if self.state == "done":
            out["result"] = self.result
        elif self.state == "failed":
            out["error"] = self.error
        return out


class JobRegistry:
    """Runs maintenance jobs as asyncio tasks, one per kind at a time, and remembers the last few.

    The heavy work already happens off the event loop (the index build in a thread, CF training
    in a subprocess), so a running job never delays a chat answer; this only tracks it.
    """

    def __init__(self, actions: dict[str, Callable[[], Awaitable[Any]]]) -> None:
        self.actions = actions
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._running: dict[str, Job] = {}

    def running(self, kind: str) -> Job | None:
        return self._running.get(kind)

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def latest(self, kind: str) -> Job | None:
        return next((j for j in reversed(self._jobs.values()) if j.kind == kind), None)

    def start(self, kind: str) -> Job | None:
        """Start a ``kind`` job; None when one of that kind is still running."""
        if kind in self._running:
            return None
        job = Job(id=secrets.token_hex(8), kind=kind)
        self._running[kind] = job
        self._jobs[job.id] = job
        while len(self._jobs) > JOB_HISTORY:
            oldest = next(iter(self._jobs))
            if self._jobs[oldest].state == "running":
                break
            del self._jobs[oldest]
        job.task = asyncio.get_running_loop().create_task(self._run(job),
                                                          name=f"moodtune-admin-{kind}")
        return job

    async def _run(self, job: Job) -> None:
        try:
            job.result = await self.actions[job.kind]()
            job.state = "done"
            log.info("admin %s job %s done: %s", job.kind, job.id, job.result)
        except asyncio.CancelledError:
            job.state, job.error = "failed", "cancelled (the server is shutting down)"
            raise
        except Exception as exc:
            from bot.engine import EngineError

            job.state = "failed"
            job.error = str(exc) if isinstance(exc, EngineError) else \
                f"{type(exc).__name__}: {exc}"
            log.warning("admin %s job %s failed: %s", job.kind, job.id, job.error,
                        exc_info=not isinstance(exc, EngineError))
        finally:
            job.finished = time.time()
            self._running.pop(job.kind, None)

    async def close(self) -> None:
        for job in list(self._running.values()):
            if job.task is not None:
                job.task.cancel()
                with contextlib.suppress(BaseException):
                    await job.task


# ---- live request rate and latency ----------------------------------------------------------
_LINE = re.compile(r"^(\w+)_(bucket|count)\{(.*)\} (\S+)$")
_LABELS = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def _histogram_rows(metrics: Any) -> tuple[tuple[float, ...], dict[tuple[str, str], list[float]]]:
    """(bucket bounds, {(channel, op): cumulative bucket counts}) of the engine histogram.

    Read through the histogram's public Prometheus rendering, so the dashboard sees exactly
    what a scraper sees and needs no access to the registry's internals.
    """
    hist = metrics.get(HISTOGRAM) if metrics is not None else None
    if hist is None:
        return (), {}
    rows: dict[tuple[str, str], list[float]] = {}
    for line in hist.render():
        m = _LINE.match(line)
        if not m or m.group(1) != HISTOGRAM or m.group(2) != "bucket":
            continue
        labels = dict(_LABELS.findall(m.group(3)))
        rows.setdefault((labels.get("channel", ""), labels.get("op", "")), []).append(
            float(m.group(4)))
    return tuple(hist.buckets), rows


def _quantile(bounds: tuple[float, ...], cumulative: list[float], q: float) -> float | None:
    """Upper bound of the bucket holding the q-quantile (None: no data; inf → None too)."""
    if not cumulative or cumulative[-1] <= 0:
        return None
    target = q * cumulative[-1]
    for upper, seen in zip(bounds, cumulative, strict=False):
        if seen >= target:
            return None if math.isinf(upper) else upper
    return None


@dataclass(frozen=True, slots=True)
class _Sample:
    t: float  # monotonic seconds
    requests: list[float]  # cumulative buckets, request ops summed over channels
    calls: float  # every engine call (feedback included)


class LiveSampler:
    """A small ring of (time, cumulative counts) samples: requests and latency *now*.

    The histogram counts since start; the difference between the newest sample and the one a
    minute older is the last minute's traffic — its count is the request rate, its buckets the
    recent p50/p99. Samples are taken by a background task every 5 s and on each page call.
    """

    def __init__(self, metrics: Any, *, window_s: float = 60.0, keep: int = 240,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.metrics = metrics
        self.window_s = window_s
        self._clock = clock
        self._ring: deque[_Sample] = deque(maxlen=keep)

    def sample(self) -> _Sample:
        bounds, rows = _histogram_rows(self.metrics)
        req = [0.0] * len(bounds)
        calls = 0.0
        for (_, op), cum in rows.items():
            calls += cum[-1] if cum else 0.0
            if op in REQUEST_OPS:
                req = [a + b for a, b in zip(req, cum, strict=False)]
        s = _Sample(self._clock(), req, calls)
        self._ring.append(s)
        return s

    def snapshot(self) -> dict[str, Any]:
        now = self.sample()
        older = [s for s in self._ring if s.t <= now.t - self.window_s]
        base = older[-1] if older else self._ring[0]
        span = now.t - base.t
        delta = [a - b for a, b in zip(now.requests, base.requests, strict=False)]
        recent = delta[-1] if delta else 0.0
        bounds, rows = _histogram_rows(self.metrics)
        by_series = []
        hist = self.metrics.get(HISTOGRAM) if self.metrics is not None else None
        for (channel, op), cum in sorted(rows.items()):
            by_series.append({"channel": channel, "op": op, "count": int(cum[-1]) if cum else 0,
                              "p50_s": _finite(hist.quantile(0.5, channel=channel, op=op)),
                              "p99_s": _finite(hist.quantile(0.99, channel=channel, op=op))})
        total = now.requests[-1] if now.requests else 0.0
        return {
            "window_s": round(span, 1),
            "requests_last_minute": int(recent),
            "requests_per_s": round(recent / span, 3) if span > 0 else 0.0,
            "requests_total": int(total),
            "engine_calls_total": int(now.calls),
            "p50_s": _quantile(bounds, delta, 0.5),
            "p99_s": _quantile(bounds, delta, 0.99),
            "lifetime_p50_s": _quantile(bounds, now.requests, 0.5),
            "lifetime_p99_s": _quantile(bounds, now.requests, 0.99),
            "by_series": by_series,
            "note": "latency is a bucket upper bound (the histogram's resolution); null = no "
                    "requests in the window",
        }


def _finite(x: float | None) -> float | None:
    return None if x is None or math.isinf(x) else x


# ---- the overview's parts --------------------------------------------------------------------
def _catalogue(index: Any) -> dict[str, Any]:
    """Songs leading each mood (argmax of their vector) and per genre; CPU, run in a thread."""
    vectors = np.asarray(index.vectors)
    n = len(index)
    counts = np.bincount(np.argmax(vectors, axis=1), minlength=NUM_EMOTIONS) if len(vectors) \
        else np.zeros(NUM_EMOTIONS, dtype=np.int64)
    moods = [{"mood": e.ko, "en": e.en, "emoji": e.emoji, "songs": int(counts[e.index])}
             for e in EMOTIONS]
    try:
        genres = Counter(g.strip() or "미분류" for g in index.column("genre"))
    except (KeyError, AttributeError):
        genres = Counter()
    top = genres.most_common(TOP_GENRES)
    rest = sum(genres.values()) - sum(c for _, c in top)
    rows = [{"genre": g, "songs": c} for g, c in top]
    if rest:
        rows.append({"genre": "기타", "songs": rest, "other": True})
    return {"songs": n, "moods": moods, "genres": rows, "distinct_genres": len(genres)}


def _index_info(index: Any, classifier: Any) -> dict[str, Any]:
    info = getattr(index, "info", {}) or {}
    source = info.get("source") or {}
    model = getattr(classifier, "fingerprint", None)
    fp = getattr(index, "fingerprint", None)
    return {"songs": len(index), "fingerprint": fp, "model_fingerprint": model,
            "model_matches": fp is None or model is None or fp == model,
            "catalog": source.get("catalog"), "catalog_sha256": source.get("catalog_sha256"),
            "created_at": info.get("created_at"), "n_trees": info.get("n_trees"),
            "build_seconds": info.get("build_seconds")}


def _cf_info(cf: Any, path: Path | None) -> dict[str, Any]:
    if cf is None:
        return {"loaded": False, "path": str(path) if path else None}
    info = dict(getattr(cf, "info", None) or {})
    data = info.get("data") or {}
    return {"loaded": True, "path": str(path) if path else None,
            "model_id": getattr(cf, "model_id", info.get("model_id")),
            "users": getattr(cf, "n_users", info.get("n_users")),
            "songs": getattr(cf, "n_items", info.get("n_items")),
            "factors": info.get("factors"), "trained_at": info.get("trained_at"),
            "events": info.get("n_events"),
            "data": {k: v for k, v in data.items() if k != "source"},
            "metrics": info.get("metrics"), "evaluation": info.get("evaluation")}


def _feedback_series(events: list[Any], now: float, days: int) -> dict[str, Any]:
    """Rows per local day and signal for the last ``days`` days (today last)."""
    from bot.feedback import Signal

    offset = datetime.now().astimezone().utcoffset() or timedelta(0)
    off_s = offset.total_seconds()
    today = int((now + off_s) // 86400)
    first = today - days + 1
    signals = [s.value for s in Signal]
    series = {s: [0] * days for s in signals}
    scopes: Counter[str] = Counter()
    for ev in events:
        d = int((ev.created_at + off_s) // 86400) - first
        if 0 <= d < days:
            series.setdefault(ev.signal, [0] * days)[d] += 1
            scopes[ev.scope] += 1
    labels = [(datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=first + i)).date().isoformat()
              for i in range(days)]
    sign = "-" if off_s < 0 else "+"
    hours, rem = divmod(abs(int(off_s)), 3600)
    return {"days": labels, "signals": list(series), "series": series,
            "totals": {s: sum(v) for s, v in series.items()}, "total": sum(scopes.values()),
            "by_scope": dict(scopes), "utc_offset": f"{sign}{hours:02d}:{rem // 60:02d}",
            "note": "rows: a reaction on a whole answer counts once per track it covers"}


class _Dashboard:
    """What the routes share: the engine, the job registry, the sampler and small caches."""

    def __init__(self, recommender: Any, settings: Any) -> None:
        self.rec = recommender
        self.settings = settings
        self.jobs = JobRegistry({"reindex": recommender.reload_index,
                                 "retrain": recommender.retrain_cf})
        self.live = LiveSampler(getattr(recommender, "metrics", None))
        self._catalogue: tuple[tuple[Any, ...], dict[str, Any]] | None = None
        self._feedback: tuple[float, dict[str, Any] | None] | None = None
        self._sampler: asyncio.Task[None] | None = None

    async def catalogue(self) -> dict[str, Any]:
        index = self.rec.index
        info = getattr(index, "info", {}) or {}
        key = (id(index), len(index), getattr(index, "fingerprint", None), info.get("created_at"))
        if self._catalogue is None or self._catalogue[0] != key:
            self._catalogue = (key, await asyncio.to_thread(_catalogue, index))
        return self._catalogue[1]

    async def feedback(self) -> dict[str, Any] | None:
        store = getattr(self.rec, "store", None)
        if store is None:
            return None
        now = time.time()
        if self._feedback is not None and now - self._feedback[0] < FEEDBACK_CACHE_S:
            return self._feedback[1]
        try:
            events = await store.feedback_events(since=now - FEEDBACK_DAYS * 86400)
            data = await asyncio.to_thread(_feedback_series, events, now, FEEDBACK_DAYS)
        except Exception as exc:
            log.warning("admin: feedback not readable: %s", exc)
            data = {"error": f"{type(exc).__name__}: {exc}"}
        self._feedback = (now, data)
        return data

    async def store_stats(self) -> dict[str, Any] | None:
        if getattr(self.rec, "store", None) is None:
            return None
        try:
            return await self.rec.store.stats()  # the engine's own figures are in engine()
        except Exception as exc:
            return {"error": f"{type(exc).__name__}: {exc}"}

    def engine(self) -> dict[str, Any]:
        return {"pending": getattr(self.rec, "pending", None),
                "max_pending": getattr(self.rec.settings, "engine_max_pending", None),
                "users_in_memory": len(self.rec.users) if hasattr(self.rec, "users") else None}

    async def overview(self) -> dict[str, Any]:
        settings = self.rec.settings
        health = await self.rec.health()
        return {
            "generated_at": time.time(),
            "catalogue": await self.catalogue(),
            "feedback": await self.feedback(),
            "cf": _cf_info(self.rec.cf, getattr(settings, "resolved_cf_path", None)),
            "index": _index_info(self.rec.index, self.rec.classifier),
            "live": self.live.snapshot(),
            "health": health,
            "engine": self.engine(),
            "store": await self.store_stats(),
            "jobs": {k: (j.as_dict() if (j := self.jobs.latest(k)) else None)
                     for k in ("reindex", "retrain")},
        }

    async def _sample_forever(self) -> None:
        while True:
            try:
                self.live.sample()
            except Exception:  # a metrics hiccup must not end the sampler
                log.debug("admin live sample failed", exc_info=True)
            await asyncio.sleep(SAMPLE_EVERY_S)

    async def on_startup(self, app: web.Application) -> None:
        self._sampler = asyncio.get_running_loop().create_task(
            self._sample_forever(), name="moodtune-admin-sampler")

    async def on_cleanup(self, app: web.Application) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(BaseException):
                await self._sampler
        await self.jobs.close()


def _dash(request: web.Request) -> _Dashboard:
    return request.app[_KEY_STATE]  # type: ignore[return-value]


# ---- routes ----------------------------------------------------------------------------------
@_guarded(page=True)
async def admin_page(request: web.Request) -> web.StreamResponse:
    """The dashboard (static HTML; everything on it is drawn by admin.js from the API)."""
    return _html((STATIC_DIR / "admin.html").read_text(encoding="utf-8"))


async def admin_slash(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/admin")


def _asset(name: str, content_type: str) -> Handler:
    async def asset(request: web.Request) -> web.StreamResponse:
        return web.Response(body=(STATIC_DIR / name).read_bytes(), content_type=content_type,
                            charset="utf-8",
                            headers={"Cache-Control": "no-cache",
                                     "X-Content-Type-Options": "nosniff"})

    asset.__doc__ = f"/admin/assets/{name}"
    return asset


async def login_page(request: web.Request) -> web.StreamResponse:
    auth: AdminAuth = request.app[_KEY_AUTH]  # type: ignore[assignment]
    if not auth.enabled:
        return _disabled_page()
    if auth.session(request.cookies.get(ADMIN_COOKIE)):
        raise web.HTTPSeeOther("/admin")
    return _login_page(status=200)


def _peer(request: web.Request) -> str:
    return request.remote or "?"


async def login(request: web.Request) -> web.StreamResponse:
    """Token (form field or JSON ``{"token": ...}``) in, HttpOnly SameSite=Strict cookie out."""
    auth: AdminAuth = request.app[_KEY_AUTH]  # type: ignore[assignment]
    wants_json = request.content_type == "application/json"
    if not auth.enabled:
        return _json({"error": "admin_disabled", "message": _NO_TOKEN}, 403) if wants_json \
            else _disabled_page()
    if not _same_origin(request):
        return _json({"error": "bad_origin", "message": "다른 사이트에서 온 로그인은 받지 않아요."},
                     403)
    if auth.throttled(_peer(request)):
        return _json({"error": "throttled", "message": "잠시 후 다시 시도하세요."}, 429,
                     **{"Retry-After": "60"})
    token = ""
    try:
        if wants_json:
            body = await request.json()
            token = str(body.get("token", "")) if isinstance(body, dict) else ""
        else:
            token = str((await request.post()).get("token", ""))
    except (ValueError, UnicodeDecodeError):
        token = ""
    if not auth.check_token(token.strip()):
        auth.failed(_peer(request))
        log.warning("admin login refused from %s", _peer(request))
        if wants_json:
            return _json({"error": "unauthorized", "message": "토큰이 맞지 않아요."}, 401)
        return _login_page("토큰이 맞지 않아요.")
    cookie = auth.issue()
    nonce = auth.session(cookie) or ""
    if wants_json:
        resp: web.StreamResponse = _json({"ok": True, "csrf": auth.csrf(nonce),
                                          "expires_in": auth.max_age_s})
    else:
        resp = web.Response(status=303, headers={"Location": "/admin",
                                                 "Cache-Control": "no-store"})
    secure = request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"
    resp.set_cookie(ADMIN_COOKIE, cookie, max_age=auth.max_age_s, path="/", httponly=True,
                    samesite="Strict", secure=secure)
    log.info("admin login from %s", _peer(request))
    return resp


@_guarded(post=True)
async def logout(request: web.Request) -> web.StreamResponse:
    auth: AdminAuth = request.app[_KEY_AUTH]  # type: ignore[assignment]
    nonce = request.get(_REQ_NONCE)
    if nonce:
        auth.revoke(nonce)
    resp = _json({"ok": True})
    resp.del_cookie(ADMIN_COOKIE, path="/")
    return resp


@_guarded()
async def session(request: web.Request) -> web.StreamResponse:
    """Who is asking and, for a cookie session, the CSRF token its POSTs must send."""
    auth: AdminAuth = request.app[_KEY_AUTH]  # type: ignore[assignment]
    nonce = request.get(_REQ_NONCE)
    return _json({"auth": request[_REQ_VIA], "csrf": auth.csrf(nonce) if nonce else None,
                  "csrf_header": CSRF_HEADER})


@_guarded()
async def overview(request: web.Request) -> web.StreamResponse:
    return _json(await _dash(request).overview())


@_guarded()
async def live(request: web.Request) -> web.StreamResponse:
    """The 5-second refresh: rate, latency, pending, health — cheap, no catalogue or feedback."""
    dash = _dash(request)
    return _json({"generated_at": time.time(), "live": dash.live.snapshot(),
                  "engine": dash.engine(), "health": await dash.rec.health()})


def _starter(kind: str) -> Handler:
    @_guarded(post=True)
    async def start(request: web.Request) -> web.StreamResponse:
        jobs = _dash(request).jobs
        job = jobs.start(kind)
        if job is None:
            running = jobs.running(kind)
            return _json({"error": "busy", "job": running.id if running else None,
                          "message": "이미 실행 중인 작업이 있어요. 끝난 뒤 다시 시도하세요."}, 409)
        log.info("admin %s job %s started (%s)", kind, job.id, request[_REQ_VIA])
        return _json({"job": job.id, "kind": kind, "state": job.state}, 202,
                     Location=f"/api/admin/jobs/{job.id}")

    start.__doc__ = f"Start a {kind} job in the background; 202 with its id, 409 if one runs."
    start.__name__ = f"start_{kind}"
    return start


@_guarded()
async def job_status(request: web.Request) -> web.StreamResponse:
    job = _dash(request).jobs.get(request.match_info["job_id"])
    if job is None:
        return _json({"error": "not_found", "message": "그런 작업은 없어요."}, 404)
    return _json(job.as_dict())


@_guarded()
async def job_list(request: web.Request) -> web.StreamResponse:
    jobs = _dash(request).jobs
    return _json({"jobs": [j.as_dict() for j in reversed(jobs._jobs.values())]})


@_guarded()
async def not_found_api(request: web.Request) -> web.StreamResponse:
    return _json({"error": "not_found", "message": "없는 관리자 API예요."}, 404)


@_guarded(page=True)
async def not_found_page(request: web.Request) -> web.StreamResponse:
    raise web.HTTPNotFound(text="not found")


def setup_admin(app: web.Application, recommender: Any, settings: Any) -> None:
    """Add the admin dashboard and its API to ``app`` (call before the app starts).

    ``settings.admin_token`` (``ADMIN_TOKEN``) turns it on; without it every admin route
    answers 403 with how to enable it, so a deployment that never set a token is never open.
    """
    auth = AdminAuth(_secret(getattr(settings, "admin_token", None)))
    dash = _Dashboard(recommender, settings)
    app[_KEY_AUTH] = auth
    app[_KEY_STATE] = dash
    app.on_startup.append(dash.on_startup)
    app.on_cleanup.append(dash.on_cleanup)
    r = app.router
    r.add_get("/admin", admin_page, name="admin")
    r.add_get("/admin/", admin_slash)
    # The stylesheet is public (the login page needs it; it holds nothing); the script is not.
    r.add_get("/admin/assets/admin.css", _asset("admin.css", "text/css"))
    r.add_get("/admin/assets/admin.js",
              _guarded(page=True)(_asset("admin.js", "application/javascript")))
    r.add_get("/admin/login", login_page)
    r.add_post("/admin/login", login)
    r.add_post("/admin/logout", logout)
    r.add_get("/api/admin/session", session)
    r.add_get("/api/admin/overview", overview)
    r.add_get("/api/admin/live", live)
    r.add_post("/api/admin/reindex", _starter("reindex"))
    r.add_post("/api/admin/retrain", _starter("retrain"))
    r.add_get("/api/admin/jobs", job_list)
    r.add_get("/api/admin/jobs/{job_id}", job_status)
    r.add_route("*", "/api/admin/{tail:.*}", not_found_api)
    r.add_route("*", "/admin/{tail:.*}", not_found_page)
