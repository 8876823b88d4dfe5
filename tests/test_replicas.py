"""Two replicas behind one PostgreSQL database behave as one bot (issue 14, "Replicas").

Two :class:`~bot.engine.Recommender` objects, each with its own data folder and in-memory state,
share one database — as two skill/web processes behind a reverse proxy would. What must hold:
a refinement continues the latest answer whoever gave it, ``/forget-me`` on one replica is not
outlived by the other's memory, feedback is visible everywhere, and the per-user rate limit is
one budget, not one per process. The PostgreSQL tests skip without the server binaries (as in
``tests/test_store.py``); the SQLite and Discord ones run everywhere.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from discord.ext import commands
from pydantic import SecretStr

from bot.discord.app import MoodtuneBot, create_bot
from bot.engine import Recommender
from bot.feedback import Signal
from bot.kakao.parse import parse_skill_request
from bot.kakao.skill import Skill
from bot.ratelimit import RateLimiter, SharedRateLimiter, rate_limiter_for
from bot.store_pg import PgStore
from bot.web.api import WebApi
from tests.fakes import KeywordClassifier, make_settings
from tests.kakao_support import kakao_payload
from tests.pg_support import PgServer, server_or_skip


@pytest.fixture(scope="module")
def pg_server() -> PgServer:
    """A throwaway PostgreSQL server for this module (skips without the binaries)."""
    yield from server_or_skip()


@pytest.fixture
async def replicas(pg_server: PgServer, tmp_path: Path
                   ) -> AsyncIterator[tuple[Recommender, Recommender]]:
    """Replicas A and B: separate folders and memories, one database."""
    url = pg_server.url(await pg_server.create_database())
    engines = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        settings = make_settings(folder, database_url=url, rate_limit_per_minute=3)
        engines.append(await Recommender.open(settings, classifier=KeywordClassifier()))
    try:
        yield engines[0], engines[1]
    finally:
        for rec in engines:
            await rec.close()


def ids(reply: Any) -> set[str]:
    return {t.song_id for t in reply.tracks}


# ---- the conversation thread -----------------------------------------------------------------
async def test_refinement_on_b_continues_an_answer_given_by_a(replicas) -> None:
    a, b = replicas
    assert isinstance(a.store, PgStore) and a.settings.resolved_shared_state
    first = await a.respond("u1", "오늘 너무 우울해")
    assert first.kind == "recommend" and len(first.tracks) == 5
    assert b.users.peek("u1") is None  # B never saw this person
    more = await b.respond("u1", "다른 거")
    assert more.kind == "recommend" and more.request["intent"] == "refine"
    assert len(more.tracks) == 5 and not ids(first) & ids(more)
    # and back on A, whose memory still holds its own (older) answer: the newest one wins
    again = await a.respond("u1", "다른 거")
    assert again.request["intent"] == "refine"
    assert not ids(again) & (ids(first) | ids(more))


async def test_forget_me_on_b_is_not_outlived_by_a_s_memory(replicas) -> None:
    a, b = replicas
    await a.respond("u2", "오늘 너무 우울해")
    assert a.users.peek("u2") is not None and a.users.peek("u2").thread is not None
    await b.forget_user("u2")
    assert await a.last_answer("u2") is None
    fresh = await a.respond("u2", "다른 거")
    assert fresh.request["intent"] == "recommend"  # a new request, not a refinement
    assert await b.history("u2") and len(await b.history("u2")) == 1


async def test_feedback_on_a_is_in_b_s_history(replicas) -> None:
    a, b = replicas
    answer = await a.respond("u3", "오늘 너무 우울해")
    song, new = await a.feedback_track("u3", answer.rec_id, 1, Signal.LIKE, channel="web")
    assert new and song == answer.tracks[1].song_id
    (stored,) = await b.history("u3")
    assert stored.rec_id == answer.rec_id and stored.feedback.get(song) == ("like",)
    # feedback in words on B lands on A's answer too
    words = await b.respond("u3", "1번 별로")
    assert words.kind == "feedback"
    (stored,) = await a.history("u3")
    assert stored.feedback.get(answer.tracks[0].song_id) == ("dislike",)


async def test_store_failure_falls_back_to_this_replica_s_memory(replicas, monkeypatch) -> None:
    a, _ = replicas
    answer = await a.respond("u4", "오늘 너무 우울해")

    async def down(user_id: str) -> None:
        raise OSError("connection lost")

    monkeypatch.setattr(a.store, "last_recommendation", down)
    thread = await a.last_answer("u4")
    assert thread is not None and thread.rec_id == answer.rec_id


# ---- rate limits -----------------------------------------------------------------------------
async def test_shared_limit_refuses_the_n_plus_first_across_replicas(replicas) -> None:
    a, b = replicas
    web_a, web_b = WebApi(a, a.settings), WebApi(b, b.settings)
    assert isinstance(web_a.limiter, SharedRateLimiter) and web_a.limiter.per_minute == 3
    assert [await web_a.limiter.hit("p"), await web_b.limiter.hit("p"),
            await web_a.limiter.hit("p")] == [None, None, None]
    wait = await web_b.limiter.hit("p")
    assert wait is not None and 0 < wait <= 60
    assert await web_a.limiter.hit("p") is not None  # refused everywhere, and not recorded
    # budgets are per person and per kind: feedback and another person are untouched
    assert await web_b.feedback_limiter.hit("p") is None
    assert await web_b.limiter.hit("q") is None
    await web_b.limiter.reset("p")  # /forget-me on B starts the person over on A too
    assert await web_a.limiter.hit("p") is None


async def test_shared_limit_is_atomic_under_concurrent_replicas(replicas) -> None:
    a, b = replicas
    limiters = [rate_limiter_for(r.store, 5, shared=True, name="burst") for r in (a, b)]
    results = await asyncio.gather(*(limiters[i % 2].hit("same") for i in range(30)))
    assert sum(r is None for r in results) == 5


async def test_old_events_expire_and_are_pruned(replicas) -> None:
    a, _ = replicas
    now = [1_000_000.0]
    lim = SharedRateLimiter(a.store, 2, name="clock", clock=lambda: now[0])
    assert await lim.hit("x") is None and await lim.hit("x") is None
    assert await lim.hit("x") == pytest.approx(60.0)
    now[0] += 61
    assert await lim.hit("y") is None  # the first hit of a window prunes every expired row
    assert await a.store.rate_prune(now[0] - 60) == 0
    assert await lim.hit("x") is None


async def test_a_failing_store_limits_this_process_alone(replicas, monkeypatch) -> None:
    a, _ = replicas
    lim = SharedRateLimiter(a.store, 1, name="down")

    async def down(*args: object) -> None:
        raise OSError("connection lost")

    monkeypatch.setattr(a.store, "rate_hit", down)
    assert await lim.hit("z") is None
    assert await lim.hit("z") is not None


def test_sqlite_keeps_the_in_memory_limiter_and_memory_first_thread(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, n_songs=5)
    assert settings.resolved_shared_state is False
    assert isinstance(rate_limiter_for(object(), 3, shared=False), RateLimiter)
    assert isinstance(rate_limiter_for(None, 3, shared=True), RateLimiter)
    assert make_settings(tmp_path, n_songs=5, database_url="postgresql://x@h/d",
                         shared_state=False).resolved_shared_state is False


async def test_kakao_skills_on_two_replicas_share_one_budget(replicas) -> None:
    """A Kakao user whose requests the proxy spreads over A and B gets ``rate_limit`` answers a
    minute in all, not per process; the tap budget is separate (a 👍 costs no answer)."""
    a, b = replicas
    skills = [Skill(r, r.settings) for r in (a, b)]
    assert all(isinstance(s.limiter, SharedRateLimiter) for s in skills)
    texts = []
    for i in range(4):
        req = parse_skill_request(kakao_payload("오늘 너무 우울해", user_id="k1"))
        out = await skills[i % 2].handle(req)
        texts.append(json.dumps(out, ensure_ascii=False))
    assert not any("조금만 천천히요" in t for t in texts[:3])
    assert "1분에 3번까지 추천" in texts[3]
    # the engine's registry is per process here, so count A's and B's refusals together
    assert sum(s.rate_limited.value(channel="kakao") for s in skills) == 1
    assert await skills[0].feedback_limiter.hit("k1") is None  # feedback has its own budget


async def test_discord_processes_on_one_database_share_one_budget(replicas) -> None:
    """Two Discord bot processes (e.g. shard ranges split over machines) on one PostgreSQL:
    one person, one budget; /forget-me on one starts them over on both."""
    a, b = replicas
    bots = [create_bot(r, r.settings) for r in (a, b)]
    try:
        assert all(isinstance(x.limiter, SharedRateLimiter) for x in bots)
        got = [await bots[i % 2].limiter.hit("d1") for i in range(4)]
        assert got[:3] == [None, None, None] and got[3] is not None
        await bots[1].forget("d1")
        assert await bots[0].limiter.hit("d1") is None
    finally:
        for x in bots:
            await x.close()


# ---- tokens one replica issues and another checks (SECRET_KEY) -----------------------------
async def test_kakao_delete_confirmed_on_b_for_a_question_asked_on_a(replicas) -> None:
    """"내 정보 삭제" lands on A, the "삭제할게요" tap on B: with one SECRET_KEY the signed token
    is accepted there, deletes, and is spent on both (a re-sent tap deletes nothing)."""
    a, b = replicas
    await a.respond("kakao:f1", "오늘 너무 우울해")
    shared = {"secret_key": SecretStr("one-secret-for-every-replica-0123456789")}
    skills = [Skill(r, r.settings.model_copy(update=shared)) for r in (a, b)]
    asked = await skills[0].handle(parse_skill_request(kakao_payload("내 정보 삭제", user_id="f1")))
    extra = asked["template"]["quickReplies"][0]["extra"]
    tap = kakao_payload("삭제할게요", user_id="f1", client_extra=extra)
    done = json.dumps(await skills[1].handle(parse_skill_request(tap)), ensure_ascii=False)
    assert "삭제했어요" in done
    assert await a.store.last_recommendation("kakao:f1") is None
    again = json.dumps(await skills[0].handle(parse_skill_request(tap)), ensure_ascii=False)
    assert "삭제했어요" not in again  # spent everywhere, not only where it was used


async def test_kakao_cancel_tapped_on_b_cancels_a_question_asked_on_a(replicas) -> None:
    """"취소" is a command only while a deletion is pending; the tap carries the question's
    signed token, so B knows it is one even though A asked. Another user's token does not."""
    a, b = replicas
    shared = {"secret_key": SecretStr("one-secret-for-every-replica-0123456789")}
    skills = [Skill(r, r.settings.model_copy(update=shared)) for r in (a, b)]
    asked = await skills[0].handle(parse_skill_request(kakao_payload("내 정보 삭제", user_id="c1")))
    cancel = asked["template"]["quickReplies"][1]
    assert cancel["label"] == "취소" and "forget_cancel" in cancel["extra"]
    tap = kakao_payload("취소", user_id="c1", client_extra=cancel["extra"])
    out = json.dumps(await skills[1].handle(parse_skill_request(tap)), ensure_ascii=False)
    assert "취소했어요" in out
    stolen = kakao_payload("취소", user_id="c2", client_extra=cancel["extra"])
    out = json.dumps(await skills[1].handle(parse_skill_request(stolen)), ensure_ascii=False)
    assert "취소했어요" not in out  # for c2 it is just a message to the recommender


