"""The recommendation engine every adapter talks to: text in, five explained tracks out.

Discord, KakaoTalk and the console differ only in how they read a message and draw the answer;
everything else — classify, search, re-rank, remember what was shown, take feedback, swap in a
new index or CF model without a restart — happens here, once. The CPU-bound steps (ONNX, Annoy,
re-ranking) run in a small thread pool so the event loop never stalls behind them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bot.cf_share import CFShareError, CFSync, stamp_of
from bot.conversation import mood_vector
from bot.dialogue import Dialogue, Reply, lexicon_of
from bot.feedback import Signal
from bot.observability import Metrics, user_ref
from bot.ranking import RankWeights, explain, rerank
from bot.settings import Settings
from bot.userstate import UserStateCache
from indexing.catalog import Catalog, CatalogError, default_catalog_path
from inference.classifier import EmotionClassifier
from inference.emotions import EMOTIONS, LABELS, parse_emotion
from inference.text import clean_text

log = logging.getLogger("moodtune.engine")

__all__ = [
    "BUSY_TEXT",
    "CFRetrainError",
    "EngineBusyError",
    "EngineError",
    "FeedbackUnavailableError",
    "InputTooLongError",
    "Recommendation",
    "Recommender",
    "Reply",
    "SongNotInCatalogError",
    "StartupError",
    "Track",
    "UnknownAnswerError",
]


class EngineError(RuntimeError):
    """Base class for errors a user can be told about."""


class StartupError(RuntimeError):
    """The engine cannot start: model, catalogue, index or database unusable (message says how to fix)."""


class InputTooLongError(EngineError):
    """The message is longer than MAX_INPUT_CHARS."""


class SongNotInCatalogError(EngineError):
    """"More like this" named a song that is not in the catalogue."""


class CFRetrainError(EngineError):
    """Retraining CF failed or had nothing to learn from; the previous model keeps serving."""


#: What a person hears when ENGINE_MAX_PENDING requests are already running (every adapter).
BUSY_TEXT = "지금 요청이 많아요. 잠시 후 다시 말해 주세요 🙏"


class EngineBusyError(EngineError):
    """Too many requests are already running or queued (``ENGINE_MAX_PENDING``): answer at once
    with a polite "busy" instead of making everyone wait."""


class FeedbackUnavailableError(EngineError):
    """Feedback cannot be stored: no store is configured."""


class UnknownAnswerError(EngineError):
    """Feedback named an answer (or a track position) that is not stored for this user."""


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
    #: the song profile as a listener reads it: energy, tempo, dance, situations, themes, lang
    facets: dict = field(default_factory=dict, compare=False, hash=False)


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


class Recommender(Dialogue):
    """Holds the classifier, the index (hot-swappable), the store and the optional CF model.

    Every adapter talks to the bot through this class only: recommendations, feedback (on a
    track, on a whole answer, withdrawn), history, privacy, health and the per-guild settings
    Discord keeps. It owns the latency/error metrics of all of them, the admission limit that
    keeps a flood from starving everyone (``ENGINE_MAX_PENDING``) and the bounded per-user memory.
    """

    def __init__(self, settings: Settings, classifier: EmotionClassifier, index: Any,
                 store: Any | None, *, workers: int = 2, metrics: Metrics | None = None,
                 pseudonym_key: bytes = b"") -> None:
        self.settings = settings
        self.classifier = classifier
        self._index = index
        self.store = store
        self.cf: CFScorer | None = None
        self._cf_stamp: tuple[float, int] | None = None
        self._cf_checked = 0.0
        self._cf_reload: asyncio.Task[bool] | None = None
        self._cf_sync = _cf_sync_for(settings, store)
        self._swap_lock = asyncio.Lock()
        self._cf_retrain_lock = asyncio.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="moodtune-cpu")
        self.users = UserStateCache(settings.user_state_max_users, settings.user_state_ttl_s)
        self._pending = 0
        self._pseudonym_key = pseudonym_key
        self.weights = RankWeights(
            mood=settings.weight_mood, cf=settings.weight_cf,
            popularity=settings.weight_popularity, mmr_lambda=settings.mmr_lambda,
            max_per_artist=settings.max_per_artist, exploration=settings.rank_exploration)
        m = self.metrics = metrics or Metrics()
        self._m_seconds = m.histogram("moodtune_engine_seconds",
                                      "Engine call latency by channel and operation.",
                                      ["channel", "op"])
        self._m_errors = m.counter("moodtune_engine_errors_total",
                                   "Engine calls that failed, by channel and error class.",
                                   ["channel", "error"])
        self._m_busy = m.counter("moodtune_engine_busy_total",
                                 "Requests refused at once because ENGINE_MAX_PENDING were running.",
                                 ["channel"])
        self._m_pending = m.gauge("moodtune_engine_pending",
                                  "Engine requests running or queued right now.")
        self._m_feedback = m.counter("moodtune_feedback_total",
                                     "Feedback events recorded, by channel and signal.",
                                     ["channel", "signal"])
        self._m_users = m.gauge("moodtune_user_state_users",
                                "Users whose per-user state is held in memory.")

    # ---- lifecycle -----------------------------------------------------------------------
    @classmethod
    async def open(cls, settings: Settings | None = None, *, classifier: EmotionClassifier | None = None,
                   store: Any | None = None, use_store: bool = True,
                   metrics: Metrics | None = None) -> Recommender:
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
            from bot.store import StoreError
            from bot.store_pg import open_store

            # PostgreSQL when DATABASE_URL is set (many replicas, one database), else SQLite.
            location = (settings.database_url.get_secret_value() if settings.database_url
                        else settings.resolved_database_path)
            try:
                store = await open_store(location,
                                         store_message_text=settings.store_message_text)
            except StoreError as exc:
                raise StartupError(str(exc)) from exc
        key = load_pseudonym_key(settings.resolved_pseudonym_key_path) if use_store else b""
        rec = cls(settings, classifier, index, store, metrics=metrics, pseudonym_key=key)
        await asyncio.get_running_loop().run_in_executor(None, rec.lexicon)  # not on a request
        await rec.reload_cf(quiet=True)
        await rec.sync_cf()  # replicas: start on the newest shared model, not an older local one
        return rec

    async def close(self) -> None:
        if self._cf_reload is not None and not self._cf_reload.done():
            self._cf_reload.cancel()
            with contextlib.suppress(BaseException):
                await self._cf_reload
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

    @property
    def pending(self) -> int:
        """Engine requests running or queued right now (what ENGINE_MAX_PENDING bounds)."""
        return self._pending

    def user_ref(self, user_id: str) -> str:
        """The log pseudonym of a user: a hash keyed with this install's secret, so nobody who
        reads the logs can test a guessed user id against it."""
        return user_ref(user_id, self._pseudonym_key)

    # ---- metrics and admission -----------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _measured(self, channel: str, op: str) -> AsyncIterator[None]:
        """Time one engine call and count its failure, whichever adapter made it."""
        t0 = time.perf_counter()
        try:
            yield
        except Exception as exc:
            self._m_errors.inc(channel=channel, error=type(exc).__name__)
            raise
        finally:
            self._m_seconds.observe(time.perf_counter() - t0, channel=channel, op=op)

    def _full(self, channel: str) -> bool:
        """True (and counted) when ``ENGINE_MAX_PENDING`` requests are already in flight."""
        if self._pending < self.settings.engine_max_pending:
            return False
        self._m_busy.inc(channel=channel)
        return True

    @contextlib.asynccontextmanager
    async def _admitted(self, channel: str, op: str) -> AsyncIterator[None]:
        """Run one recommendation if fewer than ``ENGINE_MAX_PENDING`` are in flight, else refuse.

        One limit for every adapter and for Kakao's direct and callback requests alike: under a
        flood the queue behind the two CPU threads stays short, so a request that is admitted
        is answered within Kakao's deadline and the rest hear "busy" at once.
        """
        if self._full(channel):
            raise EngineBusyError(BUSY_TEXT)
        self._pending += 1
        self._m_pending.set(self._pending)
        try:
            async with self._measured(channel, op):
                yield
        finally:
            self._pending -= 1
            self._m_pending.set(self._pending)
            self._m_users.set(len(self.users))

    # ---- recommending --------------------------------------------------------------------
    def _check_text(self, text: str) -> str:
        if not isinstance(text, str):
            raise TypeError("text must be a string")
        text = clean_text(text)
        if len(text) > self.settings.max_input_chars:
            raise InputTooLongError(
                f"메시지가 너무 길어요 ({len(text):,}자). {self.settings.max_input_chars:,}자 이내로 "
                "지금 기분을 말해 주세요.")
        return text

    async def recommend(self, user_id: str, text: str, k: int | None = None, *,
                        channel: str = "console") -> Recommendation:
        """Read the mood of ``text`` (or an explicit mood name) and pick tracks for it.

        Raises :class:`EngineBusyError` when ``ENGINE_MAX_PENDING`` requests are in flight.
        """
        text = self._check_text(text)
        async with self._admitted(channel, "recommend"):
            explicit = parse_emotion(text)
            if explicit is not None:
                return await self._recommend_vector(user_id, mood_vector(explicit), k,
                                                    source="explicit", channel=channel, text=text)
            # The vector is read inside the same worker call as the ranking (one thread hop).
            return await self._recommend_vector(user_id, None, k, source="text", channel=channel,
                                                text=text)

    async def recommend_mood(self, user_id: str, emotion: str | int, k: int | None = None, *,
                             channel: str = "console", text: str | None = None) -> Recommendation:
        """Recommend for a named mood ("평화", "calm", 3) without running the classifier."""
        vec = mood_vector(emotion)
        async with self._admitted(channel, "recommend_mood"):
            return await self._recommend_vector(user_id, vec, k, source="explicit",
                                                channel=channel, text=text)

    async def more_like(self, user_id: str, song_id: str, k: int | None = None, *,
                        channel: str = "console") -> Recommendation:
        """"More like this": the song's own vector is the mood."""
        song = self._index.get(song_id)
        if song is None:
            raise SongNotInCatalogError(f"그 곡은 목록에 없어요: {song_id}")
        vec = np.asarray(song.vector, dtype=np.float32)
        async with self._admitted(channel, "more_like"):
            return await self._recommend_vector(user_id, vec, k, source="similar",
                                                channel=channel, extra_exclude={song_id})

    async def _recommend_vector(self, user_id: str, vec: np.ndarray | None, k: int | None, *,
                                source: str, channel: str, text: str | None = None,
                                extra_exclude: set[str] | None = None) -> Recommendation:
        self._maybe_reload_cf()
        k = k or self.settings.rec_k
        exclude = await self._recent_songs(user_id)
        if extra_exclude:
            exclude |= extra_exclude
        index = self._index  # one index per request, even if a swap lands mid-way
        cf = self.cf
        loop = asyncio.get_running_loop()
        vec, ranked = await loop.run_in_executor(
            self._pool, self._rank, index, cf, user_id, vec, text, k, exclude)
        rec = self._recommendation(
            user_id, vec, ranked, [explain(vec, r, explicit=source == "explicit") for r in ranked],
            source)
        await self._remember(rec, channel, text)
        return rec

    def _recommendation(self, user_id: str, vec: np.ndarray, ranked: Sequence[Any],
                        reasons: Sequence[str], source: str,
                        facets: Sequence[dict] | None = None) -> Recommendation:
        """An answer (with a fresh ``rec_id``) from ranked songs and one reason each: the one
        shape ``recommend()`` and ``respond()`` both store and show."""
        tracks = [
            Track(song_id=r.song.song_id, title=r.song.title, artist=r.song.artist,
                  score=round(r.score, 4), vector=tuple(float(x) for x in r.song.vector),
                  reason=why, link=r.song.link_for(self.settings.link_kind),
                  album=r.song.album, genre=r.song.genre, year=r.song.year,
                  facets=facets[i] if facets is not None else {})
            for i, (r, why) in enumerate(zip(ranked, reasons, strict=True))
        ]
        return Recommendation(rec_id=uuid.uuid4().hex[:16], user_id=user_id,
                              emotion=tuple(round(float(x), 4) for x in vec), source=source,
                              tracks=tracks)

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
        return vec, rerank(vec, candidates, k, self.weights, cf_scores(cf, user_id, candidates))

    async def _recent_songs(self, user_id: str) -> set[str]:
        m = self.settings.no_repeat_last
        if m <= 0:
            return set()
        if self.store is not None:
            try:
                return set(await self.store.recent_song_ids(user_id, m))
            except Exception:
                log.warning("store unavailable for no-repeat lookup; using memory", exc_info=True)
        state = self.users.peek(user_id)
        return set().union(*state.recent[-m:]) if state and state.recent else set()

    async def _remember(self, rec: Recommendation, channel: str, text: str | None, *,
                        request: dict[str, Any] | None = None) -> None:
        state = self.users.get(rec.user_id)
        ref = _AnswerRef.of(rec, request)  # compact: interned song ids, no track objects kept
        state.recent.append(ref.song_ids)
        del state.recent[: -max(self.settings.no_repeat_last, 1)]
        state.thread = ref  # the last answer: what "좋아요" / "2번" / "다른 거" refer to
        if self.store is None:
            return
        try:
            await self.store.save_recommendation(
                rec.rec_id, rec.user_id, channel, rec.emotion,
                [(t.song_id, t.score) for t in rec.tracks], source=rec.source, text=text,
                request=request)
        except Exception:
            # The user still gets an answer; only feedback on this one will be refused.
            log.error("could not store recommendation %s", rec.rec_id, exc_info=True)

    # ---- feedback (the one path every adapter uses) ----------------------------------------
    def _need_store(self) -> Any:
        if self.store is None:
            raise FeedbackUnavailableError("feedback needs the store; it is not configured")
        return self.store

    async def feedback(self, rec_id: str, song_id: str, user_id: str, signal: Signal | str, *,
                       scope: str = "track", channel: str = "console") -> bool:
        """Record a reaction on one shown song; False when it was already recorded (idempotent).

        ``scope`` is "track" for a signal about one track (button, console, Kakao with a track)
        and "message" for one about a whole reply; CF weighs the two differently.
        """
        store = self._need_store()
        sig = Signal(signal)
        async with self._measured(channel, "feedback"):
            new = await store.add_feedback(rec_id, song_id, user_id, sig, scope=scope)
        if new:
            self._m_feedback.inc(channel=channel, signal=sig.value)
        return new

    async def feedback_track(self, user_id: str, rec_id: str, position: int,
                             signal: Signal | str, *, channel: str = "console"
                             ) -> tuple[str, bool]:
        """Feedback on the track shown at ``position`` (0-based) of answer ``rec_id``.

        Returns ``(song_id, new)``. Raises :class:`UnknownAnswerError` when the answer or the
        position is not stored (a stale button, or an answer deleted by /forget-me).
        """
        store = self._need_store()
        async with self._measured(channel, "feedback"):
            stored = await store.recommendation(rec_id)
        song_id = stored.song_at(position) if stored is not None else None
        if song_id is None:
            raise UnknownAnswerError("그 추천은 더 이상 저장되어 있지 않아요. 새로 추천받아 주세요.")
        return song_id, await self.feedback(rec_id, song_id, user_id, signal, channel=channel)

    async def feedback_answer(self, user_id: str, rec_id: str, signal: Signal | str, *,
                              channel: str = "console") -> int:
        """Feedback on a whole reply: ``signal`` for each of its tracks, scope "message".

        A Discord reaction or a Kakao "좋아요" says "this answer", not which track; storing it
        per track with its own scope lets CF weigh it below a per-track button. Returns the rows
        newly stored (0 for repeats). Raises :class:`UnknownAnswerError` when the answer is not
        stored.
        """
        store = self._need_store()
        async with self._measured(channel, "feedback"):
            stored = await store.recommendation(rec_id)
        if stored is None:
            raise UnknownAnswerError("그 추천은 더 이상 저장되어 있지 않아요. 새로 추천받아 주세요.")
        n = 0
        for song_id in stored.song_ids:
            n += await self.feedback(rec_id, song_id, user_id, signal, scope="message",
                                     channel=channel)
        return n

    async def withdraw_feedback(self, user_id: str, rec_id: str, signal: Signal | str, *,
                                position: int | None = None, channel: str = "console") -> int:
        """Take a reaction back (a Discord reaction removed): on one track, or on every track of
        the answer when ``position`` is None. Returns the rows deleted."""
        store = self._need_store()
        sig = Signal(signal)
        async with self._measured(channel, "withdraw"):
            stored = await store.recommendation(rec_id)
            if stored is None:
                return 0
            songs = stored.song_ids if position is None else (
                (stored.song_at(position),) if stored.song_at(position) else ())
            removed = 0
            for song_id in songs:
                removed += bool(await store.remove_feedback(rec_id, song_id, user_id, sig))
        return removed

    async def last_answer(self, user_id: str) -> Any | None:
        """The last answer shown to ``user_id`` (``StoredRecommendation``-like: ``rec_id``,
        ``song_ids``, ``emotion``, ``request``): what a typed "좋아요" / "다른 노래" and a
        refinement refer to.

        One process (SQLite): memory first, then the store — memory is always at least as new
        as the store there (and survives a failed write), the store survives a restart, and a
        hit saves a query. Replicas sharing a database (``SHARED_STATE``, the default for
        PostgreSQL): the store first, because the user's latest answer may have been given by
        another replica, and a ``/forget-me`` done there must not be outlived by this replica's
        memory. Memory is then only the fallback for a store that fails — never for one that
        answers "none".
        """
        shared = self.store is not None and self.settings.resolved_shared_state
        if not shared and (remembered := self._remembered(user_id)) is not None:
            return remembered
        if self.store is not None:
            try:
                return await self.store.last_recommendation(user_id)
            except Exception:
                log.warning("store unavailable for the last answer; using memory", exc_info=True)
        return self._remembered(user_id)

    def _remembered(self, user_id: str) -> _AnswerRef | None:
        state = self.users.peek(user_id)
        return state.thread if state is not None else None

    # ---- privacy and history -------------------------------------------------------------
    async def forget_user(self, user_id: str) -> dict[str, int]:
        """Delete everything kept about ``user_id``: the store's rows and the engine's memory.

        The in-memory state (no-repeat list, thread) is cleared too, so nothing of the person
        outlives the request (``/forget-me``). Returns the rows deleted per table.
        """
        self.users.pop(user_id)
        if self.store is None:
            return {}
        return await self.store.forget_user(user_id)

    async def history(self, user_id: str, limit: int = 10) -> list[Any]:
        """The user's recent answers with their own feedback (``StoredRecommendation``s)."""
        if self.store is None:
            return []
        return await self.store.history(user_id, limit)

    async def stats(self) -> dict[str, Any]:
        """Store counts plus what is being served, for /stats and dashboards."""
        numbers = await self._need_store().stats()
        return {**numbers, "songs": len(self._index), "cf_loaded": self.cf is not None,
                "pending": self._pending, "users_in_memory": len(self.users)}

    async def health(self, *, timeout: float = 2.0) -> dict[str, Any]:
        """What /healthz reports: ``status`` "ok" only if songs are served *and* the database
        takes a write now (a read-only or full disk fails every feedback while reads pass)."""
        problems: list[str] = []
        try:
            songs = len(self._index)
        except Exception:
            songs = 0
        if songs <= 0:
            problems.append("no songs in the index")
        store = "absent"
        if self.store is not None:
            try:
                await asyncio.wait_for(self.store.check_writable(), timeout)
                store = "ok"
            except Exception as exc:
                store = "failing"
                problems.append(f"database not writable: {type(exc).__name__}")
        return {"status": "degraded" if problems else "ok", "problems": problems,
                "songs": songs, "store": store, "cf": self.cf is not None,
                "pending": self._pending,
                "model_fingerprint": getattr(self.classifier, "fingerprint", None),
                "index_fingerprint": getattr(self._index, "fingerprint", None)}

    # ---- Discord's per-guild settings and message links (kept in the store) ---------------
    async def link_message(self, message_id: str | int, rec_id: str) -> None:
        await self._need_store().link_message(str(message_id), rec_id)

    async def answer_for_message(self, message_id: str | int) -> str | None:
        """The rec_id a chat message shows (Discord reactions on uncached messages)."""
        return await self._need_store().rec_for_message(str(message_id))

    async def channel_enabled(self, guild_id: str | int, channel_id: str | int) -> bool:
        return await self._need_store().is_channel_enabled(str(guild_id), str(channel_id))

    async def set_channel_enabled(self, guild_id: str | int, channel_id: str | int,
                                  enabled: bool) -> None:
        await self._need_store().set_channel_enabled(str(guild_id), str(channel_id), enabled)

    async def enabled_channels(self, guild_id: str | int) -> list[str]:
        return await self._need_store().enabled_channels(str(guild_id))

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
            lexicon = await loop.run_in_executor(None, lexicon_of, new_index)
            old = self._index
            self._index = new_index  # atomic reference swap; in-flight requests keep `old`
            self._lexicon_cache = (new_index, lexicon)
            log.info("index swapped: %d -> %d songs in %.2fs", len(old), len(new_index),
                     time.perf_counter() - t0)
            return {"songs": len(new_index), "previous": len(old),
                    "seconds": round(time.perf_counter() - t0, 3)}

    def _cf_file_stamp(self) -> tuple[float, int] | None:
        """(mtime, size) of the CF artifact's manifest, or None when there is none.

        The manifest is the last file an atomic publish puts in place, so a changed stamp means
        a complete new model (``moodtune train-cf`` from a shell, cron, or another replica).
        """
        from indexing.cf import INFO_FILE

        try:
            st = (self.settings.resolved_cf_path / INFO_FILE).stat()
        except OSError:
            return None
        return (st.st_mtime, st.st_size)

    def _maybe_reload_cf(self) -> None:
        """Pick up a CF model trained outside this process, without a restart.

        At most every ``CF_CHECK_INTERVAL_S`` a request stats the manifest (microseconds); when
        it changed, the reload runs as a background task so the request never waits for it.
        Replicas sharing a database also compare with the store's newest model there
        (:meth:`sync_cf`), so a model trained anywhere reaches every replica within an interval
        plus one fetch.
        """
        now = time.monotonic()
        if now - self._cf_checked < self.settings.cf_check_interval_s:
            return
        self._cf_checked = now
        if self._cf_reload is not None and not self._cf_reload.done():
            return
        loop = asyncio.get_running_loop()
        if self._cf_sync is not None and not self._cf_retrain_lock.locked():
            self._cf_reload = loop.create_task(self.sync_cf(), name="moodtune-cf-sync")
            return
        stamp = self._cf_file_stamp()
        if stamp is None or stamp == self._cf_stamp:
            return
        self._cf_reload = loop.create_task(self.reload_cf(quiet=True), name="moodtune-cf-reload")

    async def sync_cf(self) -> bool:
        """Replicas: serve the newest CF model any of them has; ``True`` if one was adopted.

        A changed local artifact is loaded first (it may be the newest: a cron ``train-cf`` on
        this host), then :meth:`bot.cf_share.CFSync.check` installs the store's model if that
        is newer, or publishes ours if it is. A failing store or a bad archive is logged and
        the current model keeps serving; a no-op without shared state.
        """
        sync = self._cf_sync
        if sync is None:
            return False
        stamp = self._cf_file_stamp()
        if stamp is not None and stamp != self._cf_stamp:
            await self.reload_cf(quiet=True)
        from bot.store import StoreError

        try:
            adopted = await sync.check(stamp_of(getattr(self.cf, "info", None)))
        except (StoreError, CFShareError, OSError) as exc:
            log.warning("shared CF model check failed; the current model keeps serving: %s", exc)
            return False
        return adopted and await self.reload_cf(quiet=True)

    async def reload_cf(self, *, quiet: bool = False) -> bool:
        """Load the CF artifact if present; a missing or broken one leaves the current model.

        Raises :class:`indexing.cf.CFLoadError` for a broken artifact unless ``quiet``.
        """
        from indexing.cf import CFModel  # numpy-only loader, no implicit/scipy

        path = self.settings.resolved_cf_path
        stamp = self._cf_file_stamp()
        if stamp is None:
            return False
        loop = asyncio.get_running_loop()
        try:
            model = await loop.run_in_executor(
                None, lambda: CFModel.load(path, min_events=self.settings.cf_min_events))
        except Exception as exc:  # CFLoadError, or anything unexpected: keep the current model
            self._cf_stamp = stamp  # do not retry a broken file on every request
            if not quiet:
                raise
            log.warning("CF model at %s not loaded: %s", path, exc)
            return False
        self.cf = model  # atomic reference swap; in-flight requests keep the model they read
        self._cf_stamp = stamp
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
        :class:`CFRetrainError` says why. One retraining at a time.
        """
        import json

        from indexing.cf import CFLoadError

        db = getattr(self.store, "path", None) if self.store is not None else None
        url = self.settings.database_url
        if not db:
            raise CFRetrainError("CF learns from stored feedback, but the store is not "
                                  "configured; run the bot with a database")
        if url is None and (db == ":memory:" or "mode=memory" in str(db)):
            raise CFRetrainError("the database is in memory, so a training process cannot read "
                                  "it; set DATABASE_PATH to a file")
        if self._cf_retrain_lock.locked():
            raise CFRetrainError("a CF retraining is already running; wait for it to finish")
        async with self._cf_retrain_lock:
            catalog = self.settings.catalog_path or default_catalog_path()
            cmd = [sys.executable, "-m", "bot", "train-cf", "--json", "--no-progress",
                   "--out", str(self.settings.resolved_cf_path.resolve()),
                   "--catalog", str(Path(catalog).resolve())]
            root = str(Path(__file__).resolve().parent.parent)
            env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                   "OMP_NUM_THREADS": "1",
                   "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH"))
                                                 if p)}
            if url is not None:
                # PostgreSQL: the URL (with its password) goes through the environment, which
                # only this user can read, never the command line that `ps` shows everyone.
                env["DATABASE_URL"] = url.get_secret_value()
            else:
                env.pop("DATABASE_URL", None)  # an exported one must not win over --db
                cmd[4:4] = ["--db", str(Path(db).resolve())]
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
                    raise CFRetrainError(f"CF training took longer than {timeout:.0f} s and was "
                                          "stopped; the current model keeps serving") from exc
                raise
            if proc.returncode != 0:
                lines = [ln.strip() for ln in err.decode("utf-8", "replace").splitlines()
                         if ln.strip()]
                reason = next((ln for ln in reversed(lines) if ln.startswith("moodtune")),
                              lines[-1] if lines else f"exit status {proc.returncode}")
                reason = reason.removeprefix("moodtune train-cf: ")
                raise CFRetrainError(f"CF training failed: {reason} (the current model keeps "
                                      "serving)")
            try:
                summary = json.loads(out.decode("utf-8").strip().splitlines()[-1])
                loaded = await self.reload_cf()
            except (ValueError, IndexError) as exc:
                raise CFRetrainError(f"CF training printed no summary ({exc}); the current "
                                      "model keeps serving") from exc
            except CFLoadError as exc:
                raise CFRetrainError(f"the new CF model could not be loaded ({exc}); the "
                                      "current model keeps serving") from exc
            if not loaded:
                raise CFRetrainError(f"CF training wrote no model at "
                                      f"{self.settings.resolved_cf_path}")
            result = {"model": summary.get("model_id"), "users": summary.get("users"),
                      "songs": summary.get("songs"), "events": summary.get("events"),
                      "seconds": round(time.perf_counter() - started, 1)}
            if self._cf_sync is not None:
                result["shared"] = await self._publish_cf()
            return result

    async def _publish_cf(self) -> bool:
        """Publish the model just loaded so the other replicas follow; ``False`` (logged) when
        the store fails — the next periodic check tries again, as ours is still the newer."""
        stamp = stamp_of(getattr(self.cf, "info", None))
        if self._cf_sync is None or stamp is None:
            return False
        from bot.store import StoreError

        try:
            await self._cf_sync.publish(stamp)
        except (StoreError, CFShareError, OSError) as exc:
            log.warning("CF model %s not shared with the other replicas yet: %s",
                        stamp.model_id, exc)
            return False
        return True

    # ---- passthroughs --------------------------------------------------------------------
    def describe_mood(self, emotion: Sequence[float]) -> str:
        e = np.asarray(emotion)
        i = int(e.argmax())
        return f"{EMOTIONS[i].emoji} {EMOTIONS[i].ko}"


def _cf_sync_for(settings: Settings, store: Any | None) -> CFSync | None:
    """A :class:`CFSync` when replicas share the database and the store keeps CF models."""
    if store is None or not settings.resolved_shared_state:
        return None
    if not all(callable(getattr(store, m, None)) for m in ("cf_publish", "cf_latest",
                                                           "cf_archive")):
        return None
    return CFSync(store, settings.resolved_cf_path, min_events=settings.cf_min_events)


def cf_scores(cf: CFScorer | None, user_id: str, candidates: Sequence[tuple[Any, float]]
              ) -> dict[str, float] | None:
    """The user's CF scores for the candidates, or None; a broken CF model never breaks
    recommendations (ranking falls back to mood only, and the failure is logged)."""
    if cf is None:
        return None
    try:
        return cf.scores(user_id, [s.song_id for s, _ in candidates])
    except Exception:
        log.exception("CF scoring failed; ranking by mood only")
        return None


@dataclass(frozen=True, slots=True)
class _AnswerRef:
    """The last answer as memory knows it, shaped like the store's record (for last_answer)."""

    rec_id: str
    user_id: str
    emotion: tuple[float, ...]
    song_ids: tuple[str, ...]
    request: dict[str, Any] | None = None  # what was understood (refinements build on it)

    @classmethod
    def of(cls, rec: Recommendation, request: dict[str, Any] | None = None) -> _AnswerRef:
        # Interned: a million users' memories share one string per song, not one per mention.
        return cls(rec.rec_id, rec.user_id, rec.emotion,
                   tuple(sys.intern(t.song_id) for t in rec.tracks), request or None)


def load_pseudonym_key(path: Path) -> bytes:
    """This install's secret for log pseudonyms, created (0600) on first start.

    Why keyed: an unkeyed hash of a Discord id or Kakao key can be reversed by hashing guessed
    ids. The key lives beside the database, so a deployment keeps stable pseudonyms across
    restarts while anyone holding only the logs learns nothing. Unreadable → a per-process key
    (pseudonyms then change on restart; nothing else breaks).
    """
    try:
        data = path.read_bytes().strip()
        if len(data) >= 32:
            return data
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("pseudonym key %s unreadable (%s); using a per-process key", path,
                    exc.strerror)
        return secrets.token_hex(32).encode()
    key = secrets.token_hex(32).encode()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
    except FileExistsError:  # another process made it first: use theirs
        return path.read_bytes().strip()
    except OSError as exc:
        log.warning("cannot write pseudonym key %s (%s); using a per-process key", path,
                    exc.strerror)
    return key


def _catalog_source(path: Path) -> dict[str, Any]:
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
