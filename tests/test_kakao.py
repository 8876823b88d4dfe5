"""Kakao i Open Builder skill server: answers, Kakao's response limits, bad input, health.

Real HTTP on 127.0.0.1, real engine, real store (see ``tests/kakao_support.py``). Feedback, the
callback flow, HTTP hardening and privacy have their own ``test_kakao_*.py`` files.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import socket
from typing import Any

import pytest

from bot.engine import Recommender
from bot.feedback import KAKAO_REPLIES
from bot.kakao import (
    LIMITS,
    SECRET_HEADER,
    SKILL_PATH,
    TEXT_EMPTY,
    TEXT_NO_WORDS,
    KakaoResponseError,
    callback_ack,
    serve,
    text_response,
    validate_response,
)
from inference.keyword import KeywordClassifier
from tests.fakes import make_settings
from tests.kakao_support import (
    kakao_payload,
    kakao_server,
    list_card,
    metric_value,
    post,
    reply,
    serving,
    texts,
)


# ---- normal answers -----------------------------------------------------------------------------
async def test_normal_answer_schema_and_every_limit(tmp_path, index):
    async with kakao_server(tmp_path, index) as (client, _):
        status, body = await post(client, kakao_payload("오늘 하루 너무 우울해"))
    assert status == 200
    assert validate_response(body) == body
    assert body["version"] == "2.0"
    outputs = body["template"]["outputs"]
    assert 1 <= len(outputs) <= LIMITS.outputs
    mood = outputs[0]["simpleText"]["text"]
    assert "😢" in mood and "슬픔" in mood and re.search(r"\d+%", mood)
    card = outputs[1]["listCard"]
    assert card["header"]["title"] and len(card["header"]["title"]) <= LIMITS.header_title
    assert len(card["items"]) == 5 <= LIMITS.list_items
    for item in card["items"]:
        assert " — " in item["title"] and len(item["title"]) <= LIMITS.list_title
        assert item["description"] and len(item["description"]) <= LIMITS.list_description
        assert item["link"]["web"].startswith("https://")
    assert len({item["title"] for item in card["items"]}) == 5
    assert 1 <= len(card["buttons"]) <= LIMITS.list_buttons
    assert card["buttons"][0]["label"] == "다른 노래 더 보기"
    replies = body["template"]["quickReplies"]
    assert len(replies) <= LIMITS.quick_replies
    assert [q["label"] for q in replies] == [*KAKAO_REPLIES, "더 신나게", "더 잔잔하게"]
    feedback = replies[:len(KAKAO_REPLIES)]
    rec_ids = {q["extra"]["rec_id"] for q in feedback}
    assert len(rec_ids) == 1
    for q in replies:
        assert q["action"] in ("message", "block") and q["messageText"] == q["label"]
        assert len(q["label"]) <= LIMITS.label
    for q in feedback:
        assert q["extra"]["signal"] == KAKAO_REPLIES[q["label"]].value
        assert q["extra"]["mood"] == "슬픔"


@pytest.mark.parametrize("utterance, mood", [("/mood 평화", "평화"), ("슬픔", "슬픔"),
                                             ("😢", "슬픔"), ("calm", "평화")])
async def test_explicit_mood_skips_the_classifier(tmp_path, index, utterance, mood):
    async with kakao_server(tmp_path, index) as (client, engine):
        status, body = await post(client, kakao_payload(utterance))
        assert engine.classifier.calls == 0
    assert status == 200
    assert f"{mood} 무드로 골라 봤어요" in texts(body)[0]
    assert len(list_card(body)["items"]) == 5


async def test_more_than_five_tracks_become_a_basic_card_carousel(tmp_path, index):
    async with kakao_server(tmp_path, index, rec_k=8) as (client, _):
        status, body = await post(client, kakao_payload("신나는 금요일"))
    assert status == 200 and validate_response(body)
    carousel = body["template"]["outputs"][1]["carousel"]
    assert carousel["type"] == "basicCard"
    assert len(carousel["items"]) == 8 <= LIMITS.carousel_items
    for card in carousel["items"]:
        assert len(card["description"]) <= LIMITS.card_description
        assert card["buttons"][0]["action"] == "webLink"
        assert card["buttons"][0]["webLinkUrl"].startswith("https://")


# ---- the validator every builder uses --------------------------------------------------------
def _valid() -> dict[str, Any]:
    return {"version": "2.0", "template": {
        "outputs": [{"simpleText": {"text": "hi"}},
                    {"listCard": {"header": {"title": "h"},
                                  "items": [{"title": "t", "description": "d",
                                             "link": {"web": "https://x"}}],
                                  "buttons": [{"label": "b", "action": "message",
                                               "messageText": "m"}]}}],
        "quickReplies": [{"label": "좋아요", "action": "message", "messageText": "좋아요",
                          "extra": {"rec_id": "r"}}]}}


def _carousel(n: int) -> dict[str, Any]:
    return {"carousel": {"type": "basicCard", "items": [{"title": "t", "description": "d"}] * n}}


MUTATIONS = {
    "four outputs": lambda r: r["template"]["outputs"].extend([{"simpleText": {"text": "x"}}] * 2),
    "no outputs": lambda r: r["template"].__setitem__("outputs", []),
    "six list items": lambda r: r["template"]["outputs"][1]["listCard"]["items"].extend(
        [{"title": "t"}] * 5),
    "three list buttons": lambda r: r["template"]["outputs"][1]["listCard"]["buttons"].extend(
        [{"label": "b", "action": "message", "messageText": "m"}] * 2),
    "eleven cards": lambda r: r["template"]["outputs"].__setitem__(1, _carousel(11)),
    "eleven quick replies": lambda r: r["template"]["quickReplies"].extend(
        [{"label": "x", "action": "message", "messageText": "x"}] * 10),
    "text over 1000": lambda r: r["template"]["outputs"][0]["simpleText"].__setitem__(
        "text", "가" * 1001),
    "empty text": lambda r: r["template"]["outputs"][0]["simpleText"].__setitem__("text", " "),
    "label over 14": lambda r: r["template"]["quickReplies"][0].__setitem__("label", "가" * 15),
    "message without text": lambda r: r["template"]["quickReplies"][0].pop("messageText"),
    "block without id": lambda r: r["template"]["quickReplies"][0].__setitem__("action", "block"),
    "unknown output": lambda r: r["template"]["outputs"].__setitem__(0, {"video": {}}),
    "two kinds in one output": lambda r: r["template"]["outputs"][0].__setitem__(
        "basicCard", {}),
    "wrong version": lambda r: r.__setitem__("version", "1.0"),
    "long card description": lambda r: r["template"]["outputs"].__setitem__(1, {
        "carousel": {"type": "basicCard", "items": [{"description": "가" * 231}]}}),
    "list item without title": lambda r: r["template"]["outputs"][1]["listCard"]["items"][
        0].pop("title"),
}


def test_validator_accepts_the_reference_response():
    assert validate_response(_valid())["version"] == "2.0"
    good = _valid()
    good["template"]["outputs"][1] = _carousel(10)
    validate_response(good)


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_validator_rejects_each_broken_limit(name):
    resp = copy.deepcopy(_valid())
    MUTATIONS[name](resp)
    with pytest.raises(KakaoResponseError):
        validate_response(resp)


def test_text_and_callback_builders_clip_to_limits():
    long = text_response("가" * 5000)
    assert len(long["template"]["outputs"][0]["simpleText"]["text"]) == LIMITS.simple_text
    ack = callback_ack()
    assert ack["useCallback"] is True and ack["data"]["text"]


# ---- shared secret ---------------------------------------------------------------------------
async def test_shared_secret_missing_wrong_right(tmp_path, index, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "kakao-shared-secret-42"
    async with kakao_server(tmp_path, index, kakao_secret=secret) as (client, _):
        missing = await client.post(SKILL_PATH, json=kakao_payload("안녕"))
        wrong = await client.post(SKILL_PATH, json=kakao_payload("안녕"),
                                  headers={SECRET_HEADER: "kakao-shared-secret-43"})
        right = await client.post(SKILL_PATH, json=kakao_payload("안녕"),
                                  headers={SECRET_HEADER: secret})
        for resp in (missing, wrong):
            assert resp.status == 401
            assert SECRET_HEADER in (await resp.json())["error"]
        assert right.status == 200 and validate_response(await right.json())
    assert secret not in caplog.text


# ---- bad input -------------------------------------------------------------------------------
@pytest.mark.parametrize("raw, needle", [
    (b"{not json", "not valid JSON"),
    (b"", "empty"),
    (b"\xff\xfe\x00garbage", "not valid JSON"),
    (b"[" * 20000 + b"]" * 20000, "not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b'"hello"', "must be a JSON object"),
    (b"3", "must be a JSON object"),
    (b"null", "must be a JSON object"),
])
async def test_malformed_and_non_object_json_is_400(tmp_path, index, raw, needle):
    async with kakao_server(tmp_path, index) as (client, _):
        resp = await client.post(SKILL_PATH, data=raw,
                                 headers={"Content-Type": "application/json"})
        assert resp.status == 400
        assert needle in (await resp.json())["error"]


def _drop(path: str):
    def f(p):
        *head, last = path.split(".")
        node = p
        for k in head:
            node = node[k]
        del node[last]
    return f


def _set(path: str, value: Any):
    def f(p):
        *head, last = path.split(".")
        node = p
        for k in head:
            node = node[k]
        node[last] = value
    return f


@pytest.mark.parametrize("mutate, needle", [
    (_drop("userRequest"), "userRequest is missing"),
    (_set("userRequest", "hi"), "userRequest must be an object"),
    (_drop("userRequest.utterance"), "userRequest.utterance is missing"),
    (_set("userRequest.utterance", 42), "userRequest.utterance must be a string"),
    (_set("userRequest.utterance", None), "userRequest.utterance is missing"),
    (_drop("userRequest.user"), "userRequest.user is missing"),
    (_set("userRequest.user", []), "userRequest.user must be an object"),
    (_drop("userRequest.user.id"), "userRequest.user.id is missing"),
    (_set("userRequest.user.id", 12345), "userRequest.user.id must be a string"),
    (_set("userRequest.user.id", "  "), "userRequest.user.id must be a non-empty"),
    (_set("userRequest.user.type", 1), "userRequest.user.type must be a string"),
    (_set("userRequest.callbackUrl", "ftp://example.org/x"), "callbackUrl must be an http(s)"),
    (_set("userRequest.callbackUrl", 7), "callbackUrl must be a string"),
    (_set("action", "x"), "action must be an object"),
    (_set("action.clientExtra", ["a"]), "clientExtra must be an object"),
    (_set("action.clientExtra", {"signal": "meh", "rec_id": "r"}), "signal must be one of"),
    (_set("action.clientExtra", {"signal": "like"}), "rec_id must be a non-empty string"),
    (_set("action.clientExtra", {"signal": "like", "rec_id": "r", "song_ids": 5}), "song_ids"),
    (_set("action.clientExtra", {"signal": "like", "rec_id": "r", "mood": 3}), "mood"),
])
async def test_missing_fields_and_wrong_types_are_400(tmp_path, index, mutate, needle):
    payload = kakao_payload("오늘 기분 좋아")
    mutate(payload)
    async with kakao_server(tmp_path, index) as (client, _):
        status, body = await post(client, payload)
    assert status == 400
    assert needle in body["error"]


async def test_null_or_missing_client_extra_and_extra_fields_are_fine(tmp_path, index):
    async with kakao_server(tmp_path, index) as (client, _):
        for extra in (None, "null", {}, {"unrelated": "button"}):
            status, body = await post(client, kakao_payload("행복해", client_extra=extra))
            assert status == 200 and list_card(body)
        payload = kakao_payload("행복해", user_id="u-no-action")
        del payload["action"]
        payload["contexts"] = [{"name": "c", "lifeSpan": 1}]
        status, body = await post(client, payload)
        assert status == 200 and list_card(body)


async def test_oversized_bodies_are_rejected_with_and_without_content_length(tmp_path, index):
    async with kakao_server(tmp_path, index, kakao_max_body_bytes=2048) as (client, _):
        big = kakao_payload("가" * 5000)
        resp = await client.post(SKILL_PATH, json=big)  # Content-Length: refused before reading
        assert resp.status == 413 and "2048" in (await resp.json())["error"]

        async def chunks():  # chunked transfer encoding: no Content-Length to check up front
            raw = json.dumps(big).encode()
            for i in range(0, len(raw), 1000):
                yield raw[i:i + 1000]

        resp = await client.post(SKILL_PATH, data=chunks(),
                                 headers={"Content-Type": "application/json"})
        assert resp.status == 413 and "error" in await resp.json()
        status, _ = await post(client, kakao_payload("평화"))  # still serving
        assert status == 200


@pytest.mark.parametrize("utterance, expected", [
    ("", TEXT_EMPTY),
    ("   \n\u200b ", TEXT_EMPTY),
    ("👍👍🎉", TEXT_NO_WORDS),
    ("?!…", TEXT_NO_WORDS),
])
async def test_empty_and_emoji_only_utterances_get_a_polite_prompt(tmp_path, index, utterance,
                                                                   expected):
    async with kakao_server(tmp_path, index) as (client, engine):
        status, body = await post(client, kakao_payload(utterance))
        assert engine.classifier.calls == 0
    assert status == 200 and texts(body) == [expected]
    assert len(body["template"]["quickReplies"]) == 6  # one tap per mood
    assert validate_response(body)


async def test_too_long_utterance_is_answered_politely(tmp_path, index):
    async with kakao_server(tmp_path, index, max_input_chars=50) as (client, engine):
        status, body = await post(client, kakao_payload("우울해" * 30))
        assert engine.classifier.calls == 0
    assert status == 200 and "너무 길어요" in texts(body)[0] and "50자" in texts(body)[0]


async def test_rate_limit_is_per_user_and_polite(tmp_path, index):
    async with kakao_server(tmp_path, index, rate_limit_per_minute=2) as (client, _):
        for _ in range(2):
            status, body = await post(client, kakao_payload("신나"))
            assert list_card(body)
        status, body = await post(client, kakao_payload("신나"))
        assert status == 200
        assert re.search(r"\d+초 뒤에 다시", texts(body)[0]) and "2번" in texts(body)[0]
        _, other = await post(client, kakao_payload("신나", user_id="someone-else"))
        assert list_card(other)
        metrics = await (await client.get("/metrics")).text()
    assert metric_value(metrics, 'moodtune_rate_limited_total{channel="kakao"}') == 1


# ---- health, metrics, logs -----------------------------------------------------------------
async def test_healthz(tmp_path, index):
    async with kakao_server(tmp_path, index) as (client, _):
        resp = await client.get("/healthz")
        body = await resp.json()
    assert resp.status == 200
    assert body["status"] == "ok" and body["songs"] == 300
    assert body["model_fingerprint"] == KeywordClassifier.fingerprint
    assert body["index_fingerprint"] == KeywordClassifier.fingerprint
    assert body["store"] == "absent" and body["problems"] == []


async def test_metrics_content(tmp_path, index):
    async with kakao_server(tmp_path, index, store=True) as (client, _):
        _, first = await post(client, kakao_payload("행복해"))
        await post(client, kakao_payload("좋아요", client_extra=reply(first, "좋아요")["extra"]))
        await client.post(SKILL_PATH, data=b"{", headers={"Content-Type": "application/json"})
        missing = await client.get("/wp-login.php")
        assert missing.status == 404 and "error" in await missing.json()
        resp = await client.get("/metrics")
        text = await resp.text()
    assert resp.status == 200 and resp.content_type == "text/plain"
    assert "version=0.0.4" in resp.headers["Content-Type"]
    req = 'moodtune_http_requests_total{adapter="kakao",route="/kakao/skill",method="POST",'
    assert metric_value(text, req + 'status="200"}') == 2
    assert metric_value(text, req + 'status="400"}') == 1
    assert metric_value(text, 'moodtune_http_requests_total{adapter="kakao",route="unmatched",'
                              'method="GET",status="404"}') == 1
    assert "# TYPE moodtune_http_request_seconds histogram" in text
    assert metric_value(text, 'moodtune_http_request_seconds_count{adapter="kakao",'
                              'route="/kakao/skill"}') == 3
    assert 'moodtune_http_request_seconds_bucket{adapter="kakao",route="/kakao/skill",le="+Inf"} 3' \
        in text
    assert metric_value(text, 'moodtune_feedback_total{channel="kakao",signal="like"}') == 5
    assert metric_value(text, 'moodtune_kakao_replies_total{kind="recommendation"}') == 1
    assert metric_value(text, 'moodtune_engine_seconds_count{channel="kakao",op="respond"}') == 1
    assert metric_value(text, "moodtune_index_songs") == 300
    assert "# TYPE moodtune_engine_errors_total counter" in text


async def test_logs_hash_users_and_keep_text_only_when_allowed(tmp_path, index, caplog):
    caplog.set_level(logging.INFO, logger="moodtune")
    async with kakao_server(tmp_path, index) as (client, _):
        await post(client, kakao_payload("비밀스러운 내 기분 우울해", user_id="raw-user-key-777"))
    answer = [r for r in caplog.records if r.getMessage() == "kakao answer"]
    assert answer and answer[0].kind == "recommendation" and answer[0].user.startswith("u_")
    assert "raw-user-key-777" not in caplog.text
    assert not any("비밀스러운" in str(vars(r)) for r in caplog.records)
    caplog.clear()
    async with kakao_server(tmp_path, index, store_message_text=True) as (client, _):
        await post(client, kakao_payload("비밀스러운 내 기분 우울해"))
    answer = [r for r in caplog.records if r.getMessage() == "kakao answer"]
    assert answer[0].text == "비밀스러운 내 기분 우울해"


async def test_serve_runs_until_cancelled(tmp_path, index):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = make_settings(tmp_path, kakao_host="127.0.0.1", kakao_port=port)
    engine = Recommender(settings, KeywordClassifier(), index, None)
    base = f"http://127.0.0.1:{port}"
    async with serving(serve, engine, settings, base + "/healthz") as http:
        resp = await http.post(base + SKILL_PATH, json=kakao_payload("평화"))
        assert resp.status == 200
        resp.release()
    with socket.socket() as s:  # the port was released
        s.bind(("127.0.0.1", port))
