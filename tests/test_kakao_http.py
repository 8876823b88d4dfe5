"""The skill server's HTTP edge: slow and vanishing clients, odd text, /healthz and /metrics.

Raw sockets stand in for clients that misbehave in ways an HTTP library will not: headers with
a body that never finishes, a connection dropped half-way through a request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from bot.kakao import SKILL_PATH, parse_skill_request, validate_response
from inference.keyword import KeywordClassifier
from tests.kakao_support import (
    kakao_payload,
    kakao_server,
    list_card,
    metric_value,
    metrics_text,
    texts,
)

REQ = 'moodtune_http_requests_total{adapter="kakao",route="/kakao/skill",method="POST",'


def _head(length: int) -> bytes:
    return (f"POST {SKILL_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n").encode()


async def _until(predicate, timeout: float = 5.0) -> None:
    t0 = time.perf_counter()
    while not predicate():
        if time.perf_counter() - t0 > timeout:
            return
        await asyncio.sleep(0.02)


async def _request_metrics(client) -> str:
    """/metrics once the skill request's status has been counted (up to 2 s)."""
    metrics = ""
    for _ in range(100):
        metrics = await metrics_text(client)
        if REQ + 'status="' in metrics:
            break
        await asyncio.sleep(0.02)
    return metrics


# ---- defect 4: stalled bodies and disconnects --------------------------------------------------
async def test_a_body_that_never_finishes_gets_408(tmp_path, index):
    async with kakao_server(tmp_path, index, kakao_body_timeout_s=0.5) as (client, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
        t0 = time.perf_counter()
        writer.write(_head(500) + b'{"userRequest": {"utt')  # ... and then nothing more
        await writer.drain()
        try:
            status_line = await asyncio.wait_for(reader.readline(), timeout=5)
        finally:
            writer.close()
        elapsed = time.perf_counter() - t0
        metrics = await metrics_text(client)
    assert status_line.startswith(b"HTTP/1.1 408"), status_line
    assert 0.4 <= elapsed < 3
    assert metric_value(metrics, REQ + 'status="408"}') == 1


async def test_a_client_that_never_sends_a_request_is_disconnected(tmp_path, index):
    """Idle connections (and headers that never end) are closed, not held for an hour."""
    async with kakao_server(tmp_path, index, kakao_body_timeout_s=0.3) as (client, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
        writer.write(b"POST /kakao/skill HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # no blank line
        await writer.drain()
        t0 = time.perf_counter()
        try:
            data = await asyncio.wait_for(reader.read(), timeout=5)  # b"" once the server closes
        finally:
            writer.close()
    assert data == b"" or data.startswith(b"HTTP/1.1 4")
    assert time.perf_counter() - t0 < 4


async def test_a_client_that_disconnects_mid_body_is_499_at_debug(tmp_path, index, caplog):
    caplog.set_level(logging.DEBUG)
    async with kakao_server(tmp_path, index) as (client, _):
        _, writer = await asyncio.open_connection("127.0.0.1", client.port)
        writer.write(_head(500) + b'{"userRequest": {"utt')
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.close()  # gone, half-way through the body
        metrics = await _request_metrics(client)
    assert metric_value(metrics, REQ + 'status="499"}') == 1
    assert metric_value(metrics, REQ + 'status="500"}') == 0
    ours = [r for r in caplog.records if r.name.startswith("moodtune")]
    assert not [r for r in ours if r.levelno >= logging.WARNING], [r.getMessage() for r in ours]
    assert any("client closed" in r.getMessage() and r.levelno == logging.DEBUG for r in ours)


async def test_a_client_that_gives_up_while_the_engine_works_is_499(tmp_path, index, caplog):
    caplog.set_level(logging.DEBUG)
    async with kakao_server(tmp_path, index, classifier=KeywordClassifier(delay=0.5)) as (
            client, engine):
        _, writer = await asyncio.open_connection("127.0.0.1", client.port)
        raw = json.dumps(kakao_payload("짜증나")).encode()
        writer.write(_head(len(raw)) + raw)
        await writer.drain()
        await _until(lambda: engine.pending > 0)
        writer.close()  # Kakao gave up (its 5 s passed)
        metrics = await _request_metrics(client)
    assert metric_value(metrics, REQ + 'status="499"}') == 1
    assert metric_value(metrics, REQ + 'status="500"}') == 0
    assert not [r for r in caplog.records
                if r.name.startswith("moodtune") and r.levelno >= logging.ERROR]


# ---- defect 5: lone surrogates -----------------------------------------------------------------
async def test_a_lone_surrogate_gets_a_normal_answer(tmp_path, index, caplog):
    """``"\\ud800abc"`` is valid JSON but not valid Unicode: it is cleaned at the edge, so the
    engine, the store, the logs and the tokenizer never see it."""
    caplog.set_level(logging.INFO, logger="moodtune")
    raw = json.dumps(kakao_payload("PLACEHOLDER")).replace(
        "PLACEHOLDER", "\\ud800abc \\udfff \\ud83d 우울해").encode()
    assert b"\\ud800" in raw
    async with kakao_server(tmp_path, index, store=True, store_message_text=True) as (client,
                                                                                     engine):
        resp = await client.post(SKILL_PATH, data=raw,
                                 headers={"Content-Type": "application/json"})
        body = await resp.json()
        history = await engine.history("kakao:kakao-user-1")
    assert resp.status == 200 and validate_response(body)
    assert "슬픔" in texts(body)[0] and len(list_card(body)["items"]) == 5
    assert history and history[0].text == "\ufffdabc \ufffd \ufffd 우울해"
    answer = [r for r in caplog.records if r.getMessage() == "kakao answer"]
    assert answer and answer[0].text == "\ufffdabc \ufffd \ufffd 우울해"
    assert not any(r.levelno >= logging.ERROR for r in caplog.records)


def test_parse_cleans_the_utterance_once_at_the_edge():
    req = parse_skill_request(kakao_payload("\ud800abc\x00\x1b[31m 우울해\r\n"))
    assert req.utterance == "\ufffdabc[31m 우울해\n"


# ---- defect 6: /healthz and /metrics -----------------------------------------------------------
async def test_healthz_is_503_degraded_when_the_database_takes_no_writes(tmp_path, index):
    async with kakao_server(tmp_path, index, store=True) as (client, engine):
        ok = await client.get("/healthz")
        ok_body = await ok.json()
        await engine.store.close()  # every write fails from here on, as on a read-only disk
        bad = await client.get("/healthz")
        bad_body = await bad.json()
    assert ok.status == 200 and ok_body["status"] == "ok" and ok_body["store"] == "ok"
    assert bad.status == 503 and bad_body["status"] == "degraded"
    assert bad_body["store"] == "failing"
    assert any("database" in p for p in bad_body["problems"])


async def test_metrics_need_the_bearer_token_when_one_is_set(tmp_path, index, caplog):
    caplog.set_level(logging.DEBUG)
    token = "scrape-token-0123456789"
    async with kakao_server(tmp_path, index, metrics_token=token) as (client, _):
        for auth in (None, "Bearer nope", f"Basic {token}", f"Bearer {token}x", token):
            resp = await client.get("/metrics", headers={"Authorization": auth} if auth else {})
            assert resp.status == 401, auth
            assert resp.headers.get("WWW-Authenticate", "").startswith("Bearer")
            assert "METRICS_TOKEN" in (await resp.json())["error"]
        right = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        text = await right.text()
        health = await client.get("/healthz")  # health stays open for load balancers
    assert right.status == 200 and "moodtune_http_requests_total" in text
    assert health.status == 200
    assert token not in caplog.text
