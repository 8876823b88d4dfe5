"""The song-profile vocabulary: the fixed facet values a song may carry, defined once.

Why fixed lists: a request ("운동할 때", "힙합", "위로되는 노래") can only be matched against a
catalogue that speaks a closed vocabulary, and every source (lyrics, editorial notes, metadata,
feedback) must write the same words. The situations are the most used *situation* tags of Melon
playlists (Kakao Arena ``kakao_arena_tag_counts.tsv``: 기분전환 16k, 휴식 11k, 드라이브 10k,
새벽 8k, 카페 7k, 여행 5k, 비오는날 3k, 산책 3k, 운동 3k …); the genres are the top-level
names of the Kakao Arena genre map (``genre_gn_all.json``), so metadata genres normalise onto
them without a table of our own.
"""

from __future__ import annotations

import re

__all__ = [
    "ENERGY_LEVELS",
    "GENRES",
    "GENRE_ALIASES",
    "LANGS",
    "SEASONS",
    "SITUATIONS",
    "SOURCES",
    "TEMPOS",
    "THEMES",
    "normalise_genre",
    "seasons_in_title",
]

#: Where a profile field came from (each field of a v2 song records one of these).
SOURCES: tuple[str, ...] = ("lyrics", "editorial", "metadata", "feedback")

#: When people put the song on: Melon playlist situation tags (spelling as tagged there).
SITUATIONS: tuple[str, ...] = (
    "기분전환",  # pick-me-up
    "휴식",  # rest
    "드라이브",  # driving
    "운동",  # workout / running
    "새벽",  # small hours
    "카페",  # café background
    "잠",  # falling asleep
    "공부",  # study / focus
    "여행",  # travel
    "비오는날",  # rainy day
    "산책",  # walk
    "출퇴근",  # commute
    "파티",  # party / club
    "힐링",  # healing / unwinding
)

#: What the song is about.
THEMES: tuple[str, ...] = (
    "사랑",  # love (being in it)
    "설렘",  # flutter, a crush, new love
    "짝사랑",  # unrequited love
    "이별",  # breakup
    "그리움",  # longing, missing someone
    "위로/응원",  # comfort, encouragement
    "청춘",  # youth
    "자신감",  # confidence, swagger
    "분노/저항",  # anger, defiance
    "우정",  # friendship
    "가족",  # family
    "추억",  # memories, nostalgia
    "외로움",  # loneliness
    "자유",  # freedom, escape
    "일상",  # everyday life
    "파티",  # celebration, fun
)

#: Kakao Arena top-level genre names (duplicates across domestic/foreign codes merged).
GENRES: tuple[str, ...] = (
    "발라드", "댄스", "랩/힙합", "R&B/Soul", "인디음악", "록/메탈", "성인가요/트로트",
    "포크/블루스", "POP", "일렉트로니카", "OST", "클래식", "재즈", "뉴에이지", "J-POP",
    "CCM", "국악", "뮤지컬",
)

#: Other spellings seen in metadata and in what people type → the canonical genre.
GENRE_ALIASES: dict[str, str] = {
    "성인가요": "성인가요/트로트", "트로트": "성인가요/트로트",
    "포크/블루스/컨트리": "포크/블루스", "EDM": "일렉트로니카",
    "국내드라마": "OST", "국외영화": "OST", "국내영화": "OST", "애니메이션/웹툰": "OST",
    "게임": "OST", "아이돌": "댄스",
}

#: How fast it feels (not a BPM: what a listener would say).
TEMPOS: tuple[str, ...] = ("slow", "mid", "fast")

#: Words for energy bands, for reasons ("에너지 높음"); energy itself is a float in [0, 1].
ENERGY_LEVELS: tuple[tuple[float, str], ...] = ((0.35, "낮음"), (0.65, "보통"), (1.01, "높음"))

#: Seasons a song is *titled* for ("벚꽃 엔딩", "여름 안에서", "눈의 꽃"). Read from the title,
#: a fact of the catalogue, not an annotation: nobody tagged songs by season, and a title that
#: names the season is what people mean by "봄 노래". Not a hard filter, only a lean.
SEASONS: tuple[str, ...] = ("봄", "여름", "가을", "겨울")
_SEASON_TITLE = {
    "봄": re.compile(r"봄|벚꽃|spring|blossom", re.I),
    "여름": re.compile(r"여름|summer|해변", re.I),
    "가을": re.compile(r"가을|autumn|낙엽", re.I),
    "겨울": re.compile(r"겨울|winter|첫눈|눈의 꽃|snow|크리스마스|christmas", re.I),
}


def seasons_in_title(title: str) -> tuple[str, ...]:
    """The seasons a title names (usually none)."""
    return tuple(name for name, rx in _SEASON_TITLE.items() if rx.search(title or ""))


#: Lyric language of a song.
LANGS: tuple[str, ...] = ("ko", "en", "mixed", "other", "instrumental")


def normalise_genre(raw: str | None) -> str | None:
    """A metadata genre ("발라드, 국내드라마", "성인가요") → one canonical genre, or None.

    The first part that maps wins: Melon lists the musical genre before the usage genre, so
    "발라드, 국내드라마" is a ballad (it is also an OST, which editorial data may record).
    """
    if not raw:
        return None
    for part in (p.strip() for p in raw.split(",")):
        if part in GENRES:
            return part
        if part in GENRE_ALIASES:
            return GENRE_ALIASES[part]
    return None
