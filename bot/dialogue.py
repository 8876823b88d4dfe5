"""``Recommender.respond``: the one conversational entry point every adapter calls.

Discord, Kakao, the console and the web page all hand a person's message here and render the
:class:`Reply` that comes back; none of them decides what a message means. The steps:

1. **understand** (``bot.understand``): intent — recommend, refine, feedback in words,
   smalltalk, help, privacy — and slots (genre, artist, situation, energy, a seed song, a
   named mood, match-or-lift), Korean-aware, from lexicons built on the catalogue;
2. **read the mood** (classifier + ``adjust_mood``'s documented rules for negation, boredom,
   nerves, sarcasm) — or reuse the thread's mood for a refinement like "더 신나게";
3. **plan and pick** (``bot.conversation``): hard filters from the slots, relaxed step by step
   when too few songs qualify; match the mood or lift it along the iso principle; MMR variety;
4. **say why**: a short reason per track (what matched, one facet, the mood, CF taste) and an
   intro line saying what was understood;
5. **remember the thread** (last request + answer) in bounded memory *and* in the store, so
   "2번 같은 거" still works after a restart.

It is a mixin of :class:`bot.engine.Recommender` so it shares the engine's admission limit,
metrics, worker pool and per-user memory without a second copy of any of them.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from bot.conversation import mood_vector, pick, plan, reason, relaxations
from bot.feedback import Signal
from inference.emotions import EMOTIONS, LABELS, parse_emotion

if TYPE_CHECKING:
    from bot.engine import Recommender

log = logging.getLogger("moodtune.dialogue")

__all__ = ["HELP_TEXT", "Dialogue", "Reply"]

HELP_TEXT = (
    "지금 기분이나 듣고 싶은 걸 편하게 말해 주세요 🎧\n"
    "• 기분: '오늘 너무 지쳤어', '발표 앞두고 떨려'\n"
    "• 요청: '운동할 때 들을 힙합', '아이유 노래', '밤편지 같은 노래', '잔잔한 거'\n"
    "• 기분 전환: '우울한데 신나는 걸로 바꾸고 싶어'\n"
    "• 다듬기: '더 신나게', '좀 더 잔잔하게', '발라드로', '다른 거', '2번 같은 거'\n"
    "• 평가: '2번 좋다', '1번 별로', 또는 좋아요/별로예요 버튼\n"
    "• 분위기 고르기: 분노 · 긴장 · 슬픔 · 평화 · 기쁨 · 중립\n"
    "• 내 정보 삭제: 추천·평가 기록을 모두 지워요")
SMALLTALK = {
    "greeting": "안녕하세요! 🎧 지금 기분이나 듣고 싶은 분위기를 말해 주세요.\n"
                "예: '오늘 좀 지쳤어', '운동할 때 들을 힙합'",
    "thanks": "천만에요! 또 듣고 싶을 때 불러 주세요 🎵",
    "ack": "네 🙂 더 듣고 싶으면 '다른 거'나 '더 신나게'처럼 말해 주세요.",
    "about": "저는 moodtune이에요. 말씀하신 기분과 요청(장르·가수·상황)을 읽고, 어울리는 노래 다섯 "
             "곡을 이유와 함께 골라 드려요. '도움말'이라고 하면 쓰는 법을 알려 드려요.",
    "bye": "좋은 하루 보내세요! 음악이 필요하면 언제든 불러 주세요 👋",
}
PRIVACY_TEXT = ("🧹 추천·평가 기록을 모두 지울까요? 되돌릴 수 없어요.\n"
                "지우려면 '삭제할게요'라고 답해 주세요.")
EMPTY_TEXT = "듣고 싶은 분위기나 지금 기분을 말해 주세요 🎧\n예: '오늘 좀 지쳤어', '/mood 평화'"
NO_THREAD = "어떤 추천에 대한 말씀인지 찾지 못했어요. 지금 기분이나 듣고 싶은 걸 먼저 말해 주세요 🙂"
FEEDBACK_WORDS = {Signal.LOVE: "최고라니 기뻐요! ❤️", Signal.LIKE: "좋았다니 다행이에요! 🎵",
                  Signal.DISLIKE: "알려 줘서 고마워요. 다음엔 다르게 골라 볼게요.",
                  Signal.SKIP: "다음엔 다른 곡으로 골라 볼게요.", Signal.PLAY: "즐겁게 들으세요 🎧"}


@dataclass(frozen=True, slots=True)
class Reply:
    """What to say to the person, whatever the transport.

    ``kind``: "recommend" (``tracks`` filled), "smalltalk", "feedback", "help", "privacy"
    (the adapter asks for confirmation, then calls ``forget_user``), "busy" or "error".
    ``emotion`` is the mood read (six probabilities) or None when no mood was read;
    ``request`` what was understood (slots, strategy), for the API, logs and tests.
    """

    kind: str
    text: str
    tracks: list[Any] = field(default_factory=list)
    emotion: tuple[float, ...] | None = None
    request: dict[str, Any] = field(default_factory=dict)
    rec_id: str | None = None
    strategy: str | None = None
    source: str = "text"


class Dialogue:
    """The conversational half of :class:`~bot.engine.Recommender` (see the module docstring)."""

    _lexicon_cache: tuple[Any, Any] | None = None  # (index, its lexicon)

    def lexicon(self: Recommender) -> Any:
        """Artist/title/alias lexicon of the serving index. Built off the event loop when an
        index is opened or swapped in (``Recommender.open``, ``reload_index``: ~20 ms per 1,300
        songs, linear in the catalogue); built here only for an index that came another way."""
        index = self._index
        cached = self._lexicon_cache
        if cached is None or cached[0] is not index:
            cached = self._lexicon_cache = (index, lexicon_of(index))
        return cached[1]

    async def respond(self: Recommender, user_id: str, text: str, *, channel: str = "console",
                      k: int | None = None) -> Reply:
        """Understand one message and answer it (see the module docstring).

        Never raises for what a person types: a message too long, a busy engine or a feedback
        the store cannot take become a Reply of kind "error"/"busy" with a sentence to show.
        """
        from bot.engine import BUSY_TEXT, EngineBusyError, EngineError, InputTooLongError
        from bot.understand import understand

        try:
            text = self._check_text(text)
        except InputTooLongError as exc:
            return Reply("error", str(exc))
        if not text.strip():
            return Reply("help", EMPTY_TEXT)
        if self._full(channel):
            # Refuse before touching the store: under a flood, reading the thread from SQLite
            # for every request that will hear "busy" anyway made the refusals slow.
            return Reply("busy", BUSY_TEXT)
        thread = await self.last_answer(user_id)
        req = understand(text, self.lexicon(), has_thread=thread is not None)
        intent = req.intent
        if intent == "smalltalk":
            return Reply("smalltalk", SMALLTALK.get(req.smalltalk or "", SMALLTALK["ack"]),
                         request=req.as_dict())
        if intent == "help":
            return Reply("help", HELP_TEXT, request=req.as_dict())
        if intent == "privacy":
            return Reply("privacy", PRIVACY_TEXT, request=req.as_dict())
        if intent == "feedback":
            return await self._feedback_in_words(user_id, req, thread, channel)
        try:
            async with self._admitted(channel, "respond"):
                return await self._recommend_request(user_id, text, req, thread, channel, k)
        except EngineBusyError as exc:
            return Reply("busy", str(exc), request=req.as_dict())
        except EngineError as exc:
            return Reply("error", str(exc), request=req.as_dict())

    async def _feedback_in_words(self: Recommender, user_id: str, req: Any, thread: Any,
                                 channel: str) -> Reply:
        from bot.engine import EngineError

        if thread is None:
            return Reply("feedback", NO_THREAD, request=req.as_dict())
        signal = Signal(req.signal or Signal.LIKE.value)
        try:
            if req.position:
                song_id, new = await self.feedback_track(user_id, thread.rec_id,
                                                         req.position - 1, signal,
                                                         channel=channel)
                song = self._index.get(song_id)
                title = f"「{song.title}」" if song is not None else f"{req.position}번 곡"
                said = FEEDBACK_WORDS[signal] if new else "이미 반영했어요 🙂"
                text = f"{title} — {said}"
            else:
                n = await self.feedback_answer(user_id, thread.rec_id, signal, channel=channel)
                text = FEEDBACK_WORDS[signal] if n else "이미 반영했어요 🙂"
        except EngineError as exc:
            return Reply("error", str(exc), request=req.as_dict())
        except Exception:
            log.warning("feedback in words not stored", exc_info=True)
            return Reply("error", "지금은 평가를 저장하지 못했어요. 잠시 후 다시 말해 주세요.",
                         request=req.as_dict())
        return Reply("feedback", text, request=req.as_dict(), rec_id=thread.rec_id)

    async def _recommend_request(self: Recommender, user_id: str, text: str, req: Any,
                                 thread: Any, channel: str, k: int | None) -> Reply:

        k = k or self.settings.rec_k
        self._maybe_reload_cf()
        index, cf = self._index, self.cf
        last_req = dict(getattr(thread, "request", None) or {}) if thread is not None else {}
        last_songs = [s for s in (index.get(sid) for sid in (thread.song_ids if thread else ()))
                      if s is not None]
        seed = index.get(req.like_song) if req.like_song else None
        if req.refinement == "like_position" and req.position and last_songs:
            seed = last_songs[min(req.position, len(last_songs)) - 1]
        refine_mood = None
        if req.intent == "refine" and thread is not None:
            refine_mood = np.asarray(thread.emotion, dtype=np.float32)
        exclude = await self._recent_songs(user_id)
        named = parse_emotion(text) if not req.mood else None  # "/mood 평화", "평화로"
        loop = asyncio.get_running_loop()
        vec, rules, the_plan, ranked, relaxed = await loop.run_in_executor(
            self._pool, self._respond_work, index, cf, user_id, text, named, req, refine_mood,
            last_req, last_songs, seed, exclude, k)
        used: set[str] = set()  # facets already mentioned: each reason says something new
        reasons = [reason(r, the_plan, i, used) for i, r in enumerate(ranked)]
        explicit = bool(req.mood) or named is not None
        source = "similar" if seed is not None else "explicit" if explicit else "text"
        rec = self._recommendation(user_id, vec, ranked, reasons, source,
                                   facets=[_facets(r.song) for r in ranked])
        request = {**the_plan.request, **({"rules": rules} if rules else {})}
        await self._remember(rec, channel, text, request=request)
        intro = _intro(vec, the_plan, req, relaxed, source, thread is not None)
        if not rec.tracks:
            intro += "\n아쉽게도 지금은 어울리는 노래를 찾지 못했어요."
        return Reply("recommend", intro, rec.tracks, rec.emotion, {**req.as_dict(), **request},
                     rec.rec_id, the_plan.strategy, source)

    def _respond_work(self: Recommender, index: Any, cf: Any, user_id: str, text: str,
                      named: int | None, req: Any, refine_mood: np.ndarray | None,
                      last_req: dict, last_songs: list, seed: Any, exclude: set[str],
                      k: int) -> tuple:
        """Worker-thread part: read the mood, plan, search (relaxing filters), pick.

        ``named`` is the mood the text names outright when ``req.mood`` is unset
        (``parse_emotion``, read once by the caller)."""
        from bot.engine import cf_scores
        from bot.moodrules import adjust_mood

        rules: list[str] = []
        if req.mood or named:  # a named mood wins, even inside a thread ("평화로")
            vec = mood_vector(req.mood or named)
        elif refine_mood is not None:
            vec = refine_mood
        else:
            vec, rules = adjust_mood(self.classifier.predict_one(req.text or text), req)
            vec = np.asarray(vec, dtype=np.float32)
        the_plan = plan(req, vec, k=k, last=last_req, last_songs=last_songs, seed=seed)
        n = max(self.settings.rec_candidates, k * 4)
        excl = set(exclude) | the_plan.exclude
        candidates: list = []
        relaxed = None
        relaxed_filter = the_plan.filter
        for flt, note in relaxations(the_plan.filter):
            found = _search(index, flt, the_plan.targets, n, excl)
            candidates = _unique(found)
            relaxed, relaxed_filter = note, flt
            if len(candidates) >= k:
                break
        if the_plan.prefer_themes:
            # songs of the preferred theme near the mood, which a plain mood search may leave
            # out (comfort songs lean calm; the person's mood is sad): pick() weighs them in
            lean = replace(relaxed_filter, themes=the_plan.prefer_themes)
            found = _search(index, lean, the_plan.targets, max(k * 2, n // 3), excl)
            candidates = _unique([*candidates, *found])
        if len(candidates) < k and excl - the_plan.exclude:
            # heard nearly everything that fits: allow repeats rather than answer short
            found = _search(index, the_plan.filter, [the_plan.mood], n, the_plan.exclude)
            candidates = _unique([*candidates, *found])
        ranked = pick(the_plan, candidates, k, self.weights, cf_scores(cf, user_id, candidates))
        return vec, rules, the_plan, ranked, relaxed


def _search(index: Any, flt: Any, targets: list[np.ndarray], n: int,
            exclude: set[str]) -> list:
    """Candidates near each distinct target: exact search over the songs a filter allows, the
    Annoy index when nothing is filtered (fast at any catalogue size)."""
    found: list = []
    for target in _distinct(targets):
        found += (index.search_filtered(target, n, flt, exclude=exclude) if flt
                  else index.search(target, n, exclude=exclude))
    return found


def lexicon_of(index: Any) -> Any:
    """The ``bot.understand.Lexicon`` of an index's songs (ids, titles, artists)."""
    from bot.understand import Lexicon

    return Lexicon.from_songs(zip(index.column("song_id"), index.column("title"),
                                  index.column("artist"), strict=True))


