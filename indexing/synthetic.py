"""Realistic synthetic catalogues and mood queries, of any size, for tests and benchmarks.

Why not uniform random vectors? Recall and latency of an approximate index depend on how the
data is distributed. Real song vectors are classifier softmax outputs: non-negative, summing to
one, usually led by one or two moods and skewed towards sadness and joy (ballads and dance
tracks dominate Korean charts). Queries (a user's message through the same classifier) are
peaked the same way. Metadata is shaped like a chart crawl too: a few prolific artists and a long
tail, a genre mix, more recent years than old ones, and a long-tailed popularity, so the catalogue
statistics and the re-ranker see something close to production.

Everything is driven by a ``numpy.random.Generator`` seed, so the same call always yields the same
catalogue (tests compare results across builds).
"""

from __future__ import annotations

import numpy as np

from indexing.catalog import Catalog, Song
from inference.emotions import LABELS, NUM_EMOTIONS, index_of

__all__ = ["GENRES", "mood_queries", "mood_vectors", "synthetic_catalog", "synthetic_songs"]

# (genre, share of a chart-like catalogue, moods this genre leans towards)
GENRES: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    ("발라드", 0.24, ("슬픔", "평화")),
    ("댄스", 0.16, ("기쁨",)),
    ("랩/힙합", 0.12, ("분노", "긴장")),
    ("R&B/Soul", 0.09, ("평화", "슬픔")),
    ("인디음악", 0.09, ("평화", "중립")),
    ("록/메탈", 0.07, ("분노", "긴장")),
    ("OST", 0.07, ("슬픔", "기쁨")),
    ("트로트", 0.04, ("기쁨", "슬픔")),
    ("포크/블루스", 0.04, ("평화", "슬픔")),
    ("일렉트로니카", 0.04, ("기쁨", "긴장")),
    ("POP", 0.03, ("기쁨", "중립")),
    ("재즈", 0.01, ("평화",)),
)

# Overall prior on a song's leading mood when its genre gives no hint.
_MOOD_PRIOR = {"분노": 0.08, "긴장": 0.12, "슬픔": 0.30, "평화": 0.17, "기쁨": 0.25, "중립": 0.08}

_KO_WORDS = (
    "사랑", "이별", "눈물", "바람", "하늘", "별", "밤", "새벽", "봄날", "여름", "가을", "겨울",
    "꿈", "기억", "추억", "너", "우리", "그대", "마음", "시간", "거리", "비", "눈", "노을",
    "달빛", "햇살", "바다", "편지", "약속", "안녕", "처음", "마지막", "혼자", "함께", "오늘",
    "내일", "어제", "그날", "첫사랑", "고백", "향기", "노래", "파도", "꽃", "그림자", "불빛",
)
_KO_MODS = (
    "슬픈", "행복한", "작은", "푸른", "아픈", "따뜻한", "차가운", "빛나는", "멀어진", "다시",
    "그리운", "조용한", "뜨거운", "하얀", "깊은", "낯선", "소중한", "외로운", "눈부신", "아련한",
)
_EN_WORDS = (
    "Love", "Night", "Dream", "Blue", "Fire", "Star", "Rain", "Summer", "Heart", "Light",
    "Moon", "Road", "Home", "Wave", "Crazy", "Baby", "Magic", "Shadow", "Run", "Forever",
)
_ARTIST_SYL = (
    "김", "이", "박", "최", "정", "강", "윤", "한", "서", "민", "지", "수", "현", "우", "아",
    "연", "진", "하", "은", "태", "예", "린", "도", "호", "재",
)
_ARTIST_EN = (
    "BLUE", "NOVA", "LUNA", "ECHO", "AURA", "ZERO", "HALO", "MINT", "NEON", "IVY", "ORBIT",
    "PRISM", "VIBE", "RAVEN", "COCO", "JADE", "SOLAR", "TWIN", "PIXEL", "OASIS",
)


def _pick(rng: np.random.Generator, seq: tuple[str, ...], n: int) -> np.ndarray:
    return np.asarray(seq, dtype=object)[rng.integers(0, len(seq), size=n)]


def mood_vectors(
    n: int,
    rng: np.random.Generator,
    *,
    lead: np.ndarray | None = None,
    concentration: float = 0.35,
    lead_boost: float = 2.5,
    second_boost: float = 0.8,
) -> np.ndarray:
    """``(n, 6)`` float32 softmax-like vectors: a Dirichlet mixture led by one mood, often two.

    ``lead`` (``(n,)`` ints) fixes each row's leading mood; otherwise it is drawn from a
    sadness/joy-heavy prior. A small ``concentration`` keeps the other moods near zero, as a
    confident classifier would; ``second_boost`` on a random second mood gives the "bittersweet"
    blends that make nearest-neighbour search non-trivial.
    """
    if lead is None:
        prior = np.asarray([_MOOD_PRIOR[label] for label in LABELS], dtype=np.float64)
        lead = rng.choice(NUM_EMOTIONS, size=n, p=prior / prior.sum())
    alpha = np.full((n, NUM_EMOTIONS), concentration, dtype=np.float64)
    rows = np.arange(n)
    alpha[rows, lead] += lead_boost
    second = (lead + rng.integers(1, NUM_EMOTIONS, size=n)) % NUM_EMOTIONS
    has_second = rng.random(n) < 0.5
    alpha[rows[has_second], second[has_second]] += second_boost
    # Dirichlet via normalised gammas (vectorised; rng.dirichlet takes one alpha at a time).
    g = rng.standard_gamma(alpha)
    g += 1e-6  # never an all-zero row: Song rejects zero vectors
    return (g / g.sum(axis=1, keepdims=True)).astype(np.float32)


