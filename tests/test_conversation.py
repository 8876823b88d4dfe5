"""bot.conversation: plans from requests, filter relaxation, match vs lift, per-track reasons."""

from __future__ import annotations

import numpy as np

from bot.conversation import mood_vector, pick, plan, reason, relaxations
from bot.ranking import Ranked
from indexing.catalog import Song
from indexing.index import SongFilter
from inference.emotions import LABELS, index_of


def song(i: int, mood: str, **kw) -> Song:
    return Song(song_id=f"s{i}", title=f"t{i}", artist=kw.pop("artist", f"a{i}"),
                vector=tuple(mood_vector(mood, kw.pop("peak", 0.7)).tolist()), **kw)


def test_slots_become_hard_filters_and_energy_words_become_bounds():
    req = {"intent": "recommend", "genres": ("랩/힙합",), "situations": ("운동",), "energy": "up"}
    p = plan(req, mood_vector("기쁨"), k=5)
    assert p.filter.genres == ("랩/힙합",) and p.filter.situations == ("운동",)
    assert p.filter.energy_min == 0.65 and p.filter.energy_max is None
    assert p.strategy == "match" and len(p.targets) == 1


def test_refinements_edit_the_last_request_and_exclude_what_was_shown():
    last = {"genres": ["발라드"], "energy": None}
    shown = [song(i, "슬픔", energy=0.3) for i in range(5)]
    up = plan({"intent": "refine", "refinement": "more_energy"}, mood_vector("슬픔"), k=5,
              last=last, last_songs=shown)
    assert up.filter.genres == ("발라드",)  # the thread is kept
    assert up.filter.energy_min is not None and up.filter.energy_min > 0.3
    assert {s.song_id for s in shown} <= up.exclude
    calm = plan({"intent": "refine", "refinement": "calmer"}, mood_vector("슬픔"), k=5,
                last=last, last_songs=[song(9, "기쁨", energy=0.8)])
    assert calm.filter.energy_max is not None and calm.filter.energy_max < 0.8
    genre = plan({"intent": "refine", "refinement": "genre", "genres": ("록/메탈",)},
                 mood_vector("슬픔"), k=5, last=last, last_songs=shown)
    assert genre.filter.genres == ("록/메탈",)


def test_a_seed_song_sets_the_target_and_is_never_recommended_back():
    seed = song(1, "평화", peak=0.8)
    p = plan({"intent": "recommend", "like_song": "s1"}, mood_vector("분노"), k=5, seed=seed)
    assert "s1" in p.exclude and int(np.argmax(p.mood)) == index_of("평화")


def test_lift_walks_from_the_current_mood_to_the_target_iso_principle():
    p = plan({"intent": "recommend", "strategy": "lift"}, mood_vector("슬픔"), k=5)
    assert p.strategy == "lift" and p.request["target_mood"] == "기쁨" and len(p.targets) == 5
    joy = [float(t[index_of("기쁨")] / t.sum()) for t in p.targets]
    assert joy == sorted(joy) and int(np.argmax(p.targets[0])) == index_of("슬픔")
    assert int(np.argmax(p.targets[-1])) == index_of("기쁨")
    songs = [(song(i, m), 0.0) for i, m in enumerate(["슬픔", "중립", "평화", "기쁨", "분노"] * 4)]
    picked = pick(p, songs, 5)
    moods = [LABELS[int(np.argmax(r.song.vector))] for r in picked]
    assert moods[0] == "슬픔" and moods[-1] == "기쁨"


def test_relaxation_gives_up_the_least_explicit_constraint_first():
    flt = SongFilter(genres=("재즈",), artists=("x",), themes=("이별",), situations=("잠",),
                     energy_max=0.4)
    notes = [n for _, n in relaxations(flt)]
    assert notes == [None, "테마", "상황", "에너지", "가수", "장르"]
    assert not relaxations(flt)[-1][0]


def test_a_requested_artist_may_fill_the_whole_answer():
    p = plan({"intent": "recommend", "artists": ("아이유",)}, mood_vector("기쁨"), k=5)
    cands = [(song(i, "기쁨", artist="아이유"), 0.9) for i in range(6)]
    assert len({r.song.artist for r in pick(p, cands, 5)}) == 1
    other = plan({"intent": "recommend"}, mood_vector("기쁨"), k=5)
    mixed = cands + [(song(10 + i, "기쁨"), 0.8) for i in range(5)]
    assert sum(r.song.artist == "아이유" for r in pick(other, mixed, 5)) == 1


