"""Song profiles: read each source, calibrate its sharpness, fuse them into what the bot serves.

A song's mood can come from up to three places, each wrong in its own way:

* **lyrics** — the sentence classifier over the lyric chunks (``training.label``). Broad but
  noisy: it reads lyric lines as chat, so love-song clichés and English hooks land anywhere, and
  its vectors are spread (top mood 0.3–0.5).
* **description** — the same classifier over one sentence the project wrote about the song.
  Accurate for the mood its writer meant, but near one-hot (밤편지 평화 0.997).
* **editorial** — an annotator's structured judgement of a recording they know
  (``indexing/data/editorial/*.jsonl``): one mood plus moods a listener would also accept.

Fused naively, the peaky sources win every cosine ranking (a one-hot vector is closer to a
peaky query than any spread one) and recur across users. So the fusion is, in order:

1. **Vectorise** editorial moods: logits 2 for the mood, 1 for each "also" mood, 0 elsewhere.
2. **Calibrate sharpness per source** by entropy matching: each source gets one temperature
   ``T_s`` so that the mean entropy of its vectors equals the lyrics' mean entropy
   (``p ∝ p_raw^(1/T_s)``). No source is more confident than another by construction.
3. **Pool** linearly, each source weighted by a fitted source weight ``w_s`` times the
   record's own confidence ``c`` (editorial confidence; lyric confidence from how many Korean
   chunks voted): ``p = Σ w_s c_s p_s / Σ w_s c_s``.
4. **Re-temper** the pooled vectors with one more temperature to the same mean entropy, so a
   song known from two agreeing sources is not flatter than a song known from one.

The weights are fitted on the *fit* part of the public known-songs check set
(``training/data/known_songs.csv``) by grid search over the simplex, and reported on its
*report* part (``benchmarks/songs.py``). Facets (energy, danceability, tempo, situations,
themes, language, genre, year) take the editorial value when there is one; otherwise a
documented fallback (:func:`derived_facets`) from the fused mood and the genre, marked
``lyrics+metadata`` with a low confidence, so "운동할 때" can still match a song nobody
annotated, but an annotated song always wins.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from indexing.facets import SITUATIONS, THEMES, normalise_genre
from inference.emotions import LABELS, NUM_EMOTIONS, index_of

__all__ = [
    "MOOD_SOURCES",
    "FusionModel",
    "derived_facets",
    "editorial_vector",
    "entropy",
    "fit_temperature",
    "hangul_ratio",
    "lyric_language",
    "lyric_themes",
    "temper",
]

#: Sources that give a mood vector, in the order weights are listed.
MOOD_SOURCES: tuple[str, ...] = ("lyrics", "description", "editorial")
_EPS = 1e-6


# ---- sharpness ---------------------------------------------------------------------------------
def entropy(p: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) of each row of ``p``."""
    q = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1.0)
    q = q / q.sum(axis=-1, keepdims=True)
    return -(q * np.log(q)).sum(axis=-1)


def temper(p: np.ndarray, t: float) -> np.ndarray:
    """``p^(1/t)`` renormalised: t > 1 flattens, t < 1 sharpens; the argmax never moves."""
    logp = np.log(np.clip(np.asarray(p, dtype=np.float64), _EPS, 1.0)) / t
    logp -= logp.max(axis=-1, keepdims=True)
    q = np.exp(logp)
    return q / q.sum(axis=-1, keepdims=True)


def fit_temperature(vectors: np.ndarray, target_entropy: float) -> float:
    """The temperature that gives ``vectors`` a mean entropy of ``target_entropy`` (bisection).

    Mean entropy rises monotonically with the temperature, so bisection in log space converges;
    the range is clipped to [0.05, 50] (a source cannot be made arbitrarily flat or peaky).
    """
    v = np.asarray(vectors, dtype=np.float64)
    if len(v) == 0:
        return 1.0
    lo, hi = math.log(0.05), math.log(50.0)
    for _ in range(60):
        mid = (lo + hi) / 2
        if entropy(temper(v, math.exp(mid))).mean() < target_entropy:
            lo = mid
        else:
            hi = mid
    return round(math.exp((lo + hi) / 2), 4)


