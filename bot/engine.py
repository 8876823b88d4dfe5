"""The recommendation engine every adapter talks to: text in, five explained tracks out.

Discord, KakaoTalk and the console differ only in how they read a message and draw the answer;
everything else — classify, search, re-rank, remember what was shown, take feedback, swap in a
new index or CF model without a restart — happens here, once. The CPU-bound steps (ONNX, Annoy,
re-ranking) run in a small thread pool so the event loop never stalls behind them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bot.ranking import RankWeights, explain, rerank
from bot.settings import Settings
from indexing.catalog import Catalog, CatalogError, default_catalog_path
from inference.classifier import EmotionClassifier
from inference.emotions import EMOTIONS, LABELS, NUM_EMOTIONS, index_of, parse_emotion

log = logging.getLogger("moodtune.engine")

__all__ = [
    "CFTrainingError",
    "EngineError",
    "InputTooLongError",
    "Recommendation",
    "Recommender",
    "StartupError",
    "Track",
    "UnknownSongError",
]


class EngineError(RuntimeError):
    """Base class for errors a user can be told about."""


class StartupError(RuntimeError):
    """The engine cannot start: model, catalogue, index or database unusable (message says how to fix)."""


class InputTooLongError(EngineError):
    """The message is longer than MAX_INPUT_CHARS."""


class UnknownSongError(EngineError):
    """"More like this" named a song that is not in the catalogue."""


class CFTrainingError(EngineError):
    """Retraining CF failed or had nothing to learn from; the previous model keeps serving."""


class CFScorer(Protocol):
    """What the engine needs from a collaborative-filtering model (see ``indexing.cf``)."""

    def scores(self, user_id: str, song_ids: Sequence[str]) -> dict[str, float] | None: ...


@dataclass(frozen=True, slots=True)
class Track:
    song_id: str
    title: str
    artist: str
    score: float
    vector: tuple[float, ...]
    reason: str
    link: str
    album: str | None = None
    genre: str | None = None
    year: int | None = None


@dataclass(frozen=True, slots=True)
class Recommendation:
    rec_id: str
    user_id: str
    emotion: tuple[float, ...]  # the mood read, in LABELS order
    source: str  # "text" | "explicit" | "similar"
    tracks: list[Track]
    created_at: float = field(default_factory=time.time)

    @property
    def dominant(self) -> list[tuple[str, float]]:
        """Emotions that carry the mood: the top one, plus any others within reach of it."""
        e = np.asarray(self.emotion)
        order = np.argsort(-e)
        top = float(e[order[0]])
        return [(LABELS[int(i)], float(e[i])) for i in order[:3]
                if float(e[i]) >= max(0.15, top * 0.5)]


class Recommender:
    """Holds the classifier, the index (hot-swappable), the store and the optional CF model."""

    def __init__(self, settings: Settings, classifier: EmotionClassifier, index: Any,
                 store: Any | None, *, workers: int = 2) -> None:
        self.settings = settings
        self.classifier = classifier
        self._index = index
        self.store = store
        self.cf: CFScorer | None = None
        self._swap_lock = asyncio.Lock()
        self._cf_retrain_lock = asyncio.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="moodtune-cpu")
        self._recent: dict[str, list[set[str]]] = {}  # no-repeat memory when there is no store
        self.weights = RankWeights(
            mood=settings.weight_mood, cf=settings.weight_cf,
            popularity=settings.weight_popularity, mmr_lambda=settings.mmr_lambda,
            max_per_artist=settings.max_per_artist)

    # ---- lifecycle -----------------------------------------------------------------------
    @classmethod
    async def open(cls, settings: Settings | None = None, *, classifier: EmotionClassifier | None = None,
                   store: Any | None = None, use_store: bool = True) -> Recommender:
        """Load model, index (building it from the catalogue on first start) and store."""
        from indexing.index import SongIndexError
        from inference.classifier import ModelLoadError

        settings = settings or Settings()
        loop = asyncio.get_running_loop()
        try:
            if classifier is None:
                classifier = await loop.run_in_executor(None, lambda: EmotionClassifier.load(
                    settings.model_dir, variant=settings.model_variant,
                    threads=settings.model_threads))
            index = await loop.run_in_executor(None, _open_or_build_index, settings, classifier)
        except (ModelLoadError, CatalogError, SongIndexError) as exc:
            raise StartupError(str(exc)) from exc
        if store is None and use_store:
            from bot.store import Store, StoreError

            try:
                store = await Store.open(settings.resolved_database_path,
                                         store_message_text=settings.store_message_text)
            except StoreError as exc:
                raise StartupError(str(exc)) from exc
        rec = cls(settings, classifier, index, store)
        await rec.reload_cf(quiet=True)
        return rec

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self.store is not None:
            await self.store.close()

    async def __aenter__(self) -> Recommender:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def index(self) -> Any:
        return self._index

    # ---- recommending --------------------------------------------------------------------
    async def recommend(self, user_id: str, text: str, k: int | None = None, *,
                        channel: str = "console") -> Recommendation:
        """Read the mood of ``text`` (or an explicit mood name) and pick tracks for it."""
        if not isinstance(text, str):
            raise TypeError("text must be a string")
        if len(text) > self.settings.max_input_chars:
            raise InputTooLongError(
                f"메시지가 너무 길어요 ({len(text):,}자). {self.settings.max_input_chars:,}자 이내로 "
                "지금 기분을 말해 주세요.")
        explicit = parse_emotion(text)
        if explicit is not None:
            return await self.recommend_mood(user_id, explicit, k, channel=channel, text=text)
        # The vector is read inside the same worker call as the ranking (one thread hop).
        return await self._recommend_vector(user_id, None, k, source="text", channel=channel,
                                            text=text)

    async def recommend_mood(self, user_id: str, emotion: str | int, k: int | None = None, *,
                             channel: str = "console", text: str | None = None) -> Recommendation:
        """Recommend for a named mood ("평화", "calm", 3) without running the classifier."""
        i = emotion if isinstance(emotion, int) else index_of(emotion)
        vec = np.full(NUM_EMOTIONS, 0.02, dtype=np.float32)
        vec[i] = 1.0 - 0.02 * (NUM_EMOTIONS - 1)
        return await self._recommend_vector(user_id, vec, k, source="explicit", channel=channel,
                                            text=text)

    async def more_like(self, user_id: str, song_id: str, k: int | None = None, *,
                        channel: str = "console") -> Recommendation:
        """"More like this": the song's own vector is the mood."""
        song = self._index.get(song_id)
        if song is None:
            raise UnknownSongError(f"그 곡은 목록에 없어요: {song_id}")
        vec = np.asarray(song.vector, dtype=np.float32)
        return await self._recommend_vector(user_id, vec, k, source="similar", channel=channel,
                                            extra_exclude={song_id})

    async def _recommend_vector(self, user_id: str, vec: np.ndarray | None, k: int | None, *,
                                source: str, channel: str, text: str | None = None,
                                extra_exclude: set[str] | None = None) -> Recommendation:
        k = k or self.settings.rec_k
        exclude = await self._recent_songs(user_id)
        if extra_exclude:
            exclude |= extra_exclude
        index = self._index  # one index per request, even if a swap lands mid-way
        cf = self.cf
        loop = asyncio.get_running_loop()
        vec, ranked = await loop.run_in_executor(
            self._pool, self._rank, index, cf, user_id, vec, text, k, exclude)
        tracks = [
            Track(song_id=r.song.song_id, title=r.song.title, artist=r.song.artist,
                  score=round(r.score, 4), vector=tuple(float(x) for x in r.song.vector),
                  reason=explain(vec, r, explicit=source == "explicit"), link=r.song.link,
                  album=r.song.album, genre=r.song.genre, year=r.song.year)
            for r in ranked
        ]
        rec = Recommendation(rec_id=uuid.uuid4().hex[:16], user_id=user_id,
                             emotion=tuple(round(float(x), 4) for x in vec), source=source,
                             tracks=tracks)
        await self._remember(rec, channel, text)
        return rec

    def _rank(self, index: Any, cf: CFScorer | None, user_id: str, vec: np.ndarray | None,
              text: str | None, k: int, exclude: set[str]) -> tuple[np.ndarray, list]:
        """Worker-thread part of a request: classify (when no vector is given), search, rerank."""
        if vec is None:
            vec = self.classifier.predict_one(text or "")
        n = max(self.settings.rec_candidates, k * 4)
        candidates = index.search(vec, n, exclude=exclude)
        if len(candidates) < k and exclude:
            # The user has heard nearly everything close to this mood: allow repeats rather than
            # answer with fewer songs than promised.
            candidates = index.search(vec, n)
        cf_scores = None
        if cf is not None:
            try:
                cf_scores = cf.scores(user_id, [s.song_id for s, _ in candidates])
            except Exception:  # a broken CF model must never break recommendations
                log.exception("CF scoring failed; ranking by mood only")
        return vec, rerank(vec, candidates, k, self.weights, cf_scores)

    async def _recent_songs(self, user_id: str) -> set[str]:
        m = self.settings.no_repeat_last
        if m <= 0:
            return set()
        if self.store is not None:
            try:
                return set(await self.store.recent_song_ids(user_id, m))
            except Exception:
                log.warning("store unavailable for no-repeat lookup; using memory", exc_info=True)
        recent = self._recent.get(user_id, [])
        return set().union(*recent[-m:]) if recent else set()

    async def _remember(self, rec: Recommendation, channel: str, text: str | None) -> None:
        ids = {t.song_id for t in rec.tracks}
        hist = self._recent.setdefault(rec.user_id, [])
        hist.append(ids)
        del hist[: -max(self.settings.no_repeat_last, 1)]
        if self.store is None:
            return
        try:
            await self.store.save_recommendation(
                rec.rec_id, rec.user_id, channel, rec.emotion,
                [(t.song_id, t.score) for t in rec.tracks], source=rec.source, text=text)
        except Exception:
            # The user still gets an answer; only feedback on this one will be refused.
            log.error("could not store recommendation %s", rec.rec_id, exc_info=True)

    # ---- feedback ------------------------------------------------------------------------
    async def feedback(self, rec_id: str, song_id: str, user_id: str, signal: Any, *,
                       scope: str = "track") -> bool:
        """Record a reaction; returns False when it was already recorded (idempotent).

        ``scope`` is "track" for a signal about one track (button, console, Kakao with a track)
        and "message" for one about a whole reply; CF weighs the two differently.
        """
        if self.store is None:
            raise EngineError("feedback needs the store; it is not configured")
        from bot.feedback import Signal

        sig = signal if isinstance(signal, Signal) else Signal(signal)
        return await self.store.add_feedback(rec_id, song_id, user_id, sig, scope=scope)

    async def remove_feedback(self, rec_id: str, song_id: str, user_id: str, signal: Any) -> bool:
        if self.store is None:
            raise EngineError("feedback needs the store; it is not configured")
        from bot.feedback import Signal

        sig = signal if isinstance(signal, Signal) else Signal(signal)
        return await self.store.remove_feedback(rec_id, song_id, user_id, sig)

    async def feedback_message(self, rec_id: str, user_id: str, signal: Any) -> int:
        """Record a reaction on a whole reply: ``signal`` for each of its tracks, scope "message".

        A Discord reaction says "this answer", not which track; storing it per track with its
        own scope lets CF weigh it below a per-track button. Returns the rows newly stored (0 for
        repeats, or when the answer is no longer stored).
        """
        if self.store is None:
            raise EngineError("feedback needs the store; it is not configured")
        from bot.feedback import Signal

        sig = signal if isinstance(signal, Signal) else Signal(signal)
        stored = await self.store.recommendation(rec_id)
        if stored is None:
            return 0
        n = 0
        for _position, song_id, _score in stored["items"]:
            n += bool(await self.store.add_feedback(rec_id, song_id, user_id, sig,
                                                    scope="message"))
        return n

    async def forget_user(self, user_id: str) -> dict[str, int]:
        """Delete everything kept about ``user_id``: the store's rows and the engine's memory.

        The in-memory no-repeat list is cleared too, so nothing of the person outlives the
        request (``/forget-me``). Returns the rows deleted per table.
        """
        self._recent.pop(user_id, None)
        if self.store is None:
            return {}
        return await self.store.forget_user(user_id)

    # ---- hot swaps -----------------------------------------------------------------------
    async def reload_index(self, catalog_path: str | Path | None = None) -> dict:
        """Rebuild the index from a catalogue and swap it in; on failure the old one keeps serving."""
        loop = asyncio.get_running_loop()
        async with self._swap_lock:
            t0 = time.perf_counter()
            path = Path(catalog_path) if catalog_path else (
                self.settings.catalog_path or default_catalog_path())
            new_index = await loop.run_in_executor(
                None, _build_and_load, self.settings, self.classifier, path)
            old = self._index
            self._index = new_index  # atomic reference swap; in-flight requests keep `old`
            log.info("index swapped: %d -> %d songs in %.2fs", len(old), len(new_index),
                     time.perf_counter() - t0)
            return {"songs": len(new_index), "previous": len(old),
                    "seconds": round(time.perf_counter() - t0, 3)}

    async def reload_cf(self, *, quiet: bool = False) -> bool:
        """Load the CF artifact if present; a missing or broken one leaves the current model.

        Raises :class:`indexing.cf.CFLoadError` for a broken artifact unless ``quiet``.
        """
        from indexing.cf import CFModel  # numpy-only loader, no implicit/scipy

        path = self.settings.resolved_cf_path
        if not path.exists():
            return False
        loop = asyncio.get_running_loop()
        try:
            model = await loop.run_in_executor(
                None, lambda: CFModel.load(path, min_events=self.settings.cf_min_events))
        except Exception as exc:  # CFLoadError, or anything unexpected: keep the current model
            if not quiet:
                raise
            log.warning("CF model at %s not loaded: %s", path, exc)
            return False
        self.cf = model  # atomic reference swap; in-flight requests keep the model they read
        log.info("CF model %s loaded: %d users, %d songs", model.model_id, model.n_users,
                 model.n_items)
        return True

    async def retrain_cf(self, *, timeout: float | None = None) -> dict:
        """Train a new CF model from the store's feedback in a worker process, then hot-swap it.

        Why a separate process (``python -m bot train-cf``, exactly what an operator runs): ALS
        is CPU-bound native code that allocates hundreds of MB; in its own process the event
        loop and the ranking threads keep answering at full speed, the memory returns to the OS
        when it exits, and a crash in native code cannot take the bot down. It reads the
        database read-only (WAL: our writes continue) and writes the artifact atomically, so on
        any failure — including "no feedback yet" — the current model keeps serving and
        :class:`CFTrainingError` says why. One retraining at a time.
        """
        import contextlib
        import json
        import os
        import sys

        from indexing.cf import CFLoadError

        db = getattr(self.store, "path", None) if self.store is not None else None
        if not db:
            raise CFTrainingError("CF learns from stored feedback, but the store is not "
                                  "configured; run the bot with a database")
        if db == ":memory:" or "mode=memory" in str(db):
            raise CFTrainingError("the database is in memory, so a training process cannot read "
                                  "it; set DATABASE_PATH to a file")
        if self._cf_retrain_lock.locked():
            raise CFTrainingError("a CF retraining is already running; wait for it to finish")
        async with self._cf_retrain_lock:
            catalog = self.settings.catalog_path or default_catalog_path()
            cmd = [sys.executable, "-m", "bot", "train-cf", "--json", "--no-progress",
                   "--db", str(Path(db).resolve()),
                   "--out", str(self.settings.resolved_cf_path.resolve()),
                   "--catalog", str(Path(catalog).resolve())]
            root = str(Path(__file__).resolve().parent.parent)
            env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                   "OMP_NUM_THREADS": "1",
                   "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH"))
                                                 if p)}
            started = time.perf_counter()
            proc = await asyncio.create_subprocess_exec(
                *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
            try:
                out, err = await asyncio.wait_for(proc.communicate(), timeout)
            except BaseException as exc:  # cancelled or timed out: never leave an orphan behind
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
                if isinstance(exc, TimeoutError):
                    raise CFTrainingError(f"CF training took longer than {timeout:.0f} s and was "
                                          "stopped; the current model keeps serving") from exc
                raise
            if proc.returncode != 0:
                lines = [ln.strip() for ln in err.decode("utf-8", "replace").splitlines()
                         if ln.strip()]
                reason = next((ln for ln in reversed(lines) if ln.startswith("moodtune")),
                              lines[-1] if lines else f"exit status {proc.returncode}")
                reason = reason.removeprefix("moodtune train-cf: ")
                raise CFTrainingError(f"CF training failed: {reason} (the current model keeps "
                                      "serving)")
            try:
                summary = json.loads(out.decode("utf-8").strip().splitlines()[-1])
                loaded = await self.reload_cf()
            except (ValueError, IndexError) as exc:
                raise CFTrainingError(f"CF training printed no summary ({exc}); the current "
                                      "model keeps serving") from exc
            except CFLoadError as exc:
                raise CFTrainingError(f"the new CF model could not be loaded ({exc}); the "
                                      "current model keeps serving") from exc
            if not loaded:
                raise CFTrainingError(f"CF training wrote no model at "
                                      f"{self.settings.resolved_cf_path}")
            return {"model": summary.get("model_id"), "users": summary.get("users"),
                    "songs": summary.get("songs"), "events": summary.get("events"),
                    "seconds": round(time.perf_counter() - started, 1)}

    # ---- passthroughs --------------------------------------------------------------------
    def describe_mood(self, emotion: Sequence[float]) -> str:
        e = np.asarray(emotion)
        i = int(e.argmax())
        return f"{EMOTIONS[i].emoji} {EMOTIONS[i].ko}"


def _catalog_source(path: Path) -> dict[str, Any]:
    import hashlib

    try:
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as exc:
        raise CatalogError(f"cannot read the catalogue {path}: {exc}") from exc
    return {"catalog": str(path), "catalog_sha256": digest}


def _open_or_build_index(settings: Settings, classifier: EmotionClassifier) -> Any:
    """The index on disk if it was built from this catalogue by this model, else a fresh one.

    A stale index (the catalogue was relabelled or replaced, or the model changed) would
    answer with songs that are gone or vectors from another model, so it is rebuilt.
    """
    from indexing.index import IndexLoadError, SongIndex

    d = settings.resolved_index_dir
    path = settings.catalog_path or default_catalog_path()
    source = _catalog_source(path)
    if (d / "index.json").exists():
        try:
            index = SongIndex.load(d, expected_fingerprint=classifier.fingerprint,
                                   search_k=settings.annoy_search_k)
            if index.info.get("source", {}).get("catalog_sha256") == source["catalog_sha256"]:
                return index
            index.close()
            log.info("catalogue %s changed since the index was built; rebuilding", path)
        except IndexLoadError as exc:
            log.warning("index at %s unusable (%s); rebuilding from the catalogue", d, exc)
    return _build_and_load(settings, classifier, path, source)


def _build_and_load(settings: Settings, classifier: EmotionClassifier, path: Path,
                    source: dict[str, Any] | None = None) -> Any:
    from indexing.index import SongIndex, build_index

    source = source or _catalog_source(path)
    catalog = Catalog.load(path)
    out = build_index(catalog, settings.resolved_index_dir, n_trees=settings.annoy_n_trees,
                      model_fingerprint=classifier.fingerprint, source=source)
    return SongIndex.load(out, expected_fingerprint=classifier.fingerprint,
                          search_k=settings.annoy_search_k)
