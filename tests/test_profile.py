"""Song profiles (catalogue format 2): the format, links, the index columns, calibration and
fusion, and the catalogue build from labelled songs + editorial annotations."""

from __future__ import annotations

import json

import numpy as np
import pytest

from indexing.catalog import Catalog, CatalogError, Song, search_query
from indexing.index import SongIndex, build_index
from inference.emotions import LABELS, index_of
from training.catalog_build import EditorialRecord, KnownSong, build_catalog, read_editorial
from training.profile import (
    FusionModel,
    derived_facets,
    editorial_vector,
    entropy,
    fit_temperature,
    lyric_language,
    lyric_themes,
    temper,
)


def onehotish(mood: str, top: float = 0.9) -> tuple[float, ...]:
    v = [(1 - top) / 5] * 6
    v[index_of(mood)] = top
    return tuple(v)


def profiled(song_id="s1", **kw) -> Song:
    base = dict(song_id=song_id, title="밤편지", artist="아이유", vector=onehotish("평화"),
                genre="발라드", energy=0.2, tempo="slow", dance=0.1, situations=("잠", "새벽"),
                themes=("사랑",), lang="ko",
                provenance={"energy": {"source": "editorial", "confidence": 0.9}},
                moods={"editorial": onehotish("평화", 0.6)})
    return Song(**{**base, **kw})


# ---- the format ------------------------------------------------------------------------------
def test_v2_round_trips_and_v1_lines_still_load(tmp_path):
    v1 = {"song_id": "old", "title": "t", "artist": "a", "vector": [0.1, 0.1, 0.5, 0.1, 0.1, 0.1]}
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps(v1) + "\n" + json.dumps(profiled().to_json(), ensure_ascii=False)
                    + "\n", encoding="utf-8")
    cat = Catalog.load(path)
    old, new = cat.get("old"), cat.get("s1")
    assert old.energy is None and old.situations == () and not old.has_profile
    assert "v" not in old.to_json()  # a v1 song is written back as v1
    assert new.to_json()["v"] == 2 and new.situations == ("잠", "새벽") and new.energy == 0.2
    assert new.provenance["energy"]["source"] == "editorial"
    cat.save(tmp_path / "again.jsonl")
    assert Catalog.load(tmp_path / "again.jsonl").get("s1") == new


def test_out_of_range_facets_are_refused():
    with pytest.raises(CatalogError, match="energy"):
        profiled(energy=1.5)


def test_search_query_drops_feat_and_parentheticals_but_keeps_group_names():
    assert search_query("UNFORGIVEN (feat. Nile Rodgers)", "LE SSERAFIM (르세라핌)") == \
        "LE SSERAFIM UNFORGIVEN"
    assert search_query("퀸카 (Queencard)", "(여자)아이들") == "(여자)아이들 퀸카"
    assert search_query("좋은 날 feat. 누구", "A, B") == "A 좋은 날"
    assert len(search_query("x" * 500, "y")) <= 100


def test_link_kinds():
    s = profiled()
    assert "youtube.com" in s.link_for("auto") and "%EB%B0%A4%ED%8E%B8%EC%A7%80" in s.link
    assert "melon.com/search" in s.link_for("melon")
    with_id = profiled(melon_id="30512671")
    assert with_id.link_for("auto").endswith("songId=30512671")
    assert "youtube.com" in with_id.link_for("youtube")
    with pytest.raises(ValueError):
        s.link_for("spotify")


def test_index_serves_profiles_and_filters_by_facet_arrays(tmp_path):
    songs = [profiled(), profiled("s2", title="Hype Boy", artist="NewJeans",
                                  vector=onehotish("기쁨"), energy=0.8, situations=("운동",),
                                  themes=("설렘",), tempo="fast"),
             Song("s3", "v1 song", "a", onehotish("슬픔"))]
    out = build_index(Catalog(songs), tmp_path / "idx")
    with SongIndex.load(out) as index:
        got = index.song("s1")
        assert got.vector == pytest.approx(songs[0].vector, abs=1e-6)  # float32 in the index
        for name in ("title", "energy", "tempo", "dance", "situations", "themes", "lang",
                     "provenance", "moods", "genre"):
            assert getattr(got, name) == getattr(songs[0], name), name
        assert not index.song("s3").has_profile
        energy = index.facet_array("energy")
        assert energy[0] == pytest.approx(0.2) and np.isnan(energy[2])
        from indexing.facets import SITUATIONS

        run = 1 << SITUATIONS.index("운동")
        assert [bool(m & run) for m in index.facet_array("situations")] == [False, True, False]
        assert index.column("genre") == ["발라드", "발라드", ""]


def test_a_version_1_index_is_refused_so_the_engine_rebuilds_it(tmp_path):
    from indexing.index import IndexCorruptError

    out = build_index(Catalog([profiled()]), tmp_path / "idx")
    info = json.loads((out / "index.json").read_text())
    info["format_version"] = 1
    (out / "index.json").write_text(json.dumps(info))
    with pytest.raises(IndexCorruptError, match="rebuild"):
        SongIndex.load(out)


