"""Collaborative filtering from the bot's feedback: read events, weigh them, fit ALS, save.

What a reaction means, in numbers (``SIGNAL_WEIGHTS``; values are ``bot.feedback.Signal``):

    love +4 · like +2 · play +0.5 · skip -0.5 · dislike -2

and a reaction on a whole reply (``scope="message"``, one row per track) counts ``0.35`` of a
per-track one (``SCOPE_WEIGHTS``): a Discord 👍 on five songs says "this answer was fine", not
"I love each of these". Optionally older events fade (``half_life_days``; off by default).

All of a user's events on one song are summed into a net weight ``w`` (a like then a skip is
+1.5). Implicit-feedback ALS (Hu, Koren & Volinsky) models a binary preference ``p`` with a
confidence ``c``; unobserved pairs are ``p=0, c=1``. We feed ``implicit`` the value
``sign(w) · (1 + alpha·|w|)``, which its solver reads as:

* ``w > 0`` → ``p = 1`` with confidence ``1 + alpha·w`` (love is trusted more than a play);
* ``w < 0`` → ``p = 0`` with confidence ``1 + alpha·|w|`` — negatives are *not* dropped: a
  dislike is a firmer "no" than never having seen the song, so the fit pushes it further down
  than an unobserved song (implicit's documented negative-confidence convention). On the
  simulated benchmark, dropping them instead loses most of CF's gain over mood-only ranking;
* ``w == 0`` (signals that cancel exactly) → left unobserved.

Artist and genre pseudo-items (hybrid). A chatbot's catalogue is long-tailed: most songs get a
handful of reactions, too few for a song factor of their own, and plain song-level ALS then
barely beats mood-only ranking. So each event also counts (``side_weight``) towards a column
for the song's artist and one for its genre (from the catalogue); ALS learns those columns from
thousands of events, and a song's served factor is its own blended with its artist's and
genre's by evidence (:func:`blend_item_factors`). The artifact format does not change: one
factor per song.

Training runs on one BLAS thread (``threadpoolctl``; OpenBLAS's own pool makes ALS up to 10×
slower and would fight the bot for cores) and ``threads`` solver threads (default 1, so a
/retrain on a small box leaves the other core to the bot). The artifact is written through
:func:`indexing.cf.save_cf` (format defined once, next to the serving reader); an empty or
failed training raises before anything is written, so the previous model stays.

The feedback table has one owner, ``bot.store``: its window, columns and signal/scope names
are read from there (``read_feedback_rows``, ``bot.feedback.Signal``, ``bot.store.SCOPES``),
read-only (:mod:`training.feedback_source`: a SQLite file or PostgreSQL) so training never
writes to the live database.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bot.feedback import Signal
from bot.store import SCOPES as STORE_SCOPES
from indexing.cf import DEFAULT_SHRINK_EVENTS, INFO_FILE, save_cf

__all__ = [
    "SCOPES",
    "SCOPE_WEIGHTS",
    "SIGNALS",
    "SIGNAL_WEIGHTS",
    "CFConfig",
    "CFTrainingError",
    "Events",
    "NoFeedbackError",
    "TrainingMatrix",
    "blend_item_factors",
    "build_matrix",
    "event_weights",
    "fit_als",
    "matrix_stats",
    "model_info",
    "peak_rss_mb",
    "read_feedback",
    "read_song_meta",
    "side_items",
    "train",
    "train_from_db",
    "write_model",
]

SIGNAL_WEIGHTS: dict[str, float] = {
    Signal.LOVE.value: 4.0,
    Signal.LIKE.value: 2.0,
    Signal.PLAY.value: 0.5,
    Signal.SKIP.value: -0.5,
    Signal.DISLIKE.value: -2.0,
}
SCOPE_WEIGHTS: dict[str, float] = {"track": 1.0, "message": 0.35}
SIGNALS: tuple[str, ...] = tuple(s.value for s in Signal)
SCOPES: tuple[str, ...] = STORE_SCOPES
if set(SIGNAL_WEIGHTS) != set(SIGNALS) or set(SCOPE_WEIGHTS) != set(SCOPES):  # pragma: no cover
    raise ImportError("training.cf weights must name every bot.feedback.Signal and store scope")
_DAY = 86_400.0


class CFTrainingError(RuntimeError):
    """Training could not produce a model; the previous artifact (if any) is unchanged."""


class NoFeedbackError(CFTrainingError):
    """There is nothing to learn from (no feedback rows in the window)."""


@dataclass(frozen=True)
class CFConfig:
    """ALS hyper-parameters and the event weighting (all recorded in ``cf.json``).

    The defaults were picked on a simulated development population (seed 11, not the seed
    ``benchmarks/cf.py`` reports): ``alpha`` 4 and regularization 10 beat 1 and 0.1; 32
    factors were as good as 64 and twice as fast; artist/genre sharing tripled how well the
    scores track users' hidden tastes. ``shrink_events`` is read by the scorer (see
    ``indexing.cf``).
    """

    factors: int = 32
    iterations: int = 15
    regularization: float = 10.0
    alpha: float = 4.0
    side_weight: float = 1.0
    artist_prior: float = 10.0
    genre_prior: float = 10.0
    half_life_days: float | None = None
    threads: int = 1
    seed: int = 42
    shrink_events: float = DEFAULT_SHRINK_EVENTS
    signal_weights: Mapping[str, float] = field(default_factory=lambda: dict(SIGNAL_WEIGHTS))
    scope_weights: Mapping[str, float] = field(default_factory=lambda: dict(SCOPE_WEIGHTS))

    def __post_init__(self) -> None:
        if self.factors < 1 or self.iterations < 1:
            raise ValueError("factors and iterations must be >= 1")
        if self.regularization < 0 or self.alpha <= 0:
            raise ValueError("regularization must be >= 0 and alpha > 0")
        if min(self.side_weight, self.artist_prior, self.genre_prior, self.shrink_events) < 0:
            raise ValueError("side_weight, artist_prior, genre_prior, shrink_events must be >= 0")
        if self.half_life_days is not None and self.half_life_days <= 0:
            raise ValueError("half_life_days must be > 0 (or None for no decay)")
        if set(self.signal_weights) != set(SIGNALS) or set(self.scope_weights) != set(SCOPES):
            raise ValueError(f"weights must name exactly the signals {SIGNALS} and scopes {SCOPES}")
        for s in ("love", "like", "play"):
            if self.signal_weights[s] <= 0:
                raise ValueError(f"{s} must weigh > 0")
        for s in ("skip", "dislike"):
            if self.signal_weights[s] >= 0:
                raise ValueError(f"{s} must weigh < 0 (negative feedback is kept, not dropped)")


@dataclass
class Events:
    """Feedback rows as parallel arrays (5M rows ≈ 90 MB; tuples would need ~2 GB).

    ``user``/``item`` index ``user_ids``/``item_ids``; ``signal``/``scope`` index
    :data:`SIGNALS`/:data:`SCOPES`; ``time`` is unix seconds.
    """

    user: np.ndarray
    item: np.ndarray
    signal: np.ndarray
    scope: np.ndarray
    time: np.ndarray
    user_ids: list[str]
    item_ids: list[str]
    skipped: int = 0  # rows with an unknown signal/scope (counted, not fatal)

    def __len__(self) -> int:
        return len(self.user)

    @classmethod
    def from_rows(cls, rows: Any) -> Events:
        """Build from ``(user_id, song_id, signal, scope, created_at)`` tuples (the shape of
        ``Store.feedback_events``), e.g. for tests and the simulator."""
        b = _Builder()
        for row in rows:
            b.add(*row)
        return b.finish()

    def select(self, mask: np.ndarray) -> Events:
        """The rows where ``mask`` is true (id lists kept; unused ids are dropped on training)."""
        return Events(self.user[mask], self.item[mask], self.signal[mask], self.scope[mask],
                      self.time[mask], self.user_ids, self.item_ids, self.skipped)


class _Builder:
    """Accumulates rows into typed arrays chunk by chunk, interning ids."""

    def __init__(self) -> None:
        self.users: dict[str, int] = {}
        self.items: dict[str, int] = {}
        self.sig = {s: i for i, s in enumerate(SIGNALS)}
        self.scp = {s: i for i, s in enumerate(SCOPES)}
        self.cols: list[list[Any]] = [[], [], [], [], []]
        self.chunks: list[tuple[np.ndarray, ...]] = []
        self.skipped = 0

    def add(self, user_id: str, song_id: str, signal: str, scope: str, created_at: float) -> None:
        s, c = self.sig.get(signal), self.scp.get(scope)
        if s is None or c is None or created_at is None:
            self.skipped += 1
            return
        u = self.users.setdefault(str(user_id), len(self.users))
        i = self.items.setdefault(str(song_id), len(self.items))
        for col, v in zip(self.cols, (u, i, s, c, float(created_at)), strict=True):
            col.append(v)
        if len(self.cols[0]) >= 200_000:
            self._flush()

    def _flush(self) -> None:
        if self.cols[0]:
            u, i, s, c, t = self.cols
            self.chunks.append((np.asarray(u, np.int32), np.asarray(i, np.int32),
                                np.asarray(s, np.int8), np.asarray(c, np.int8),
                                np.asarray(t, np.float64)))
            self.cols = [[], [], [], [], []]

    def finish(self) -> Events:
        self._flush()
        if self.chunks:
            parts = [np.concatenate(col) for col in zip(*self.chunks, strict=True)]
        else:
            parts = [np.zeros(0, t) for t in (np.int32, np.int32, np.int8, np.int8, np.float64)]
        return Events(*parts, user_ids=list(self.users), item_ids=list(self.items),
                      skipped=self.skipped)


def read_feedback(db_path: str | os.PathLike[str], *, since: float | None = None,
                  until: float | None = None, progress: bool = False) -> Events:
    """Feedback rows with ``since <= created_at < until`` from the store: a SQLite path or a
    ``postgresql://`` URL (:mod:`training.feedback_source`).

    Read-only (SQLite ``mode=ro``, a PostgreSQL ``READ ONLY`` transaction): training never
    writes to the live database, and WAL lets it read while the bot keeps writing. Rows with an
    unknown signal or scope (a newer bot's data) are counted in ``Events.skipped`` and ignored.
    """
    from training.feedback_source import iter_feedback_batches

    b = _Builder()
    total, batches = iter_feedback_batches(db_path, since, until)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="reading feedback", unit="ev", unit_scale=True)
    try:
        for rows in batches:
            for row in rows:
                b.add(*row)
            if bar is not None:
                bar.update(len(rows))
    finally:
        batches.close()
        if bar is not None:
            bar.close()
    return b.finish()


def event_weights(events: Events, config: CFConfig, *, now: float | None = None) -> np.ndarray:
    """Signed weight of each row: signal × scope × recency decay (see the module docstring)."""
    sig = np.asarray([config.signal_weights[s] for s in SIGNALS], dtype=np.float32)
    scp = np.asarray([config.scope_weights[s] for s in SCOPES], dtype=np.float32)
    w = sig[events.signal]  # float32: ample for weights, half the memory at millions of rows
    w *= scp[events.scope]
    if config.half_life_days and len(events):
        ref = float(events.time.max()) if now is None else float(now)
        age_days = np.maximum(ref - events.time, 0.0) / _DAY
        w *= np.power(0.5, age_days / config.half_life_days).astype(np.float32)
    return w


SongMeta = Mapping[str, tuple[str | None, str | None]]  # song_id -> (artist, genre)


def read_song_meta(catalog_path: str | os.PathLike[str]) -> dict[str, tuple[str | None,
                                                                               str | None]]:
    """``song_id -> (artist, genre)`` from a catalogue, for the artist/genre pseudo-items.

    Raises :class:`CFTrainingError` when the catalogue cannot be read; callers decide whether
    to train without metadata instead (the CLI does, with a warning).
    """
    from indexing.catalog import Catalog, CatalogError

    try:
        catalog = Catalog.load(catalog_path)
    except (CatalogError, OSError) as exc:
        raise CFTrainingError(f"cannot read the catalogue {catalog_path}: {exc}") from exc
    return {s.song_id: (s.artist.casefold() if s.artist else None, s.genre or None)
            for s in catalog}


@dataclass
class TrainingMatrix:
    """The ALS input and how to read its columns back.

    Columns are the songs first, then one pseudo-item per artist and per genre (when song
    metadata was given): each event on a song also counts, scaled by ``side_weight``, towards
    the song's artist and genre. A long-tail song has a handful of reactions — too few for its
    own factor — but its artist and genre have thousands, so the user's taste for them is
    learned well and transfers to every song they cover (see :func:`blend_item_factors`).
    """

    matrix: Any  # scipy CSR float32, users × (songs + artists + genres)
    user_ids: list[str]
    item_ids: list[str]  # the songs, in column order
    user_events: np.ndarray  # rows per user (the serving-time cold-start gate)
    item_events: np.ndarray  # rows per song
    song_artist: np.ndarray  # column of each song's artist pseudo-item, -1 if unknown
    song_genre: np.ndarray  # column of each song's genre pseudo-item, -1 if unknown
    stats: dict[str, Any]

    @property
    def n_songs(self) -> int:
        return len(self.item_ids)


def _confidence(net: Any, alpha: float) -> tuple[Any, int]:
    """Net signed weight → implicit's signed confidence; exact cancellations become unobserved."""
    net.sum_duplicates()
    d = net.data
    tiny = np.abs(d) < 1e-6  # float32 sums: like + dislike may leave rounding dust, not taste
    cancelled = int(np.count_nonzero(tiny))
    d[tiny] = 0.0
    net.data = np.sign(d) * (1.0 + alpha * np.abs(d))
    net.eliminate_zeros()
    return net.astype(np.float32, copy=False), cancelled


def _compact(codes: np.ndarray, n_codes: int) -> tuple[np.ndarray, np.ndarray]:
    """``(present codes, re-indexed codes)`` like ``np.unique(return_inverse=True)``, in int32
    and without its sort: a quarter of the memory at millions of events."""
    present = np.bincount(codes, minlength=n_codes) > 0
    remap = (np.cumsum(present, dtype=np.int64) - 1).astype(np.int32)
    return np.flatnonzero(present), remap[codes]


def side_items(item_ids: list[str], config: CFConfig, song_meta: SongMeta | None
               ) -> tuple[np.ndarray, np.ndarray, int, int]:
    """``(artist_of, genre_of, n_artists, n_genres)``: each song's local index into the artist
    and genre pseudo-item blocks (-1 when unknown or sharing is off), numbered in song order.

    One definition for both trainers (``implicit`` here, Spark in :mod:`training.cf_spark`):
    the column layout is part of what makes their models the same.
    """
    artist_of = np.full(len(item_ids), -1, dtype=np.int32)
    genre_of = np.full(len(item_ids), -1, dtype=np.int32)
    if not song_meta or config.side_weight <= 0:
        return artist_of, genre_of, 0, 0
    artists: dict[str, int] = {}
    genres: dict[str, int] = {}
    for j, sid in enumerate(item_ids):
        artist, genre = song_meta.get(sid, (None, None))
        if artist:
            artist_of[j] = artists.setdefault(artist, len(artists))
        if genre:
            genre_of[j] = genres.setdefault(genre, len(genres))
    return artist_of, genre_of, len(artists), len(genres)


def build_matrix(events: Events, config: CFConfig, *, now: float | None = None,
                 song_meta: SongMeta | None = None) -> TrainingMatrix:
    """The user × (song + artist + genre) confidence matrix (CSR float32) and its bookkeeping.

    Users and songs are re-indexed to those present in ``events`` (a time window may leave some
    of ``events.user_ids`` unused). Without ``song_meta`` (or with ``side_weight`` 0) it is the
    plain user × song matrix.
    """
    from scipy.sparse import coo_matrix, hstack

    if len(events) == 0:
        raise NoFeedbackError("no feedback events to learn from")
    users, u_idx = _compact(events.user, len(events.user_ids))
    items, i_idx = _compact(events.item, len(events.item_ids))
    item_ids = [events.item_ids[i] for i in items]
    n_u, n_s = len(users), len(items)
    w = event_weights(events, config, now=now)
    artist_of, genre_of, n_artists, n_genres = side_items(item_ids, config, song_meta)
    # One block at a time (COO → CSC sums duplicates per block), joined column-wise (cheap
    # for CSC: no COO round trip), then one conversion to the CSR that implicit wants. At 5M
    # events this peaks at ~0.5 GB instead of ~1 GB for one big COO.
    blocks = [coo_matrix((w, (u_idx, i_idx)), shape=(n_u, n_s)).tocsc()]
    for local, width in ((artist_of, n_artists), (genre_of, n_genres)):
        if width:
            c = local[i_idx]
            keep = c >= 0
            blocks.append(coo_matrix((w[keep] * config.side_weight, (u_idx[keep], c[keep])),
                                     shape=(n_u, width)).tocsc())
    joined = hstack(blocks, format="csc") if len(blocks) > 1 else blocks[0]
    del blocks
    net = joined.tocsr()
    del joined
    matrix, cancelled = _confidence(net, config.alpha)
    in_songs = matrix.indices < n_s
    n_pairs = int(np.count_nonzero(in_songs))
    if n_pairs == 0:
        raise NoFeedbackError(f"all {len(events)} feedback events cancel out; nothing to learn")
    song_artist = np.where(artist_of >= 0, artist_of.astype(np.int64) + n_s, -1)
    song_genre = np.where(genre_of >= 0, genre_of.astype(np.int64) + n_s + n_artists, -1)
    n_side = n_artists + n_genres
    stats = matrix_stats(
        n_events=len(events), n_pairs=n_pairs,
        n_negative=int(np.count_nonzero(in_songs & (matrix.data < 0))), cancelled=cancelled,
        n_side=n_side, song_artist=song_artist, song_genre=song_genre, n_users=n_u, n_songs=n_s,
        by_signal={s: int(np.count_nonzero(events.signal == k)) for k, s in enumerate(SIGNALS)},
        by_scope={s: int(np.count_nonzero(events.scope == k)) for k, s in enumerate(SCOPES)})
    return TrainingMatrix(
        matrix=matrix, user_ids=[events.user_ids[u] for u in users], item_ids=item_ids,
        user_events=np.bincount(u_idx, minlength=n_u).astype(np.int64),
        item_events=np.bincount(i_idx, minlength=n_s).astype(np.int64),
        song_artist=song_artist, song_genre=song_genre, stats=stats)


def fit_als(matrix: Any, config: CFConfig, *, progress: bool = False) -> tuple[np.ndarray,
                                                                               np.ndarray]:
    """Fit implicit's CPU ALS on ``matrix`` with one BLAS thread; return (users, items) factors."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        model = AlternatingLeastSquares(
            factors=config.factors, regularization=config.regularization, alpha=1.0,
            iterations=config.iterations, num_threads=config.threads,
            random_state=config.seed, calculate_training_loss=False)
        model.fit(matrix, show_progress=progress)
    uf, itf = np.asarray(model.user_factors), np.asarray(model.item_factors)
    if not (np.isfinite(uf).all() and np.isfinite(itf).all()):
        raise CFTrainingError("ALS diverged (NaN factors); raise --regularization")
    return uf, itf


def blend_item_factors(tm: TrainingMatrix, factors: np.ndarray, config: CFConfig) -> np.ndarray:
    """Each song's served factor: its own, shrunk towards its artist's and genre's.

    ``(n·v_song + a·v_artist + g·v_genre) / (n + a + g)`` with ``n`` the song's events and
    ``a``/``g`` = ``artist_prior``/``genre_prior`` pseudo-events (0 when the song has no such
    metadata). Because scores are dot products, this is the same blend of the three predicted
    preferences: a song with 3 reactions is judged mostly by its artist and genre, one with 300
    by itself.
    """
    songs = factors[:tm.n_songs].astype(np.float64)
    n = tm.item_events.astype(np.float64)[:, None]
    num = n * songs
    den = n.copy()
    for cols, prior in ((tm.song_artist, config.artist_prior), (tm.song_genre, config.genre_prior)):
        has = cols >= 0
        if prior > 0 and has.any():
            num[has] += prior * factors[cols[has]]
            den[has] += prior
    return (num / np.maximum(den, 1e-12)).astype(np.float32)


def _sampled_auc(tm: TrainingMatrix, uf: np.ndarray, itf: np.ndarray, seed: int,
                 n: int = 5000) -> float:
    """How often a random positive (user, song) outscores a random song for that user (train).

    A sanity figure recorded in ``cf.json``: ~0.5 means the model learned nothing (a bug or
    degenerate data); it is not a measure of recommendation quality (benchmarks/cf.py is).
    """
    coo = tm.matrix.tocoo()
    pos = np.flatnonzero((coo.data > 0) & (coo.col < tm.n_songs))
    if len(pos) == 0:
        return float("nan")
    rng = np.random.default_rng(seed)
    pick = rng.choice(pos, size=min(n, len(pos)), replace=False)
    u, i = coo.row[pick], coo.col[pick]
    j = rng.integers(0, itf.shape[0], size=len(pick))
    s_pos = np.einsum("ij,ij->i", uf[u], itf[i])
    s_neg = np.einsum("ij,ij->i", uf[u], itf[j])
    return float(np.mean((s_pos > s_neg) + 0.5 * (s_pos == s_neg)))


def peak_rss_mb() -> float:
    """Peak resident memory of this process, in MiB.

    ``VmHWM`` from ``/proc/self/status`` where available: ``getrusage``'s ``ru_maxrss``
    survives fork+exec on Linux, so a training process started by a big bot would report the
    bot's peak instead of its own.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes vs KiB


def matrix_stats(*, n_events: int, n_pairs: int, n_negative: int, cancelled: int, n_side: int,
                 song_artist: np.ndarray, song_genre: np.ndarray, n_users: int, n_songs: int,
                 by_signal: Mapping[str, int], by_scope: Mapping[str, int]) -> dict[str, Any]:
    """The training matrix's figures recorded in ``cf.json`` (``metrics``), one shape for the
    ``implicit`` and the Spark trainer so their artifacts compare field by field."""
    return {
        "n_events": n_events,
        "n_pairs": n_pairs,
        "n_negative_pairs": n_negative,
        "n_cancelled_pairs": cancelled,
        "n_side_items": n_side,
        "songs_with_metadata": int(np.count_nonzero((song_artist >= 0) | (song_genre >= 0))),
        "density": round(n_pairs / max(n_users * n_songs, 1), 6),
        "events_by_signal": {s: by_signal.get(s, 0) for s in SIGNALS},
        "events_by_scope": {s: by_scope.get(s, 0) for s in SCOPES},
    }


def model_info(config: CFConfig, *, data: Mapping[str, Any], n_events: int, confidence: str,
               metrics: Mapping[str, Any], params: Mapping[str, Any] | None = None,
               head: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The trainer's part of ``cf.json`` (``save_cf`` adds the format fields and checksums):
    ``head`` first (e.g. the engine), then data range, hyper-parameters (``config`` plus
    ``params``), how confidence and item factors were made, scoring, metrics."""
    hyper = asdict(config)
    hyper["signal_weights"] = dict(config.signal_weights)
    hyper["scope_weights"] = dict(config.scope_weights)
    hyper.update(params or {})
    return {
        **(head or {}),
        "data": dict(data),
        "n_events": n_events,
        "hyper_parameters": hyper,
        "confidence": confidence,
        "item_factors": "song factor blended with its artist and genre pseudo-item factors by "
                        "evidence: (n*v_song + artist_prior*v_artist + genre_prior*v_genre) / "
                        "(n + priors)",
        "scoring": {"shrink_events": config.shrink_events},
        "metrics": dict(metrics),
    }


def write_model(out_dir: str | os.PathLike[str], *, user_ids: Sequence[str],
                item_ids: Sequence[str], user_factors: np.ndarray, item_factors: np.ndarray,
                user_events: np.ndarray, info: Mapping[str, Any]) -> tuple[Path, str]:
    """Install the artifact (``indexing.cf.save_cf``); ``(path, model_id)``. Any failure is a
    :class:`CFTrainingError` and leaves the previous model in place."""
    try:
        out = save_cf(out_dir, user_ids=user_ids, item_ids=item_ids, user_factors=user_factors,
                      item_factors=item_factors, user_events=user_events, info=info)
    except Exception as exc:
        raise CFTrainingError(str(exc)) from exc
    return out, json.loads((out / INFO_FILE).read_text(encoding="utf-8"))["model_id"]


def train(events: Events, out_dir: str | os.PathLike[str], config: CFConfig | None = None, *,
          song_meta: SongMeta | None = None, since: float | None = None,
          until: float | None = None, progress: bool = False,
          source: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Fit ALS on ``events`` and write the artifact to ``out_dir``; return a summary.

    ``song_meta`` (``song_id -> (artist, genre)``, see :func:`read_song_meta`) enables the
    artist/genre pseudo-items; without it the model is plain song-level ALS. ``since``/``until``
    are recorded as the data range (the caller filtered by them). Raises
    :class:`NoFeedbackError` / :class:`CFTrainingError` before writing anything.
    """
    config = config or CFConfig()
    started = time.perf_counter()
    tm = build_matrix(events, config, now=until, song_meta=song_meta)
    built = time.perf_counter()
    uf, all_items = fit_als(tm.matrix, config, progress=progress)
    itf = blend_item_factors(tm, all_items, config)
    fitted = time.perf_counter()
    auc = _sampled_auc(tm, uf, itf, config.seed)
    info = model_info(
        config,
        data={"since": since, "until": until, "first_event_at": float(events.time.min()),
              "last_event_at": float(events.time.max()),
              **({"source": dict(source)} if source else {})},
        n_events=len(events),
        confidence="sign(w) * (1 + alpha*|w|), w = sum of signal*scope*decay per (user, "
                   "song); negative = preference 0 with that confidence (implicit ALS)",
        metrics={**tm.stats, "skipped_rows": events.skipped,
                 "matrix_seconds": round(built - started, 3),
                 "fit_seconds": round(fitted - built, 3), "sampled_train_auc": round(auc, 4),
                 "peak_rss_mb": round(peak_rss_mb(), 1)})
    out, model_id = write_model(out_dir, user_ids=tm.user_ids, item_ids=tm.item_ids,
                                user_factors=uf, item_factors=itf, user_events=tm.user_events,
                                info=info)
    return {
        "model_id": model_id,
        "out": str(out),
        "users": len(tm.user_ids),
        "songs": tm.n_songs,
        "events": len(events),
        "pairs": tm.stats["n_pairs"],
        "negative_pairs": tm.stats["n_negative_pairs"],
        "songs_with_metadata": tm.stats["songs_with_metadata"],
        "fit_seconds": round(fitted - built, 2),
        "seconds": round(time.perf_counter() - started, 2),
        "sampled_train_auc": round(auc, 4),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def train_from_db(db_path: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                  config: CFConfig | None = None, *, catalog_path: str | os.PathLike[str] | None
                  = None, since: float | None = None, until: float | None = None,
                  progress: bool = False) -> dict[str, Any]:
    """Read the store's feedback in ``[since, until)`` (and the catalogue) and :func:`train`.

    An unreadable catalogue is not fatal: the model is trained without artist/genre
    pseudo-items and the summary's ``warning`` says so.
    """
    from training.feedback_source import describe_source

    t0 = time.perf_counter()
    events = read_feedback(db_path, since=since, until=until, progress=progress)
    read_s = time.perf_counter() - t0
    if len(events) == 0:
        window = "" if since is None and until is None else f" in [{since}, {until})"
        raise NoFeedbackError(f"no feedback events{window} in {db_path}; nothing to learn yet "
                              "(people react with ❤️/👍/👎/⏭️ or the buttons)")
    config = config or CFConfig()
    meta, warning = None, None
    if catalog_path is not None and config.side_weight > 0:
        try:
            meta = read_song_meta(catalog_path)
        except CFTrainingError as exc:
            warning = f"{exc}; trained without artist/genre sharing"
    summary = train(events, out_dir, config, song_meta=meta, since=since, until=until,
                    progress=progress, source={"database": describe_source(db_path),
                                               "catalog": str(catalog_path)})
    summary["read_seconds"] = round(read_s, 2)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    if warning:
        summary["warning"] = warning
    return summary
