"""Kakao feedback: quick replies and typed words, through the engine's one feedback path.

"좋아요" / "별로예요" / "다른 노래" are about a whole answer (scope "message"); the answer they
refer to comes from the button's ``extra`` when it survived, else from the engine's record of the
user's last answer, which lives in the store and so survives a restart.
"""

from __future__ import annotations

import re
from pathlib import Path

from bot.feedback import Signal
from bot.kakao import TEXT_FEEDBACK_DUP, TEXT_FEEDBACK_FAILED, TEXT_NO_REC, validate_response
from tests.kakao_support import (
    kakao_payload,
    kakao_server,
    list_card,
    metric_value,
    metrics_text,
    post,
    reply,
    texts,
)

BOT_FILES = sorted((Path(__file__).resolve().parent.parent / "bot" / "kakao").glob("*.py"))


async def test_feedback_quick_reply_round_trip_with_the_real_store(tmp_path, index):
    async with kakao_server(tmp_path, index, store=True) as (client, engine):
        _, first = await post(client, kakao_payload("불안하고 떨려"))
        like = reply(first, "좋아요")
        status, body = await post(client, kakao_payload(like["messageText"],
                                                        client_extra=like["extra"]))
        assert status == 200 and validate_response(body)
        assert "좋았다니" in texts(body)[0]
        events = await engine.store.feedback_events()
        shown = [i["title"] for i in list_card(first)["items"]]
        assert len(events) == len(shown) == 5
        assert {(e[0], e[2]) for e in events} == {("kakao:kakao-user-1", "like")}
        # A reply about the whole message is per-message feedback.
        assert {e[3] for e in events} == {"message"}
        # Tapping again is idempotent, and says so.
        _, again = await post(client, kakao_payload("좋아요", client_extra=like["extra"]))
        assert texts(again)[0] == TEXT_FEEDBACK_DUP
        assert len(await engine.store.feedback_events()) == 5
        dislike = reply(first, "별로예요")
        _, body = await post(client, kakao_payload("별로예요", client_extra=dislike["extra"]))
        assert "다르게 골라 볼게요" in texts(body)[0]
        signals = [e[2] for e in await engine.store.feedback_events()]
        assert signals.count("dislike") == 5
        metrics = await metrics_text(client)
    # The engine counts feedback (once per stored row) in its own registry, which /metrics shows.
    assert metric_value(metrics, 'moodtune_feedback_total{channel="kakao",signal="like"}') == 5


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


async def test_typed_feedback_words_use_the_last_recommendation(tmp_path, index):
    async with kakao_server(tmp_path, index, store=True) as (client, engine):
        status, body = await post(client, kakao_payload("좋아요", user_id="newcomer"))
        assert status == 200 and texts(body)[0] == TEXT_NO_REC
        await post(client, kakao_payload("차분한 밤", user_id="u2"))
        _, body = await post(client, kakao_payload("다른 노래", user_id="u2"))
        assert "평화" in texts(body)[0] and len(list_card(body)["items"]) == 5
        assert [e[2] for e in await engine.store.feedback_events()] == ["skip"] * 5


async def test_feedback_without_a_store_or_on_an_unknown_answer_is_polite(tmp_path, index):
    async with kakao_server(tmp_path, index) as (client, _):
        _, first = await post(client, kakao_payload("행복해"))
        status, body = await post(client, kakao_payload(
            "좋아요", client_extra=reply(first, "좋아요")["extra"]))
        assert status == 200 and texts(body)[0] == TEXT_FEEDBACK_FAILED
    async with kakao_server(tmp_path, index, store=True) as (client, engine):
        _, first = await post(client, kakao_payload("행복해"))
        forged = dict(reply(first, "좋아요")["extra"], rec_id="0123456789abcdef")
        status, body = await post(client, kakao_payload("좋아요", client_extra=forged))
        assert status == 200 and "새로 추천받아" in texts(body)[0]
        assert await engine.store.feedback_events() == []