def _unique(found: list) -> list:
    """``(song, score)`` pairs, one per song: first place kept, the later score."""
    return list({s.song_id: (s, c) for s, c in found}.values())


def _distinct(targets: list[np.ndarray]) -> list[np.ndarray]:
    """The first, middle and last target of a lift (enough candidates along the way)."""
    if len(targets) <= 2:
        return targets[:1] if len(targets) == 1 else targets
    return [targets[0], targets[len(targets) // 2], targets[-1]]


def _facets(song: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("energy", "tempo", "dance", "situations", "themes", "lang"):
        value = getattr(song, name, None)
        if value not in (None, (), ""):
            out[name] = list(value) if isinstance(value, tuple) else value
    return out


def _intro(vec: np.ndarray, the_plan: Any, req: Any, relaxed: str | None, source: str,
           has_thread: bool) -> str:
    """The first line of the answer: what was read and understood, in plain Korean."""
    v = np.asarray(vec, dtype=np.float64)
    i = int(np.argmax(v))
    e = EMOTIONS[i]
    eff = the_plan.request
    wants = []
    if eff.get("artists"):
        # the plainest spelling of what was asked ("아이유", not a collaboration credit)
        wants.append(min(eff["artists"], key=len).split(" (")[0] + "의 곡")
    if eff.get("genres"):
        wants.append("/".join(eff["genres"]))
    if eff.get("exclude_genres"):
        wants.append("/".join(eff["exclude_genres"]) + " 빼고")
    if eff.get("exclude_artists"):
        wants.append(min(eff["exclude_artists"], key=len).split(" (")[0] + " 빼고")
    if eff.get("situations"):
        wants.append("/".join(eff["situations"]) + "에 어울리는 곡")
    if eff.get("themes"):
        wants.append("테마 " + "/".join(eff["themes"]))
    if eff.get("energy") == "up":
        wants.append("신나는 곡")
    elif eff.get("energy") == "down":
        wants.append("잔잔한 곡")
    lines = []
    if source == "explicit":
        lines.append(f"{e.emoji} {e.ko} 무드로 골라 봤어요.")
    elif req.intent == "refine" and has_thread:
        lines.append(f"앞서 이야기한 기분({e.emoji} {e.ko})을 이어서,")
    elif source == "similar":
        lines.append("비슷한 분위기의 노래예요.")
    elif wants and e.ko in ("평화", "중립") and not (getattr(req, "cues", ()) or req.mood_hint
                                                   or req.negated_mood):
        # A plain request ("비 오는 밤에 들을 잔잔한 노래") says what to play, not how the person
        # feels; the classifier reads such music talk as calm or neutral. That read only steers
        # the search, so it is not announced as the person's mood.
        lines.append(f"요청에 어울리는 분위기({e.emoji} {e.ko})로,")
    else:
        top = [(LABELS[j], float(v[j])) for j in np.argsort(-v)[:2] if v[j] >= 0.15]
        mood = " · ".join(f"{EMOTIONS[LABELS.index(m)].emoji} {m} {p:.0%}" for m, p in top)
        lines.append(f"지금 기분: {mood}")
    if req.unknown_artist:
        lines.append(f"'{req.unknown_artist}'의 노래는 아직 제 목록에 없어요. 대신 비슷한 분위기로 "
                     "골라 봤어요.")
    understood = " · ".join(wants + the_plan.notes)
    if understood:
        lines.append(f"{understood} 골라 봤어요.")
    elif source == "text" and the_plan.strategy == "match":
        lines.append("지금 마음에 어울리는 노래예요.")
    if relaxed:
        lines.append(f"조건에 딱 맞는 곡이 적어서 {relaxed} 조건은 조금 넓혀서 찾았어요.")
    return "\n".join(lines)
