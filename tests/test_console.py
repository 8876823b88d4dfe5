"""Console chat: the line handler on a fake classifier, and the real CLI through piped stdin."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.console import ConsoleChat
from bot.engine import Recommender
from tests.fakes import KeywordClassifier

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def chat(settings):
    rec = await Recommender.open(settings, classifier=KeywordClassifier())
    yield ConsoleChat(rec, "u1")
    await rec.close()


async def test_recommends_five_numbered_tracks_with_reason_and_link(chat):
    out = await chat.handle("오늘 너무 우울해")
    assert "슬픔" in out
    for n in range(1, 6):
        assert f"\n{n}. " in out
    assert out.count("https://") == 5
    assert chat.last is not None and len(chat.last.tracks) == 5


async def test_feedback_by_number_is_stored_once(chat):
    await chat.handle("행복해")
    out = await chat.handle("2+")
    assert "좋아요" in out
    again = await chat.handle("2+")
    assert "이미" in again
    hist = await chat.rec.store.history("u1", limit=1)
    song = chat.last.tracks[1].song_id
    assert hist[0].feedback[song] == ("like",)


async def test_feedback_before_any_recommendation_and_out_of_range(chat):
    assert "먼저" in await chat.handle("1+")
    await chat.handle("화나")
    assert "1부터 5" in await chat.handle("9-")


async def test_mood_more_history_forget_and_quit(chat):
    out = await chat.handle("/mood 평화")
    assert "평화 무드로" in out and out.count("https://") == 5
    assert "무드를 골라" in await chat.handle("/mood 배고픔")
    first = chat.last.tracks[0]
    out = await chat.handle("/more 1")
    assert "비슷한 분위기" in out and first.title in out.splitlines()[0] + out
    assert first.song_id not in {t.song_id for t in chat.last.tracks}
    assert "평화" in await chat.handle("/history")
    assert "지울까요" in await chat.handle("/forget-me")
    assert "지웠어요" in await chat.handle("네")
    assert "없어요" in await chat.handle("/history")
    assert "모르는 명령" in await chat.handle("/dance")
    await chat.handle("/quit")
    assert chat.done


async def test_forget_me_asks_first_and_anything_else_keeps_the_data(chat):
    """Like Discord's confirm button: one stray /forget-me must not wipe someone's history."""
    await chat.handle("행복해")
    assert "지울까요" in await chat.handle("/forget-me")
    assert "취소" in await chat.handle("아니요")
    assert len(await chat.rec.history("u1")) == 1
    assert "지울까요" in await chat.handle("/forget-me")
    out = await chat.handle("우울해")  # not a yes: treated as a normal message, nothing deleted
    assert "https://" in out and len(await chat.rec.history("u1")) == 2
    assert "지울까요" in await chat.handle("/forget-me")
    assert "지웠어요" in await chat.handle("yes")
    assert await chat.rec.history("u1") == [] and "u1" not in chat.rec.users


async def test_lone_surrogate_is_cleaned_at_the_edge_not_a_traceback(chat):
    """A broken escape (\\ud800) cannot be encoded as UTF-8 and used to crash the tokenizer."""
    out = await chat.handle("\ud800우울해\x00")
    assert out.count("https://") == 5


async def test_too_long_input_is_explained_not_fatal(chat):
    out = await chat.handle("가" * 5000)
    assert "너무 길어요" in out
    assert await chat.handle("   ") == ""


@pytest.mark.slow
@pytest.mark.parametrize("command", [["chat"], ["run", "--console"], ["run"]])
def test_cli_chat_through_piped_stdin(tmp_path, command):
    """`moodtune chat`, `run --console`, and `run` with everything off (WEB_ENABLED=false, no
    Discord, no Kakao) are the terminal chat, end to end on the shipped model and catalogue.
    (`run` with the defaults serves the web chat: tests/test_web.py.)"""
    env = {**os.environ, "DATA_DIR": str(tmp_path / "var"), "PYTHONUNBUFFERED": "1",
           "KAKAO_ENABLED": "false", "WEB_ENABLED": "false" if command == ["run"] else "true"}
    env.pop("DISCORD_TOKEN", None)
    stdin = "오늘 너무 지치고 우울해\n1+\n/mood 평화\n/quit\n"
    res = subprocess.run([sys.executable, "-m", "bot", *command], input=stdin, text=True,
                         capture_output=True, cwd=tmp_path, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "슬픔" in out and out.count("https://") >= 10
    assert "좋아요 👍" in out and "안녕히 가세요" in out
    assert (tmp_path / "var" / "moodtune.sqlite3").exists()


async def test_the_console_talks_through_respond_smalltalk_privacy_and_refinements(chat):
    """Issue 12: the console is one more door to Recommender.respond, not its own parser."""
    assert "https://" not in await chat.handle("고마워")  # smalltalk: a line, no songs
    assert "https://" not in await chat.handle("안녕")
    assert "지울까요" in await chat.handle("내 정보 삭제해줘")
    assert "취소" in await chat.handle("아니요")
    first = await chat.handle("오늘 너무 우울해")
    shown = {t.song_id for t in chat.last.tracks}
    other = await chat.handle("다른 거")
    assert other.count("https://") == 5 and first != other
    assert shown.isdisjoint({t.song_id for t in chat.last.tracks})
    assert "도움말" in await chat.handle("도움말") or "더 신나게" in await chat.handle("도움말")


async def test_a_named_mood_inside_a_thread_is_read_as_that_mood(chat):
    """'평화' after an answer is a fresh mood, not the previous one carried over."""
    await chat.handle("오늘 너무 우울해")
    out = await chat.handle("평화")
    assert out.splitlines()[0].startswith("😌 평화") and chat.last.emotion.index(
        max(chat.last.emotion)) == 3


async def test_a_plain_request_is_not_announced_as_the_persons_mood(chat):
    """'비 오는 날 들을 잔잔한 노래' says what to play; the keyword classifier reads it neutral,
    and the intro must not tell the person they feel 중립."""
    out = await chat.handle("비 오는 날 들을 잔잔한 노래")
    assert "지금 기분" not in out.splitlines()[0] and "분위기" in out.splitlines()[0]
    assert "지금 기분" in (await chat.handle("너무 우울해")).splitlines()[0]
