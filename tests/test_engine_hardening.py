"""Issue 10's engine defects, each pinned by a test that failed before the fix: bounded per-user
memory, one admission limit, CF picked up from disk, a health check that proves a write, keyed
log pseudonyms, one feedback path that survives a restart, invalid Unicode at the edge."""

from __future__ import annotations

import asyncio
import stat
import time

import numpy as np
import pytest

from bot.engine import (
    EngineBusyError,
    FeedbackUnavailableError,
    Recommender,
    UnknownAnswerError,
)
from bot.feedback import Signal
from bot.observability import user_ref
from bot.userstate import UserStateCache
from indexing.cf import save_cf
from inference.text import clean_text
from tests.fakes import KeywordClassifier, make_settings


class SlowClassifier(KeywordClassifier):
    """Takes ``delay`` seconds per sentence, like a busy CPU: lets requests pile up."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def predict(self, texts):
        time.sleep(self.delay)
        return super().predict(texts)


# ---- per-user memory is bounded -----------------------------------------------------------------
def test_user_state_cache_caps_users_and_expires_idle_ones():
    now = [0.0]
    cache = UserStateCache(max_users=3, ttl_s=10, clock=lambda: now[0])
    for u in "abcd":
        cache.get(u).recent.append(("s",))
    assert len(cache) == 3 and "a" not in cache and cache.evicted == 1
    cache.get("b")  # touch: b becomes the most recently used
    cache.get("e")
    assert "c" not in cache and "b" in cache
    now[0] = 100.0
    assert cache.peek("b") is None and len(cache) == 0  # idle past the TTL: gone
    with pytest.raises(ValueError):
        UserStateCache(max_users=0)


async def test_engine_memory_stays_bounded_however_many_user_ids_arrive(tmp_path):
    """Before: engine._recent kept every id forever (the caller picks ids on Kakao)."""
    settings = make_settings(tmp_path, user_state_max_users=50)
    async with await Recommender.open(settings, classifier=KeywordClassifier(),
                                      use_store=False) as engine:
        for i in range(400):
            await engine.recommend_mood(f"kakao:{i}", "평화")
        assert len(engine.users) == 50
        # the newest users still get their no-repeat memory
        first = {t.song_id for t in (await engine.recommend_mood("kakao:399", "평화")).tracks}
        assert first.isdisjoint(set(engine.users.peek("kakao:399").recent[0]))


# ---- one admission limit --------------------------------------------------------------------------
async def test_requests_past_engine_max_pending_are_refused_at_once_and_counted(tmp_path):
    settings = make_settings(tmp_path, engine_max_pending=2)
    async with await Recommender.open(settings, classifier=SlowClassifier(0.3),
                                      use_store=False) as engine:
        t0 = time.perf_counter()
        results = await asyncio.gather(
            *(engine.recommend(f"u{i}", "우울해", channel="kakao") for i in range(6)),
            return_exceptions=True)
        busy = [r for r in results if isinstance(r, EngineBusyError)]
        assert len(busy) == 4 and len(results) - len(busy) == 2
        assert "요청이 많아요" in str(busy[0])
        assert engine.metrics.get("moodtune_engine_busy_total").value(channel="kakao") == 4
        assert engine.pending == 0 and time.perf_counter() - t0 < 2.0
        # capacity comes back as soon as the work is done
        assert (await engine.recommend("u9", "우울해")).tracks


async def test_engine_records_latency_and_errors_for_every_adapter(engine):
    await engine.recommend("d1", "우울해", channel="discord")
    hist = engine.metrics.get("moodtune_engine_seconds")
    assert hist.count(channel="discord", op="recommend") == 1
    with pytest.raises(UnknownAnswerError):
        await engine.feedback_answer("d1", "no-such-rec", Signal.LIKE, channel="discord")


@pytest.fixture
async def engine(settings):
    rec = await Recommender.open(settings, classifier=KeywordClassifier())
    yield rec
    await rec.close()


# ---- CF is picked up when its file changes ----------------------------------------------------------
async def test_cf_model_written_by_another_process_is_picked_up_without_a_restart(tmp_path):
    settings = make_settings(tmp_path, cf_check_interval_s=0)
    async with await Recommender.open(settings, classifier=KeywordClassifier()) as engine:
        assert engine.cf is None
        song_ids = [engine.index.song_id_at(i) for i in range(20)]
        rng = np.random.default_rng(0)
        save_cf(settings.resolved_cf_path, user_ids=["u1"], item_ids=song_ids,
                user_factors=rng.standard_normal((1, 4)),
                item_factors=rng.standard_normal((20, 4)), user_events=np.array([50]), info={"note": "test"})
        await engine.recommend("u1", "우울해")  # notices the new file, reloads in background
        for _ in range(100):
            if engine.cf is not None:
                break
            await asyncio.sleep(0.02)
        assert engine.cf is not None
        first = engine.cf.model_id
        await asyncio.sleep(0.01)
        save_cf(settings.resolved_cf_path, user_ids=["u1", "u2"], item_ids=song_ids,
                user_factors=rng.standard_normal((2, 4)),
                item_factors=rng.standard_normal((20, 4)), user_events=np.array([50, 9]), info={"note": "test"})
        await engine.recommend("u1", "행복")
        for _ in range(100):
            if engine.cf.n_users == 2:
                break
            await asyncio.sleep(0.02)
        assert engine.cf.n_users == 2 and engine.cf.model_id != first


# ---- health proves a write ---------------------------------------------------------------------
async def test_health_is_degraded_when_the_database_stops_taking_writes(engine):
    ok = await engine.health()
    assert ok["status"] == "ok" and ok["store"] == "ok" and ok["songs"] == 300
    await engine.store.close()  # every write now fails, as on a full or read-only disk
    bad = await engine.health()
    assert bad["status"] == "degraded" and bad["store"] == "failing"
    assert any("not writable" in p for p in bad["problems"])


# ---- keyed pseudonyms ---------------------------------------------------------------------------
async def test_log_pseudonyms_are_keyed_with_a_per_install_secret(settings):
    async with await Recommender.open(settings, classifier=KeywordClassifier()) as a:
        ref = a.user_ref("kakao:abc")
    key_file = settings.resolved_pseudonym_key_path
    assert key_file.exists() and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert ref != user_ref("kakao:abc")  # not the unkeyed hash anyone can recompute
    async with await Recommender.open(settings, classifier=KeywordClassifier()) as b:
        assert b.user_ref("kakao:abc") == ref  # stable across restarts
    other = make_settings(settings.data_dir.parent / "other")
    async with await Recommender.open(other, classifier=KeywordClassifier()) as c:
        assert c.user_ref("kakao:abc") != ref  # another install, other pseudonyms


# ---- one feedback path ------------------------------------------------------------------------------
async def test_feedback_on_a_track_a_whole_answer_and_withdrawn(engine):
    rec = await engine.recommend("u", "우울해")
    song, new = await engine.feedback_track("u", rec.rec_id, 1, Signal.LIKE)
    assert song == rec.tracks[1].song_id and new
    assert (await engine.feedback_track("u", rec.rec_id, 1, Signal.LIKE))[1] is False
    with pytest.raises(UnknownAnswerError):
        await engine.feedback_track("u", rec.rec_id, 7, Signal.LIKE)
    assert await engine.feedback_answer("u", rec.rec_id, Signal.LOVE) == 5
    assert await engine.withdraw_feedback("u", rec.rec_id, Signal.LOVE) == 5
    assert await engine.withdraw_feedback("u", rec.rec_id, Signal.LIKE, position=1) == 1
    assert await engine.store.feedback_events() == []
    counter = engine.metrics.get("moodtune_feedback_total")
    assert counter.value(channel="console", signal="love") == 5


async def test_last_answer_survives_a_restart(settings):
    async with await Recommender.open(settings, classifier=KeywordClassifier()) as a:
        rec = await a.recommend("kakao:x", "행복")
    async with await Recommender.open(settings, classifier=KeywordClassifier()) as b:
        assert "kakao:x" not in b.users  # nothing in memory after the restart
        last = await b.last_answer("kakao:x")
        assert last.rec_id == rec.rec_id and last.song_ids == tuple(t.song_id for t in rec.tracks)
        assert await b.feedback_answer("kakao:x", last.rec_id, Signal.LIKE) == 5
        assert await b.last_answer("nobody") is None


async def test_without_a_store_feedback_says_so_and_last_answer_comes_from_memory(tmp_path):
    settings = make_settings(tmp_path)
    async with await Recommender.open(settings, classifier=KeywordClassifier(),
                                      use_store=False) as engine:
        rec = await engine.recommend("u", "화나")
        assert (await engine.last_answer("u")).rec_id == rec.rec_id
        with pytest.raises(FeedbackUnavailableError):
            await engine.feedback_answer("u", rec.rec_id, Signal.LIKE)


# ---- invalid Unicode at the edge ---------------------------------------------------------------------
def test_clean_text_replaces_lone_surrogates_and_drops_control_characters():
    assert clean_text("\ud800abc") == "\ufffdabc"
    assert clean_text("a\x00b\x1bc\r\nd\re\u0085f") == "abc\nd\nef"
    assert clean_text("오늘 😊 good\tday\n") == "오늘 😊 good\tday\n"  # valid text is untouched
    clean_text("\udfff\ud83d").encode("utf-8")  # always encodable afterwards
    with pytest.raises(TypeError):
        clean_text(None)  # type: ignore[arg-type]


async def test_a_lone_surrogate_gets_an_answer_not_a_traceback(engine):
    rec = await engine.recommend("u", "\ud800우울해")
    assert len(rec.tracks) == 5


# ---- exploration (issue 11: no song dominates exposure) ------------------------------------------
async def test_exploration_spreads_songs_across_users_in_the_same_mood(tmp_path):
    async def served(exploration: float) -> set[str]:
        settings = make_settings(tmp_path / str(exploration), rank_exploration=exploration)
        async with await Recommender.open(settings, classifier=KeywordClassifier(),
                                          use_store=False) as engine:
            return {t.song_id for i in range(20)
                    for t in (await engine.recommend(f"u{i}", "우울해")).tracks}

    assert len(await served(0.0)) == 5  # deterministic: everyone gets the same five
    assert len(await served(0.05)) > 10
