"""Answers a listener would nod at, on the shipped model and catalogue (end to end).

Each case was a wrong-feeling answer once: a tired person got only breakup ballads, an
anniversary got dark tense tracks (the classifier read "100일이야!" as 긴장), someone nervous
before an interview got five driving, menacing tracks, and "봄 노래" got a trot song about a
life partner. Thresholds leave room for ties; exploration is off so a run is repeatable.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bot.engine import Recommender
from bot.settings import Settings
from indexing.facets import seasons_in_title
from inference.emotions import LABELS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data folder for the module: the index is built once, then reopened."""
    return tmp_path_factory.mktemp("listening")


@pytest.fixture
async def rec(data_dir: Path):
    engine = await Recommender.open(Settings(_env_file=None, data_dir=data_dir,
                                             rank_exploration=0.0))
    yield engine
    await engine.close()


def _song(rec: Recommender, track):
    return rec._index.get(track.song_id)


@pytest.mark.parametrize("text", ["봄에 듣기 좋은 노래", "벚꽃 필 때 들을 노래"])
async def test_spring_songs_for_spring(rec, text):
    reply = await rec.respond("l-spring" + text, text)
    spring = [t for t in reply.tracks if "봄" in seasons_in_title(t.title)]
    assert len(reply.tracks) == 5 and len(spring) >= 4, [t.title for t in reply.tracks]
    assert "봄" in reply.text.splitlines()[-1]


async def test_worn_out_gets_comfort_not_only_breakups(rec):
    reply = await rec.respond("l-tired", "오늘 너무 지치고 우울해")
    comfort = [t for t in reply.tracks if "위로/응원" in _song(rec, t).themes]
    assert len(comfort) >= 2, [(t.title, _song(rec, t).themes) for t in reply.tracks]
    assert LABELS[int(np.argmax(reply.emotion))] == "슬픔"


async def test_an_anniversary_gets_happy_love_songs(rec):
    reply = await rec.respond("l-100", "여자친구랑 100일이야!")
    assert LABELS[int(np.argmax(reply.emotion))] == "기쁨"
    love = [t for t in reply.tracks if {"사랑", "설렘"} & set(_song(rec, t).themes)]
    assert len(love) >= 4, [(t.title, _song(rec, t).themes) for t in reply.tracks]


async def test_nerves_settle_toward_calm(rec):
    reply = await rec.respond("l-nerves", "내일 면접인데 너무 떨려")
    assert reply.strategy == "lift"
    moods = [LABELS[int(np.argmax(_song(rec, t).vector))] for t in reply.tracks]
    assert moods[-1] == "평화" and moods.count("긴장") <= 2, moods


async def test_no_ballads_after_saying_no_ballads(rec):
    await rec.respond("l-nob", "요즘 발라드 땡긴다")
    for text in ("발라드 말고 다른 거", "다른 거"):
        reply = await rec.respond("l-nob", text)
        assert len(reply.tracks) == 5 and all(t.genre != "발라드" for t in reply.tracks), text
