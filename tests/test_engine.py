"""The recommendation engine: ranking, no-repeat, diversity, shortcuts, hot swap, bad indexes."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from bot.engine import InputTooLongError, Recommender, SongNotInCatalogError, StartupError
from bot.ranking import RankWeights, explain, rerank
from indexing.catalog import Catalog, Song
from indexing.synthetic import synthetic_catalog
from inference.emotions import LABELS, index_of
from tests.fakes import KeywordClassifier, make_settings


@pytest.fixture
async def engine(settings):
    rec = await Recommender.open(settings, classifier=KeywordClassifier())
    yield rec
    await rec.close()


def _song(i: int, artist: str, vec) -> Song:
    return Song(song_id=f"s{i}", title=f"t{i}", artist=artist, vector=tuple(vec))


# ---- ranking (pure) ------------------------------------------------------------------------
def test_mmr_and_artist_cap_change_the_list():
    sad = np.array([0.02, 0.02, 0.9, 0.02, 0.02, 0.02])
    # ten near-identical sad songs by one artist, then varied songs by others
    cands = [(_song(i, "A", sad + 0.001 * i), 0.99) for i in range(10)]
    mixed = [[0.1, 0.1, 0.6, 0.1, 0.05, 0.05], [0.05, 0.3, 0.5, 0.05, 0.05, 0.05],
             [0.05, 0.05, 0.5, 0.3, 0.05, 0.05], [0.3, 0.05, 0.5, 0.05, 0.05, 0.05]]
    cands += [(_song(10 + j, f"B{j}", v), 0.9) for j, v in enumerate(mixed)]
    relevance_only = rerank(sad, cands, 5, RankWeights(mmr_lambda=1.0, max_per_artist=10))
    assert {r.song.artist for r in relevance_only} == {"A"}
    varied = rerank(sad, cands, 5, RankWeights(mmr_lambda=0.75, max_per_artist=1))
    artists = [r.song.artist for r in varied]
    assert len(set(artists)) == 5  # one per artist
    assert varied[0].song.artist == "A"  # the best match still leads


def test_cf_scores_reorder_and_unknown_songs_get_the_mean():
    q = np.array([0.1, 0.1, 0.4, 0.2, 0.1, 0.1])
    cands = [(_song(i, f"a{i}", q), 1.0) for i in range(4)]
    w = RankWeights(cf=1.0, mmr_lambda=1.0)
    ranked = rerank(q, cands, 4, w, {"s3": 1.0, "s0": 0.0})
    assert ranked[0].song.song_id == "s3" and ranked[-1].song.song_id == "s0"
    assert ranked[1].cf == pytest.approx(0.5)  # unrated songs are not buried


def test_explain_names_shared_emotions():
    q = np.zeros(6)
    q[index_of("슬픔")] = 0.8
    q[index_of("평화")] = 0.2
    s = _song(1, "a", [0.0, 0.0, 0.7, 0.3, 0.0, 0.0])
    r = rerank(q, [(s, 1.0)], 1)[0]
    line = explain(q, r)
    assert "슬픔" in line and "평화" in line and "%" in line
    assert "슬픔 무드" in explain(q, r, explicit=True)


# ---- engine ----------------------------------------------------------------------------------
async def test_recommend_returns_explained_tracks(engine):
    rec = await engine.recommend("u", "오늘 너무 우울해")
    assert len(rec.tracks) == 5 and rec.source == "text"
    assert np.isclose(sum(rec.emotion), 1.0, atol=1e-3)
    assert rec.dominant[0][0] == "슬픔"
    for t in rec.tracks:
        assert t.reason and t.link.startswith("https://")
        assert len(t.vector) == 6
        assert int(np.argmax(t.vector)) == index_of("슬픔") or t.score > 0
    assert len({t.artist.casefold() for t in rec.tracks}) == 5  # MAX_PER_ARTIST=1


async def test_no_repeat_within_window_and_persisted_across_restart(settings):
    rec = await Recommender.open(settings, classifier=KeywordClassifier())
    seen: list[set[str]] = []
    for _ in range(3):
        r = await rec.recommend("u", "우울해")
        seen.append({t.song_id for t in r.tracks})
    assert not (seen[0] & seen[1]) and not (seen[1] & seen[2]) and not (seen[0] & seen[2])
    await rec.close()
    # a restarted engine remembers through the store
    rec2 = await Recommender.open(settings, classifier=KeywordClassifier())
    r = await rec2.recommend("u", "우울해")
    assert not ({t.song_id for t in r.tracks} & set().union(*seen))
    other = await rec2.recommend("someone-else", "우울해")
    assert {t.song_id for t in other.tracks} & seen[0]  # other users are not affected
    await rec2.close()


async def test_explicit_mood_skips_the_classifier(engine):
    clf = engine.classifier
    before = clf.calls
    rec = await engine.recommend("u", "/mood 평화")
    assert rec.source == "explicit" and clf.calls == before
    assert LABELS[int(np.argmax(rec.emotion))] == "평화"
    rec2 = await engine.recommend_mood("u", "calm")
    assert LABELS[int(np.argmax(rec2.emotion))] == "평화"


async def test_more_like_this_excludes_the_song_and_follows_its_vector(engine):
    first = await engine.recommend("u", "신나")
    song = first.tracks[0]
    more = await engine.more_like("u", song.song_id)
    assert more.source == "similar"
    assert song.song_id not in {t.song_id for t in more.tracks}
    sims = [float(np.dot(song.vector, t.vector) / np.linalg.norm(song.vector)
                  / np.linalg.norm(t.vector)) for t in more.tracks]
    assert min(sims) > 0.8
    with pytest.raises(SongNotInCatalogError):
        await engine.more_like("u", "no-such-song")


async def test_too_long_input_is_refused_with_a_message(engine):
    with pytest.raises(InputTooLongError, match="너무 길어요"):
        await engine.recommend("u", "가" * (engine.settings.max_input_chars + 1))


async def test_store_failure_does_not_stop_answers(engine):
    async def broken(*a, **k):
        raise RuntimeError("disk on fire")

    engine.store.save_recommendation = broken
    engine.store.recent_song_ids = broken
    rec = await engine.recommend("u", "우울해")
    assert len(rec.tracks) == 5


async def test_index_swap_under_concurrent_load_fails_nothing(tmp_path):
    settings = make_settings(tmp_path, n_songs=400)
    rec = await Recommender.open(settings, classifier=KeywordClassifier(), use_store=False)
    bigger = tmp_path / "bigger.jsonl"
    synthetic_catalog(3000, seed=11).save(bigger)
    results: list[int] = []
    errors: list[BaseException] = []
    stop = asyncio.Event()

    async def user(i: int) -> None:
        while not stop.is_set():
            try:
                r = await rec.recommend(f"u{i}", ["우울해", "신나", "떨려", "편안"][i % 4])
                results.append(len(r.tracks))
            except BaseException as exc:  # any failure fails the test
                errors.append(exc)
            await asyncio.sleep(0)

    users = [asyncio.create_task(user(i)) for i in range(20)]
    await asyncio.sleep(0.05)
    before = len(results)
    info = await rec.reload_index(bigger)
    await asyncio.sleep(0.05)
    stop.set()
    await asyncio.gather(*users)
    await rec.close()
    assert not errors
    assert info == {"songs": 3000, "previous": 400, "seconds": info["seconds"]}
    assert len(rec.index) == 3000
    assert before > 0 and len(results) > before
    assert set(results) == {5}


async def test_failed_reindex_keeps_the_old_index_serving(engine, tmp_path):
    old = engine.index
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"song_id": "x", "title": "t", "vector": [1, 2]}\n', encoding="utf-8")
    with pytest.raises(Exception, match="vector"):
        await engine.reload_index(bad)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(Exception, match="empty"):
        await engine.reload_index(empty)
    assert engine.index is old
    assert len((await engine.recommend("u", "신나")).tracks) == 5


async def test_empty_catalogue_is_a_clear_startup_error(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    settings = make_settings(tmp_path, catalog_path=empty)
    with pytest.raises(StartupError, match="empty"):
        await Recommender.open(settings, classifier=KeywordClassifier(), use_store=False)


async def test_corrupt_index_on_disk_is_rebuilt_from_the_catalogue(settings):
    rec = await Recommender.open(settings, classifier=KeywordClassifier(), use_store=False)
    await rec.close()
    ann = settings.resolved_index_dir / "songs.ann"
    ann.write_bytes(ann.read_bytes()[:100])  # truncated
    rec = await Recommender.open(settings, classifier=KeywordClassifier(), use_store=False)
    assert len((await rec.recommend("u", "신나")).tracks) == 5
    await rec.close()


async def test_index_from_another_model_or_catalogue_is_rebuilt(settings):
    rec = await Recommender.open(settings, classifier=KeywordClassifier(), use_store=False)
    built_at = json.loads((settings.resolved_index_dir / "index.json").read_text())["created_at"]
    await rec.close()

    class OtherModel(KeywordClassifier):
        fingerprint = "another-model-0002"

    rec = await Recommender.open(settings, classifier=OtherModel(), use_store=False)
    assert rec.index.fingerprint == "another-model-0002"
    await rec.close()
    # a changed catalogue (relabelled songs) is noticed too
    Catalog(list(synthetic_catalog(50, seed=3))).save(settings.catalog_path)
    rec = await Recommender.open(settings, classifier=OtherModel(), use_store=False)
    assert len(rec.index) == 50
    await rec.close()
    assert built_at


async def test_missing_model_dir_is_a_clear_startup_error(tmp_path):
    settings = make_settings(tmp_path, model_dir=tmp_path / "nope")
    with pytest.raises(StartupError, match="model directory not found"):
        await Recommender.open(settings, use_store=False)


async def test_event_loop_is_not_blocked_by_ranking(engine):
    """Ranking and classification run in the worker pool: a ticker keeps ticking."""
    ticks = 0
    stop = asyncio.Event()

    async def ticker():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.001)

    t = asyncio.create_task(ticker())
    await asyncio.gather(*(engine.recommend(f"u{i}", "우울해") for i in range(50)))
    stop.set()
    await t
    assert ticks > 3


async def test_forget_user_clears_store_and_memory(engine):
    await engine.recommend("gone", "우울해")
    await engine.recommend("stays", "우울해")
    assert "gone" in engine.users
    counts = await engine.forget_user("gone")
    assert counts and sum(counts.values()) > 0
    assert "gone" not in engine.users and "stays" in engine.users
    assert await engine.store.history("gone") == []
    assert len(await engine.store.history("stays")) == 1
