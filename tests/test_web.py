"""The web server (``bot.server.create_app``): page, security headers, sessions and CSRF, the
JSON API, the Kakao skill and health on the same app.

aiohttp's test client against the real engine on the keyword classifier and the synthetic
300-song catalogue, with a real SQLite store; no browser.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.engine import Recommender
from bot.kakao import SKILL_PATH
from bot.kakao.app import runner_options
from bot.server import CSP, create_app
from bot.store import Store
from bot.web.session import COOKIE_NAME, CSRF_HEADER
from inference.keyword import KeywordClassifier
from tests.fakes import make_settings
from tests.kakao_support import LOCAL_CALLBACKS, kakao_payload, serving, texts

TRACK_FIELDS = {"position", "title", "artist", "genre", "link", "reason", "facets"}


async def _client(tmp_path: Path, index: Any, **overrides: Any
                  ) -> tuple[TestClient, Recommender]:
    settings = make_settings(tmp_path, **{"kakao_enabled": True, **LOCAL_CALLBACKS, **overrides})
    store = await Store.open(tmp_path / "moodtune.sqlite3")
    engine = Recommender(settings, KeywordClassifier(), index, store)
    server = TestServer(create_app(engine, settings), host="127.0.0.1")
    await server.start_server(**runner_options(settings))
    client = TestClient(server)
    await client.start_server()
    return client, engine


@pytest.fixture
async def web(tmp_path, index) -> AsyncIterator[tuple[TestClient, Recommender]]:
    client, engine = await _client(tmp_path, index)
    try:
        yield client, engine
    finally:
        await client.close()
        await engine.close()


async def _csrf(client: TestClient) -> str:
    resp = await client.get("/api/session")
    assert resp.status == 200
    return (await resp.json())["csrf"]


async def _post(client: TestClient, path: str, body: Any, token: str | None,
                **kw: Any) -> tuple[int, dict[str, Any]]:
    headers = {CSRF_HEADER: token} if token is not None else {}
    headers.update(kw.pop("headers", {}))
    resp = await client.post(path, json=body, headers=headers, **kw)
    assert resp.content_type == "application/json", await resp.text()
    return resp.status, await resp.json()


def _sid(client: TestClient) -> str | None:
    for cookie in client.session.cookie_jar:
        if cookie.key == COOKIE_NAME:
            return cookie.value
    return None


async def test_page_is_served_with_csp_and_a_strict_session_cookie(web):
    client, _ = web
    resp = await client.get("/")
    assert resp.status == 200 and resp.content_type == "text/html"
    assert "<html" in (await resp.text()).lower()
    assert resp.headers["Content-Security-Policy"] == CSP
    assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert resp.headers["X-Frame-Options"] == "DENY"
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=") and "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie and "Secure" not in cookie
    assert len(_sid(client) or "") == 32  # 128 random bits, hex
    # A second visit keeps the same session (no new cookie).
    again = await client.get("/")
    assert "Set-Cookie" not in again.headers


async def test_secure_cookie_when_configured_and_headers_on_errors_and_static(tmp_path, index):
    client, engine = await _client(tmp_path, index, web_cookie_secure=True)
    try:
        resp = await client.get("/api/session")
        assert "Secure" in resp.headers["Set-Cookie"]
        missing = await client.get("/no/such/page")
        assert missing.status == 404 and missing.content_type == "application/json"
        assert missing.headers["Content-Security-Policy"] == CSP
        static = await client.get("/static/app.css")
        if static.status == 200:  # the frontend's asset, when installed
            assert static.headers["Content-Security-Policy"] == CSP
            assert "max-age" in static.headers["Cache-Control"]
    finally:
        await client.close()
        await engine.close()


async def test_session_gives_a_csrf_token_bound_to_the_cookie(web):
    client, _ = web
    token = await _csrf(client)
    assert len(token) == 64 and _sid(client)
    assert await _csrf(client) == token  # same session, same token


async def test_posts_without_or_with_a_wrong_csrf_token_are_refused(web):
    client, _ = web
    status, body = await _post(client, "/api/chat", {"text": "우울해"}, None)
    assert status == 403 and "새로고침" in body["error"]  # no cookie yet
    token = await _csrf(client)
    status, body = await _post(client, "/api/chat", {"text": "우울해"}, None)
    assert status == 403 and body["code"] == "csrf" and "X-CSRF-Token" in body["error"]
    status, body = await _post(client, "/api/chat", {"text": "우울해"}, token[:-1] + "0")
    assert status == 403 and body["code"] == "csrf"
    # A form post (not JSON) with the right token is refused too.
    resp = await client.post("/api/chat", data={"text": "우울해"},
                             headers={CSRF_HEADER: token})
    assert resp.status == 403 and (await resp.json())["code"] == "content_type"


async def test_cross_origin_posts_are_refused(web):
    client, _ = web
    token = await _csrf(client)
    status, body = await _post(client, "/api/chat", {"text": "우울해"}, token,
                               headers={"Origin": "https://evil.example"})
    assert status == 403 and body["code"] == "origin"
    status, body = await _post(client, "/api/chat", {"text": "우울해"}, token,
                               headers={"Origin": "null"})
    assert status == 403
    status, body = await _post(client, "/api/chat", {"text": "우울해"}, token,
                               headers={"Sec-Fetch-Site": "cross-site"})
    assert status == 403 and body["code"] == "origin"
    # Our own page under Referrer-Policy: no-referrer: a browser sends Origin: null.
    status, body = await _post(client, "/api/chat", {"text": "우울해"}, token,
                               headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"})
    assert status == 200
    own = f"http://{client.host}:{client.port}"
    status, body = await _post(client, "/api/chat", {"text": "우울해"}, token,
                               headers={"Origin": own})
    assert status == 200 and body["kind"] == "recommend"


async def test_a_chat_answers_five_tracks_with_every_field(web):
    client, _ = web
    token = await _csrf(client)
    status, body = await _post(client, "/api/chat", {"text": "오늘 너무 우울해"}, token)
    assert status == 200, body
    assert body["kind"] == "recommend" and body["text"] and body["rec_id"]
    assert set(body) >= {"kind", "text", "tracks", "emotion", "rec_id", "strategy", "request"}
    assert [t["position"] for t in body["tracks"]] == [1, 2, 3, 4, 5]
    for track in body["tracks"]:
        assert set(track) == TRACK_FIELDS and track["link"].startswith("https://")
        assert isinstance(track["facets"], dict)
    assert set(body["emotion"]) == {"분노", "긴장", "슬픔", "평화", "기쁨", "중립"}
    assert max(body["emotion"], key=body["emotion"].get) == "슬픔"
    status, small = await _post(client, "/api/chat", {"text": "고마워"}, token)
    assert status == 200 and small["tracks"] == [] and small["kind"] == "smalltalk"
    status, privacy = await _post(client, "/api/chat", {"text": "내 정보 삭제해줘"}, token)
    assert privacy["kind"] == "privacy"


async def test_feedback_is_stored_and_history_lists_the_answer(web):
    client, engine = web
    token = await _csrf(client)
    _, answer = await _post(client, "/api/chat", {"text": "오늘 너무 우울해"}, token)
    rec_id = answer["rec_id"]
    status, body = await _post(client, "/api/feedback",
                               {"rec_id": rec_id, "position": 2, "signal": "like"}, token)
    assert status == 200 and body == {"ok": True, "new": True, "text": body["text"]}
    status, again = await _post(client, "/api/feedback",
                                {"rec_id": rec_id, "position": 2, "signal": "like"}, token)
    assert status == 200 and again["new"] is False
    status, whole = await _post(client, "/api/feedback", {"rec_id": rec_id, "signal": "love"},
                                token)
    assert status == 200 and whole["new"] is True
    user = f"web:{_sid(client)}"
    [stored] = await engine.history(user)
    assert stored.feedback[stored.song_ids[1]] == ("like", "love")

    resp = await client.get("/api/history")
    items = (await resp.json())["items"]
    assert [i["rec_id"] for i in items] == [rec_id]
    assert items[0]["mood"] == "슬픔" and isinstance(items[0]["created_at"], float)
    assert [t["title"] for t in items[0]["tracks"]] == [t["title"] for t in answer["tracks"]]


async def test_feedback_rejects_bad_fields_and_unknown_answers(web):
    client, _ = web
    token = await _csrf(client)
    _, answer = await _post(client, "/api/chat", {"text": "우울해"}, token)
    cases = [({"rec_id": answer["rec_id"], "signal": "meh"}, 400),
             ({"rec_id": answer["rec_id"], "position": 0, "signal": "like"}, 400),
             ({"rec_id": answer["rec_id"], "position": True, "signal": "like"}, 400),
             ({"signal": "like"}, 400),
             ({"rec_id": answer["rec_id"], "position": 9, "signal": "like"}, 404),
             ({"rec_id": "0" * 16, "signal": "like"}, 404)]
    for body, expected in cases:
        status, out = await _post(client, "/api/feedback", body, token)
        assert status == expected and out["error"], (body, out)


async def test_forget_me_deletes_and_rotates_the_cookie(web):
    client, engine = web
    token = await _csrf(client)
    _, answer = await _post(client, "/api/chat", {"text": "오늘 너무 우울해"}, token)
    await _post(client, "/api/feedback", {"rec_id": answer["rec_id"], "signal": "like"}, token)
    old = _sid(client)
    status, body = await _post(client, "/api/forget-me", {"confirm": False}, token)
    assert status == 400 and await engine.history(f"web:{old}")
    status, body = await _post(client, "/api/forget-me", {"confirm": True}, token)
    assert status == 200 and body["deleted"]["recommendations"] == 1
    assert body["deleted"]["feedback"] == 5
    assert await engine.history(f"web:{old}") == []
    new = _sid(client)
    assert new and new != old
    # The old token belongs to the old session; the one returned works for the new one.
    status, _ = await _post(client, "/api/chat", {"text": "평화"}, token)
    assert status == 403
    status, _ = await _post(client, "/api/chat", {"text": "평화"}, body["csrf"])
    assert status == 200
    assert (await (await client.get("/api/history")).json())["items"][0]["mood"] == "평화"


@pytest.mark.parametrize(("raw", "content_type", "expected"), [
    (b"", "application/json", 400),
    (b"not json", "application/json", 400),
    (b"[1, 2]", "application/json", 400),
    (b'{"text": 5}', "application/json", 400),
    (b'{"text": "   "}', "application/json", 400),
    (b'{"text": "\xff\xfe"}', "application/json", 400),  # not UTF-8
    (b'{"text": "' + "가".encode() * 10_000 + b'"}', "application/json", 400),  # 10k chars
    (b'{"text": "' + "가".encode() * 12_000 + b'"}', "application/json", 413),
    (b'{"text": "' + b"a" * 10_000 + b'"}', "application/json", 400),  # too many characters
    (b'{"text": "hi"}', "text/plain", 403),
])
async def test_bad_chat_bodies_get_a_clear_4xx(web, raw, content_type, expected):
    client, _ = web
    token = await _csrf(client)
    resp = await client.post("/api/chat", data=raw,
                             headers={CSRF_HEADER: token, "Content-Type": content_type})
    assert resp.status == expected and resp.content_type == "application/json"
    body = await resp.json()
    assert body["error"] and "Traceback" not in body["error"]


async def test_a_lone_surrogate_inside_a_message_gets_a_normal_answer(web):
    client, _ = web
    token = await _csrf(client)
    resp = await client.post("/api/chat", data=b'{"text": "\\ud800\\uc6b0\\uc6b8\\ud574"}',
                             headers={CSRF_HEADER: token, "Content-Type": "application/json"})
    body = await resp.json()
    assert resp.status == 200 and body["kind"] == "recommend" and len(body["tracks"]) == 5
    alone = await client.post("/api/chat", data=b'{"text": "\\ud800"}',
                              headers={CSRF_HEADER: token, "Content-Type": "application/json"})
    assert alone.status == 200 and (await alone.json())["text"]  # cleaned to U+FFFD: answered


async def test_rate_limit_answers_429_with_retry_after(tmp_path, index):
    client, engine = await _client(tmp_path, index, rate_limit_per_minute=2,
                                   feedback_rate_limit_per_minute=1)
    try:
        token = await _csrf(client)
        for _ in range(2):
            status, answer = await _post(client, "/api/chat", {"text": "우울해"}, token)
            assert status == 200
        status, body = await _post(client, "/api/chat", {"text": "우울해"}, token)
        assert status == 429 and body["retry_after"] >= 1 and "초 뒤" in body["error"]
        # Feedback has its own budget: still allowed once, then refused.
        status, _ = await _post(client, "/api/feedback",
                                {"rec_id": answer["rec_id"], "signal": "like"}, token)
        assert status == 200
        status, body = await _post(client, "/api/feedback",
                                   {"rec_id": answer["rec_id"], "signal": "skip"}, token)
        assert status == 429 and body["retry_after"] >= 1
    finally:
        await client.close()
        await engine.close()


async def test_kakao_skill_answers_on_the_same_app(web):
    client, _ = web
    resp = await client.post(SKILL_PATH, json=kakao_payload("오늘 너무 우울해"))
    assert resp.status == 200
    body = await resp.json()
    assert body["version"] == "2.0" and texts(body)


async def test_kakao_routes_are_absent_when_kakao_is_off(tmp_path, index):
    client, engine = await _client(tmp_path, index, kakao_enabled=False)
    try:
        resp = await client.post(SKILL_PATH, json=kakao_payload("우울해"))
        assert resp.status in (404, 405)
    finally:
        await client.close()
        await engine.close()


async def test_the_kakao_only_port_serves_the_skill_and_probes_but_not_the_page(tmp_path, index):
    """KAKAO_PORT (opened to Kakao's servers) next to WEB_PORT: the skill, /healthz and /metrics
    answer on both; the chat page, its API and the admin dashboard only on WEB_PORT."""
    from bot.server import serve

    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    web_port, kakao_port = ports
    settings = make_settings(tmp_path, web_host="127.0.0.1", web_port=web_port,
                             kakao_enabled=True, kakao_host="127.0.0.1", kakao_port=kakao_port,
                             admin_token="a" * 32)
    engine = Recommender(settings, KeywordClassifier(), index, None)
    kakao, site = f"http://127.0.0.1:{kakao_port}", f"http://127.0.0.1:{web_port}"
    async with serving(serve, engine, settings, kakao + "/healthz") as http:
        for path in ("/", "/api/session", "/admin", "/static/app.js"):
            async with http.get(kakao + path) as resp:
                assert resp.status == 404, path
                assert (await resp.json())["code"] == "kakao_port"
        async with http.post(kakao + SKILL_PATH, json=kakao_payload("평화")) as resp:
            assert resp.status == 200
        async with http.get(kakao + "/metrics") as resp:
            assert resp.status == 200
        async with http.get(site + "/") as resp:
            assert resp.status == 200
        async with http.get(site + "/api/session") as resp:
            assert resp.status == 200
        async with http.post(site + SKILL_PATH, json=kakao_payload("평화")) as resp:
            assert resp.status == 200


async def test_healthz_and_metrics(web):
    client, _ = web
    token = await _csrf(client)
    await _post(client, "/api/chat", {"text": "우울해"}, token)
    resp = await client.get("/healthz")
    assert resp.status == 200 and (await resp.json())["status"] == "ok"
    assert resp.headers["X-Frame-Options"] == "DENY"
    metrics = await (await client.get("/metrics")).text()
    assert 'adapter="web",route="/api/chat",method="POST",status="200"' in metrics
    assert 'moodtune_web_replies_total{kind="recommend"}' in metrics


async def test_metrics_token_is_enforced(tmp_path, index):
    client, engine = await _client(tmp_path, index, metrics_token="s3cret")
    try:
        assert (await client.get("/metrics")).status == 401
        ok = await client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
        assert ok.status == 200
    finally:
        await client.close()
        await engine.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_moodtune_run_serves_the_web_chat(tmp_path):
    """`moodtune run` with nothing configured: the web chat on WEB_PORT, its URL printed."""
    port = _free_port()
    env = {**os.environ, "DATA_DIR": str(tmp_path / "var"), "PYTHONUNBUFFERED": "1",
           "KAKAO_ENABLED": "false", "WEB_PORT": str(port), "WEB_ENABLED": "true"}
    env.pop("DISCORD_TOKEN", None)
    proc = subprocess.Popen([sys.executable, "-m", "bot", "run"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        line = ""
        while time.monotonic() < deadline and "web chat" not in line:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                pytest.fail(f"moodtune run exited: {proc.stderr.read() if proc.stderr else ''}")
        assert line.strip() == f"moodtune web chat: http://127.0.0.1:{port}/"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:
            assert resp.status == 200 and resp.headers["X-Frame-Options"] == "DENY"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
