"""Kakao users can delete their data ("내 정보 삭제"), after a confirmation, and read the help.

Deleting is the engine's ``forget_user``; the adapter only asks first and keeps the pending
question for a short while (bounded memory), so a tap on "삭제할게요" or typing it works.
"""

from __future__ import annotations

import pytest

from bot.kakao import validate_response
from tests.kakao_support import (
    kakao_payload,
    kakao_server,
    list_card,
    post,
    reply,
    texts,
)


async def _history(engine, user="kakao:kakao-user-1"):
    return await engine.history(user)


@pytest.mark.parametrize("ask", ["내 정보 삭제", "내정보삭제", "  정보   삭제 ", "/forget-me",
                                 "/Forget-Me"])
async def test_forget_me_asks_first_then_deletes_everything_on_confirm(tmp_path, index, ask):
    async with kakao_server(tmp_path, index, store=True) as (client, engine):
        _, first = await post(client, kakao_payload("우울해"))
        await post(client, kakao_payload("좋아요", client_extra=reply(first, "좋아요")["extra"]))
        await post(client, kakao_payload("우울해", user_id="someone-else"))
        status, question = await post(client, kakao_payload(ask))
        assert status == 200 and validate_response(question)
        assert "삭제" in texts(question)[0]
        assert await _history(engine)  # nothing deleted before the confirmation
        confirm = reply(question, "삭제할게요")
        assert {q["label"] for q in question["template"]["quickReplies"]} == {"삭제할게요", "취소"}
        assert confirm["extra"]["forget"]
        status, done = await post(client, kakao_payload(confirm["messageText"],
                                                        client_extra=confirm["extra"]))
        assert status == 200 and validate_response(done)
        assert "삭제했어요" in texts(done)[0]
        assert "추천 기록 1건" in texts(done)[0] and "피드백 5건" in texts(done)[0]
        assert await _history(engine) == []
        assert await engine.last_answer("kakao:kakao-user-1") is None
        assert await _history(engine, "kakao:someone-else")  # only this user's data went
        # The confirmation is spent: tapping it again deletes nothing and says so.
        _, again = await post(client, kakao_payload("삭제할게요", client_extra=confirm["extra"]))
        assert "삭제했어요" not in texts(again)[0] and "내 정보 삭제" in texts(again)[0]


async def test_typed_confirmation_works_within_the_window_and_cancel_deletes_nothing(
        tmp_path, index):
    async with kakao_server(tmp_path, index, store=True) as (client, engine):
        await post(client, kakao_payload("신나"))
        await post(client, kakao_payload("내 정보 삭제"))
        _, cancelled = await post(client, kakao_payload("취소"))
        assert "취소했어요" in texts(cancelled)[0]
        assert await _history(engine)
        await post(client, kakao_payload("정보 삭제"))
        _, done = await post(client, kakao_payload("삭제할게요"))  # typed, no extra
        assert "삭제했어요" in texts(done)[0]
        assert await _history(engine) == []
        # "취소" without a pending question is just a message to the recommender.
        _, body = await post(client, kakao_payload("취소"))
        assert list_card(body)


async def test_a_confirmation_token_from_someone_else_or_too_late_deletes_nothing(
        tmp_path, index):
    from bot.kakao.app import SKILL_KEY
    from bot.kakao.skill import FORGET_CONFIRM_S

    async with kakao_server(tmp_path, index, store=True) as (client, engine):
        await post(client, kakao_payload("신나", user_id="victim"))
        _, question = await post(client, kakao_payload("내 정보 삭제", user_id="attacker"))
        token = reply(question, "삭제할게요")["extra"]
        _, body = await post(client, kakao_payload("삭제할게요", user_id="victim",
                                                   client_extra=token))
        assert "삭제했어요" not in texts(body)[0]
        assert await _history(engine, "kakao:victim")
        # Too late: the question expired (the window is short on purpose).
        _, question = await post(client, kakao_payload("내 정보 삭제", user_id="victim"))
        skill = client.server.app[SKILL_KEY]
        real, wall = skill.clock, skill.forget_tokens.clock
        skill.clock = lambda: real() + FORGET_CONFIRM_S + 1  # the pending question expires
        skill.forget_tokens.clock = lambda: wall() + FORGET_CONFIRM_S + 1  # and so does its token
        _, body = await post(client, kakao_payload(
            "삭제할게요", user_id="victim", client_extra=reply(question, "삭제할게요")["extra"]))
        assert "삭제했어요" not in texts(body)[0]
        assert await _history(engine, "kakao:victim")


async def test_forget_me_without_a_store_still_clears_memory_and_says_so(tmp_path, index):
    async with kakao_server(tmp_path, index) as (client, engine):
        await post(client, kakao_payload("신나"))
        assert await engine.last_answer("kakao:kakao-user-1") is not None
        await post(client, kakao_payload("/forget-me"))
        _, done = await post(client, kakao_payload("삭제할게요"))
        assert "삭제했어요" in texts(done)[0]
        assert await engine.last_answer("kakao:kakao-user-1") is None


@pytest.mark.parametrize("ask", ["도움말", "help", "/help", "HELP", " 도움말 ", "이거 어떻게 써?"])
async def test_help_describes_moods_feedback_refinements_and_deletion(tmp_path, index, ask):
    async with kakao_server(tmp_path, index) as (client, engine):
        status, body = await post(client, kakao_payload(ask))
        assert engine.classifier.calls == 0
    assert status == 200 and validate_response(body)
    text = texts(body)[0]
    for word in ("기분", "평화", "좋아요", "별로예요", "다른 노래", "내 정보 삭제",
                 "더 신나게", "더 잔잔하게", "다른 거", "2번 좋다"):
        assert word in text, word
    assert len(body["template"]["quickReplies"]) == 6
