"""Simulated listeners with hidden tastes, for testing and benchmarking collaborative filtering.

Why: the bot has no real feedback yet, and CF can only be judged against people whose taste is
known. Each simulated user has a hidden profile — favourite and disliked genres, a few favourite
artists, a taste in an 8-d "style" space that no metadata exposes (production, vocals, era...),
an appetite for hits or for obscure songs, and a mood habit (most want songs that *match* their
mood; some want to be *lifted* out of sadness or anger) — plus noise, a reaction rate (a quarter
never react at all), a habit of reacting to a whole reply instead of a track, an activity level
(heavy-tailed) and a day they joined. Mood-only ranking can see none of this except the mood
habit; CF can learn genre, artist and style from reactions; popularity sees only the crowd.

Two ways to produce feedback from the same :class:`TasteModel` (say which one made a number):

* **engine mode** (:func:`simulate_engine`): users chat with the real :class:`bot.engine.Recommender`
  and :class:`bot.store.Store` (clock injected, so "days" pass instantly) through
  ``recommend_mood`` and react through ``engine.feedback`` / ``engine.feedback_answer``. What
  they see is what the engine chose, CF included once a model is loaded — an online A/B test.
* **generator mode** (:func:`generate_log`): vectorised, no engine, hundreds of thousands of
  events per second. Each request is a mood query from a fixed pool whose 60 candidates are the
  exact top-60 by cosine (what the engine's Annoy search returns with search_k=1000); the logging
  policy shows 5 of them uniformly at random, so no ranker under evaluation produced the log
  (otherwise a held-out "positive" is just whatever the old ranker put first).

Everything is seeded; the engine mode draws each (user, day) from its own seed, so two runs that
differ only in the model loaded see identical users and moods (paired A/B arms).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from indexing.catalog import Song
from indexing.synthetic import GENRES
from inference.emotions import LABELS, NUM_EMOTIONS, index_of

__all__ = [
    "DAY",
    "EngineSimReport",
    "EventLog",
    "SimClock",
    "SimConfig",
    "TasteModel",
    "candidate_pool",
    "generate_log",
    "simulate_engine",
]

DAY = 86_400.0
SIGNALS: tuple[str, ...] = ("love", "like", "play", "skip", "dislike")  # = bot.feedback.Signal
POSITIVE = np.array([True, True, True, False, False])
# Utility thresholds: love > 1.9 > like > 1.0 > play > 0.35 > skip > -0.5 > dislike.
_THRESHOLDS = np.array([1.9, 1.0, 0.35, -0.5])
_W_GENRE, _W_ARTIST, _W_STYLE, _W_MOOD, _W_POP = 0.9, 1.1, 0.7, 3.0, 0.6
_MOOD_CENTRE = 0.85  # typical cosine of a candidate to its query; the mood term is centred on it


@dataclass(frozen=True)
class SimConfig:
    """Population parameters; the defaults give a plausible bot community."""

    n_users: int = 1000
    days: int = 60
    start: float = 1_767_225_600.0  # 2026-01-01 00:00 UTC
    silent_share: float = 0.25  # never react
    lifter_share: float = 0.25  # want uplifting songs when sad/angry/tense
    early_share: float = 0.6  # active from day 0; the rest join uniformly later
    style_dim: int = 8
    requests_per_day: float = 0.6  # mean over users (heavy-tailed: some chat daily, most rarely)
    seed: int = 0


class SimClock:
    """A settable clock for ``Store.open(clock=...)``: simulated days pass instantly."""

    def __init__(self, now: float) -> None:
        self.now = float(now)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += float(seconds)


def _genre_index(genre: str | None) -> int:
    names = [g[0] for g in GENRES]
    return names.index(genre) if genre in names else len(names)  # last bucket: unknown genre


@dataclass
class TasteModel:
    """Hidden song traits and hidden user tastes; utility and reactions for (user, song, mood)."""

    config: SimConfig
    song_ids: list[str]
    song_genre: np.ndarray  # (n_songs,) int
    song_artist: np.ndarray  # (n_songs,) int
    song_vec: np.ndarray  # (n_songs, 6) unit vectors
    song_pop: np.ndarray  # (n_songs,) popularity percentile - 0.5
    song_style: np.ndarray  # (n_songs, style_dim)
    user_ids: list[str]
    genre_aff: np.ndarray  # (n_users, n_genres + 1)
    fav_keys: np.ndarray  # sorted user * n_artists + artist of favourite artists
    user_style: np.ndarray  # (n_users, style_dim)
    mainstream: np.ndarray  # (n_users,)
    lifter: np.ndarray  # (n_users,) bool
    noise: np.ndarray  # (n_users,) sd of per-reaction noise
    react_rate: np.ndarray  # (n_users,) P(react to a shown track)
    message_share: np.ndarray  # (n_users,) P(react to the whole reply instead)
    activity: np.ndarray  # (n_users,) relative requests per active day
    join_day: np.ndarray  # (n_users,) float day index
    mood_prior: np.ndarray  # (n_users, 6)
    n_artists: int
    song_row: dict[str, int] = field(default_factory=dict)

    @classmethod
    def create(cls, songs: Sequence[Song], config: SimConfig | None = None) -> TasteModel:
        """Draw hidden traits for ``songs`` and a population of ``config.n_users`` users."""
        cfg = config or SimConfig()
        rng = np.random.default_rng([cfg.seed, 1])
        n = len(songs)
        if n == 0:
            raise ValueError("the simulator needs a non-empty catalogue")
        artists: dict[str, int] = {}
        song_artist = np.fromiter((artists.setdefault(s.artist.casefold(), len(artists))
                                   for s in songs), dtype=np.int64, count=n)
        song_genre = np.fromiter((_genre_index(s.genre) for s in songs), dtype=np.int64, count=n)
        vec = np.asarray([s.vector for s in songs], dtype=np.float64)
        vec /= np.linalg.norm(vec, axis=1, keepdims=True)
        pop = np.asarray([s.popularity for s in songs], dtype=np.float64)
        pop_pct = (np.argsort(np.argsort(pop, kind="stable"), kind="stable") / max(n - 1, 1)) - 0.5
        n_art = len(artists)
        L = cfg.style_dim
        # A song's style is mostly its artist's: CF can generalise from one track to the next.
        artist_style = rng.standard_normal((n_art, L))
        style = 0.75 * artist_style[song_artist] + 0.66 * rng.standard_normal((n, L))

        u = cfg.n_users
        n_genres = len(GENRES) + 1
        shares = np.asarray([g[1] for g in GENRES] + [0.02])
        shares = shares / shares.sum()
        genre_aff = 0.15 * rng.standard_normal((u, n_genres))
        for i in range(u):
            liked = rng.choice(n_genres, size=int(rng.integers(1, 4)), replace=False, p=shares)
            genre_aff[i, liked] += rng.uniform(0.7, 1.3, size=len(liked))
            disliked = rng.choice(n_genres, size=int(rng.integers(0, 3)), replace=False)
            disliked = np.setdiff1d(disliked, liked)
            genre_aff[i, disliked] -= rng.uniform(0.7, 1.3, size=len(disliked))
        # Favourite artists: 1-6 per user, drawn by catalogue presence (prolific artists are
        # better known), mostly within the user's liked genres.
        counts = np.bincount(song_artist, minlength=n_art).astype(np.float64)
        artist_genre = np.zeros(n_art, dtype=np.int64)
        artist_genre[song_artist] = song_genre
        keys: list[int] = []
        for i in range(u):
            w = counts * np.exp(1.2 * genre_aff[i, artist_genre])
            k = int(rng.integers(1, 7))
            favs = rng.choice(n_art, size=min(k, n_art), replace=False, p=w / w.sum())
            keys.extend(int(i * n_art + a) for a in favs)
        silent = rng.random(u) < cfg.silent_share
        react = np.where(silent, 0.0, rng.beta(2.0, 2.5, size=u))
        prior = rng.dirichlet(np.full(NUM_EMOTIONS, 0.8), size=u)
        join = np.where(rng.random(u) < cfg.early_share, 0.0, rng.uniform(0, cfg.days, size=u))
        model = cls(
            config=cfg, song_ids=[s.song_id for s in songs], song_genre=song_genre,
            song_artist=song_artist, song_vec=vec, song_pop=pop_pct, song_style=style,
            user_ids=[f"sim-u{i:06d}" for i in range(u)], genre_aff=genre_aff,
            fav_keys=np.unique(np.asarray(keys, dtype=np.int64)),
            user_style=rng.standard_normal((u, L)),
            mainstream=rng.normal(0.4, 0.5, size=u), lifter=rng.random(u) < cfg.lifter_share,
            noise=rng.uniform(0.4, 0.9, size=u), react_rate=react,
            message_share=rng.beta(1.0, 4.0, size=u),
            activity=rng.lognormal(0.0, 1.0, size=u), join_day=join, mood_prior=prior,
            n_artists=n_art)
        model.song_row = {s: i for i, s in enumerate(model.song_ids)}
        return model

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    def mood_targets(self, users: np.ndarray, queries: np.ndarray) -> np.ndarray:
        """The song mood each user wants for each query: the query itself, or, for "lifters",
        the query with most of its anger/tension/sadness moved to peace and joy."""
        t = np.array(queries, dtype=np.float64, copy=True)
        lift = self.lifter[users]
        if lift.any():
            neg = [index_of("분노"), index_of("긴장"), index_of("슬픔")]
            moved = 0.7 * t[lift][:, neg]
            sub = t[lift]
            sub[:, neg] -= moved
            total = moved.sum(axis=1)
            sub[:, index_of("평화")] += total / 2
            sub[:, index_of("기쁨")] += total / 2
            t[lift] = sub
        return t / np.maximum(np.linalg.norm(t, axis=-1, keepdims=True), 1e-12)

    def utility(self, users: np.ndarray, songs: np.ndarray, queries: np.ndarray) -> np.ndarray:
        """Expected (noise-free) utility of ``songs`` for ``users`` asking with ``queries``.

        Shapes: ``users`` (R,), ``songs`` (R, k), ``queries`` (R, 6) → (R, k).
        """
        users = np.asarray(users, dtype=np.int64)
        songs = np.asarray(songs, dtype=np.int64)
        g = self.genre_aff[users[:, None], self.song_genre[songs]]
        keys = users[:, None] * self.n_artists + self.song_artist[songs]
        pos = np.clip(np.searchsorted(self.fav_keys, keys), 0, max(len(self.fav_keys) - 1, 0))
        fav = (self.fav_keys[pos] == keys) if len(self.fav_keys) else np.zeros(keys.shape, bool)
        style = np.einsum("rd,rkd->rk", self.user_style[users], self.song_style[songs])
        style /= np.sqrt(self.config.style_dim)
        target = self.mood_targets(users, queries)
        mood = np.einsum("rd,rkd->rk", target, self.song_vec[songs]) - _MOOD_CENTRE
        pop = self.mainstream[users, None] * self.song_pop[songs]
        return (_W_GENRE * g + _W_ARTIST * fav + _W_STYLE * style + _W_MOOD * mood
                + _W_POP * pop)

    def react(self, rng: np.random.Generator, users: np.ndarray, songs: np.ndarray,
              queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """What each user does with the ``k`` tracks of each reply.

        Returns ``(signal, scope)`` of shape (R, k): ``signal`` indexes :data:`SIGNALS`, -1 for
        no reaction; ``scope`` is 0 = track, 1 = message (the whole reply judged by its mean
        utility, every track getting that one signal, like a Discord reaction).
        """
        users = np.asarray(users, dtype=np.int64)
        u = self.utility(users, songs, queries)
        noisy = u + self.noise[users, None] * rng.standard_normal(u.shape)
        signal = np.searchsorted(-_THRESHOLDS, -noisy, side="right").astype(np.int64)
        reacts = rng.random(u.shape) < self.react_rate[users, None]
        signal = np.where(reacts, signal, -1)
        scope = np.zeros(u.shape, dtype=np.int64)
        whole = (rng.random(len(users)) < self.message_share[users] * self.react_rate[users])
        if whole.any():
            mean = noisy[whole].mean(axis=1)
            msg_sig = np.searchsorted(-_THRESHOLDS, -mean, side="right")
            signal[whole] = msg_sig[:, None]
            scope[whole] = 1
        return signal, scope


# ---- generator mode -------------------------------------------------------------------------
def candidate_pool(songs_vec: np.ndarray, n_queries: int, k: int, seed: int) -> tuple[
        np.ndarray, np.ndarray, np.ndarray]:
    """``(queries (n,6), lead mood (n,), candidates (n,k) song rows, best first)``.

    Queries are shaped like classifier output for a message (``indexing.synthetic``), with every
    mood leading equally often; candidates are the exact top-``k`` by cosine.
    """
    from indexing.synthetic import mood_vectors

    rng = np.random.default_rng([seed, 2])
    lead = rng.integers(0, NUM_EMOTIONS, size=n_queries)
    q = mood_vectors(n_queries, rng, lead=lead, concentration=0.25, lead_boost=4.0,
                     second_boost=1.0).astype(np.float32)
    unit = songs_vec / np.linalg.norm(songs_vec, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    cand = np.empty((n_queries, k), dtype=np.int64)
    for s in range(0, n_queries, 256):
        sc = qn[s:s + 256] @ unit.T.astype(np.float32)
        top = np.argpartition(-sc, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sc, top, axis=1), axis=1, kind="stable")
        cand[s:s + 256] = np.take_along_axis(top, order, axis=1)
    return q, lead, cand


@dataclass
class EventLog:
    """A generated feedback log plus the requests behind it (generator mode).

    Events: ``user``/``song`` rows into the taste model, ``signal`` into :data:`SIGNALS`,
    ``scope`` 0 track / 1 message, ``time`` unix seconds, ``request`` into the request arrays.
    Requests: ``req_user``, ``req_time``, ``req_query`` (row of ``queries``/``candidates``),
    ``req_shown`` (R, 5) song rows.
    """

    user: np.ndarray
    song: np.ndarray
    signal: np.ndarray
    scope: np.ndarray
    time: np.ndarray
    request: np.ndarray
    req_user: np.ndarray
    req_time: np.ndarray
    req_query: np.ndarray
    req_shown: np.ndarray
    queries: np.ndarray
    candidates: np.ndarray

    def __len__(self) -> int:
        return len(self.user)


def generate_log(taste: TasteModel, n_events: int, *, n_queries: int = 4000, k_candidates: int = 60,
                 shown: int = 5, seed: int = 0, chunk: int = 100_000,
                 progress: bool = False) -> EventLog:
    """About ``n_events`` feedback rows over ``taste.config.days`` days, vectorised.

    The number of requests is set so that the expected number of feedback rows (track reactions
    plus 5 rows per whole-reply reaction) is ``n_events``; the realised count varies by ~0.5 %.
    """
    cfg = taste.config
    rng = np.random.default_rng([seed, 3])
    queries, lead, cand = candidate_pool(taste.song_vec, n_queries, k_candidates, seed)
    by_mood = [np.flatnonzero(lead == m) for m in range(NUM_EMOTIONS)]
    active_days = np.maximum(cfg.days - taste.join_day, 0.0)
    # Expected rows per request: per track P(react) plus whole-reply reactions (5 rows each).
    rr, ms = taste.react_rate, taste.message_share
    per_req = shown * rr * (1 - ms * rr) + shown * ms * rr
    weight = taste.activity * active_days
    scale = n_events / max(float((weight * per_req).sum()), 1e-9)
    n_req = rng.poisson(weight * scale)
    req_user = np.repeat(np.arange(taste.n_users), n_req)
    R = len(req_user)
    req_time = cfg.start + (taste.join_day[req_user] + rng.random(R) * active_days[req_user]) * DAY
    # Mood of each request from the user's own habits, then a query of that mood from the pool.
    cum = np.cumsum(taste.mood_prior[req_user], axis=1)
    mood = (rng.random(R)[:, None] > cum).sum(axis=1).clip(0, NUM_EMOTIONS - 1)
    req_query = np.empty(R, dtype=np.int64)
    for m in range(NUM_EMOTIONS):
        sel = np.flatnonzero(mood == m)
        req_query[sel] = by_mood[m][rng.integers(0, len(by_mood[m]), size=len(sel))]
    req_shown = np.empty((R, shown), dtype=np.int64)
    out: list[tuple[np.ndarray, ...]] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=R, desc="simulating requests", unit="req", unit_scale=True)
    for s in range(0, R, chunk):
        e = min(R, s + chunk)
        pick = np.argpartition(rng.random((e - s, k_candidates), dtype=np.float32), shown - 1,
                               axis=1)[:, :shown]
        songs = np.take_along_axis(cand[req_query[s:e]], pick, axis=1)
        req_shown[s:e] = songs
        users = req_user[s:e]
        signal, scope = taste.react(rng, users, songs, queries[req_query[s:e]])
        r, c = np.nonzero(signal >= 0)
        out.append((users[r], songs[r, c], signal[r, c], scope[r, c],
                    req_time[s + r] + 5.0 + 20.0 * c, s + r))
        if bar is not None:
            bar.update(e - s)
    if bar is not None:
        bar.close()
    cols = [np.concatenate(col) for col in zip(*out, strict=True)] if out else \
        [np.zeros(0, np.int64)] * 6
    order = np.argsort(cols[4], kind="stable")
    user, song, signal, scope, time, request = (c[order] for c in cols)
    return EventLog(user=user.astype(np.int32), song=song.astype(np.int32),
                    signal=signal.astype(np.int8), scope=scope.astype(np.int8), time=time,
                    request=request.astype(np.int64), req_user=req_user, req_time=req_time,
                    req_query=req_query, req_shown=req_shown, queries=queries, candidates=cand)


# ---- engine mode ----------------------------------------------------------------------------
@dataclass
class EngineSimReport:
    """What happened in an engine-mode run (counts over shown tracks)."""

    requests: int = 0
    shown: int = 0
    events: int = 0
    by_signal: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SIGNALS, 0))
    positive_track_reactions: int = 0
    track_reactions: int = 0
    utility_sum: float = 0.0

    @property
    def mean_utility(self) -> float:
        """Mean hidden (noise-free) utility of what was shown: the quality the users felt."""
        return self.utility_sum / max(self.shown, 1)

    @property
    def positive_rate(self) -> float:
        """Share of per-track reactions that were love/like/play."""
        return self.positive_track_reactions / max(self.track_reactions, 1)

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "shown": self.shown, "events": self.events,
                "by_signal": dict(self.by_signal), "positive_rate": round(self.positive_rate, 4),
                "mean_utility": round(self.mean_utility, 4)}


async def simulate_engine(engine: Any, taste: TasteModel, clock: SimClock, *, days: Sequence[int],
                          seed: int = 0, users: Sequence[int] | None = None,
                          on_day_start: Callable[[int], Awaitable[None]] | None = None,
                          ) -> EngineSimReport:
    """Users chat with the real engine for ``days`` (day indices), reacting through its API.

    ``engine`` is a :class:`bot.engine.Recommender` whose store was opened with ``clock``; each
    request sets the clock to its simulated time, so the store's timestamps (and therefore CF's
    time windows) follow simulated days. Track reactions go through ``engine.feedback``
    (scope "track"); whole-reply reactions through ``engine.feedback_answer`` (scope "message").
    ``on_day_start(day)`` runs before each day (e.g. retrain CF at day 20).
    """
    cfg = taste.config
    report = EngineSimReport()
    who = np.arange(taste.n_users) if users is None else np.asarray(users, dtype=np.int64)
    for day in days:
        if on_day_start is not None:
            await on_day_start(day)
        plan: list[tuple[float, int, int, np.random.Generator]] = []
        for u in who:
            if taste.join_day[u] > day:
                continue
            rng = np.random.default_rng([seed, int(u), int(day)])
            n = int(rng.poisson(cfg.requests_per_day * taste.activity[u]))
            for _ in range(n):
                t = cfg.start + (day + rng.random()) * DAY
                mood = int(rng.choice(NUM_EMOTIONS, p=taste.mood_prior[u]))
                plan.append((t, int(u), mood, rng))
        plan.sort(key=lambda p: p[0])
        for t, u, mood, rng in plan:
            clock.now = t
            uid = taste.user_ids[u]
            rec = await engine.recommend_mood(uid, LABELS[mood], channel="simulation")
            rows = np.asarray([taste.song_row[tr.song_id] for tr in rec.tracks], dtype=np.int64)
            if len(rows) == 0:
                continue
            q = np.asarray(rec.emotion, dtype=np.float64)[None, :]
            users_arr = np.asarray([u])
            signal, scope = taste.react(rng, users_arr, rows[None, :], q)
            report.requests += 1
            report.shown += len(rows)
            report.utility_sum += float(taste.utility(users_arr, rows[None, :], q).sum())
            if scope[0].any():
                clock.advance(30.0)
                sig = SIGNALS[int(signal[0, 0])]
                report.events += await engine.feedback_answer(uid, rec.rec_id, sig)
                report.by_signal[sig] += len(rows)
                continue
            for j, tr in enumerate(rec.tracks):
                if signal[0, j] < 0:
                    continue
                clock.advance(5.0)
                sig = SIGNALS[int(signal[0, j])]
                report.events += int(await engine.feedback(rec.rec_id, tr.song_id, uid, sig))
                report.by_signal[sig] += 1
                report.track_reactions += 1
                report.positive_track_reactions += int(POSITIVE[signal[0, j]])
    return report
