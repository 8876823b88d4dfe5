"""Re-ranking: from Annoy's nearest-by-mood candidates to the five tracks a person gets.

Pure and synchronous (numpy only), so it is unit-tested without the bot and runs in the
engine's worker thread. Nearest-by-mood alone returns five near-identical songs, often by one
artist; the blend below adds the user's taste (CF), a little popularity, and MMR variety.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from indexing.catalog import Song
from inference.emotions import EMOTIONS, NUM_EMOTIONS

__all__ = ["RankWeights", "Ranked", "explain", "explore", "rerank", "select"]


@dataclass(frozen=True, slots=True)
class RankWeights:
    mood: float = 1.0
    cf: float = 0.35
    popularity: float = 0.10
    mmr_lambda: float = 0.75  # 1 = pure relevance, 0 = pure variety
    max_per_artist: int = 1
    #: Scale of the Gumbel noise added to relevance (Plackett–Luce sampling). 0 = deterministic.
    #: Without it every user in one mood gets the same top songs and a few songs take most of
    #: the exposure (benchmarks/songs.py measures the Gini with and without).
    exploration: float = 0.0


def explore(rel: np.ndarray, scale: float, rng: np.random.Generator | None) -> np.ndarray:
    """``rel`` plus Gumbel(0, scale) noise: sampling a ranking in proportion to exp(rel/scale)."""
    if scale <= 0 or len(rel) == 0:
        return rel
    rng = rng or np.random.default_rng()
    return rel + scale * rng.gumbel(size=len(rel)).astype(rel.dtype)


@dataclass(frozen=True, slots=True)
class Ranked:
    song: Song
    score: float  # blended relevance used for ordering
    mood: float  # cosine between the mood vector and the song vector
    cf: float | None  # the user's CF score in [0, 1] when a CF model scored this song
    popularity: float


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, 1e-12)


def rerank(
    query: np.ndarray,
    candidates: Sequence[tuple[Song, float]],
    k: int,
    weights: RankWeights = RankWeights(),
    cf_scores: Mapping[str, float] | None = None,
    rng: np.random.Generator | None = None,
) -> list[Ranked]:
    """Pick ``k`` of ``candidates`` by blended relevance with MMR diversity and an artist cap.

    ``cf_scores`` are the user's CF scores already scaled to [0, 1]; songs absent from it (new
    songs nobody rated yet) get the mean, so fresh catalogue entries are not buried.
    """
    return select([query], candidates, k, weights, cf_scores, rng,
                  max_per_artist=weights.max_per_artist)


def select(
    targets: Sequence[np.ndarray],
    candidates: Sequence[tuple[Song, float]],
    k: int,
    weights: RankWeights,
    cf_scores: Mapping[str, float] | None = None,
    rng: np.random.Generator | None = None,
    *,
    max_per_artist: int,
    bonus: np.ndarray | None = None,
) -> list[Ranked]:
    """The selection loop behind :func:`rerank` and ``bot.conversation.pick``.

    Position ``i`` is filled by the best remaining candidate for ``targets[i]`` (the last
    target repeats), scored ``λ·(relevance + exploration noise) − (1−λ)·redundancy`` (MMR),
    with at most ``max_per_artist`` songs per artist unless only capped artists are left. One
    target is plain re-ranking; several make the list walk from one mood to another (the iso
    principle of a "lift"). The noise is drawn once per candidate. ``bonus`` (one value per
    candidate) adds to relevance: a soft preference, e.g. for a theme the request leans toward.
    """
    if k <= 0 or not candidates:
        return []
    songs = [s for s, _ in candidates]
    V = _unit(np.asarray([s.vector for s in songs], dtype=np.float32))
    pop = np.asarray([s.popularity for s in songs], dtype=np.float32)
    if pop.max() > pop.min():
        pop = (pop - pop.min()) / (pop.max() - pop.min())
    else:
        pop = np.zeros_like(pop)
    cf = None
    if cf_scores:
        known = [cf_scores[s.song_id] for s in songs if s.song_id in cf_scores]
        fill = float(np.mean(known)) if known else 0.5
        cf = np.asarray([cf_scores.get(s.song_id, fill) for s in songs], dtype=np.float32)
    noise = explore(np.zeros(len(songs), dtype=np.float32), weights.exploration, rng)
    sim = V @ V.T
    chosen: list[int] = []
    out: list[Ranked] = []
    per_artist: dict[str, int] = {}
    remaining = list(range(len(songs)))
    lam = weights.mmr_lambda
    rel = mood = None
    while remaining and len(chosen) < k:
        pos = len(chosen)
        if rel is None or len(targets) > 1:
            t = _unit(np.asarray(targets[min(pos, len(targets) - 1)],
                                 dtype=np.float32).reshape(NUM_EMOTIONS))
            mood = V @ t
            rel = weights.mood * mood + weights.popularity * pop
            if cf is not None:
                rel = rel + weights.cf * cf
            if bonus is not None:
                rel = rel + bonus
        noisy = rel + noise
        best, best_val = -1, -np.inf
        for i in remaining:
            if per_artist.get(songs[i].artist.casefold(), 0) >= max_per_artist:
                continue
            redundancy = max((sim[i, j] for j in chosen), default=0.0)
            val = lam * noisy[i] - (1 - lam) * redundancy
            if val > best_val:
                best, best_val = i, val
        if best < 0:  # only capped artists remain: relax the cap rather than return fewer songs
            best = max(remaining, key=lambda i: rel[i])
        chosen.append(best)
        remaining.remove(best)
        a = songs[best].artist.casefold()
        per_artist[a] = per_artist.get(a, 0) + 1
        out.append(Ranked(songs[best], float(rel[best]), float(mood[best]),
                          None if cf is None else float(cf[best]), float(pop[best])))
    return out


def _top(v: np.ndarray, n: int) -> list[int]:
    return [int(i) for i in np.argsort(-v)[:n]]


def explain(query: np.ndarray, ranked: Ranked, *, explicit: bool = False) -> str:
    """One Korean line saying why this song was picked (the shared emotions, taste, variety)."""
    q = np.asarray(query, dtype=np.float32)
    s = np.asarray(ranked.song.vector, dtype=np.float32)
    s = s / max(float(s.sum()), 1e-9)
    shared = q * s
    lead = _top(shared, 2)
    parts = [f"{EMOTIONS[i].emoji}{EMOTIONS[i].ko} {s[i]:.0%}" for i in lead if s[i] >= 0.1]
    mood_part = " · ".join(parts) if parts else f"{EMOTIONS[_top(s, 1)[0]].ko} 곡"
    if explicit:
        head = f"{EMOTIONS[_top(q, 1)[0]].ko} 무드에 맞는 곡"
    else:
        head = f"지금 기분과 {ranked.mood:.0%} 닮은 곡"
    line = f"{head} ({mood_part})"
    if ranked.cf is not None and ranked.cf >= 0.7:
        line += " · 취향 저격 예상"
    if ranked.song.source == "description":
        line += " · 곡 소개글 기준"
    return line