def mood_queries(n: int, seed: int = 7) -> np.ndarray:
    """``(n, 6)`` float32 query vectors shaped like classifier output for a user's message.

    Queries are more peaked than songs (a message is usually about one feeling) and lead with
    every mood equally often, so a benchmark exercises all regions of the space.
    """
    rng = np.random.default_rng(seed)
    lead = rng.integers(0, NUM_EMOTIONS, size=n)
    return mood_vectors(n, rng, lead=lead, concentration=0.25, lead_boost=4.0, second_boost=1.0)


def _artists(n_artists: int, rng: np.random.Generator) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n_artists:
        if rng.random() < 0.55:
            k = int(rng.integers(2, 4))
            name = "".join(_pick(rng, _ARTIST_SYL, k))
        else:
            name = str(_pick(rng, _ARTIST_EN, 1)[0])
            if rng.random() < 0.6:
                name += f" {int(rng.integers(1, 1000))}"
        while name in seen:
            name += str(_pick(rng, _ARTIST_SYL, 1)[0])
        seen.add(name)
        names.append(name)
    return names


def synthetic_songs(n: int, seed: int = 42, *, id_prefix: str = "syn") -> list[Song]:
    """``n`` songs with plausible Korean metadata; (title, artist) pairs are unique.

    Artists follow a Zipf-like law (a few with hundreds of tracks, most with one or two), which
    matters for the re-ranker's per-artist cap and for the duplicate checker.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    if n == 0:
        return []

    genre_names = [g[0] for g in GENRES]
    shares = np.asarray([g[1] for g in GENRES])
    genre_idx = rng.choice(len(GENRES), size=n, p=shares / shares.sum())

    # Leading mood: 70 % from the genre's leaning, 30 % from the global prior.
    prior = np.asarray([_MOOD_PRIOR[label] for label in LABELS])
    lead = rng.choice(NUM_EMOTIONS, size=n, p=prior / prior.sum())
    from_genre = rng.random(n) < 0.7
    lean_idx = [np.asarray([index_of(m) for m in g[2]]) for g in GENRES]
    for gi, leans in enumerate(lean_idx):
        mask = from_genre & (genre_idx == gi)
        lead[mask] = leans[rng.integers(0, len(leans), size=int(mask.sum()))]
    vectors = mood_vectors(n, rng, lead=lead)

    n_artists = max(1, n // 8)
    artist_names = _artists(n_artists, rng)
    ranks = np.arange(1, n_artists + 1, dtype=np.float64)
    weights = (ranks + 50.0) ** -1.2  # Zipf-Mandelbrot: a few prolific artists, a long tail
    artist_idx = rng.choice(n_artists, size=n, p=weights / weights.sum())

    years = np.clip(np.round(2025 - rng.exponential(9.0, size=n)), 1965, 2025).astype(int)
    raw = rng.pareto(1.6, size=n) * 0.2
    popularity = np.round(raw / (raw + 1.0), 6)  # in [0, 1): most songs obscure, a few hits
    has_melon = rng.random(n) < 0.8
    melon_ids = rng.integers(100_000, 40_000_000, size=n)

    mods = _pick(rng, _KO_MODS, n)
    words = _pick(rng, _KO_WORDS, n)
    en = _pick(rng, _EN_WORDS, n)
    style = rng.random(n)
    album_no = rng.integers(1, 12, size=n)

    rows = vectors.tolist()
    songs: list[Song] = []
    seen: set[tuple[str, str]] = set()
    for i in range(n):
        s = style[i]
        if s < 0.45:
            title = f"{mods[i]} {words[i]}"
        elif s < 0.65:
            title = str(words[i])
        elif s < 0.85:
            title = f"{en[i]} {words[i]}" if s < 0.75 else f"{words[i]} ({en[i]})"
        else:
            title = f"{en[i]} {_EN_WORDS[(i * 7) % len(_EN_WORDS)]}"
        artist = artist_names[artist_idx[i]]
        base, v = title, 2
        while (title, artist) in seen:  # same artist, same title: make it a distinct track
            title = f"{base} Pt.{v}"
            v += 1
        seen.add((title, artist))
        songs.append(
            Song(
                song_id=f"{id_prefix}{i:07d}",
                title=title,
                artist=artist,
                vector=tuple(rows[i]),
                album=f"{artist} {album_no[i]}집",
                genre=genre_names[genre_idx[i]],
                year=int(years[i]),
                melon_id=str(melon_ids[i]) if has_melon[i] else None,
                popularity=float(popularity[i]),
                source="synthetic",
            )
        )
    return songs


def synthetic_catalog(n: int, seed: int = 42) -> Catalog:
    """A :class:`Catalog` of ``n`` synthetic songs (see :func:`synthetic_songs`)."""
    return Catalog(synthetic_songs(n, seed))
