"""The admin dashboard (issue 13): auth, CSRF, the overview's numbers, background jobs.

Runs ``setup_admin`` on a bare ``web.Application`` with an engine on the synthetic catalogue,
so it tests the dashboard alone, whatever the server factory adds around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from bot.engine import Recommender
from bot.web.admin import ADMIN_COOKIE, AdminAuth, LiveSampler, setup_admin
from tests.fakes import KeywordClassifier

TOKEN = "test-admin-token-7f3a9c2e"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def engine(settings):
    rec = await Recommender.open(settings, classifier=KeywordClassifier())
    yield rec
    await rec.close()


@contextlib.asynccontextmanager
async def admin_client(engine: Recommender, token: str | None = TOKEN
                       ) -> AsyncIterator[TestClient]:
    """A test client on an app holding only the admin routes (ADMIN_TOKEN = ``token``)."""
    app = web.Application()
    setup_admin(app, engine, SimpleNamespace(admin_token=SecretStr(token) if token else None))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


async def login(client: TestClient) -> str:
    """Log in with the form; return the CSRF token of the new session."""
    resp = await client.post("/admin/login", data={"token": TOKEN}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/admin"
    resp = await client.get("/api/admin/session")
    assert resp.status == 200
    body = await resp.json()
    assert body["auth"] == "cookie" and body["csrf"]
    return body["csrf"]


async def wait_job(client: TestClient, job_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        resp = await client.get(f"/api/admin/jobs/{job_id}", headers=BEARER)
        assert resp.status == 200
        job = await resp.json()
        if job["state"] != "running":
            return job
        assert time.monotonic() < deadline, f"job {job_id} still running"
        await asyncio.sleep(0.05)


# ---- auth ----------------------------------------------------------------------------------
async def test_everything_is_refused_without_the_token(engine):
    async with admin_client(engine) as client:
        for path in ("/api/admin/overview", "/api/admin/live", "/api/admin/session",
                     "/api/admin/jobs/abc", "/api/admin/nothing-here"):
            resp = await client.get(path)
            assert resp.status == 401, path
            assert (await resp.json())["error"] == "unauthorized"
            assert "Bearer" in resp.headers["WWW-Authenticate"]
        for path in ("/api/admin/reindex", "/api/admin/retrain", "/admin/logout"):
            resp = await client.post(path)
            assert resp.status == 401, path
        page = await client.get("/admin")
        assert page.status == 401
        html = await page.text()
        assert '<form method="post" action="/admin/login">' in html
        assert "관리자 토큰" in html and "<script" not in html
        assert (await client.get("/admin/assets/admin.js")).status == 401
        assert (await client.get("/admin/assets/admin.css")).status == 200  # login page style
        assert engine.index is not None  # nothing was started


async def test_a_wrong_token_is_refused_and_guessing_is_throttled(engine):
    async with admin_client(engine) as client:
        for header in (f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", TOKEN, "Basic abc", "Bearer "):
            resp = await client.get("/api/admin/overview", headers={"Authorization": header})
            assert resp.status == 401, header
        resp = await client.post("/admin/login", data={"token": "nope"}, allow_redirects=False)
        assert resp.status == 401 and "맞지 않아요" in await resp.text()
        assert ADMIN_COOKIE not in resp.cookies
        resp = await client.post("/admin/login", json={"token": "nope"})
        assert resp.status == 401
        for _ in range(3):
            await client.post("/admin/login", data={"token": "nope"})
        resp = await client.post("/admin/login", data={"token": TOKEN}, allow_redirects=False)
        assert resp.status == 429  # five failures in a minute: even the right token waits


async def test_unset_token_means_disabled_never_open(engine):
    async with admin_client(engine, token=None) as client:
        page = await client.get("/admin")
        assert page.status == 403 and "ADMIN_TOKEN" in await page.text()
        resp = await client.get("/api/admin/overview", headers={"Authorization": "Bearer "})
        assert resp.status == 403
        assert "ADMIN_TOKEN" in (await resp.json())["message"]
        resp = await client.post("/api/admin/reindex")
        assert resp.status == 403
        resp = await client.post("/admin/login", data={"token": ""}, allow_redirects=False)
        assert resp.status == 403 and ADMIN_COOKIE not in resp.cookies


async def test_login_cookie_is_an_hmac_session_and_pages_are_served_with_a_strict_csp(engine):
    async with admin_client(engine) as client:
        resp = await client.post("/admin/login", data={"token": TOKEN}, allow_redirects=False)
        assert resp.status == 303
        set_cookie = resp.headers["Set-Cookie"]
        assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie
        value = resp.cookies[ADMIN_COOKIE].value
        assert TOKEN not in value and re.fullmatch(r"\d+\.[\w-]+\.[0-9a-f]{64}", value)
        page = await client.get("/admin")
        assert page.status == 200
        csp = page.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        html = await page.text()
        assert 'src="/admin/assets/admin.js"' in html
        assert not re.search(r"<script(?![^>]*\bsrc=)", html)  # no inline script
        assert "style=" not in html and "<style" not in html  # no inline style
        assert (await client.get("/admin/assets/admin.js")).status == 200
        assert (await client.get("/api/admin/overview")).status == 200
        # The login page redirects a logged-in admin to the dashboard.
        resp = await client.get("/admin/login", allow_redirects=False)
        assert resp.status == 303


async def test_json_login_and_a_tampered_or_expired_cookie(engine):
    async with admin_client(engine) as client:
        resp = await client.post("/admin/login", json={"token": TOKEN})
        assert resp.status == 200
        body = await resp.json()
        assert body["ok"] and body["csrf"]
        cookie = resp.cookies[ADMIN_COOKIE].value
    async with admin_client(engine) as client:
        issued, nonce, mac = cookie.split(".")
        for bad in (f"{issued}.{nonce}.{'0' * 64}", f"{int(issued) + 1}.{nonce}.{mac}", "x", ""):
            client.session.cookie_jar.clear()
            client.session.cookie_jar.update_cookies({ADMIN_COOKIE: bad})
            assert (await client.get("/api/admin/overview")).status == 401, bad
    auth = AdminAuth(TOKEN, clock=lambda: 1_000_000.0)
    old = auth.issue()
    assert auth.session(old)
    later = AdminAuth(TOKEN, clock=lambda: 1_000_000.0 + auth.max_age_s + 1)
    assert later.session(old) is None  # expired
    assert AdminAuth("another-token-entirely").session(old) is None  # rotated token


async def test_posts_need_csrf_with_a_cookie_and_a_same_origin(engine):
    async with admin_client(engine) as client:
        csrf = await login(client)
        resp = await client.post("/api/admin/reindex")
        assert resp.status == 403 and (await resp.json())["error"] == "csrf"
        resp = await client.post("/api/admin/reindex", headers={"X-CSRF-Token": "0" * 64})
        assert resp.status == 403
        resp = await client.post("/api/admin/reindex", headers={
            "X-CSRF-Token": csrf, "Origin": "https://evil.example"})
        assert resp.status == 403 and (await resp.json())["error"] == "bad_origin"
        host = f"http://{client.server.host}:{client.server.port}"
        resp = await client.post("/api/admin/reindex", headers={"X-CSRF-Token": csrf,
                                                                "Origin": host})
        assert resp.status == 202
        await wait_job(client, (await resp.json())["job"])
        # A bearer request needs no CSRF token (a browser never adds Authorization by itself).
        client.session.cookie_jar.clear()
        resp = await client.post("/api/admin/reindex", headers=BEARER)
        assert resp.status == 202
        await wait_job(client, (await resp.json())["job"])


async def test_logout_revokes_the_session(engine):
    async with admin_client(engine) as client:
        csrf = await login(client)
        cookie = next(c.value for c in client.session.cookie_jar if c.key == ADMIN_COOKIE)
        resp = await client.post("/admin/logout", headers={"X-CSRF-Token": csrf})
        assert resp.status == 200
        client.session.cookie_jar.update_cookies({ADMIN_COOKIE: cookie})  # replay the old one
        assert (await client.get("/api/admin/overview")).status == 401


# ---- overview -----------------------------------------------------------------------------
async def test_overview_has_every_section_with_sane_numbers(engine):
    rec = await engine.recommend("listener", "오늘 너무 우울해")
    assert await engine.feedback(rec.rec_id, rec.tracks[0].song_id, "listener", "like")
    assert await engine.feedback(rec.rec_id, rec.tracks[1].song_id, "listener", "skip")
    async with admin_client(engine) as client:
        for i in range(3):  # after the dashboard started watching: the last minute's traffic
            await engine.respond(f"chatter{i}", "신나는 노래 추천해줘")
        resp = await client.get("/api/admin/overview", headers=BEARER)
        assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
        o = await resp.json()
    assert {"catalogue", "feedback", "cf", "index", "live", "health", "engine", "store",
            "jobs"} <= o.keys()
    cat = o["catalogue"]
    n = len(engine.index)
    assert cat["songs"] == n == 300
    assert [m["mood"] for m in cat["moods"]] == ["분노", "긴장", "슬픔", "평화", "기쁨", "중립"]
    assert sum(m["songs"] for m in cat["moods"]) == n
    assert sum(g["songs"] for g in cat["genres"]) == n and cat["distinct_genres"] >= 1
    fb = o["feedback"]
    assert len(fb["days"]) == 30 and all(len(v) == 30 for v in fb["series"].values())
    assert fb["series"]["like"][-1] == 1 and fb["series"]["skip"][-1] == 1  # today, last
    assert fb["total"] == 2 and fb["totals"]["dislike"] == 0
    assert o["cf"] == {"loaded": False, "path": str(engine.settings.resolved_cf_path)}
    ix = o["index"]
    assert ix["songs"] == n and ix["fingerprint"] == engine.index.fingerprint
    assert ix["model_fingerprint"] == engine.classifier.fingerprint and ix["model_matches"]
    assert ix["catalog_sha256"] == engine.index.info["source"]["catalog_sha256"]
    live = o["live"]
    assert live["requests_total"] == 4  # one recommend + three respond
    assert live["requests_last_minute"] == 3 and live["p50_s"] is not None
    assert live["p99_s"] >= live["p50_s"]
    assert any(s["op"] == "respond" and s["count"] == 3 for s in live["by_series"])
    assert o["health"]["status"] == "ok" and o["health"]["songs"] == n
    assert o["engine"]["pending"] == 0 and o["engine"]["users_in_memory"] >= 4
    assert o["store"]["users"] >= 1
    assert o["jobs"] == {"reindex": None, "retrain": None}


async def test_live_rate_counts_only_the_last_minute():
    """The ring: requests before the window are not today's rate; latency is the window's."""
    from bot.observability import Metrics

    now = [0.0]
    metrics = Metrics()
    hist = metrics.histogram("moodtune_engine_seconds", "x", ["channel", "op"])
    sampler = LiveSampler(metrics, clock=lambda: now[0])
    for _ in range(50):
        hist.observe(2.0, channel="kakao", op="respond")  # slow, long ago
    sampler.sample()
    now[0] = 30.0
    sampler.sample()
    now[0] = 70.0
    for _ in range(12):
        hist.observe(0.02, channel="kakao", op="respond")
    hist.observe(0.02, channel="kakao", op="feedback")  # a tap, not a request
    snap = sampler.snapshot()
    # The window runs from the newest sample at least a minute old (t=0 here: t=30 is younger).
    assert snap["requests_last_minute"] == 12 and snap["window_s"] == 70.0
    assert snap["requests_per_s"] == pytest.approx(12 / 70, abs=1e-3)
    assert snap["p50_s"] == 0.025 and snap["p99_s"] == 0.025  # only the recent, fast ones
    assert snap["lifetime_p50_s"] == 2.5
    assert snap["requests_total"] == 62 and snap["engine_calls_total"] == 63


# ---- jobs ---------------------------------------------------------------------------------
async def test_reindex_job_swaps_the_index_while_chat_keeps_answering(engine):
    old = engine.index
    async with admin_client(engine) as client:
        resp = await client.post("/api/admin/reindex", headers=BEARER)
        assert resp.status == 202
        body = await resp.json()
        assert body["state"] == "running" and resp.headers["Location"].endswith(body["job"])
        job_id = body["job"]
        first = await (await client.get(f"/api/admin/jobs/{job_id}", headers=BEARER)).json()
        assert first["state"] in {"running", "done"} and first["kind"] == "reindex"
        replies = []

        async def keep_chatting() -> None:  # chat goes on while the index is rebuilt
            while True:
                replies.append(await engine.respond("someone", "신나는 노래 틀어줘"))
                await asyncio.sleep(0)

        chat = asyncio.create_task(keep_chatting())
        try:
            job = await wait_job(client, job_id)
        finally:
            chat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await chat
        assert replies and all(r.kind == "recommend" and len(r.tracks) == 5 for r in replies)
        assert job["state"] == "done" and job["finished"] >= job["started"]
        assert job["result"]["songs"] == 300 and job["result"]["previous"] == 300
        assert engine.index is not old  # swapped
        o = await (await client.get("/api/admin/overview", headers=BEARER)).json()
        assert o["jobs"]["reindex"]["id"] == job_id and o["catalogue"]["songs"] == 300
        listing = await (await client.get("/api/admin/jobs", headers=BEARER)).json()
        assert [j["id"] for j in listing["jobs"]] == [job_id]
        assert (await client.get("/api/admin/jobs/nope", headers=BEARER)).status == 404


async def test_retrain_without_feedback_fails_with_the_reason_and_one_job_per_kind(engine):
    async with admin_client(engine) as client:
        resp = await client.post("/api/admin/retrain", headers=BEARER)
        assert resp.status == 202
        job_id = (await resp.json())["job"]
        again = await client.post("/api/admin/retrain", headers=BEARER)
        assert again.status == 409
        busy = await again.json()
        assert busy["job"] == job_id and "실행 중" in busy["message"]
        other = await client.post("/api/admin/reindex", headers=BEARER)  # another kind may run
        assert other.status == 202
        job = await wait_job(client, job_id)
        assert job["state"] == "failed" and "no feedback events" in job["error"]
        assert "result" not in job and engine.cf is None
        assert (await wait_job(client, (await other.json())["job"]))["state"] == "done"
        resp = await client.post("/api/admin/retrain", headers=BEARER)  # free again
        assert resp.status == 202
        await wait_job(client, (await resp.json())["job"])


async def test_a_failed_reindex_reports_the_error_and_keeps_the_old_index(engine):
    old = engine.index
    engine.settings.catalog_path = engine.settings.data_dir / "missing.jsonl"
    async with admin_client(engine) as client:
        resp = await client.post("/api/admin/reindex", headers=BEARER)
        job = await wait_job(client, (await resp.json())["job"])
    assert job["state"] == "failed" and "missing.jsonl" in job["error"]
    assert engine.index is old
