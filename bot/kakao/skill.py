"""The skill itself: route a request to the engine inside Kakao's 5-second deadline."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from bot.engine import InputTooLongError, Recommendation, Recommender
from bot.engine import SongNotInCatalogError as UnknownSongError
from bot.feedback import KAKAO_REPLIES, Signal
from bot.kakao.parse import FeedbackTap, SkillRequest, _has_words, _is_blank
from bot.kakao.render import (
    _REPLY_FOR_SIGNAL,
    TEXT_EMPTY,
    TEXT_ERROR,
    TEXT_FEEDBACK,
    TEXT_FEEDBACK_DUP,
    TEXT_FEEDBACK_FAILED,
    TEXT_NO_REC,
    TEXT_NO_WORDS,
    TEXT_TIMEOUT,
    callback_ack,
    mood_quick_replies,
    recommendation_response,
    text_response,
    top_mood,
)
from bot.observability import Metrics, user_ref
from bot.ratelimit import RateLimiter
from bot.settings import Settings
from inference.emotions import parse_emotion

log = logging.getLogger("moodtune.kakao")

#: Without a callback URL we must answer inside Kakao's 5 s; leave room for the network.
ANSWER_DEADLINE_S = 4.5
#: A callback URL is valid for one minute; give up on delivering a little before that.
CALLBACK_TTL_S = 55.0
CALLBACK_POST_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class _LastRec:
    rec_id: str
    song_ids: tuple[str, ...]
    mood: str


class _LastRecs:
    """Bounded per-user memory of the last recommendation shown.

    Quick replies carry everything feedback needs; this only covers a user who *types*
    "다른 노래" (or a Kakao fallback block that drops ``extra``). Memory stays bounded however
    many users the channel has.
    """

    def __init__(self, max_users: int = 10_000) -> None:
        self._max = max_users
        self._d: OrderedDict[str, _LastRec] = OrderedDict()

    def put(self, user: str, rec: Recommendation) -> None:
        self._d[user] = _LastRec(rec.rec_id, tuple(t.song_id for t in rec.tracks), top_mood(rec))
        self._d.move_to_end(user)
        while len(self._d) > self._max:
            self._d.popitem(last=False)

    def get(self, user: str) -> _LastRec | None:
        return self._d.get(user)


class _Skill:
    """State and steps behind ``POST /kakao/skill`` (one instance per app)."""

    def __init__(self, recommender: Recommender, settings: Settings, metrics: Metrics,
                 deadline_s: float) -> None:
        self.engine = recommender
        self.settings = settings
        self.deadline_s = deadline_s
        self.limiter = RateLimiter(settings.rate_limit_per_minute)
        self.last = _LastRecs()
        self.session: aiohttp.ClientSession | None = None
        self.pending: set[asyncio.Task[None]] = set()
        self.started = time.time()
        # The store distinguishes per-track from per-message feedback (``scope``); pass it
        # through as soon as the engine's feedback() accepts it.
        try:
            self._scoped = "scope" in inspect.signature(recommender.feedback).parameters
        except (TypeError, ValueError):
            self._scoped = False
        m = metrics
        self.metrics = m
        self.replies = m.counter("moodtune_kakao_replies_total",
                                 "Kakao skill answers by kind.", ["kind"])
        self.feedbacks = m.counter("moodtune_feedback_total",
                                   "Feedback events recorded, by channel and signal.",
                                   ["channel", "signal"])
        self.engine_errors = m.counter("moodtune_engine_errors_total",
                                       "Engine calls that failed, by channel and error class.",
                                       ["channel", "error"])
        self.engine_seconds = m.histogram("moodtune_engine_seconds",
                                          "Engine call latency by channel and operation.",
                                          ["channel", "op"])
        self.callbacks = m.counter("moodtune_kakao_callbacks_total",
                                   "Answers delivered to Kakao callback URLs, by outcome.",
                                   ["outcome"])
        self.in_flight = m.gauge("moodtune_kakao_callbacks_in_flight",
                                 "Callback answers still being prepared or posted.")
        self.songs = m.gauge("moodtune_index_songs", "Songs in the serving index.")
        self.rate_limited = m.counter("moodtune_rate_limited_total",
                                      "Requests refused by the per-user rate limit.", ["channel"])

    # -- top level: deadline and callback ---------------------------------------------------
    async def respond(self, req: SkillRequest) -> dict[str, Any]:
        """Answer within Kakao's deadline: directly, via the callback URL, or with a busy note."""
        work = asyncio.ensure_future(self.answer(req))
        budget = (self.settings.kakao_callback_after_ms / 1000 if req.callback_url
                  else self.deadline_s)
        try:
            done, _ = await asyncio.wait({work}, timeout=budget)
        except asyncio.CancelledError:
            work.cancel()
            raise
        if done:
            return work.result()
        if req.callback_url:
            task = asyncio.create_task(self._deliver(req, work))
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)
            self.replies.inc(kind="callback")
            return callback_ack()
        work.cancel()
        self.replies.inc(kind="timeout")
        log.warning("engine missed the %.1fs deadline", budget,
                    extra={"user": user_ref(req.user_id)})
        return text_response(TEXT_TIMEOUT)

    async def _deliver(self, req: SkillRequest, work: asyncio.Future[dict[str, Any]]) -> None:
        """POST the late answer to the callback URL; failures are logged, never raised."""
        assert req.callback_url is not None
        host = urlsplit(req.callback_url).hostname  # the full URL is a one-time credential
        self.in_flight.inc()
        try:
            try:
                body = await asyncio.wait_for(work, CALLBACK_TTL_S)
            except TimeoutError:
                self.callbacks.inc(outcome="expired")
                log.warning("answer not ready before the callback URL expired",
                            extra={"callback_host": host})
                return
            if self.session is None:
                raise RuntimeError("callback session not started")
            async with self.session.post(
                    req.callback_url, json=body,
                    timeout=aiohttp.ClientTimeout(total=CALLBACK_POST_TIMEOUT_S)) as resp:
                await resp.read()
                if resp.status >= 400:
                    self.callbacks.inc(outcome="http_error")
                    log.warning("callback POST answered HTTP %d", resp.status,
                                extra={"callback_host": host})
                    return
            self.callbacks.inc(outcome="ok")
        except asyncio.CancelledError:
            self.callbacks.inc(outcome="cancelled")
            raise
        except Exception as exc:
            self.callbacks.inc(outcome="error")
            log.warning("callback POST failed: %s", type(exc).__name__,
                        extra={"callback_host": host})
        finally:
            self.in_flight.dec()

    # -- what to answer --------------------------------------------------------------------
    async def answer(self, req: SkillRequest) -> dict[str, Any]:
        """Route one request (feedback tap or mood message) to the engine and render the result.

        Never raises (except cancellation): every failure becomes a polite text, because the
        same answer may be posted to a callback URL where an exception would be lost.
        """
        t0 = time.perf_counter()
        kind, resp, rec_id = "error", text_response(TEXT_ERROR), None
        try:
            tap = req.tap
            typed = KAKAO_REPLIES.get(req.utterance.strip())
            if tap is None and typed is not None:
                last = self.last.get(req.engine_user)
                tap = FeedbackTap(last.rec_id, typed, last.song_ids, last.mood) if last else None
                if tap is None:
                    kind, resp = "prompt", text_response(TEXT_NO_REC, mood_quick_replies())
            if tap is not None:
                kind, resp, rec_id = await self._feedback(req, tap)
            elif typed is None:
                kind, resp, rec_id = await self._recommend(req)
        except Exception:
            log.exception("kakao answer failed", extra={"user": user_ref(req.user_id)})
        self.replies.inc(kind=kind)
        fields: dict[str, Any] = {"user": user_ref(req.user_id), "kind": kind,
                                  "ms": round((time.perf_counter() - t0) * 1000, 1)}
        if rec_id:
            fields["rec_id"] = rec_id
        if self.settings.store_message_text:
            fields["text"] = req.utterance
        log.info("kakao answer", extra=fields)
        return resp

    async def _recommend(self, req: SkillRequest, mood: str | None = None, intro: str | None = None
                         ) -> tuple[str, dict[str, Any], str | None]:
        text = req.utterance
        if mood is None:
            if _is_blank(text):
                return "prompt", text_response(TEXT_EMPTY, mood_quick_replies()), None
            if not _has_words(text) and parse_emotion(text) is None:
                return "prompt", text_response(TEXT_NO_WORDS, mood_quick_replies()), None
        t0 = time.perf_counter()
        try:
            if mood is None:  # explicit moods ("/mood 평화", "슬픔") are the engine's to spot
                rec = await self.engine.recommend(req.engine_user, text, channel="kakao")
            else:
                rec = await self.engine.recommend_mood(req.engine_user, mood, channel="kakao")
        except InputTooLongError as exc:
            return "too_long", text_response(str(exc)), None
        except UnknownSongError as exc:
            return "engine_error", text_response(str(exc)), None
        except Exception as exc:
            self.engine_errors.inc(channel="kakao", error=type(exc).__name__)
            log.error("recommend failed: %s", type(exc).__name__, exc_info=True,
                      extra={"user": user_ref(req.user_id)})
            return "error", text_response(TEXT_ERROR), None
        finally:
            self.engine_seconds.observe(time.perf_counter() - t0, channel="kakao",
                                        op="recommend")
        self.last.put(req.engine_user, rec)
        return ("more" if mood else "recommendation"), recommendation_response(rec, intro), rec.rec_id

    async def _feedback(self, req: SkillRequest, tap: FeedbackTap
                        ) -> tuple[str, dict[str, Any], str | None]:
        song_ids = tap.song_ids
        last = self.last.get(req.engine_user)
        if not song_ids and last is not None and last.rec_id == tap.rec_id:
            song_ids = last.song_ids
        new, failed = await self._record(req, tap.rec_id, song_ids, tap.signal)
        if tap.signal is Signal.SKIP:
            mood = tap.mood or (last.mood if last else None)
            if mood is None:
                return "prompt", text_response(TEXT_NO_REC, mood_quick_replies()), None
            return await self._recommend(req, mood=mood, intro=TEXT_FEEDBACK[Signal.SKIP])
        if not song_ids:
            return "feedback_unknown", text_response(TEXT_NO_REC, mood_quick_replies()), None
        if failed == len(song_ids):
            text = TEXT_FEEDBACK_FAILED
        elif new == 0:
            text = TEXT_FEEDBACK_DUP
        else:
            text = TEXT_FEEDBACK[tap.signal]
        extra = {"rec_id": tap.rec_id, "signal": Signal.SKIP.value, "song_ids": ",".join(song_ids)}
        mood = tap.mood or (last.mood if last else None)
        if mood:
            extra["mood"] = mood
        more = {"label": _REPLY_FOR_SIGNAL[Signal.SKIP], "action": "message",
                "messageText": _REPLY_FOR_SIGNAL[Signal.SKIP], "extra": extra}
        return "feedback", text_response(text, [more, *mood_quick_replies()]), tap.rec_id

    async def _record(self, req: SkillRequest, rec_id: str, song_ids: Sequence[str],
                      signal: Signal) -> tuple[int, int]:
        """Feedback on a whole message applies to each of its tracks; returns (new, failed)."""
        new = failed = 0
        errors: set[str] = set()
        kwargs = {"scope": "message"} if self._scoped else {}
        t0 = time.perf_counter()
        for sid in song_ids:
            try:
                if await self.engine.feedback(rec_id, sid, req.engine_user, signal, **kwargs):
                    new += 1
            except Exception as exc:
                # Store down or not configured, or a stale/forged rec (the store refuses songs
                # that were not shown): the chat goes on, the operator sees the count and a line.
                failed += 1
                errors.add(type(exc).__name__)
                self.engine_errors.inc(channel="kakao", error=type(exc).__name__)
        if song_ids:
            self.engine_seconds.observe(time.perf_counter() - t0, channel="kakao", op="feedback")
        if failed:
            log.warning("feedback not recorded for %d of %d tracks: %s", failed, len(song_ids),
                        ", ".join(sorted(errors)),
                        extra={"user": user_ref(req.user_id), "rec_id": rec_id})
        if new:
            self.feedbacks.inc(channel="kakao", signal=signal.value)
        return new, failed