# ---- calibration and fusion --------------------------------------------------------------------
def test_temperature_matches_a_target_entropy_and_keeps_the_argmax():
    rng = np.random.default_rng(0)
    peaky = rng.dirichlet([0.2] * 6, size=200)
    target = 1.3
    t = fit_temperature(peaky, target)
    assert entropy(temper(peaky, t)).mean() == pytest.approx(target, abs=0.01)
    assert (temper(peaky, t).argmax(1) == peaky.argmax(1)).all()


def test_editorial_vector_prefers_the_mood_then_the_also_moods():
    v = editorial_vector("기쁨", ["긴장"])
    assert v.argmax() == index_of("기쁨") and v[index_of("긴장")] > v[index_of("슬픔")]


def test_fusion_calibrates_sources_so_a_peaky_one_does_not_win_by_sharpness():
    lyrics = [np.asarray(onehotish(m, 0.4)) for m in LABELS] * 5
    songs = [{"lyrics": (v, 1.0)} for v in lyrics]
    # a near one-hot description that disagrees with the lyrics
    songs.append({"lyrics": (onehotish("슬픔", 0.45), 1.0),
                  "description": (onehotish("기쁨", 0.999), 1.0)})
    model = FusionModel.fit(songs, {})
    assert model.temperatures["description"] > 1.5  # flattened toward the lyrics' entropy
    fused = model.fuse(songs[-1])
    assert entropy(fused[None])[0] > entropy(np.asarray([onehotish("기쁨", 0.999)]))[0]


def test_fusion_weights_are_fitted_on_the_known_songs():
    # lyrics are wrong on every known song, the editor is right: editorial weight must win
    songs, known = [], {}
    for i, m in enumerate(LABELS * 4):
        wrong = LABELS[(index_of(m) + 1) % 6]
        songs.append({"lyrics": (onehotish(wrong, 0.5), 1.0),
                      "editorial": (editorial_vector(m), 0.9)})
        known[i] = (m,)
    model = FusionModel.fit(songs, known)
    assert model.weights["editorial"] > model.weights["lyrics"]
    assert all(LABELS[int(model.fuse(songs[i]).argmax())] == m[0] for i, m in known.items())


def test_lyric_language_and_themes():
    assert lyric_language(["너를 사랑해", "오늘 밤"])[0] == "ko"
    assert lyric_language(["I love you baby", "tonight"])[0] == "en"
    assert lyric_language(["너를 사랑해 baby tonight yeah"])[0] == "mixed"
    themes = dict(lyric_themes(["이별이 와", "헤어지자", "잊을게", "하늘", "바다"]))
    assert "이별" in themes and 0 < themes["이별"] <= 0.8
    assert lyric_themes([]) == [] and lyric_themes(["사랑", "하늘"]) == []  # one hit is not enough


def test_derived_facets_follow_mood_and_genre_with_low_confidence():
    loud = derived_facets(onehotish("분노"), "록/메탈")
    calm = derived_facets(onehotish("평화"), "발라드")
    assert loud["energy"][0] > 0.7 > 0.3 > calm["energy"][0]
    assert "운동" in loud["situations"][0] and "잠" in calm["situations"][0]
    assert all(conf <= 0.4 for _, conf in loud.values())


# ---- the build ---------------------------------------------------------------------------------
def _ed(song_id, mood, **kw):
    base = dict(song_id=song_id, title=f"t{song_id}", artist="a", mood=mood, also=(),
                energy=0.8, tempo="fast", dance=0.7, situations=("운동",), themes=("자신감",),
                genre="댄스", year=2020, album=None, lang="ko", confidence=0.9, file="x.jsonl")
    return EditorialRecord(**{**base, **kw})


def test_build_fuses_sources_records_provenance_and_adds_editorial_only_songs():
    lyric = [Song(f"l{i}", f"tl{i}", "a", onehotish(m, 0.4), genre="댄스", lang="ko",
                  moods={"lyrics": onehotish(m, 0.4)},
                  provenance={"vector": {"source": "lyrics", "confidence": 1.0}})
             for i, m in enumerate(LABELS * 3)]
    eds = [_ed("l0", "기쁨", title="tl0"), _ed("new1", "긴장", year=None)]
    known = [KnownSong("l0", "tl0", "a", ("기쁨",), "fit")]
    catalog, _fusion, report = build_catalog(lyric, eds, known)
    assert len(catalog) == 19 and report.by_sources["editorial"] == 1
    s = catalog.get("l0")
    assert s.source == "fused" and set(s.moods) == {"lyrics", "editorial"}
    assert s.provenance["energy"]["source"] == "editorial" and s.energy == 0.8
    assert s.provenance["vector"]["source"] == "editorial+lyrics"
    new = catalog.get("new1")
    assert LABELS[int(np.argmax(new.vector))] == "긴장" and new.year is None  # unknown stays
    assert "year" not in new.provenance
    plain = catalog.get("l1")  # no annotation: guessed facets, marked as such
    assert plain.provenance["energy"]["source"] == "lyrics+metadata"
    assert plain.provenance["energy"]["confidence"] <= 0.4
    assert "album" not in plain.provenance and plain.album is None