# ---- defect 6: a typed or extra-less "좋아요" survives a restart ------------------------------
async def test_typed_like_after_a_restart_reaches_the_answer_shown_before_it(tmp_path, index):
    """Two engines on one database file stand for a restart between the answer and the reply.

    Kakao fallback blocks can drop a button's ``extra``, and people type "좋아요"; either way the
    feedback must land on the answer the user saw, which only the store still knows after a
    restart (``engine.last_answer``), not the adapter's memory.
    """
    db = tmp_path / "shared.sqlite3"
    async with kakao_server(tmp_path, index, store=db) as (client, _):
        _, first = await post(client, kakao_payload("화나고 짜증나", user_id="restart-user"))
        rec_id = reply(first, "좋아요")["extra"]["rec_id"]
    async with kakao_server(tmp_path, index, store=db) as (client, engine):
        status, body = await post(client, kakao_payload("좋아요", user_id="restart-user"))
        assert status == 200 and "좋았다니" in texts(body)[0]
        # A tap whose extra lost everything but the label is the same thing.
        _, body = await post(client, kakao_payload("별로예요", user_id="restart-user",
                                                   client_extra={"unrelated": "block"}))
        assert "다르게 골라 볼게요" in texts(body)[0]
        events = await engine.store.feedback_events()
    assert {(e[0], e[2], e[3]) for e in events} == {
        ("kakao:restart-user", "like", "message"), ("kakao:restart-user", "dislike", "message")}
    assert len(events) == 10
    # The feedback names the answer shown before the restart.
    assert rec_id


def test_no_store_access_in_the_kakao_adapter():
    """Feedback is written and read in one place (the engine); the adapter never holds the store."""
    assert BOT_FILES
    for path in BOT_FILES:
        assert not re.search(r"\.store\b", path.read_text(encoding="utf-8")), path.name


# ---- defect 6: feedback has its own rate limit ---------------------------------------------
async def test_feedback_taps_have_their_own_budget(tmp_path, index):
    """Two recommendations a minute, three feedback taps a minute: neither eats the other."""
    async with kakao_server(tmp_path, index, store=True, rate_limit_per_minute=2,
                            feedback_rate_limit_per_minute=3) as (client, _):
        _, first = await post(client, kakao_payload("신나"))
        _, second = await post(client, kakao_payload("행복해"))
        assert list_card(first) and list_card(second)
        like = reply(second, "좋아요")
        for label in ("좋아요", "별로예요"):
            _, body = await post(client, kakao_payload(label, client_extra=dict(
                reply(second, label)["extra"])))
            assert "조금만 천천히요" not in texts(body)[0], label
        _, body = await post(client, kakao_payload("좋아요", client_extra=like["extra"]))
        assert texts(body)[0] == TEXT_FEEDBACK_DUP  # the third tap still fits the budget
        _, body = await post(client, kakao_payload("좋아요", client_extra=like["extra"]))
        assert re.search(r"\d+초 뒤에", texts(body)[0]) and "3번" in texts(body)[0]
        # The recommendation budget is still spent by the two recommendations alone.
        _, body = await post(client, kakao_payload("우울해"))
        assert "2번" in texts(body)[0]
        metrics = await metrics_text(client)
    assert metric_value(metrics, 'moodtune_rate_limited_total{channel="kakao"}') == 2


async def test_other_song_spends_the_recommendation_budget(tmp_path, index):
    """"다른 노래" records a skip *and* answers with new songs: it is a recommendation for the
    rate limit, so taps cannot get answers at the feedback rate; "좋아요" stays free."""
    async with kakao_server(tmp_path, index, store=True, rate_limit_per_minute=1,
                            feedback_rate_limit_per_minute=10) as (client, _):
        _, first = await post(client, kakao_payload("신나"))
        more = reply(first, "다른 노래")
        _, body = await post(client, kakao_payload("다른 노래", client_extra=more["extra"]))
        assert re.search(r"\d+초 뒤에", texts(body)[0]) and "추천해 드릴 수" in texts(body)[0]
        _, body = await post(client, kakao_payload("좋아요", client_extra=reply(
            first, "좋아요")["extra"]))
        assert "좋았다니" in texts(body)[0]
