"""Kakao i Open Builder skill server: real HTTP on 127.0.0.1, real engine, real store.

The engine runs on the keyword classifier and a synthetic 300-song catalogue (``tests.fakes``);
payloads follow the SkillPayload shape in Kakao's skill guide. A fake "Kakao callback" app on
127.0.0.1 receives the late answers of the callback flow.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import json
import logging
import re
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestClient, TestServer

from bot.engine import Recommender
from bot.feedback import KAKAO_REPLIES, Signal
from bot.kakao import (
    LIMITS,
    SECRET_HEADER,
    SKILL_PATH,
    TEXT_EMPTY,
    TEXT_FEEDBACK_DUP,
    TEXT_FEEDBACK_FAILED,
    TEXT_NO_REC,
    TEXT_NO_WORDS,
    TEXT_TIMEOUT,
    KakaoResponseError,
    callback_ack,
    create_app,
    serve,
    text_response,
    validate_response,
)
from bot.observability import Metrics
from bot.store import Store
from indexing.index import SongIndex, build_index
from indexing.synthetic import synthetic_catalog
from tests.fakes import KeywordClassifier, make_settings


# ---- helpers ---------------------------------------------------------------------------------
def kakao_payload(utterance: Any, user_id: Any = "kakao-user-1", callback_url: str | None = None,
                  client_extra: Any = None) -> dict[str, Any]:
    """A SkillPayload shaped like the examples in Kakao's skill development guide."""
    user_request: dict[str, Any] = {
        "timezone": "Asia/Seoul",
        "params": {"ignoreMe": "true"},
        "block": {"id": "5f0a1b2c3d4e5f6a7b8c9d0e", "name": "기분 추천"},
        "utterance": utterance,
        "lang": "ko",
        "user": {"id": user_id, "type": "botUserKey",
                 "properties": {"botUserKey": user_id, "isFriend": True}},
    }
    if callback_url is not None:
        user_request["callbackUrl"] = callback_url
    return {
        "intent": {"id": "5f0a1b2c3d4e5f6a7b8c9d0e", "name": "기분 추천"},
        "userRequest": user_request,
        "bot": {"id": "5f0a00000000000000000001", "name": "moodtune"},
        "action": {"name": "moodtune-skill", "clientExtra": client_extra, "params": {},
                   "id": "5f0a00000000000000000002", "detailParams": {}},
    }


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> SongIndex:
    """One Annoy index over the same synthetic catalogue ``make_settings`` writes, shared."""
    d = tmp_path_factory.mktemp("kakao-index")
    build_index(synthetic_catalog(300, seed=7), d / "index", n_trees=10,
                model_fingerprint=KeywordClassifier.fingerprint)
    idx = SongIndex.load(d / "index")
    yield idx
    idx.close()


class SlowRecommender(Recommender):
    """The real engine, made slow: stands in for a cold model or a busy CPU."""

    delay = 0.5

    async def recommend(self, *args: Any, **kwargs: Any):
        await asyncio.sleep(self.delay)
        return await super().recommend(*args, **kwargs)


class BrokenRecommender(Recommender):
    async def recommend(self, *args: Any, **kwargs: Any):
        raise RuntimeError("index file vanished")


@asynccontextmanager
async def kakao_server(tmp_path: Path, index: SongIndex, *, store: bool = False,
                       engine_cls: type[Recommender] = Recommender, deadline_s: float = 4.5,
                       metrics: Metrics | None = None, **overrides: Any
                       ) -> AsyncIterator[tuple[TestClient, Recommender]]:
    """Engine + skill server on 127.0.0.1; both torn down on exit."""
    settings = make_settings(tmp_path, **overrides)
    st = await Store.open(tmp_path / "moodtune.sqlite3") if store else None
    engine = engine_cls(settings, KeywordClassifier(), index, st)
    app = create_app(engine, settings, metrics=metrics, deadline_s=deadline_s)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        yield client, engine
    finally:
        await client.close()
        await engine.close()


@asynccontextmanager
async def callback_receiver(status: int = 200) -> AsyncIterator[tuple[str, list, asyncio.Event]]:
    """A stand-in for Kakao's callback endpoint: records each POSTed body."""
    received: list[dict[str, Any]] = []
    got = asyncio.Event()

    async def handle(request: web.Request) -> web.Response:
        received.append({"token": request.match_info["token"], "body": await request.json(),
                         "content_type": request.content_type})
        got.set()
        return web.json_response({"taskId": "t-1", "status": "SUCCESS"}, status=status)

    app = web.Application()
    app.router.add_post("/v1/callback/{token}", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("/v1/callback/one-time-token")), received, got
    finally:
        await server.close()


async def post(client: TestClient, payload: Any, **kw: Any) -> tuple[int, dict[str, Any]]:
    resp = await client.post(SKILL_PATH, json=payload, **kw)
    return resp.status, await resp.json()


def texts(body: dict[str, Any]) -> list[str]:
    return [o["simpleText"]["text"] for o in body["template"]["outputs"] if "simpleText" in o]