def test_read_editorial_checks_vocabulary_and_duplicates(tmp_path):
    good = {"title": "t", "artist": "a", "mood": "기쁨", "genre": "댄스", "situations": ["운동"]}
    (tmp_path / "a.jsonl").write_text(json.dumps(good, ensure_ascii=False) + "\n", "utf-8")
    assert read_editorial(tmp_path)[0].song_id.startswith("ta:")
    (tmp_path / "b.jsonl").write_text(json.dumps(good, ensure_ascii=False) + "\n", "utf-8")
    with pytest.raises(ValueError, match="already annotated"):
        read_editorial(tmp_path)
    (tmp_path / "b.jsonl").write_text(json.dumps({**good, "title": "u", "situations": ["우주"]},
                                                 ensure_ascii=False) + "\n", "utf-8")
    with pytest.raises(ValueError, match="situations"):
        read_editorial(tmp_path)


def test_the_shipped_editorial_files_are_valid():
    records = read_editorial()
    assert len(records) >= 500
    assert all(r.mood in LABELS for r in records)


def test_filtered_search_finds_matching_songs_anywhere_in_mood_space(tmp_path):
    from indexing.index import SongFilter

    songs = [profiled(f"s{i}", title=f"t{i}", artist=f"a{i % 7}", vector=onehotish(LABELS[i % 6]),
                      genre="랩/힙합" if i % 10 == 0 else "발라드",
                      energy=(i % 10) / 10, situations=("운동",) if i % 3 == 0 else ("잠",))
             for i in range(200)]
    with SongIndex.load(build_index(Catalog(songs), tmp_path / "idx")) as index:
        sad = onehotish("슬픔")
        hits = index.search_filtered(sad, 5, SongFilter(genres=("랩/힙합",)))
        assert len(hits) == 5 and all(s.genre == "랩/힙합" for s, _ in hits)
        both = index.search_filtered(sad, 50, SongFilter(genres=("랩/힙합",),
                                                         situations=("운동",), energy_min=0.0))
        assert both and all(s.genre == "랩/힙합" and "운동" in s.situations for s, _ in both)
        calm = index.search_filtered(sad, 50, SongFilter(energy_max=0.3))
        assert all(s.energy <= 0.3 for s, _ in calm)
        assert index.search_filtered(sad, 5, SongFilter(artists=("nobody",))) == []
        excl = {s.song_id for s, _ in hits}
        again = index.search_filtered(sad, 5, SongFilter(genres=("랩/힙합",)), exclude=excl)
        assert excl.isdisjoint({s.song_id for s, _ in again})
        assert not SongFilter() and SongFilter(artists=("a1",))


async def test_songs_drift_toward_the_moods_listeners_like_them_in_bounded(tmp_path):
    """Issue 11 (stretch): a song filed as sad but liked in joyful answers moves toward joy,
    never by more than FEEDBACK_CAP, and the source is recorded."""
    from bot.feedback import Signal
    from bot.store import Store
    from training.catalog_build import FEEDBACK_CAP, feedback_moods

    songs = [Song(f"s{i}", f"t{i}", "a", onehotish(m, 0.5), moods={"lyrics": onehotish(m, 0.5)},
                  provenance={"vector": {"source": "lyrics", "confidence": 1.0}})
             for i, m in enumerate(LABELS * 3)]
    sad = "s2"  # 슬픔
    db = tmp_path / "fb.sqlite3"
    store = await Store.open(db)
    for n in range(200):  # many users like it in joyful answers
        await store.save_recommendation(f"r{n}", f"u{n}", "console", onehotish("기쁨", 0.8),
                                        [(sad, 0.9)], source="text")
        await store.add_feedback(f"r{n}", sad, f"u{n}", Signal.LIKE)
    await store.close()
    fb = feedback_moods(db)
    before, _, _ = build_catalog(songs, [])
    after, _, _ = build_catalog(songs, [], feedback=fb)
    b, a = before.get(sad), after.get(sad)
    joy, sadness = index_of("기쁨"), index_of("슬픔")
    assert a.vector[joy] > b.vector[joy] and a.vector[sadness] < b.vector[sadness]
    assert a.provenance["vector"]["feedback_share"] <= FEEDBACK_CAP
    assert "feedback" in a.provenance["vector"]["source"] and "feedback" in a.moods
    assert after.get("s0").vector == before.get("s0").vector  # no reactions: unchanged
