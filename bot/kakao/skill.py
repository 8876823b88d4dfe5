"""The skill: route one parsed request to the engine and answer inside Kakao's 5-second deadline.

* **Conversation.** Free text — moods, requests ("신나는 힙합 틀어줘"), refinements ("더 신나게",
  "다른 거"), "2번 좋다", smalltalk — goes to ``Recommender.respond``, the one conversational
  entry point every adapter shares; the skill only renders the :class:`~bot.dialogue.Reply`.
  What stays here is what only Kakao has: tapped quick replies that carry an ``extra``, the
  "내 정보 삭제" confirmation, and the help/feedback words the parser recognises.
* **Deadline.** When the engine is slow and the request carries a ``callbackUrl``, answer
  ``useCallback`` at once and POST the real answer there when it is ready (valid once, for a
  minute). Without one, wait up to ``deadline_s`` and then say politely that we are slow — a
  late answer is a lost answer on Kakao.
* **Capacity.** The engine admits at most ``ENGINE_MAX_PENDING`` requests (every adapter, direct
  and callback alike) and refuses the rest at once (a "busy" Reply); we send the busy bubble
  immediately — no callback ack for work we will not do. Deliveries still in flight are capped
  the same way, since each outlives its engine slot while Kakao takes the POST.
* **Budgets.** Recommendations and feedback taps are rate-limited separately per user, so
  tapping "좋아요" never costs a recommendation; "다른 노래", which answers with new songs,
  counts as a recommendation.
* **Feedback and privacy** go through the engine only (``feedback_answer``, ``last_answer``,
  ``forget_user``): the adapter keeps no per-user state but a short-lived, bounded note that a
  user asked to delete their data.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from bot import ratelimit
from bot.dialogue import Reply
from bot.engine import FeedbackUnavailableError, Recommender, UnknownAnswerError
from bot.feedback import Signal
from bot.kakao.callback import CallbackRefusedError
from bot.kakao.parse import Command, FeedbackTap, SkillRequest, has_words, is_blank
from bot.kakao.render import (
    OTHER_TEXT,
    TEXT_BUSY,
    TEXT_EMPTY,
    TEXT_ERROR,
    TEXT_FEEDBACK,
    TEXT_FEEDBACK_DUP,
    TEXT_FEEDBACK_FAILED,
    TEXT_FORGET_CANCELLED,
    TEXT_FORGET_EXPIRED,
    TEXT_FORGET_FAILED,
    TEXT_NO_REC,
    TEXT_NO_WORDS,
    TEXT_TIMEOUT,
    busy_response,
    callback_ack,
    feedback_response,
    forget_done_response,
    forget_question_response,
    help_response,
    mood_quick_replies,
    rate_limited_response,
    recommendation_response,
    text_response,
)
from bot.keys import SignedTokens, install_key
from bot.ratelimit import adapter_limiters, rate_limiter_for
from bot.settings import Settings
from bot.userstate import UserStateCache
from inference.emotions import parse_emotion

log = logging.getLogger("moodtune.kakao")

__all__ = ["ANSWER_DEADLINE_S", "CALLBACK_TTL_S", "FORGET_CONFIRM_S", "Skill"]

#: Without a callback URL we must answer inside Kakao's 5 s; leave room for the network.
ANSWER_DEADLINE_S = 4.5
#: A callback URL is valid for one minute; give up on delivering a little before that.
CALLBACK_TTL_S = 55.0
CALLBACK_POST_TIMEOUT_S = 10.0
#: How long a "내 정보 삭제" question waits for its "삭제할게요".
FORGET_CONFIRM_S = 120.0
#: Users with a pending deletion question held at once (oldest dropped past it).
FORGET_PENDING_MAX = 10_000
#: Routes that run the engine's recommender (and so may need the callback flow).
_ENGINE_ROUTES = frozenset({Command.RECOMMEND, Command.FEEDBACK})

Answer = tuple[str, dict[str, Any], str | None]  # (kind for metrics/logs, response, rec_id)
#: Metric/log kind of each kind of engine Reply ("recommend" keeps its old metric name).
_REPLY_KINDS = {"recommend": "recommendation", "smalltalk": "smalltalk", "feedback": "feedback",
                "help": "help", "privacy": "forget_ask", "busy": "busy", "error": "engine_error"}


class Skill:
    """State and steps behind ``POST /kakao/skill`` (one per app)."""

    def __init__(self, engine: Recommender, settings: Settings,
                 deadline_s: float = ANSWER_DEADLINE_S) -> None:
        self.engine = engine
        self.settings = settings
        self.deadline_s = deadline_s
        self.limiter, self.feedback_limiter = adapter_limiters(engine, settings, "kakao")
        self.clock: Callable[[], float] = time.monotonic
        # Who asked "내 정보 삭제" and the token their "삭제할게요" must carry. Bounded by count
        # and by age (the cache's TTL is the confirmation window).
        self.forget_pending = UserStateCache(FORGET_PENDING_MAX, FORGET_CONFIRM_S,
                                             clock=lambda: self.clock())
        # The confirm tap's token is signed, not remembered: with SECRET_KEY shared, the replica
        # that receives "삭제할게요" need not be the one that asked.
        self.forget_tokens = SignedTokens(install_key(settings, "kakao-forget"),
                                          FORGET_CONFIRM_S)
        # ... and spent once, everywhere: a used token is a once-per-window "rate" key.
        self.forget_spent = rate_limiter_for(
            getattr(engine, "store", None), 1, shared=settings.resolved_shared_state,
            name="kakao-forget-spent", window=FORGET_CONFIRM_S + 10)
        self.session: aiohttp.ClientSession | None = None
        self.deliveries: set[asyncio.Task[None]] = set()
        self.max_deliveries = settings.engine_max_pending
        # The engine's registry: its own metrics (latency, errors, busy, feedback) are there
        # already; only Kakao-specific ones are added.
        m = engine.metrics
        self.replies = m.counter("moodtune_kakao_replies_total",
                                 "Kakao skill answers by kind.", ["kind"])
        self.callbacks = m.counter("moodtune_kakao_callbacks_total",
                                   "Kakao callback URLs by outcome (ok, refused, redirect, "
                                   "http_error, error, expired, cancelled).", ["outcome"])
        self.in_flight = m.gauge("moodtune_kakao_callbacks_in_flight",
                                 "Callback answers still being prepared or posted.")
        self.rate_limited = m.counter("moodtune_rate_limited_total",
                                      "Requests refused by the per-user rate limit.", ["channel"])

    # -- top level ----------------------------------------------------------------------------
    def route(self, req: SkillRequest) -> Command:
        """The command words name, resolved against state: "취소" cancels only a pending
        deletion (asked here, or the tap carries a live token from any replica); otherwise it
        is an ordinary message."""
        if req.command is not Command.FORGET_CANCEL:
            return req.command
        if self.forget_pending.peek(req.user_id) is not None:
            return req.command
        live = req.cancel_token is not None and self.forget_tokens.check(req.user_id,
                                                                        req.cancel_token)
        return req.command if live else Command.RECOMMEND

    async def handle(self, req: SkillRequest) -> dict[str, Any]:
        """Rate-limit (per kind of request), then answer within the deadline."""
        route = self.route(req)
        # "다른 노래" is feedback *and* a new answer: it spends the recommendation budget, or a
        # stream of taps would get answers at the (larger) feedback rate.
        engine_budget = route is Command.RECOMMEND or (
            req.tap is not None and req.tap.signal is Signal.SKIP)
        limiter = self.limiter if engine_budget else self.feedback_limiter
        wait = await ratelimit.hit(limiter, req.user_id)
        if wait is not None:
            self.rate_limited.inc(channel="kakao")
            self.replies.inc(kind="rate_limited")
            return rate_limited_response(wait, limiter.per_minute, feedback=not engine_budget)
        return await self.respond(req, route)

    async def respond(self, req: SkillRequest, route: Command) -> dict[str, Any]:
        """Answer within Kakao's deadline: directly, via the callback URL, or with a note."""
        callback = req.callback_url if route in _ENGINE_ROUTES else None
        if callback and len(self.deliveries) >= self.max_deliveries:
            self.replies.inc(kind="busy")
            log.warning("callback deliveries at their cap (%d); answering busy",
                        self.max_deliveries, extra={"user": self.engine.user_ref(req.user_id)})
            return busy_response(TEXT_BUSY)
        work = asyncio.ensure_future(self.answer(req, route))
        budget = (self.settings.kakao_callback_after_ms / 1000 if callback else self.deadline_s)
        try:
            done, _ = await asyncio.wait({work}, timeout=budget)
        except asyncio.CancelledError:  # the client went away: stop the engine work too
            work.cancel()
            raise
        if done:
            return work.result()
        if callback:
            task = asyncio.create_task(self._deliver(callback, work))
            self.deliveries.add(task)
            task.add_done_callback(self.deliveries.discard)
            self.replies.inc(kind="callback")
            return callback_ack()
        work.cancel()
        self.replies.inc(kind="timeout")
        log.warning("engine missed the %.1fs deadline", budget,
                    extra={"user": self.engine.user_ref(req.user_id)})
        return text_response(TEXT_TIMEOUT)

    async def _deliver(self, url: str, work: asyncio.Future[dict[str, Any]]) -> None:
        """POST the late answer to the callback URL; failures are logged, never raised.

        No redirects: a 3xx would send the answer (and our POST) wherever the other side says.
        The session's resolver re-checks the host's addresses at connect time.
        """
        host = urlsplit(url).hostname  # the full URL is a one-time credential: log the host
        self.in_flight.inc()
        outcome = "error"
        try:
            try:
                body = await asyncio.wait_for(work, CALLBACK_TTL_S)
            except TimeoutError:
                outcome = "expired"
                log.warning("answer not ready before the callback URL expired",
                            extra={"callback_host": host})
                return
            if self.session is None:
                raise RuntimeError("callback session not started")
            async with self.session.post(
                    url, json=body, allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=CALLBACK_POST_TIMEOUT_S)) as resp:
                status = resp.status
            if 300 <= status < 400:
                outcome = "redirect"
                log.warning("callback POST answered a redirect (HTTP %d); not followed", status,
                            extra={"callback_host": host})
            elif status >= 400:
                outcome = "http_error"
                log.warning("callback POST answered HTTP %d", status,
                            extra={"callback_host": host})
            else:
                outcome = "ok"
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except Exception as exc:
            refused = _refusal(exc)
            if refused is not None:
                outcome = "refused"
                log.warning("callback refused at delivery: %s", refused,
                            extra={"callback_host": host})
            else:
                log.warning("callback POST failed: %s", type(exc).__name__,
                            extra={"callback_host": host})
        finally:
            self.callbacks.inc(outcome=outcome)
            self.in_flight.dec()

    # -- what to answer -----------------------------------------------------------------------
    async def answer(self, req: SkillRequest, route: Command) -> dict[str, Any]:
        """Route one request (Kakao's own commands here, everything else to ``respond``) and
        render the result.

        Never raises (except cancellation): every failure becomes a polite text, because the
        same answer may be posted to a callback URL where an exception would be lost.
        """
        t0 = time.perf_counter()
        kind: str = "error"
        resp: dict[str, Any] | None = None
        rec_id: str | None = None
        try:
            if route is Command.HELP:
                kind, resp = "help", help_response()
            elif route is Command.FORGET:
                kind, resp = "forget_ask", self._ask_forget(req)
            elif route is Command.FORGET_CONFIRM:
                kind, resp = await self._forget(req)
            elif route is Command.FORGET_CANCEL:
                self.forget_pending.pop(req.user_id)
                kind, resp = "forget_cancel", text_response(TEXT_FORGET_CANCELLED,
                                                            mood_quick_replies())
            elif route is Command.FEEDBACK and req.tap is not None:
                kind, resp, rec_id = await self._feedback(req, req.tap)
            else:  # free text, and "취소" with no deletion pending
                kind, resp, rec_id = await self._converse(req)
        except Exception:
            log.exception("kakao answer failed", extra={"user": self.engine.user_ref(req.user_id)})
        if resp is None:
            kind, resp = "error", text_response(TEXT_ERROR)
        self.replies.inc(kind=kind)
        fields: dict[str, Any] = {"user": self.engine.user_ref(req.user_id), "kind": kind,
                                  "ms": round((time.perf_counter() - t0) * 1000, 1)}
        if rec_id:
            fields["rec_id"] = rec_id
        if self.settings.store_message_text:
            fields["text"] = req.utterance
        log.info("kakao answer", extra=fields)
        return resp

    async def _converse(self, req: SkillRequest, text: str | None = None,
                        intro: str | None = None) -> Answer:
        """Hand a message to ``engine.respond`` and render the Reply it gives.

        ``text`` is what to say instead of the utterance (a tapped "다른 노래" asks for "다른
        거"); ``intro`` goes before the engine's own first line. Blank and emoji-only messages
        are answered here, at the edge, without taking an engine slot.
        """
        if text is None:
            text = req.utterance
            if is_blank(text):
                return "prompt", text_response(TEXT_EMPTY, mood_quick_replies()), None
            if not has_words(text) and parse_emotion(text) is None:
                return "prompt", text_response(TEXT_NO_WORDS, mood_quick_replies()), None
        try:
            reply = await self.engine.respond(req.engine_user, text, channel="kakao")
        except Exception as exc:  # the engine counted it (moodtune_engine_errors_total)
            log.error("respond failed: %s", type(exc).__name__, exc_info=True,
                      extra={"user": self.engine.user_ref(req.user_id)})
            return "error", text_response(TEXT_ERROR), None
        return self._render(req, reply, intro)

    def _render(self, req: SkillRequest, reply: Reply, intro: str | None) -> Answer:
        """One engine Reply as a Kakao response (every builder validates what it returns)."""
        kind = _REPLY_KINDS.get(reply.kind, "engine_error")
        if reply.kind == "recommend":
            return ("more" if intro else kind), recommendation_response(reply, intro), reply.rec_id
        if reply.kind == "privacy":  # asked in words: the same confirmation as "내 정보 삭제"
            return kind, self._ask_forget(req), None
        if reply.kind == "help":  # Kakao's own help: it names the buttons this channel has
            return kind, help_response(), None
        if reply.kind == "busy":
            return kind, busy_response(reply.text), None
        if reply.kind == "feedback":
            return kind, feedback_response(reply.text, reply.rec_id, None), reply.rec_id
        text = reply.text if intro is None else f"{intro}\n{reply.text}"
        if reply.kind == "smalltalk":
            return kind, text_response(text, mood_quick_replies()), None
        return kind, text_response(text), None

    async def _feedback(self, req: SkillRequest, tap: FeedbackTap) -> Answer:
        """Whole-answer feedback; a tap names its answer, a typed word means the last one.

        "다른 노래" records a skip on that answer, then asks the engine for "다른 거" — a
        refinement of the user's thread, which the engine keeps in the store, so it works
        after a restart too.
        """
        rec_id, mood = tap.rec_id, tap.mood
        has_thread = True
        if rec_id is None or tap.signal is Signal.SKIP:
            last = await self.engine.last_answer(req.engine_user)
            has_thread = last is not None
            if last is not None and rec_id is None:
                rec_id = last.rec_id
        if rec_id is None:
            return "prompt", text_response(TEXT_NO_REC, mood_quick_replies()), None
        new, problem = 0, None
        try:
            new = await self.engine.feedback_answer(req.engine_user, rec_id, tap.signal,
                                                    channel="kakao")
        except UnknownAnswerError as exc:  # stale, forged, or deleted by "내 정보 삭제"
            problem = str(exc)
        except Exception as exc:  # no store, or the store is failing: the chat goes on
            problem = TEXT_FEEDBACK_FAILED
            level = logging.INFO if isinstance(exc, FeedbackUnavailableError) else logging.WARNING
            log.log(level, "feedback not recorded: %s", type(exc).__name__,
                    extra={"user": self.engine.user_ref(req.user_id), "rec_id": rec_id})
        if tap.signal is Signal.SKIP:
            if has_thread:
                return await self._converse(req, OTHER_TEXT, TEXT_FEEDBACK[Signal.SKIP])
            if mood is not None:  # the thread is gone (deleted): the button's mood still says
                return await self._converse(req, mood, TEXT_FEEDBACK[Signal.SKIP])
            return "prompt", text_response(TEXT_NO_REC, mood_quick_replies()), None
        if problem is not None:
            kind = "feedback_failed" if problem == TEXT_FEEDBACK_FAILED else "feedback_unknown"
            return kind, feedback_response(problem, None, None), None
        text = TEXT_FEEDBACK_DUP if new == 0 else TEXT_FEEDBACK[tap.signal]
        return "feedback", feedback_response(text, rec_id, mood), rec_id

    # -- "내 정보 삭제" -------------------------------------------------------------------------
    def _ask_forget(self, req: SkillRequest) -> dict[str, Any]:
        token = self.forget_tokens.issue(req.user_id)
        self.forget_pending.get(req.user_id)  # (re)starts this replica's window
        return forget_question_response(token, FORGET_CONFIRM_S)

    async def _forget(self, req: SkillRequest) -> tuple[str, dict[str, Any]]:
        """Delete only on a live question from this same user: a tap must carry the token we
        gave *them* (checked by signature, so any replica can), and typing "삭제할게요" counts
        while their question is pending on this replica."""
        given = req.forget_token
        if given is not None:
            live = (self.forget_tokens.check(req.user_id, given)
                    and await ratelimit.hit(self.forget_spent, given) is None)
        else:
            live = self.forget_pending.peek(req.user_id) is not None
        if not live:
            return "forget_expired", text_response(TEXT_FORGET_EXPIRED)
        try:
            counts = await self.engine.forget_user(req.engine_user)
        except Exception as exc:
            log.error("forget failed: %s", type(exc).__name__, exc_info=True,
                      extra={"user": self.engine.user_ref(req.user_id)})
            return "forget_failed", text_response(TEXT_FORGET_FAILED)
        self.forget_pending.pop(req.user_id)
        log.info("kakao user forgotten", extra={"user": self.engine.user_ref(req.user_id),
                                                "rows": sum(counts.values())})
        return "forget", forget_done_response(counts)


def _refusal(exc: BaseException) -> CallbackRefusedError | None:
    """The CallbackRefusedError behind ``exc``, however aiohttp wrapped the resolver's error."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, CallbackRefusedError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