def test_reasons_name_what_matched_and_differ_between_tracks():
    req = {"intent": "recommend", "genres": ("랩/힙합",), "situations": ("운동",)}
    p = plan(req, mood_vector("기쁨"), k=5)
    tracks = [song(1, "기쁨", genre="랩/힙합", situations=("운동",), themes=("자신감",), energy=0.9),
              song(2, "기쁨", genre="랩/힙합", situations=("운동",), themes=("자신감", "청춘"),
                   energy=0.8)]
    used: set[str] = set()
    lines = [reason(Ranked(s, 1.0, 0.9, None, 0.0), p, i, used) for i, s in enumerate(tracks)]
    assert all("랩/힙합" in ln and "운동" in ln for ln in lines)
    assert "테마: 자신감" in lines[0] and "테마: 청춘" in lines[1]
    assert lines[0] != lines[1] and all(len(ln) <= 60 for ln in lines)
    liked = reason(Ranked(tracks[0], 1.0, 0.9, 0.9, 0.0), p, 0, set())
    assert "취향" in liked


def test_a_new_artist_starts_afresh_but_a_new_genre_keeps_the_situation():
    last = {"genres": ["랩/힙합"], "situations": ["운동"], "energy": "up"}
    iu = plan({"intent": "refine", "refinement": "artist", "artists": ("아이유",)},
              mood_vector("슬픔"), k=5, last=last)
    assert iu.filter.artists == ("아이유",) and not iu.filter.genres
    assert not iu.filter.situations and iu.filter.energy_min is None
    ballad = plan({"intent": "refine", "refinement": "genre", "genres": ("발라드",)},
                  mood_vector("슬픔"), k=5, last=last)
    assert ballad.filter.genres == ("발라드",) and ballad.filter.situations == ("운동",)
    fresh = plan({"intent": "refine", "refinement": "genre", "genres": ("재즈",),
                  "situations": ("카페",)}, mood_vector("슬픔"), k=5, last=last)
    assert fresh.filter.situations == ("카페",) and fresh.filter.energy_min is None


def test_more_energy_moves_the_mood_target_toward_joy_too():
    p = plan({"intent": "refine", "refinement": "more_energy"}, mood_vector("슬픔"), k=5,
             last={}, last_songs=[song(1, "슬픔", energy=0.3)])
    assert p.mood[index_of("기쁨")] > 0.3 and p.filter.energy_min >= 0.54


def test_a_new_energy_drops_the_carried_situation_and_reasons_name_the_asked_artist():
    last = {"situations": ["잠"], "energy": "down"}
    p = plan({"intent": "refine", "refinement": "genre", "genres": ("성인가요/트로트",),
              "energy": "up"}, mood_vector("평화"), k=5, last=last)
    assert not p.filter.situations and p.filter.energy_min == 0.65 and p.filter.energy_max is None
    iu = plan({"intent": "recommend", "artists": ("HIGH4 (하이포), 아이유", "아이유")},
              mood_vector("기쁨"), k=5)
    collab = song(1, "기쁨", artist="HIGH4 (하이포), 아이유")
    assert reason(Ranked(collab, 1.0, 0.9, None, 0.0), iu, 0, set()).startswith("아이유의 곡")


def test_worn_out_leans_toward_comfort_songs_without_requiring_them():
    """"오늘 너무 지치고 우울해" gives prefer_themes=위로/응원: a comfort song a little further
    from the mood outranks a breakup ballad, is said to be chosen for that, and the answer is
    not limited to comfort songs (nor is a theme the person named overridden)."""
    sad = mood_vector("슬픔")
    near = tuple((0.8 * sad + 0.2 * mood_vector("평화")).tolist())
    ballad = song(1, "슬픔", themes=("이별",))
    comfort = Song(song_id="s2", title="t2", artist="a2", vector=near, themes=("위로/응원",))
    others = [song(i, "슬픔", themes=("이별",)) for i in range(3, 8)]
    cands = [(s, 0.9) for s in (ballad, comfort, *others)]
    req = {"intent": "recommend", "prefer_themes": ("위로/응원",)}
    leaned = plan(req, sad, k=5)
    assert leaned.prefer_themes == ("위로/응원",) and leaned.filter.themes == ()
    assert any("위로" in n for n in leaned.notes)
    top = pick(leaned, cands, 5)
    assert top[0].song.song_id == "s2" and len(top) == 5  # leaned, not limited
    assert "지친 마음에 위로" in reason(top[0], leaned, 0, set())
    plain = pick(plan({"intent": "recommend"}, sad, k=5), cands, 5)
    assert plain[0].song.song_id != "s2"  # without the lean the closer mood wins
    named = plan({**req, "themes": ("이별",)}, sad, k=5)
    assert named.prefer_themes == () and named.filter.themes == ("이별",)
    # "다른 거" keeps leaning (the thread carries it)
    again = plan({"intent": "refine", "refinement": "other"}, sad, k=5, last=leaned.request,
                 last_songs=[comfort])
    assert again.prefer_themes == ("위로/응원",) and "s2" in again.exclude