def editorial_vector(mood: str, also: Sequence[str] = ()) -> np.ndarray:
    """An annotator's "this mood, also these" as a probability vector (before calibration)."""
    logits = np.zeros(NUM_EMOTIONS)
    for m in also:
        logits[index_of(m)] = 1.0
    logits[index_of(mood)] = 2.0
    e = np.exp(logits)
    return e / e.sum()


# ---- lyrics ------------------------------------------------------------------------------------
def hangul_ratio(text: str) -> float:
    """Share of letters that are Hangul (syllables or jamo); 0 for a text without letters."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return 0.0
    return sum(1 for c in letters if "\uac00" <= c <= "\ud7a3" or "\u3131" <= c <= "\u318e"
               ) / len(letters)


def lyric_language(lines: Sequence[str]) -> tuple[str, float]:
    """``(lang, confidence)`` of a lyric from the Hangul share of its letters.

    ≥ 85 % Hangul → "ko", ≤ 15 % → "en" (Latin-script lyrics in a Korean catalogue are nearly
    always English), else "mixed". Confidence grows with the distance from those cut-offs.
    """
    r = hangul_ratio(" ".join(lines))
    if r >= 0.85:
        return "ko", round(min(1.0, 0.6 + (r - 0.85) * 2.7), 2)
    if r <= 0.15:
        return "en", round(min(1.0, 0.6 + (0.15 - r) * 2.7), 2)
    return "mixed", round(0.6 + min(r - 0.15, 0.85 - r) * 1.1, 2)


#: Word stems whose presence in a lyric line points to a theme. A documented lexicon rather than
#: a trained model: the only theme labels we have are the editorial ones, which are what this is
#: measured against (``benchmarks/songs.py``: precision/recall per theme), so training on them
#: would leave nothing honest to report.
THEME_STEMS: dict[str, tuple[str, ...]] = {
    "이별": ("이별", "헤어", "떠나", "떠난", "안녕이라", "잊어", "잊을", "잊지", "보내", "goodbye",
            "good bye", "끝이", "끝난", "돌아와"),
    "그리움": ("그리워", "그립", "그리운", "보고 싶", "보고싶", "생각나", "miss you", "기억해"),
    "사랑": ("사랑해", "사랑하", "사랑은", "사랑이", "love", "내 곁", "너만", "영원히"),
    "설렘": ("설레", "두근", "떨려", "첫눈에", "너에게 가", "좋아해", "crush", "눈이 마주"),
    "짝사랑": ("짝사랑", "모르겠지", "몰래", "혼자 좋아", "말 못", "고백"),
    "위로/응원": ("괜찮아", "힘내", "수고했어", "잘하고 있", "울어도 돼", "포기하지", "넌 할 수",
              "걱정 마", "걱정마", "토닥", "응원"),
    "청춘": ("청춘", "젊은", "스무 살", "스물", "어린 날", "young", "youth", "학교", "교실"),
    "자신감": ("최고", "내가 제일", "i'm the", "boss", "king", "queen", "swag", "flex", "자신",
            "잘나가", "멋있"),
    "분노/저항": ("싸워", "부숴", "외쳐", "미쳐", "burn", "fight", "저항", "분노", "화가",
              "세상에 맞서", "짓밟"),
    "우정": ("친구", "우정", "friend", "함께라면", "우리 함께"),
    "가족": ("엄마", "아빠", "어머니", "아버지", "가족", "부모"),
    "추억": ("추억", "그때", "그 시절", "옛날", "기억 속", "memories", "그날"),
    "외로움": ("외로", "혼자", "홀로", "lonely", "alone", "쓸쓸"),
    "자유": ("자유", "날아", "free", "떠나자", "달려", "벗어나"),
    "일상": ("오늘", "아침", "출근", "커피", "밥", "하루"),
    "파티": ("party", "파티", "춤을", "dance", "tonight", "let's go", "놀자", "신나게"),
}
assert set(THEME_STEMS) <= set(THEMES)


def lyric_themes(lines: Sequence[str], *, min_share: float = 0.12, max_themes: int = 3
                 ) -> list[tuple[str, float]]:
    """Themes a lyric is about: ``[(theme, confidence)]``, strongest first.

    Each *unique* line votes once for every theme whose stem it contains (a chorus sung eight
    times is one line here); a theme whose lines make up at least ``min_share`` of the unique
    lines is kept. Confidence is that share, scaled so that half the lines → 1.0, and capped at
    0.8 (a lexicon is never as sure as a listener).
    """
    uniq = list(dict.fromkeys(" ".join(ln.split()).casefold() for ln in lines if ln.strip()))
    if not uniq:
        return []
    scores = []
    for theme, stems in THEME_STEMS.items():
        hits = sum(1 for ln in uniq if any(s in ln for s in stems))
        share = hits / len(uniq)
        if share >= min_share and hits >= 2:
            scores.append((theme, round(min(0.8, share * 2), 2)))
    scores.sort(key=lambda t: -t[1])
    return scores[:max_themes]


# ---- facets without an annotation ---------------------------------------------------------------
#: Energy a listener hears in each mood, and the shift a genre adds (documented priors).
_MOOD_ENERGY = {"분노": 0.8, "긴장": 0.7, "슬픔": 0.3, "평화": 0.2, "기쁨": 0.7, "중립": 0.45}
_GENRE_ENERGY = {"댄스": 0.2, "록/메탈": 0.2, "랩/힙합": 0.1, "일렉트로니카": 0.2, "발라드": -0.15,
                 "포크/블루스": -0.1, "재즈": -0.1, "뉴에이지": -0.25, "클래식": -0.2, "R&B/Soul": -0.05}
_DANCE_GENRES = {"댄스": 0.75, "일렉트로니카": 0.7, "랩/힙합": 0.6, "R&B/Soul": 0.5, "POP": 0.5}


def derived_facets(vector: Sequence[float], genre: str | None) -> dict[str, tuple[object, float]]:
    """Energy, danceability, tempo and situations guessed from the fused mood and the genre.

    ``{facet: (value, confidence)}``; confidences 0.3–0.4, so any editorial value outranks
    them. Why guess at all: without it, "운동할 때" could only ever match annotated songs.
    """
    v = np.asarray(vector, dtype=np.float64)
    v = v / v.sum()
    energy = float(sum(v[index_of(m)] * e for m, e in _MOOD_ENERGY.items()))
    energy = min(1.0, max(0.0, energy + _GENRE_ENERGY.get(genre or "", 0.0)))
    dance = _DANCE_GENRES.get(genre or "", 0.3) * (0.6 + 0.8 * energy) / 1.2
    tempo = "fast" if energy >= 0.65 else "slow" if energy <= 0.35 else "mid"
    top = LABELS[int(v.argmax())]
    situations: list[str] = []
    if energy >= 0.65:
        situations += ["운동", "기분전환"]
    if 0.45 <= energy <= 0.8 and top in ("기쁨", "중립"):
        situations.append("드라이브")
    if energy <= 0.4 and top in ("평화", "슬픔"):
        situations += ["새벽", "잠"] if top == "슬픔" else ["휴식", "잠", "힐링"]
    if top in ("중립", "평화") and 0.3 <= energy <= 0.6:
        situations += ["카페", "공부"]
    situations = [s for s in dict.fromkeys(situations) if s in SITUATIONS][:4]
    return {"energy": (round(energy, 2), 0.4), "dance": (round(min(1.0, dance), 2), 0.3),
            "tempo": (tempo, 0.3), "situations": (tuple(situations), 0.3)}


# ---- fusion ------------------------------------------------------------------------------------
@dataclass
class FusionModel:
    """The calibrated fusion: per-source temperatures, source weights, the final temperature.

    Fitted by :meth:`fit` (temperatures by entropy matching on the catalogue, weights on the
    known-songs fit split); applied by :meth:`fuse`. Stored in the catalogue README's numbers
    and in ``benchmarks/results/songs.json`` so a rebuild is reproducible.
    """

    temperatures: dict[str, float] = field(default_factory=lambda: dict.fromkeys(MOOD_SOURCES, 1.0))
    weights: dict[str, float] = field(default_factory=lambda: dict.fromkeys(MOOD_SOURCES, 1.0))
    final_temperature: float = 1.0
    target_entropy: float = 1.2

    def calibrated(self, source: str, p: Sequence[float]) -> np.ndarray:
        return temper(np.asarray(p, dtype=np.float64)[None, :], self.temperatures[source])[0]

    def pool(self, sources: Mapping[str, tuple[Sequence[float], float]]) -> np.ndarray:
        """Linear pool of the calibrated source vectors, weighted ``w_s × confidence``."""
        acc = np.zeros(NUM_EMOTIONS)
        total = 0.0
        for name, (p, conf) in sources.items():
            w = self.weights.get(name, 0.0) * max(conf, 0.0)
            if w <= 0:
                continue
            acc += w * self.calibrated(name, p)
            total += w
        if total <= 0:  # every source weighted out: fall back to an unweighted pool
            for name, (p, _) in sources.items():
                acc += self.calibrated(name, p)
                total += 1
        return acc / total

    def fuse(self, sources: Mapping[str, tuple[Sequence[float], float]]) -> np.ndarray:
        """The served mood vector for one song from ``{source: (vector, confidence)}``."""
        if not sources:
            raise ValueError("a song needs at least one mood source")
        return temper(self.pool(sources)[None, :], self.final_temperature)[0]

    @classmethod
    def fit(cls, songs: Sequence[Mapping[str, tuple[Sequence[float], float]]],
            known: Mapping[int, Sequence[str]], *, step: float = 0.1) -> FusionModel:
        """Fit temperatures on all ``songs`` and source weights on the ``known`` ones.

        ``known`` maps a position in ``songs`` to the moods a listener accepts (first = best).
        Weights: grid search over the simplex (``step``) maximising accuracy (fused top mood
        among the accepted ones); ties broken by the mean probability of the best mood, then by
        the most even weights.
        """
        by_source: dict[str, list[Sequence[float]]] = {s: [] for s in MOOD_SOURCES}
        for src in songs:
            for name, (p, _) in src.items():
                by_source[name].append(p)
        if not by_source["lyrics"]:
            raise ValueError("fusion needs lyric vectors to set the target sharpness")
        target = float(entropy(np.asarray(by_source["lyrics"])).mean())
        model = cls(target_entropy=round(target, 4))
        model.temperatures = {s: (fit_temperature(np.asarray(v), target) if v else 1.0)
                              for s, v in by_source.items()}
        grid = [round(i * step, 4) for i in range(round(1 / step) + 1)]
        best: tuple[float, float, float] | None = None
        best_w: dict[str, float] = {}
        for wl in grid:
            for wd in grid:
                we = round(1.0 - wl - wd, 4)
                if we < -1e-9:
                    continue
                model.weights = {"lyrics": wl, "description": wd, "editorial": max(we, 0.0)}
                hits, prob = 0, 0.0
                for i, accepted in known.items():
                    p = model.pool(songs[i])
                    hits += LABELS[int(p.argmax())] in accepted
                    prob += float(p[index_of(accepted[0])])
                n = max(len(known), 1)
                spread = -float(np.std([wl, wd, we]))
                score = (hits / n, prob / n, spread)
                if best is None or score > best:
                    best, best_w = score, dict(model.weights)
        model.weights = best_w
        pooled = np.asarray([model.pool(s) for s in songs])
        model.final_temperature = fit_temperature(pooled, target)
        return model

    def as_dict(self) -> dict:
        return {"temperatures": self.temperatures, "weights": self.weights,
                "final_temperature": self.final_temperature,
                "target_entropy": self.target_entropy}


def genre_of(*candidates: str | None) -> str | None:
    """The first candidate that normalises onto the Kakao Arena genre map."""
    for c in candidates:
        g = normalise_genre(c)
        if g:
            return g
    return None