def list_card(body: dict[str, Any]) -> dict[str, Any]:
    return next(o["listCard"] for o in body["template"]["outputs"] if "listCard" in o)


def reply(body: dict[str, Any], label: str) -> dict[str, Any]:
    return next(q for q in body["template"]["quickReplies"] if q["label"] == label)


def metric_value(text: str, sample: str) -> float:
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


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
    assert [q["label"] for q in replies] == list(KAKAO_REPLIES)
    rec_ids = {q["extra"]["rec_id"] for q in replies}
    assert len(rec_ids) == 1
    for q in replies:
        assert q["action"] in ("message", "block") and q["messageText"] == q["label"]
        assert q["extra"]["signal"] == KAKAO_REPLIES[q["label"]].value
        assert q["extra"]["mood"] == "슬픔"
        assert len(q["extra"]["song_ids"].split(",")) == 5


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


# ---- feedback --------------------------------------------------------------------------------
async def test_feedback_quick_reply_round_trip_with_the_real_store(tmp_path, index):
    async with kakao_server(tmp_path, index, store=True) as (client, engine):
        _, first = await post(client, kakao_payload("불안하고 떨려"))
        like = reply(first, "좋아요")
        status, body = await post(client, kakao_payload(like["messageText"],
                                                        client_extra=like["extra"]))
        assert status == 200 and validate_response(body)
        assert "좋았다니" in texts(body)[0]
        events = await engine.store.feedback_events()
        shown = like["extra"]["song_ids"].split(",")
        assert sorted(e[1] for e in events) == sorted(shown)
        assert {(e[0], e[2]) for e in events} == {("kakao:kakao-user-1", "like")}
        # A reply about the whole message is per-message feedback once the engine forwards it.
        scoped = "scope" in inspect.signature(Recommender.feedback).parameters
        assert {e[3] for e in events} == {"message" if scoped else "track"}
        # Tapping again is idempotent, and says so.
        _, again = await post(client, kakao_payload("좋아요", client_extra=like["extra"]))
        assert texts(again)[0] == TEXT_FEEDBACK_DUP
        assert len(await engine.store.feedback_events()) == 5
        dislike = reply(first, "별로예요")
        _, body = await post(client, kakao_payload("별로예요", client_extra=dislike["extra"]))
        assert "다르게 골라 볼게요" in texts(body)[0]
        signals = [e[2] for e in await engine.store.feedback_events()]
        assert signals.count("dislike") == 5
        metrics = await (await client.get("/metrics")).text()
    assert metric_value(metrics, 'moodtune_feedback_total{channel="kakao",signal="like"}') == 1


async def test_other_song_records_a_skip_and_answers_fresh_tracks_for_the_same_mood(
        tmp_path, index):
    async with kakao_server(tmp_path, index, store=True) as (client, engine):
        _, first = await post(client, kakao_payload("오늘 너무 지치고 우울해"))
        first_titles = {i["title"] for i in list_card(first)["items"]}
        more = reply(first, "다른 노래")
        status, body = await post(client, kakao_payload("다른 노래", client_extra=more["extra"]))
        assert status == 200 and validate_response(body)
        assert texts(body)[0].startswith("다른 노래로 골라 봤어요")
        assert "슬픔" in texts(body)[0]
        fresh = {i["title"] for i in list_card(body)["items"]}
        assert len(fresh) == 5 and not fresh & first_titles  # no-repeat is the engine's job
        events = await engine.store.feedback_events()
        assert [e[2] for e in events] == ["skip"] * 5
        # The listCard's own "다른 노래 더 보기" button carries the same kind of extra.
        button = list_card(body)["buttons"][0]
        assert button["extra"]["signal"] == Signal.SKIP.value
        _, third = await post(client, kakao_payload(button["messageText"],
                                                    client_extra=button["extra"]))
        assert not {i["title"] for i in list_card(third)["items"]} & (fresh | first_titles)


class ScopedRecommender(Recommender):
    """The engine as it will be once ``feedback`` forwards the store's ``scope``."""

    scopes: list[str]

    async def feedback(self, rec_id, song_id, user_id, signal, *, scope: str = "track"):
        self.scopes = [*getattr(self, "scopes", []), scope]
        return await self.store.add_feedback(rec_id, song_id, user_id, signal, scope=scope)


async def test_message_scope_is_passed_when_the_engine_accepts_it(tmp_path, index):
    async with kakao_server(tmp_path, index, store=True, engine_cls=ScopedRecommender) as (
            client, engine):
        _, first = await post(client, kakao_payload("행복해"))
        await post(client, kakao_payload("좋아요", client_extra=reply(first, "좋아요")["extra"]))
        assert engine.scopes == ["message"] * 5
        assert {e[3] for e in await engine.store.feedback_events()} == {"message"}


async def test_typed_feedback_words_use_the_last_recommendation(tmp_path, index):
    async with kakao_server(tmp_path, index, store=True) as (client, engine):
        status, body = await post(client, kakao_payload("좋아요", user_id="newcomer"))
        assert status == 200 and texts(body)[0] == TEXT_NO_REC
        await post(client, kakao_payload("차분한 밤", user_id="u2"))
        _, body = await post(client, kakao_payload("다른 노래", user_id="u2"))
        assert "평화" in texts(body)[0] and len(list_card(body)["items"]) == 5
        assert [e[2] for e in await engine.store.feedback_events()] == ["skip"] * 5