def test_nerves_without_an_ask_settle_toward_calm_with_encouragement():
    """"내일 면접인데 너무 떨려" was answered with five dark, driving tracks (the mood match):
    now the list starts at the tension and settles toward calm, leaning on encouraging songs.
    Asking for tension ("긴장감 있는 노래") or for energy still gets exactly that."""
    tense = mood_vector("긴장")
    p = plan({"intent": "recommend"}, tense, k=5)
    assert p.strategy == "lift" and p.request["target_mood"] == "평화"
    assert p.prefer_themes == ("위로/응원",)
    assert LABELS[int(np.argmax(p.targets[0]))] == "긴장"
    assert LABELS[int(np.argmax(p.targets[-1]))] == "평화"
    assert any("떨리는 마음" in n for n in p.notes)
    assert plan({"intent": "recommend", "mood": "긴장"}, tense, k=5).strategy == "match"
    assert plan({"intent": "recommend", "energy": "up"}, tense, k=5).strategy == "match"
    assert plan({"intent": "recommend"}, mood_vector("분노"), k=5).strategy == "match"  # venting


def test_an_anniversary_leans_toward_love_songs_and_says_so():
    req = {"intent": "recommend", "prefer_themes": ("사랑", "설렘")}
    p = plan(req, mood_vector("기쁨"), k=5)
    assert any("사랑 노래" in n for n in p.notes)
    love = song(1, "기쁨", themes=("사랑",))
    assert "사랑 노래" in reason(Ranked(love, 1.0, 0.9, None, 0.0), p, 0, set())


def test_a_season_filters_by_title_first_and_is_the_first_thing_given_up():
    p = plan({"intent": "recommend", "season": "봄", "themes": ("설렘",)}, mood_vector("평화"), k=5)
    assert p.filter.seasons == ("봄",) and any("봄" in n for n in p.notes)
    steps = [note for _, note in relaxations(p.filter)]
    assert steps[:3] == [None, "테마", "계절"]
    spring = Song(song_id="s1", title="벚꽃 엔딩", artist="a1",
                  vector=tuple(mood_vector("기쁨").tolist()))
    assert "봄 노래" in reason(Ranked(spring, 1.0, 0.9, None, 0.0), p, 0, set())
    assert plan({"intent": "recommend", "season": "장마"}, mood_vector("평화"), k=5).filter.seasons == ()


def test_upbeat_means_high_energy_and_steers_harder_inside_a_thread():
    """"트로트 신나는 걸로" after "시험 망쳤어": answered with a sad mid-tempo trot whose own
    reason said "에너지 보통". Upbeat starts where "에너지 높음" starts, and energy named inside
    a thread moves the (older) mood as far toward joy as "더 신나게" does."""
    from bot.conversation import ENERGY_UP
    from indexing.facets import ENERGY_LEVELS

    assert ENERGY_LEVELS[1][0] == ENERGY_UP
    mid = song(1, "기쁨", energy=0.6)
    p = plan({"intent": "recommend", "energy": "up"}, mood_vector("기쁨"), k=5)
    assert not p.filter.energy_min <= mid.energy
    sad = mood_vector("슬픔")
    fresh = plan({"intent": "recommend", "energy": "up"}, sad, k=5)
    last = {"genres": ["발라드"]}
    inside = plan({"intent": "refine", "refinement": "genre", "genres": ("성인가요/트로트",),
                   "energy": "up"}, sad, k=5, last=last, last_songs=[mid])
    joy = index_of("기쁨")
    assert inside.mood[joy] / inside.mood.sum() > fresh.mood[joy] / fresh.mood.sum() + 0.1
    carried = plan({"intent": "refine", "refinement": "other"}, sad, k=5,
                   last={"energy": "up"}, last_songs=[mid])
    assert np.allclose(carried.mood / carried.mood.sum(), fresh.mood / fresh.mood.sum())


def test_a_refusal_leaves_the_carried_request_and_stays_refused():
    """"발라드 말고 다른 거" after a ballad request answered with five more ballads: the refusal
    was understood but never reached the search."""
    last = {"genres": ["발라드"]}
    p = plan({"intent": "refine", "refinement": "other", "exclude_genres": ("발라드",)},
             mood_vector("중립"), k=5, last=last)
    assert p.filter.genres == () and p.filter.exclude_genres == ("발라드",)
    again = plan({"intent": "refine", "refinement": "other"}, mood_vector("중립"), k=5,
                 last=p.request)
    assert again.filter.exclude_genres == ("발라드",)  # "다른 거" keeps the refusal
    back = plan({"intent": "refine", "refinement": "other", "genres": ("발라드",)},
                mood_vector("중립"), k=5, last=p.request)
    assert back.filter.genres == ("발라드",) and back.filter.exclude_genres == ()
    iu = ("아이유", "HIGH4 (하이포), 아이유")
    q = plan({"intent": "refine", "refinement": "other", "exclude_artists": iu},
             mood_vector("중립"), k=5, last={"artists": list(iu)})
    assert q.filter.artists == () and set(q.filter.exclude_artists) == set(iu)
    assert all(f.exclude_artists for f, _ in relaxations(q.filter))  # never relaxed away
