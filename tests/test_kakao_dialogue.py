"""Kakao talks through ``Recommender.respond``: requests with slots, smalltalk, refinements.

The skill no longer decides what free text means; the engine does (``bot.dialogue``) and the
skill renders its Reply. These tests pin what a KakaoTalk user sees for each kind of Reply, and
that a refinement tap ("더 신나게") works after a restart because the engine's thread is in the
store, not in the adapter.
"""

from __future__ import annotations

from bot.kakao import LIMITS, validate_response
from tests.kakao_support import (
    kakao_payload,
    kakao_server,
    list_card,
    post,
    reply,
    texts,
)

REFINEMENTS = ("더 신나게", "더 잔잔하게")


def _labels(body: dict) -> list[str]:
    return [q["label"] for q in body["template"].get("quickReplies", [])]


def _titles(body: dict) -> set[str]:
    return {item["title"] for item in list_card(body)["items"]}


async def test_a_request_with_a_genre_gets_a_list_card_of_that_genre(tmp_path, index):
    async with kakao_server(tmp_path, index, store=True) as (client, engine):
        status, body = await post(client, kakao_payload("신나는 힙합 틀어줘"))
        shown = await engine.last_answer("kakao:kakao-user-1")
    assert status == 200 and validate_response(body) == body
    intro = texts(body)[0]
    assert "힙합" in intro  # the intro says what was understood
    card = list_card(body)
    assert len(card["items"]) == 5 and "랩/힙합" in card["header"]["title"]
    assert {index.get(song_id).genre for song_id in shown.song_ids} == {"랩/힙합"}
    for item in card["items"]:  # the per-track reason, clipped to Kakao's line
        assert item["description"] and len(item["description"]) <= LIMITS.list_description
    assert len({item["description"] for item in card["items"]}) > 1  # specific, not one line
    assert _labels(body) == ["좋아요", "별로예요", "다른 노래", *REFINEMENTS]
    assert all(len(label) <= LIMITS.label for label in _labels(body))


async def test_smalltalk_is_a_text_answer_and_stores_nothing(tmp_path, index):
    async with kakao_server(tmp_path, index, store=True) as (client, engine):
        status, body = await post(client, kakao_payload("고마워"))
        assert engine.classifier.calls == 0
        assert await engine.history("kakao:kakao-user-1") == []
        assert await engine.last_answer("kakao:kakao-user-1") is None
    assert status == 200 and validate_response(body)
    outputs = body["template"]["outputs"]
    assert [list(o) for o in outputs] == [["simpleText"]]
    assert "천만에요" in texts(body)[0]


async def test_a_refinement_tap_after_a_restart_refines_the_stored_thread(tmp_path, index):
    """Two engines on one database file stand for a restart between the answer and the tap:
    "더 신나게" refines the answer shown before it (same mood read, more energy, new songs)."""
    db = tmp_path / "shared.sqlite3"
    user = "refine-user"
    async with kakao_server(tmp_path, index, store=db) as (client, _):
        _, first = await post(client, kakao_payload("오늘 너무 우울해", user_id=user))
        assert "슬픔" in texts(first)[0]
    up = reply(first, "더 신나게")
    assert up["messageText"] == "더 신나게" and "extra" not in up  # typed text to the engine
    async with kakao_server(tmp_path, index, store=db) as (client, engine):
        status, body = await post(client, kakao_payload(up["messageText"], user_id=user))
        assert status == 200 and validate_response(body)
        intro = texts(body)[0]
        assert "더 신나는" in intro and "슬픔" in intro  # a refinement of the stored thread
        assert len(list_card(body)["items"]) == 5
        assert not _titles(body) & _titles(first)
        assert engine.classifier.calls == 0  # the thread's mood, not a new reading
        _, calmer = await post(client, kakao_payload(reply(body, "더 잔잔하게")["messageText"],
                                                     user_id=user))
        assert "더 잔잔한" in texts(calmer)[0]
        assert not _titles(calmer) & _titles(body)


async def test_typed_track_feedback_goes_through_the_engine(tmp_path, index):
    async with kakao_server(tmp_path, index, store=True) as (client, engine):
        await post(client, kakao_payload("차분한 밤"))
        shown = await engine.last_answer("kakao:kakao-user-1")
        status, body = await post(client, kakao_payload("2번 좋다"))
        events = await engine.store.feedback_events()
    assert status == 200 and validate_response(body)
    assert [list(o) for o in body["template"]["outputs"]] == [["simpleText"]]
    second = index.get(shown.song_ids[1])
    assert second.title in texts(body)[0]
    assert [(e[1], e[2], e[3]) for e in events] == [(second.song_id, "like", "track")]
    assert _labels(body)[:3] == ["다른 노래", *REFINEMENTS]


async def test_asking_to_delete_in_other_words_gets_the_confirmation(tmp_path, index):
    async with kakao_server(tmp_path, index, store=True) as (client, engine):
        await post(client, kakao_payload("신나"))
        status, question = await post(client, kakao_payload("내 기록 다 지워줘"))
        assert status == 200 and validate_response(question)
        assert set(_labels(question)) == {"삭제할게요", "취소"}
        assert await engine.history("kakao:kakao-user-1")  # nothing deleted yet
        confirm = reply(question, "삭제할게요")
        _, done = await post(client, kakao_payload(confirm["messageText"],
                                                   client_extra=confirm["extra"]))
        assert "삭제했어요" in texts(done)[0]
        assert await engine.history("kakao:kakao-user-1") == []


async def test_other_song_after_deleting_everything_answers_for_the_buttons_mood(tmp_path, index):
    """"다른 노래" refines the engine's thread; once 내 정보 삭제 has removed it, the tapped
    button's mood still gives an answer rather than a dead end."""
    async with kakao_server(tmp_path, index, store=True) as (client, engine):
        _, first = await post(client, kakao_payload("오늘 너무 우울해"))
        await post(client, kakao_payload("내 정보 삭제"))
        await post(client, kakao_payload("삭제할게요"))
        assert await engine.last_answer("kakao:kakao-user-1") is None
        more = reply(first, "다른 노래")
        status, body = await post(client, kakao_payload("다른 노래", client_extra=more["extra"]))
    assert status == 200 and validate_response(body)
    assert texts(body)[0].startswith("다른 노래로 골라 봤어요") and "슬픔" in texts(body)[0]
    assert len(list_card(body)["items"]) == 5