async def test_feedback_without_a_store_or_on_unshown_songs_is_polite(tmp_path, index):
    async with kakao_server(tmp_path, index) as (client, _):
        _, first = await post(client, kakao_payload("행복해"))
        status, body = await post(client, kakao_payload(
            "좋아요", client_extra=reply(first, "좋아요")["extra"]))
        assert status == 200 and texts(body)[0] == TEXT_FEEDBACK_FAILED
    async with kakao_server(tmp_path, index, store=True) as (client, _):
        _, first = await post(client, kakao_payload("행복해"))
        forged = dict(reply(first, "좋아요")["extra"], song_ids="not-a-shown-song")
        status, body = await post(client, kakao_payload("좋아요", client_extra=forged))
        assert status == 200 and texts(body)[0] == TEXT_FEEDBACK_FAILED


# ---- the 5-second deadline --------------------------------------------------------------------
async def test_callback_flow_with_a_slow_engine(tmp_path, index):
    async with callback_receiver() as (url, received, got), kakao_server(
            tmp_path, index, engine_cls=SlowRecommender, kakao_callback_after_ms=100
    ) as (client, _):
        t0 = time.perf_counter()
        status, body = await post(client, kakao_payload("짜증나", callback_url=url))
        elapsed = time.perf_counter() - t0
        assert status == 200
        assert body["version"] == "2.0" and body["useCallback"] is True
        assert body["data"]["text"] and validate_response(body)
        assert elapsed < SlowRecommender.delay  # answered before the engine finished
        assert not received
        await asyncio.wait_for(got.wait(), timeout=10)
        metrics = await (await client.get("/metrics")).text()
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
            tmp_path, index, engine_cls=SlowRecommender, kakao_callback_after_ms=100
    ) as (client, _):
        status, body = await post(client, kakao_payload("짜증나", callback_url=url))
        assert status == 200 and body["useCallback"] is True
        await asyncio.wait_for(got.wait(), timeout=10)
        for _ in range(100):  # the log line follows the receiver's answer
            if "callback POST answered HTTP 500" in caplog.text:
                break
            await asyncio.sleep(0.02)
        status, _ = await post(client, kakao_payload("평화", user_id="someone-else"))
        metrics = await (await client.get("/metrics")).text()
    assert status == 200
    assert "callback POST answered HTTP 500" in caplog.text
    ours = [r for r in caplog.records if r.name.startswith("moodtune")]
    warning = next(r for r in ours if "HTTP 500" in r.getMessage())
    assert warning.callback_host == "127.0.0.1"
    # The callback URL is a one-time credential: only its host is logged.
    assert not any("one-time-token" in str(vars(r)) for r in ours)
    assert metric_value(metrics, 'moodtune_kakao_callbacks_total{outcome="http_error"}') == 1


async def test_slow_engine_without_callback_answers_politely_within_the_deadline(tmp_path, index):
    SlowTwoSeconds = type("SlowTwoSeconds", (SlowRecommender,), {"delay": 2.0})
    async with kakao_server(tmp_path, index, engine_cls=SlowTwoSeconds, deadline_s=0.3) as (
            client, _):
        t0 = time.perf_counter()
        status, body = await post(client, kakao_payload("짜증나"))
        elapsed = time.perf_counter() - t0
    assert status == 200 and texts(body) == [TEXT_TIMEOUT]
    assert "잠시 후 다시 말해 주세요" in TEXT_TIMEOUT
    assert 0.3 <= elapsed < 1.5


async def test_engine_failure_is_a_polite_answer_and_counted(tmp_path, index):
    async with kakao_server(tmp_path, index, engine_cls=BrokenRecommender) as (client, _):
        status, body = await post(client, kakao_payload("신나"))
        metrics = await (await client.get("/metrics")).text()
    assert status == 200 and "문제가 생겼어요" in texts(body)[0]
    assert metric_value(
        metrics, 'moodtune_engine_errors_total{channel="kakao",error="RuntimeError"}') == 1


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
    assert body["store"] is False


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
    assert metric_value(text, 'moodtune_feedback_total{channel="kakao",signal="like"}') == 1
    assert metric_value(text, 'moodtune_kakao_replies_total{kind="recommendation"}') == 1
    assert metric_value(text, 'moodtune_engine_seconds_count{channel="kakao",op="recommend"}') == 1
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
    task = asyncio.create_task(serve(engine, settings))
    try:
        async with ClientSession() as http:
            for _ in range(100):
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                        assert resp.status == 200
                        break
                except OSError:
                    await asyncio.sleep(0.05)
            else:
                pytest.fail("server did not start")
            async with http.post(f"http://127.0.0.1:{port}{SKILL_PATH}",
                                 json=kakao_payload("평화")) as resp:
                assert resp.status == 200
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await engine.close()
    with socket.socket() as s:  # the port was released
        s.bind(("127.0.0.1", port))