async def test_without_a_shared_secret_b_refuses_a_s_token(replicas) -> None:
    """Each replica's own key file: the same tap is refused on B (the reason SECRET_KEY exists;
    the README's deployment sets it)."""
    a, b = replicas
    skills = [Skill(r, r.settings) for r in (a, b)]
    asked = await skills[0].handle(parse_skill_request(kakao_payload("내 정보 삭제", user_id="f2")))
    extra = asked["template"]["quickReplies"][0]["extra"]
    tap = kakao_payload("삭제할게요", user_id="f2", client_extra=extra)
    assert "삭제했어요" not in json.dumps(await skills[1].handle(parse_skill_request(tap)),
                                      ensure_ascii=False)


async def test_web_csrf_token_from_a_is_valid_on_b_with_one_secret(replicas) -> None:
    a, b = replicas
    shared = {"secret_key": SecretStr("one-secret-for-every-replica-0123456789")}
    web_a = WebApi(a, a.settings.model_copy(update=shared))
    web_b = WebApi(b, b.settings.model_copy(update=shared))
    sid = web_a.sessions.new_id()
    assert web_a.sessions.csrf_token(sid) == web_b.sessions.csrf_token(sid)
    alone = WebApi(b, b.settings)
    assert alone.sessions.csrf_token(sid) != web_a.sessions.csrf_token(sid)


# ---- Discord sharding ------------------------------------------------------------------------
async def test_create_bot_honours_discord_shard_count(tmp_path: Path) -> None:
    engine: Any = object()  # create_bot only keeps it
    plain = create_bot(engine, make_settings(tmp_path, n_songs=5))
    assert isinstance(plain, MoodtuneBot) and not isinstance(plain, commands.AutoShardedBot)
    sharded = create_bot(engine, make_settings(tmp_path, n_songs=5, discord_shard_count=4))
    assert isinstance(sharded, MoodtuneBot) and isinstance(sharded, commands.AutoShardedBot)
    assert sharded.shard_count == 4
    assert sharded.intents.message_content and sharded.limiter.per_minute == 12
    await plain.close()  # (an AutoShardedBot that never logged in cannot close: discord.py's
    # queue is made at login; nothing was opened, so there is nothing to release)
