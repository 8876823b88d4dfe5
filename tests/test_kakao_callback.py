"""Kakao's 5-second deadline: the callback flow, where callbacks may go, and a full engine.

A ``callbackUrl`` arrives in the request body, so whoever can reach the skill endpoint chooses
where the server POSTs: it goes only over https to an allow-listed host whose addresses are
public (checked again when connecting), and never follows a redirect. When the engine is full
(``ENGINE_MAX_PENDING``) every request, callback or not, hears "busy" at once.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import Any

import pytest

from bot.kakao import TEXT_TIMEOUT, validate_response
from bot.kakao.callback import CallbackRefusedError, check_callback_url
from inference.keyword import KeywordClassifier
from tests.fakes import make_settings
from tests.kakao_support import (
    BrokenClassifier,
    callback_receiver,
    kakao_payload,
    kakao_server,
    list_card,
    metric_value,
    metrics_text,
    post,
    texts,
)

TEXT_BUSY = "지금 요청이 많아요"


def slow(delay: float) -> KeywordClassifier:
    """The keyword classifier, slow inside the engine's worker thread (a cold model, a busy
    CPU): the request holds an engine slot while it waits, as with a real slow model."""
    return KeywordClassifier(delay=delay)


# ---- the callback flow -------------------------------------------------------------------------
async def test_callback_flow_with_a_slow_engine(tmp_path, index):
    async with callback_receiver() as (url, received, got), kakao_server(
            tmp_path, index, classifier=slow(0.5), kakao_callback_after_ms=100
    ) as (client, _):
        t0 = time.perf_counter()
        status, body = await post(client, kakao_payload("짜증나", callback_url=url))
        elapsed = time.perf_counter() - t0
        assert status == 200
        assert body["version"] == "2.0" and body["useCallback"] is True
        assert body["data"]["text"] and validate_response(body)
        assert elapsed < 0.5  # answered before the engine finished
        assert not received
        await asyncio.wait_for(got.wait(), timeout=10)
        metrics = await metrics_text(client)
    assert len(received) == 1
    late = received[0]
    assert late["token"] == "one-time-token" and late["content_type"] == "application/json"
    assert validate_response(late["body"])
    assert "분노" in late["body"]["template"]["outputs"][0]["simpleText"]["text"]
    assert len(late["body"]["template"]["outputs"][1]["listCard"]["items"]) == 5
    assert metric_value(metrics, 'moodtune_kakao_callbacks_total{outcome="ok"}') == 1
    assert metric_value(metrics, 'moodtune_kakao_replies_total{kind="callback"}') == 1


async def test_fast_engine_answers_directly_even_with_a_callback_url(tmp_path, index):
    async with callback_receiver() as (url, received, _), kakao_server(tmp_path, index) as (
            client, _):
        status, body = await post(client, kakao_payload("여유로운 오후", callback_url=url))
        await asyncio.sleep(0.05)
    assert status == 200 and "useCallback" not in body and list_card(body)
    assert received == []


async def test_failed_callback_post_is_logged_not_raised(tmp_path, index, caplog):
    caplog.set_level(logging.INFO)
    async with callback_receiver(status=500) as (url, _, got), kakao_server(
            tmp_path, index, classifier=slow(0.5), kakao_callback_after_ms=100
    ) as (client, _):
        status, body = await post(client, kakao_payload("짜증나", callback_url=url))
        assert status == 200 and body["useCallback"] is True
        await asyncio.wait_for(got.wait(), timeout=10)
        for _ in range(100):  # the log line follows the receiver's answer
            if "callback POST answered HTTP 500" in caplog.text:
                break
            await asyncio.sleep(0.02)
        status, _ = await post(client, kakao_payload("평화", user_id="someone-else"))
        metrics = await metrics_text(client)
    assert status == 200
    assert "callback POST answered HTTP 500" in caplog.text
    ours = [r for r in caplog.records if r.name.startswith("moodtune")]
    warning = next(r for r in ours if "HTTP 500" in r.getMessage())
    assert warning.callback_host == "127.0.0.1"
    # The callback URL is a one-time credential: only its host is logged.
    assert not any("one-time-token" in str(vars(r)) for r in ours)
    assert metric_value(metrics, 'moodtune_kakao_callbacks_total{outcome="http_error"}') == 1


async def test_slow_engine_without_callback_answers_politely_within_the_deadline(tmp_path, index):
    async with kakao_server(tmp_path, index, classifier=slow(2.0), deadline_s=0.3) as (
            client, _):
        t0 = time.perf_counter()
        status, body = await post(client, kakao_payload("짜증나"))
        elapsed = time.perf_counter() - t0
    assert status == 200 and texts(body) == [TEXT_TIMEOUT]
    assert "잠시 후 다시 말해 주세요" in TEXT_TIMEOUT
    assert 0.3 <= elapsed < 1.5


async def test_engine_failure_is_a_polite_answer_and_counted(tmp_path, index):
    async with kakao_server(tmp_path, index, classifier=BrokenClassifier()) as (client, _):
        status, body = await post(client, kakao_payload("신나"))
        metrics = await metrics_text(client)
    assert status == 200 and "문제가 생겼어요" in texts(body)[0]
    assert metric_value(
        metrics, 'moodtune_engine_errors_total{channel="kakao",error="RuntimeError"}') == 1


# ---- defect 1: SSRF through callbackUrl --------------------------------------------------------
@pytest.mark.parametrize("url, needle", [
    ("https://evil.example/v1/callback/x", "KAKAO_CALLBACK_HOSTS"),
    ("https://bot-api.kakao.com.evil.example/cb", "KAKAO_CALLBACK_HOSTS"),
    ("http://bot-api.kakao.com/v1/callback/x", "https"),
    ("https://user:pw@bot-api.kakao.com/v1/callback/x", "credentials"),
    ("https://127.0.0.1/v1/callback/x", "loopback"),
    ("https://169.254.169.254/latest/meta-data/", "link-local"),
    ("https://10.0.0.7/internal", "private"),
    ("https://[::1]/cb", "loopback"),
    ("https://[::ffff:127.0.0.1]/cb", "loopback"),
    ("https://0.0.0.0/cb", "unspecified"),
    ("https://224.0.0.1/cb", "multicast"),
    ("https://localhost/cb", "loopback"),  # allow-listed name, loopback after DNS resolution
])
async def test_refused_callback_urls_are_a_400_before_any_work(tmp_path, index, url, needle):
    hosts = ["bot-api.kakao.com", "127.0.0.1", "169.254.169.254", "10.0.0.7", "::1",
             "::ffff:127.0.0.1", "0.0.0.0", "224.0.0.1", "localhost"]
    async with kakao_server(tmp_path, index, kakao_callback_allow_insecure=False,
                            kakao_callback_hosts=hosts) as (client, engine):
        status, body = await post(client, kakao_payload("신나", callback_url=url))
        assert engine.classifier.calls == 0
        metrics = await metrics_text(client)
    assert status == 400, body
    assert "callbackUrl" in body["error"] and needle in body["error"]
    assert metric_value(metrics, 'moodtune_kakao_callbacks_total{outcome="refused"}') == 1


def test_the_default_allow_list_is_kakaos_callback_host(tmp_path):
    settings = make_settings(tmp_path)
    assert settings.kakao_callback_hosts == ["bot-api.kakao.com"]
    assert not settings.kakao_callback_allow_insecure
    url = "https://bot-api.kakao.com/v1/bots/5ae9b76d/callback/-damddEwVMRHufi6u"
    assert check_callback_url(url, settings).host == "bot-api.kakao.com"
    assert check_callback_url("https://BOT-API.kakao.com./cb", settings).host == "bot-api.kakao.com"
    with pytest.raises(CallbackRefusedError):
        check_callback_url("https://bot-api.kakao.com@evil.example/cb", settings)


async def test_callback_post_never_follows_a_redirect(tmp_path, index):
    """A 3xx from the callback host is a failed delivery, not an instruction to POST elsewhere."""
    async with callback_receiver(status=307, headers={"Location": "/elsewhere"}) as (
            url, received, got), kakao_server(
            tmp_path, index, classifier=slow(0.3), kakao_callback_after_ms=100) as (client, _):
        status, body = await post(client, kakao_payload("짜증나", callback_url=url))
        assert status == 200 and body["useCallback"] is True
        await asyncio.wait_for(got.wait(), timeout=10)
        await asyncio.sleep(0.3)  # time for a followed redirect to arrive
        metrics = await metrics_text(client)
    assert [r["path"] for r in received] == ["/v1/callback/one-time-token"]
    assert metric_value(metrics, 'moodtune_kakao_callbacks_total{outcome="redirect"}') == 1
    assert metric_value(metrics, 'moodtune_kakao_callbacks_total{outcome="ok"}') == 0


async def test_dns_rebinding_cannot_swap_the_checked_address(tmp_path, index, monkeypatch):
    """The name resolves to a public address when the request is checked and to loopback when
    the answer is delivered: the delivery resolves and checks again, and connects only to the
    addresses it checked, so nothing reaches the loopback listener."""
    import bot.kakao.callback as callback

    connections: list[Any] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer.get_extra_info("peername"))
        writer.close()

    listener = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    answers = iter([["93.184.216.34"]])

    async def fake_getaddrinfo(host: str, port: int) -> list[tuple]:
        ips = next(answers, ["127.0.0.1"])  # the first answer is public, every later one not
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in ips]

    monkeypatch.setattr(callback, "_getaddrinfo", fake_getaddrinfo)
    try:
        async with kakao_server(tmp_path, index, classifier=slow(0.3),
                                kakao_callback_after_ms=100, kakao_callback_allow_insecure=False,
                                kakao_callback_hosts=["callback.test"]) as (client, _):
            url = f"https://callback.test:{port}/v1/callback/one-time-token"
            status, body = await post(client, kakao_payload("짜증나", callback_url=url))
            assert status == 200 and body["useCallback"] is True
            for _ in range(100):
                metrics = await metrics_text(client)
                if metric_value(metrics, 'moodtune_kakao_callbacks_in_flight') == 0 and \
                        'outcome="' in metrics:
                    break
                await asyncio.sleep(0.05)
    finally:
        listener.close()
        await listener.wait_closed()
    assert connections == []
    assert metric_value(metrics, 'moodtune_kakao_callbacks_total{outcome="refused"}') == 1


# ---- defect 2: a full engine answers "busy" at once, callback or not ---------------------------
async def test_full_engine_answers_busy_at_once_even_for_callback_requests(tmp_path, index):
    async with callback_receiver() as (url, received, got), kakao_server(
            tmp_path, index, classifier=slow(1.0), engine_max_pending=1,
            kakao_callback_after_ms=200) as (client, engine):
        first = asyncio.create_task(post(client, kakao_payload("짜증나", callback_url=url)))
        for _ in range(100):  # wait until the first request holds the only engine slot
            if engine.pending:
                break
            await asyncio.sleep(0.01)
        t0 = time.perf_counter()
        status, body = await post(client, kakao_payload(
            "불안해", user_id="second", callback_url=url))
        busy_s = time.perf_counter() - t0
        _, direct = await post(client, kakao_payload("우울해", user_id="third"))
        assert (await first)[1]["useCallback"] is True
        await asyncio.wait_for(got.wait(), timeout=10)
        metrics = await metrics_text(client)
    assert status == 200 and "useCallback" not in body and validate_response(body)
    assert TEXT_BUSY in texts(body)[0] and busy_s < 0.5  # not after the engine's 1 s
    assert len(body["template"]["quickReplies"]) == 6  # one tap per mood, to try again
    assert TEXT_BUSY in texts(direct)[0]
    assert len(received) == 1  # only the admitted request was ever delivered
    assert metric_value(metrics, 'moodtune_kakao_replies_total{kind="busy"}') == 2
    assert metric_value(metrics, 'moodtune_engine_busy_total{channel="kakao"}') == 2


async def test_callback_deliveries_are_capped(tmp_path, index):
    """A delivery outlives its engine slot while Kakao's end is slow to take the POST; the
    deliveries in flight are capped (at ENGINE_MAX_PENDING) so they cannot pile up either."""
    async with callback_receiver(delay=1.5) as (url, received, _), kakao_server(
            tmp_path, index, classifier=slow(0.2), engine_max_pending=2,
            kakao_callback_after_ms=100) as (client, engine):
        for i in range(2):
            _, body = await post(client, kakao_payload("짜증나", user_id=f"u{i}",
                                                       callback_url=url))
            assert body["useCallback"] is True
        for _ in range(100):  # both answers are ready and being posted; the engine is idle
            if len(received) == 2:
                break
            await asyncio.sleep(0.02)
        assert engine.pending == 0
        t0 = time.perf_counter()
        status, body = await post(client, kakao_payload("불안해", user_id="u3", callback_url=url))
        busy_s = time.perf_counter() - t0
        _, direct = await post(client, kakao_payload("우울해", user_id="u4"))
        metrics = await metrics_text(client)
    assert status == 200 and TEXT_BUSY in texts(body)[0] and busy_s < 0.5
    assert list_card(direct)  # requests without a callback still get answers
    assert metric_value(metrics, 'moodtune_kakao_callbacks_in_flight') == 2
    assert metric_value(metrics, 'moodtune_kakao_replies_total{kind="busy"}') == 1
