"""bot.understand (intent and slots) and bot.moodrules (the mood rule layer).

The conversation set's *test* split is the score (``training/data/conversations_ko.jsonl``; rules
were tuned on *dev*); the matchers each get unit tests; the rule layer is checked on the tuning
sentences below (``DEV_MOOD``), never on the held-out probe, which ``benchmarks/chat_mood.py``
reports on.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pytest

from bot.feedback import Signal
from bot.moodrules import RULES, adjust_mood
from bot.understand import INTENTS, REFINEMENTS, SMALLTALK, Lexicon, Request, understand
from indexing.catalog import load_default
from indexing.facets import GENRES, SITUATIONS, THEMES
from inference.emotions import LABELS, index_of

ROOT = Path(__file__).resolve().parent.parent
SET = ROOT / "training" / "data" / "conversations_ko.jsonl"

# Thresholds asserted on the test split: what the rules achieve (see CONVERSATIONS.md), with a
# little room so one relabelled line does not fail the suite; the target is 0.95.
INTENT_ACCURACY_MIN = 0.97
SLOT_F1_MIN = 0.97


@pytest.fixture(scope="module")
def catalog():
    return load_default()


@pytest.fixture(scope="module")
def lex(catalog) -> Lexicon:
    return Lexicon.from_catalog(catalog)


def ask(lex: Lexicon, text: str, thread: bool = False) -> Request:
    return understand(text, lex, has_thread=thread)


# ---- the conversation set -------------------------------------------------------------------
def load_set() -> list[dict]:
    with SET.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _pairs(d: dict) -> set[tuple[str, str]]:
    out = set()
    for k, v in d.items():
        if k in ("intent", "text") or v in (None, "", [], ()):
            continue
        for x in v if isinstance(v, list | tuple) else [v]:
            out.add((k, str(x)))
    return out


def score(lex: Lexicon, split: str) -> dict:
    """Intent accuracy and micro slot P/R/F1 over (slot, value) pairs, replaying threads.

    A message has a thread when an earlier turn of its thread asked for songs, as in
    ``benchmarks/conversation.py`` (which replays through the engine).
    """
    rows = [r for r in load_set() if r["split"] == split]
    due: set[str] = set()
    ok = tp = fp = fn = 0
    misses = []
    for r in sorted(rows, key=lambda r: (r["thread"], r["turn"])):
        req = understand(r["text"], lex, has_thread=r["thread"] in due)
        if r["intent"] in ("recommend", "refine"):
            due.add(r["thread"])
        got, want = _pairs(req.as_dict()), _pairs(r["slots"])
        ok += req.intent == r["intent"]
        tp += len(got & want)
        fp += len(got - want)
        fn += len(want - got)
        if req.intent != r["intent"] or got != want:
            misses.append((r["id"], r["text"], req.intent, sorted(got - want), sorted(want - got)))
    p = tp / max(1, tp + fp)
    rc = tp / max(1, tp + fn)
    return {"n": len(rows), "intent_accuracy": ok / len(rows), "precision": p, "recall": rc,
            "f1": 2 * p * rc / max(1e-9, p + rc), "misses": misses}


def test_conversation_set_is_well_formed(catalog):
    rows = load_set()
    assert len(rows) >= 230
    threads = {}
    for r in rows:
        threads.setdefault(r["thread"], []).append(r)
    multi = [t for t, rs in threads.items() if len(rs) > 1]
    assert len(multi) >= 25
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids))
    songs = {s.song_id for s in catalog}
    artists = {s.artist for s in catalog}
    for r in rows:
        assert set(r) >= {"id", "thread", "turn", "text", "intent", "slots", "constraint", "mood",
                          "split"}, r["id"]
        assert r["intent"] in INTENTS, r["id"]
        assert r["mood"] is None or r["mood"] in LABELS, r["id"]
        expect = "dev" if int(hashlib.sha1(r["thread"].encode()).hexdigest(), 16) % 2 == 0 else "test"
        assert r["split"] == expect, r["id"]
        s = r["slots"]
        assert set(s.get("genres", [])) <= set(GENRES), r["id"]
        assert set(s.get("exclude_genres", [])) <= set(GENRES), r["id"]
        assert set(s.get("situations", [])) <= set(SITUATIONS), r["id"]
        assert set(s.get("themes", [])) <= set(THEMES), r["id"]
        assert set(s.get("artists", [])) <= artists, (r["id"], "artist not in the catalogue")
        if "like_song" in s:
            assert s["like_song"] in songs, r["id"]
        if "unknown_artist" in s:
            assert not any(s["unknown_artist"].replace(" ", "").lower() in a.replace(" ", "").lower()
                           for a in artists), (r["id"], "the 'unknown' artist is in the catalogue")
        assert s.get("refinement") in (None, *REFINEMENTS), r["id"]
        assert s.get("smalltalk") in (None, *SMALLTALK), r["id"]
        assert s.get("signal") in (None, *(x.value for x in Signal)), r["id"]
        c = r["constraint"]
        assert set(c) <= {"genre", "artist", "situation", "energy", "mood", "not_song",
                          "not_previous"}, r["id"]
        if c.get("not_song"):
            assert c["not_song"] in songs
        if c.get("artist"):
            assert c["artist"] in artists
        if r["intent"] not in ("recommend", "refine"):
            assert c == {}, r["id"]


def test_intent_accuracy_and_slot_f1_on_the_test_split(lex):
    dev, test = score(lex, "dev"), score(lex, "test")
    print(f"\ndev : n={dev['n']} intent {dev['intent_accuracy']:.3f} slot F1 {dev['f1']:.3f} "
          f"(P {dev['precision']:.3f} R {dev['recall']:.3f})")
    print(f"test: n={test['n']} intent {test['intent_accuracy']:.3f} slot F1 {test['f1']:.3f} "
          f"(P {test['precision']:.3f} R {test['recall']:.3f})")
    for m in test["misses"]:
        print("  miss", m)
    assert test["intent_accuracy"] >= INTENT_ACCURACY_MIN
    assert test["f1"] >= SLOT_F1_MIN


# ---- artists --------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["아이유 노래 틀어줘", "IU 노래", "iu꺼", "ＩＵ 노래", "이지은 노래"])
def test_iu_aliases(lex, text):
    assert "아이유" in ask(lex, text).artists


@pytest.mark.parametrize("text", ["BTS 노래", "방탄 노래", "방탄소년단 노래", "bts꺼 틀어줘"])
def test_bts_aliases_include_collaborations(lex, text):
    got = ask(lex, text).artists
    assert "방탄소년단" in got and "정국, 방탄소년단" in got


@pytest.mark.parametrize("text", ["뉴진스 노래", "NewJeans 노래", "newjeans꺼"])
def test_newjeans(lex, text):
    assert ask(lex, text).artists == ("NewJeans",)


@pytest.mark.parametrize("text", ["아이브 노래", "IVE 노래", "ive꺼 틀어줘"])
def test_parenthesised_name_parts(lex, text):
    assert ask(lex, text).artists == ("IVE (아이브)",)


def test_spacing_insensitive_names(lex):
    assert ask(lex, "버스커버스커 노래").artists == ask(lex, "버스커 버스커 노래").artists == (
        "버스커 버스커",)
    assert ask(lex, "스탠딩에그 노래").artists == ("스탠딩 에그",)


@pytest.mark.parametrize("text,artist", [
    ("아이유의 노래", "아이유"), ("아이유랑 볼빨간 노래", "아이유"), ("아이유꺼", "아이유"),
    ("아이유노래추천", "아이유"), ("지코가 부른 거", "지코 (ZICO)"), ("버즈 노래", "버즈"),
])
def test_particles_after_names(lex, text, artist):
    assert artist in ask(lex, text).artists


@pytest.mark.parametrize("text,artist", [
    ("블랙핑쿠 노래", "BLACKPINK"), ("방탄소년딘 노래", "방탄소년단"), ("스트레이키드 노래", "Stray Kids"),
    ("르세라픔 노래", "LE SSERAFIM (르세라핌)"),
])
def test_one_character_typos_in_long_names(lex, text, artist):
    assert artist in ask(lex, text).artists


def test_swapped_letters_and_mixed_script_candidates(lex):
    assert ask(lex, "blackpnik 노래").artists == ("BLACKPINK",)
    assert ask(lex, "요즘 경찰들 SNS에만 목숨걸지").artists == ()  # "sns에" is not "snsd"
    assert ask(lex, "I love rain").artists == ()  # no typo tolerance for short English words


@pytest.mark.parametrize("text", [
    "아이유 노래", "에스파 노래",  # exact, 3 chars: no typo tolerance needed
])
def test_short_names_have_no_typo_tolerance(lex, text):
    wrong = text.replace("유", "요").replace("파", "퍼")
    assert ask(lex, wrong).artists == ()


@pytest.mark.parametrize("text", [
    "거미줄에 걸린 기분", "오늘 태양이 너무 뜨겁다", "노을 보러 갈래", "있지 나 오늘 좀 우울해",
    "연락이 안 와서 속상해", "남자친구가 사랑해 진짜 라고 했어", "신화 속 이야기 같아", "비 오는 날",
])
def test_names_never_match_inside_ordinary_words(lex, text):
    assert ask(lex, text).artists == ()


@pytest.mark.parametrize("text,artist", [
    ("거미 노래 틀어줘", "거미"), ("태양 노래", "태양"), ("있지 노래", "ITZY (있지)"), ("노을 노래", "노을"),
])
def test_common_word_names_match_before_a_music_noun(lex, text, artist):
    assert artist in ask(lex, text).artists


@pytest.mark.parametrize("text,name", [
    ("콜드플레이 노래 있어?", "콜드플레이"), ("테일러 스위프트 노래 틀어줘", "테일러 스위프트"),
    ("coldplay 같은 노래", "coldplay"), ("쏜애플 노래 틀어줘", "쏜애플"),
])
def test_unknown_artists_are_named(lex, text, name):
    r = ask(lex, text)
    assert r.unknown_artist == name and r.artists == ()


@pytest.mark.parametrize("text", [
    "슬픈 노래", "신나는 노래", "크리스마스 노래 틀어줘", "다 들어본 노래야", "첫번째 곡 별로",
    "중간에 나온 노래", "요즘 유행하는 노래",
])
def test_ordinary_words_before_song_are_not_unknown_artists(lex, text):
    assert ask(lex, text).unknown_artist is None


# ---- genres ---------------------------------------------------------------------------------
@pytest.mark.parametrize("text,genre", [
    ("락 틀어줘", "록/메탈"), ("록 음악", "록/메탈"), ("rock 노래", "록/메탈"),
    ("알앤비 노래", "R&B/Soul"), ("R&B 좀", "R&B/Soul"), ("rnb 추천", "R&B/Soul"), ("r & b", "R&B/Soul"),
    ("트로트 틀어줘", "성인가요/트로트"), ("성인가요", "성인가요/트로트"), ("뽕짝 신나는 거", "성인가요/트로트"),
    ("아이돌 노래", "댄스"), ("케이팝", "댄스"), ("k-pop 추천", "댄스"),
    ("힙합", "랩/힙합"), ("랩 노래", "랩/힙합"), ("rap 추천", "랩/힙합"), ("hip hop", "랩/힙합"),
    ("재즈 틀어줘", "재즈"), ("jazz", "재즈"), ("OST 추천", "OST"), ("드라마 노래", "OST"),
    ("일렉 음악", "일렉트로니카"), ("EDM 틀어줘", "일렉트로니카"), ("발라드노래추천", "발라드"),
])
def test_genre_aliases(lex, text, genre):
    assert genre in ask(lex, text).genres


@pytest.mark.parametrize("text", ["랩탑 새로 샀다", "팝콘 먹으면서 영화 볼 거야", "연락이 안 와"])
def test_short_genre_words_stay_whole_words(lex, text):
    assert ask(lex, text).genres == ()


def test_refused_genre(lex):
    r = ask(lex, "발라드 말고 댄스 틀어줘")
    assert r.genres == ("댄스",) and r.exclude_genres == ("발라드",)


# ---- situations, themes, energy, mood -------------------------------------------------------
@pytest.mark.parametrize("text,situation", [
    ("자기전에 들을 노래", "잠"), ("자기 전에 들을 노래", "잠"), ("러닝할 때", "운동"), ("러닝할때", "운동"),
    ("헬스장에서", "운동"), ("집중 잘 되는 노래", "공부"), ("드라이브 갈 건데", "드라이브"),
    ("비 오는 날 듣기 좋은", "비오는날"), ("출근길에", "출퇴근"), ("카공할 때", "카페"),
])
def test_situations(lex, text, situation):
    assert situation in ask(lex, text).situations


def test_walking_home_at_night_is_not_a_walk(lex):
    assert ask(lex, "밤에 혼자 집에 걸어가는데 무서웠어").situations == ()


@pytest.mark.parametrize("text,theme", [
    ("이별 노래", "이별"), ("위로되는 노래", "위로/응원"), ("짝사랑 노래", "짝사랑"), ("사랑 노래", "사랑"),
    ("헤어졌어 ㅠㅠ", "이별"),
])
def test_themes(lex, text, theme):
    assert theme in ask(lex, text).themes


@pytest.mark.parametrize("text,energy", [
    ("신나는 노래", "up"), ("빠른 거", "up"), ("텐션 올라가는 노래", "up"), ("잔잔한 노래", "down"),
    ("조용한 거", "down"), ("차분한 음악", "down"), ("시끄럽지 않은 노래", "down"),
    ("신나는 거 말고", "down"),
])
def test_energy(lex, text, energy):
    assert ask(lex, text).energy == energy


@pytest.mark.parametrize("text,mood", [
    ("슬픈 노래 틀어줘", "슬픔"), ("/mood 평화", "평화"), ("슬픔", "슬픔"), ("밝은 노래", "기쁨"),
])
def test_requested_song_mood(lex, text, mood):
    assert ask(lex, text).mood == mood


def test_feeling_is_not_a_requested_mood(lex):
    assert ask(lex, "오늘 너무 우울해").mood is None


# ---- like-song ------------------------------------------------------------------------------
def test_title_seed_needs_a_like_marker(lex, catalog):
    bam = next(s.song_id for s in catalog if s.title == "밤편지")
    assert ask(lex, "밤편지 같은 노래").like_song == bam
    assert ask(lex, "밤편지랑 비슷한 거").like_song == bam
    assert ask(lex, "'밤편지'").like_song == bam
    assert ask(lex, "밤편지 좋더라").like_song is None


def test_common_word_titles_never_become_seeds(lex):
    for text in ("사랑 노래 추천", "사랑 같은 노래", "오늘 남자친구가 사랑해 진짜 라고 해줬어", "봄날이 왔다",
                 "짝사랑 같은 노래", "습관처럼 들어왔다", "손오공처럼 머리테를 씌우자는 거네",
                 "스토커 처럼 변할 거 같아서 무서워"):
        assert ask(lex, text).like_song is None, text


def test_artist_before_the_seed_only_picks_the_song(lex, catalog):
    r = ask(lex, "아이유 밤편지 같은 노래")
    assert r.like_song == next(s.song_id for s in catalog if s.title == "밤편지")
    assert r.artists == ()


def test_title_words_do_not_leak_into_other_slots(lex):
    r = ask(lex, "hype boy 같은 노래")
    assert r.like_song and r.energy is None


# ---- intents --------------------------------------------------------------------------------
@pytest.mark.parametrize("text,kind", [
    ("안녕", "greeting"), ("하이", "greeting"), ("ㅎㅇ", "greeting"), ("hello", "greeting"),
    ("고마워", "thanks"), ("땡큐", "thanks"), ("ㄱㅅ", "thanks"),
    ("ㅇㅇ", "ack"), ("ㅇㅋ", "ack"), ("알겠어", "ack"), ("응", "ack"), ("그래", "ack"),
    ("너 뭐야", "about"), ("넌 누구야?", "about"), ("잘자", "bye"), ("바이", "bye"),
])
def test_smalltalk(lex, text, kind):
    r = ask(lex, text)
    assert (r.intent, r.smalltalk) == ("smalltalk", kind)


@pytest.mark.parametrize("text", ["도움말", "help", "/help", "뭐 할 수 있어?", "어떻게 써?", "사용법"])
def test_help(lex, text):
    assert ask(lex, text).intent == "help"


@pytest.mark.parametrize("text", ["내 정보 삭제", "/forget-me", "기록 지워줘", "내 대화 저장돼?",
                                  "delete my data"])
def test_privacy(lex, text):
    assert ask(lex, text).intent == "privacy"


def test_greeting_with_a_feeling_is_a_request(lex):
    assert ask(lex, "안녕 나 오늘 너무 우울해").intent == "recommend"
    assert ask(lex, "ㅠㅠ").intent == "recommend"


@pytest.mark.parametrize("text,signal,position", [
    ("2번 좋다", "like", 2), ("1번 별로", "dislike", 1), ("다 좋아", "like", None),
    ("별로야", "dislike", None), ("3번 최고", "love", 3), ("두번째 꺼 좋다", "like", 2),
    ("5번 이미 아는 노래야", "skip", 5), ("👍", "like", None),
])
def test_feedback_in_words_needs_a_thread(lex, text, signal, position):
    r = ask(lex, text, thread=True)
    assert (r.intent, r.signal, r.position) == ("feedback", signal, position)
    assert ask(lex, text).intent != "feedback"


def test_not_that_sad_is_not_feedback(lex):
    r = ask(lex, "별로 안 우울해", thread=True)
    assert r.intent == "recommend" and r.negated_mood == "슬픔"


@pytest.mark.parametrize("text,refinement", [
    ("더 신나게", "more_energy"), ("좀 더 잔잔하게", "calmer"), ("다른 거", "other"),
    ("발라드로", "genre"), ("2번 같은 거", "like_position"), ("이런 거 더", "more"),
    ("뉴진스 노래로", "artist"), ("더 슬픈 걸로", "mood"),
])
def test_refinements_need_a_thread(lex, text, refinement):
    r = ask(lex, text, thread=True)
    assert (r.intent, r.refinement) == ("refine", refinement)
    assert ask(lex, text).intent == "recommend"


def test_like_position_carries_the_position(lex):
    r = ask(lex, "2번 같은 거", thread=True)
    assert r.position == 2


def test_new_request_in_a_thread_is_a_request(lex):
    r = ask(lex, "나 내일 면접인데 너무 떨려", thread=True)
    assert r.intent == "recommend" and r.mood_hint == "긴장"


@pytest.mark.parametrize("text,target", [
    ("기분 전환하고 싶어", "기쁨"), ("우울한데 힘나는 노래", "기쁨"), ("신나는 걸로 바꾸고 싶어", "기쁨"),
    ("화나는데 진정되는 노래", "평화"),
])
def test_lift(lex, text, target):
    r = ask(lex, text)
    assert (r.strategy, r.target_mood) == ("lift", target)


def test_plain_upbeat_request_is_not_a_lift(lex):
    assert ask(lex, "헬스장에서 들을 신나는 거").strategy == "match"


def test_as_dict_keeps_only_what_was_said(lex):
    d = ask(lex, "아이유 노래").as_dict()
    assert d["intent"] == "recommend" and d["artists"] and "strategy" not in d and "cues" not in d
    assert "cues" in ask(lex, "할 게 없어").as_dict(trace=True)


def test_blank_and_hostile_input(lex):
    assert ask(lex, "").intent == "help"
    assert ask(lex, "   \u200b ").intent == "help"
    assert ask(lex, "\ud800깨진 글자").intent in INTENTS
    assert ask(lex, "노래 " * 5000).intent == "recommend"


def test_long_runs_and_pasted_text_stay_fast(lex):
    """Regression: a run of ㅋ before other text once sent a smalltalk pattern into backtracking."""
    for text in ("ㅋ" * 40 + "개웃기네ㅡ 왜케 화난겨ㅠ", "ㅎㅇ" * 200 + "?", "좋아 " * 300, "2번 " * 400):
        for thread in (False, True):
            t0 = time.perf_counter()
            ask(lex, text, thread)
            assert time.perf_counter() - t0 < 0.05, text[:20]


def test_speed_sanity(lex):
    """A loose bound, not a benchmark: 1,000 messages well under a second."""
    texts = [r["text"] for r in load_set()]
    t0 = time.perf_counter()
    for i in range(1000):
        understand(texts[i % len(texts)], lex, has_thread=bool(i % 2))
    assert time.perf_counter() - t0 < 1.0


# ---- the mood rule layer --------------------------------------------------------------------
#: Tuning sentences for the rules (written for tuning; the held-out probe is a separate file).
DEV_MOOD: list[tuple[str, str, str]] = [
    # good news told as an event (the weight of "celebration" was set on these)
    ("여자친구랑 100일이야!", "기쁨", "celebration"),
    ("남친이랑 1주년 기념일", "기쁨", "celebration"),
    ("오늘 고백 받았어", "기쁨", "celebration"),
    ("나 승진했어!!", "기쁨", "celebration"),
    ("드디어 취업했다", "기쁨", "celebration"),
    ("면접 붙었어", "기쁨", "celebration"),
    ("우울하지는 않아 그냥 좀 졸려", "중립", "negation"),
    ("별로 안 슬퍼 괜찮아", "중립", "negation"),
    ("화 하나도 안 났어", "중립", "negation"),
    ("이젠 안 불안해 마음 놓였어", "평화", "negation"),
    ("시험 걱정 안 해도 되겠다", "평화", "negation"),
    ("행복하지 않은 요즘", "슬픔", "negation"),
    ("기분 안 좋아", "슬픔", "negation"),
    ("심심하다 진짜", "중립", "boredom"),
    ("할 거 없어서 누워있음", "중립", "boredom"),
    ("일요일 오후 너무 지루해", "중립", "boredom"),
    ("할일이 없어 뭐하지", "중립", "boredom"),
    ("내일 발표라 긴장된다", "긴장", "nerves"),
    ("면접 10분 전 손 떨림", "긴장", "nerves"),
    ("시험 앞두고 잠이 안 와", "긴장", "nerves"),
    ("결과 나오기 직전이라 초조해", "긴장", "nerves"),
    ("오디션 앞두고 떨려", "긴장", "nerves"),
    ("시험 끝나서 후련하다", "평화", "nerves"),
    ("야근 또 당첨 ^^ 너무 좋다", "분노", "sarcasm"),
    ("비 오는데 우산 없음 ^^ 완벽해", "분노", "sarcasm"),
    ("주말에 회사 나오니까 정말 행복하네요^^", "분노", "sarcasm"),
    ("차이고 나니까 기분 최고다 ^^", "슬픔", "sarcasm"),
    ("날씨 좋다 ^^", "기쁨", "sarcasm"),
    ("i'm really sad", "슬픔", "english"),
    ("so angry rn", "분노", "english"),
    ("feeling nervous", "긴장", "english"),
    ("so happy today", "기쁨", "english"),
    ("so bored", "중립", "english"),
    ("relaxing at the beach", "평화", "english"),
    ("tired af", "슬픔", "english"),
    ("오늘 좀 lonely 하다", "슬픔", "mixed"),
    ("완전 happy한 하루", "기쁨", "mixed"),
    ("시험 때문에 stressed", "긴장", "mixed"),
    ("기분이 so so", "중립", "mixed"),
    ("집에서 chill 하는 중", "평화", "mixed"),
    ("휴 다행이다", "평화", "calm"),
    ("마음이 편안해", "평화", "calm"),
    ("여유로운 주말 아침", "평화", "calm"),
    ("샤워하고 나니 개운하다", "평화", "calm"),
    ("밤에 골목길 지나가는데 무서웠어", "긴장", "calm"),
    ("따뜻한 이불 속이 너무 포근하다", "평화", "calm"),
    ("오늘 진짜 슬프다", "슬픔", "control"),
    ("짜증 나 죽겠어", "분노", "control"),
    ("합격 소식 들었어!", "기쁨", "control"),
    ("그냥 평범하게 지냄", "중립", "control"),
    ("발표 잘 끝나서 기분 좋다", "기쁨", "control"),
]


def _vec(**masses: float) -> np.ndarray:
    v = np.full(6, 0.01)
    for name, m in masses.items():
        v[index_of(name)] = m
    return v / v.sum()


def test_rules_keep_a_probability_vector(lex):
    for text in ("별로 안 우울해", "할 게 없어", "발표 앞두고 손이 떨려", "최고다 ^^ 또 야근",
                 "so tired", "그냥 노래"):
        v = _vec(기쁨=0.5, 슬픔=0.3)
        out, fired = adjust_mood(v, ask(lex, text))
        assert out.shape == (6,) and abs(out.sum() - 1) < 1e-9 and (out >= 0).all()
        assert set(fired) <= set(RULES)
        row, _ = adjust_mood(v[None, :].astype(np.float32), ask(lex, text))
        assert row.shape == (1, 6) and row.dtype == np.float32


def test_no_cues_no_change(lex):
    v = _vec(슬픔=0.7)
    out, fired = adjust_mood(v, ask(lex, "아이유 노래"))
    assert fired == [] and np.allclose(out, v)


def test_negation_moves_the_mood_away(lex):
    out, fired = adjust_mood(_vec(슬픔=0.85), ask(lex, "별로 안 우울해"))
    assert fired == ["negation"] and LABELS[int(out.argmax())] == "중립"
    out, _ = adjust_mood(_vec(평화=0.6, 기쁨=0.3), ask(lex, "행복하지 않아"))
    assert LABELS[int(out.argmax())] == "슬픔"


@pytest.mark.parametrize("text,mood,rule", [
    ("할 게 없어", "중립", "boredom"), ("발표 앞두고 손이 떨려", "긴장", "nerves"),
    ("아 진짜 최고다 ^^ 또 야근이래", "분노", "sarcasm"), ("so tired today", "슬픔", "english"),
    ("휴 다행이다", "평화", "relief"),
])
def test_hint_rules(lex, text, mood, rule):
    r = ask(lex, text)
    assert r.mood_hint == mood and rule in r.cues
    out, fired = adjust_mood(_vec(기쁨=0.9), r)
    assert rule in fired and LABELS[int(out.argmax())] == mood


@pytest.mark.parametrize("text", ["전혀 안 떨려", "긴장 하나도 안 돼", "그렇게 긴장되진 않아"])
def test_negated_nerves_are_not_nerves(lex, text):
    r = ask(lex, text)
    assert r.negated_mood == "긴장" and "nerves" not in r.cues


@pytest.mark.parametrize("text", ["시험 붙었어 진짜 최고다!!", "오늘 날씨 최고다 ^^ 산책 가야지",
                                  "시험 끝났다 신난다", "오늘 소개팅인데 설렌다"])
def test_rules_leave_plain_joy_alone(lex, text):
    r = ask(lex, text)
    assert "sarcasm" not in r.cues and "nerves" not in r.cues


def test_rule_layer_on_the_tuning_sentences():
    """With the shipped classifier: the rules must help on the sentences they were tuned on."""
    pytest.importorskip("onnxruntime")
    from inference.classifier import EmotionClassifier

    clf = EmotionClassifier.load()
    lex = Lexicon.from_catalog(load_default())
    texts = [t for t, _, _ in DEV_MOOD]
    base = clf.predict(texts)
    alone = with_rules = 0
    for (text, gold, _), v in zip(DEV_MOOD, base, strict=True):
        alone += LABELS[int(v.argmax())] == gold
        out, _ = adjust_mood(v, understand(text, lex))
        with_rules += LABELS[int(out.argmax())] == gold
    n = len(DEV_MOOD)
    print(f"\ntuning sentences: classifier {alone / n:.3f}, with rules {with_rules / n:.3f}")
    assert with_rules / n >= 0.9 and with_rules > alone


def test_so_excited_is_a_feeling_not_a_complaint_about_loud_music():
    """'시험 끝나서 너무 신나!' asked for calm songs before (read as '노래가 너무 신나')."""
    from indexing.catalog import load_default

    lex = Lexicon.from_songs((s.song_id, s.title, s.artist) for s in load_default())
    assert understand("시험 끝나서 너무 신나! 운동하면서 들을 노래", lex).energy != "down"
    assert understand("노래가 너무 신나", lex, has_thread=True).energy == "down"


def test_several_smalltalk_pieces_in_one_message_are_still_smalltalk():
    """'ㅇㅋ 고마워' on Kakao got five songs: only a greeting could lead a chain before."""
    from indexing.catalog import load_default

    lex = Lexicon.from_songs((s.song_id, s.title, s.artist) for s in load_default())
    for text, kind in (("ㅇㅋ 고마워", "thanks"), ("ㅋㅋ 고마워", "thanks"),
                       ("ㅇㅇ 알겠어 ㅂㅂ", "bye"), ("안녕 반가워", "greeting")):
        req = understand(text, lex, has_thread=True)
        assert (req.intent, req.smalltalk) == ("smalltalk", kind), text
    assert understand("ㅇㅋ 힙합 틀어줘", lex, has_thread=True).intent != "smalltalk"
    assert understand("고마워 근데 좀 우울해", lex, has_thread=True).intent == "recommend"


@pytest.mark.parametrize(("text", "lean"), [
    ("오늘 너무 지치고 우울해", True),
    ("회사일 때문에 너무 힘들다", True),
    ("요즘 번아웃 와서 아무것도 하기 싫어", True),
    ("so tired today", True),
    ("헤어져서 너무 힘들어", False),  # heartbroken: the breakup theme is what they said
    ("이별 노래 틀어줘 지쳤어", False),  # a theme named outright wins
    ("오늘 하나도 안 힘들어", False),  # negated
    ("신나는 노래 틀어줘", False),
])
def test_worn_out_messages_lean_toward_comfort(lex, text, lean):
    req = ask(lex, text)
    assert req.intent == "recommend"
    assert (req.prefer_themes == ("위로/응원",)) is lean, req
    assert "prefer_themes" not in req.as_dict()  # inferred, not asked: a trace only
    assert ("prefer_themes" in req.as_dict(trace=True)) is lean


@pytest.mark.parametrize(("text", "celebrates", "love"), [
    ("여자친구랑 100일이야!", True, True),
    ("오늘 고백 받았어", True, True),
    ("나 승진했어!!", True, False),
    ("1주년인데 헤어졌어", False, False),  # bad news on a good day: not a celebration
    ("시험 합격했네 퍽이나^^", False, False),  # sarcasm wins
    ("생일인데 아무도 연락이 없네", False, False),
])
def test_good_news_told_as_an_event_reads_as_joy(lex, text, celebrates, love):
    """The classifier read "여자친구랑 100일이야!" as 긴장 0.78 and answered with dark, tense
    songs; an anniversary or a confession should get happy love songs."""
    r = ask(lex, text)
    assert ("celebration" in r.cues) is celebrates
    assert (r.mood_hint == "기쁨") is celebrates
    assert (r.prefer_themes == ("사랑", "설렘")) is love


@pytest.mark.parametrize(("text", "season"), [
    ("봄에 듣기 좋은 노래", "봄"), ("벚꽃 필 때 듣는 노래", "봄"), ("여름 밤에 들을 노래", "여름"),
    ("가을 타나봐", "가을"), ("크리스마스 노래 틀어줘", "겨울"), ("눈 오는 날 듣기 좋은 노래", "겨울"),
    ("이거 한번 해봄", None), ("오늘 기분 최고", None),
])
def test_a_season_is_heard_as_a_trace_not_a_slot(lex, text, season):
    r = ask(lex, text)
    assert r.season == season
    assert "season" not in r.as_dict() and ("season" in r.as_dict(trace=True)) is bool(season)
