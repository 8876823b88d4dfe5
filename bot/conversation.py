"""From what was understood to what to search for, and why each track was picked.

Pure and synchronous (numpy only), like ``bot.ranking``: the engine's ``respond`` reads the
message (``bot.understand``), asks :func:`plan` for the search, runs it in its worker thread
with :func:`pick`, and asks :func:`reason` for one line per track. Kept apart from the engine so
every rule here is unit-tested without a model, a store or an event loop.

The ideas, from conversational recommenders and music therapy:

* **Hard constraints vs soft preferences.** A named genre, artist, situation or theme is a hard
  filter (the person said so); the mood is a soft target (ranked by cosine). When a filter
  leaves too few songs it is relaxed step by step, least explicit first, and the reply says so.
* **Match or lift (the iso principle).** By default the tracks match the mood read. Asked to
  change it ("기분 전환", "신나는 걸로 바꾸고 싶어"), the list starts close to the current mood and
  moves step by step toward the target — meeting a listener where they are works better than
  jumping to the opposite mood.
* **Refinements edit the last request** ("더 신나게", "좀 더 잔잔하게", "발라드로", "2번 같은 거",
  "다른 거") instead of starting over, so the thread is kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from bot.ranking import Ranked, RankWeights, select
from indexing.catalog import Song
from indexing.facets import ENERGY_LEVELS, SEASONS, seasons_in_title
from indexing.index import SongFilter
from inference.emotions import EMOTIONS, LABELS, NUM_EMOTIONS, index_of

__all__ = ["Plan", "mood_vector", "pick", "plan", "reason", "relaxations"]

#: Energy bounds for "신나는" / "잔잔한" requests, and the step a refinement moves from the last
#: answer's mean energy. "신나는" starts where the reasons start saying "에너지 높음"
#: (``indexing.facets.ENERGY_LEVELS``): at 0.6, mid-tempo songs (a sad trot ballad among them)
#: answered "트로트 신나는 걸로" while their own reason said "에너지 보통".
ENERGY_UP, ENERGY_DOWN, ENERGY_STEP = ENERGY_LEVELS[1][0], 0.4, 0.15
#: Where "lift" goes when the person did not say: from heavy moods toward joy, from tension or
#: anger toward peace first (calming before cheering).
LIFT_TARGET = {"슬픔": "기쁨", "분노": "평화", "긴장": "평화", "중립": "기쁨", "평화": "기쁨",
               "기쁨": "기쁨"}


def mood_vector(mood: str | int, peak: float = 0.9) -> np.ndarray:
    """A named mood as a peaked vector (not one-hot: cosine still ranks mixed songs sensibly)."""
    i = mood if isinstance(mood, int) else index_of(mood)
    v = np.full(NUM_EMOTIONS, (1 - peak) / (NUM_EMOTIONS - 1), dtype=np.float32)
    v[i] = peak
    return v


@dataclass
class Plan:
    """What to search for one reply."""

    targets: list[np.ndarray]  # per track position (one entry = the same target for all)
    filter: SongFilter = field(default_factory=SongFilter)
    exclude: set[str] = field(default_factory=set)
    strategy: str = "match"  # "match" | "lift"
    seed: Song | None = None  # "밤편지 같은 노래"
    max_per_artist: int = 1
    notes: list[str] = field(default_factory=list)  # what we understood, for the reply text
    request: dict[str, Any] = field(default_factory=dict)  # the effective request (thread)
    prefer_themes: tuple[str, ...] = ()  # leaned toward (PREFER_BONUS), never required
    season: str | None = None  # "봄 노래": songs titled for it (a filter, relaxed when short)

    @property
    def mood(self) -> np.ndarray:
        return self.targets[0]


def _req(request: Any, name: str, default: Any = None) -> Any:
    if isinstance(request, Mapping):
        return request.get(name, default)
    return getattr(request, name, default)


def plan(request: Any, mood: np.ndarray, *, k: int, last: Mapping[str, Any] | None = None,
         last_songs: Sequence[Song] = (), seed: Song | None = None) -> Plan:
    """Turn an understood request (``bot.understand.Request`` or its dict) into a search plan.

    ``mood`` is the mood read from the message (classifier + rules) or the named mood; ``last``
    is the previous request of this thread (for refinements) and ``last_songs`` the tracks shown
    then; ``seed`` the catalogue song a "X 같은 노래" request named.
    """
    eff: dict[str, Any] = {}
    refinement = _req(request, "refinement")
    if refinement and last:
        eff = _carried(last, refinement, request)
    for name in ("genres", "artists", "situations", "themes", "energy", "like_song", "mood",
                 "strategy", "target_mood", "prefer_themes", "season"):
        value = _req(request, name)
        if value not in (None, (), [], ""):
            if name == "strategy" and value == "match" and eff.get("strategy") == "lift":
                continue  # "match" is the default, not a request to stop lifting
            eff[name] = list(value) if isinstance(value, tuple) else value
    # What this message refuses ("발라드 말고", "아이유 말고") leaves the carried request and
    # stays refused for the rest of the thread; naming it again takes the refusal back.
    for kind, refused_key in (("genres", "exclude_genres"), ("artists", "exclude_artists")):
        refused = set(_req(request, refused_key) or ())
        named = set(_req(request, kind) or ())
        if refused or eff.get(refused_key):
            eff[kind] = [x for x in eff.get(kind) or () if x not in refused]
            eff[refused_key] = sorted((set(eff.get(refused_key) or ()) | refused) - named)
    notes: list[str] = []
    exclude: set[str] = set()
    energy_min = energy_max = None
    target_shift: str | None = None
    shift_weight = 0.5
    last_energy = [s.energy for s in last_songs if s.energy is not None]
    if refinement == "more_energy":
        base = float(np.mean(last_energy)) if last_energy else 0.5
        energy_min = min(0.85, max(ENERGY_UP - 0.05, base + ENERGY_STEP))
        eff["energy"] = "up"
        notes.append("지난번보다 더 신나는 곡으로")
        target_shift = "기쁨"
    elif refinement == "calmer":
        base = float(np.mean(last_energy)) if last_energy else 0.5
        energy_max = max(0.2, min(ENERGY_DOWN + 0.05, base - ENERGY_STEP))
        eff["energy"] = "down"
        notes.append("지난번보다 더 잔잔한 곡으로")
        target_shift = "평화"
    elif eff.get("energy") in ("up", "down"):
        up = eff["energy"] == "up"
        energy_min, energy_max = (ENERGY_UP, None) if up else (None, ENERGY_DOWN)
        target_shift = "기쁨" if up else "평화"
        # "신나는 노래": upbeat songs lean joyful, whatever the day was like (0.3 of the way).
        # Said *within* a thread ("트로트 신나는 걸로" after "시험 망쳤어"), the mood is the older
        # message's and the new words steer the music: as far as "더 신나게" goes (0.5).
        shift_weight = 0.5 if refinement and _req(request, "energy") else 0.3
    if refinement in ("other", "more_energy", "calmer", "genre") and last_songs:
        exclude |= {s.song_id for s in last_songs}
        if refinement == "other":
            notes.append("다른 곡으로")
    if refinement == "genre" and _req(request, "genres"):
        eff["genres"] = list(_req(request, "genres"))
    target = np.asarray(mood, dtype=np.float32)
    if eff.get("mood"):
        target = mood_vector(eff["mood"])
    if target_shift is not None and not eff.get("mood"):
        # "더 신나게" is about the music, but an upbeat song in a sad key is rare: move the mood
        # target a step toward joy (toward peace for "더 잔잔하게"), as a lift would.
        t = target / max(float(target.sum()), 1e-9)
        target = ((1 - shift_weight) * t
                  + shift_weight * mood_vector(target_shift)).astype(np.float32)
    if seed is not None:
        target = np.asarray(seed.vector, dtype=np.float32)
        exclude.add(seed.song_id)
        notes.append(f"「{seed.title}」와 비슷한 분위기로")
    strategy = eff.get("strategy", "match")
    if (strategy == "match" and not refinement and seed is None and not eff.get("mood")
            and not eff.get("energy") and LABELS[int(np.argmax(target))] == "긴장"):
        # Nervous ("내일 면접인데 너무 떨려") and asking nothing in particular: matching tension
        # answered with dark, driving tracks. Start there and settle toward calm (a lift).
        strategy = "lift"
        eff["strategy"], eff["target_mood"] = "lift", "평화"
        if not eff.get("themes"):
            eff.setdefault("prefer_themes", ["위로/응원"])  # and lean on encouragement
    targets = [target]
    if strategy == "lift":
        now = LABELS[int(np.argmax(target))]
        goal = eff.get("target_mood") or LIFT_TARGET[now]
        eff["target_mood"] = goal
        end = mood_vector(goal)
        start = target / max(float(target.sum()), 1e-9)
        targets = [((1 - a) * start + a * end).astype(np.float32)
                   for a in np.linspace(0.0, 1.0, max(k, 2))[:k]]
        notes.append(f"지금 기분에서 시작해 점점 {goal} 쪽으로")
    season = eff.get("season") if eff.get("season") in SEASONS else None
    flt = SongFilter(genres=tuple(eff.get("genres") or ()), artists=tuple(eff.get("artists") or ()),
                     situations=tuple(eff.get("situations") or ()),
                     themes=tuple(eff.get("themes") or ()), energy_min=energy_min,
                     energy_max=energy_max, seasons=(season,) if season else (),
                     exclude_genres=tuple(eff.get("exclude_genres") or ()),
                     exclude_artists=tuple(eff.get("exclude_artists") or ()))
    prefer = () if flt.themes else tuple(eff.get("prefer_themes") or ())
    if not prefer:
        eff.pop("prefer_themes", None)
    elif not refinement and (said := _lean_words(prefer[0], target)[0]):
        notes.append(said)
    if season and not refinement:
        notes.append(f"{season}에 어울리는 곡 위주로")
    eff["refinement"] = None
    return Plan(targets=targets, filter=flt, exclude=exclude, strategy=strategy, seed=seed,
                max_per_artist=k if flt.artists else 1, notes=notes, prefer_themes=prefer,
                season=season,
                request={k_: v for k_, v in eff.items() if v not in (None, [], "")})


#: What a refinement keeps of the last request. A new artist starts afresh (the artist defines
#: the style); a new genre keeps the situation/theme/energy ("운동할 때" + "힙합으로"); energy,
#: "다른 거" and "2번 같은 거" keep everything.
_KEEP = {"artist": ("strategy", "target_mood"),
         "genre": ("situations", "themes", "energy", "strategy", "target_mood")}


def _carried(last: Mapping[str, Any], refinement: str, request: Any) -> dict[str, Any]:
    keep = _KEEP.get(refinement)
    if keep is None:
        keep = tuple(last)
    if _req(request, "situations") or _req(request, "themes"):
        # a message that names its own situation is a request of its own, not an edit
        keep = tuple(k for k in keep if k in ("strategy", "target_mood"))
    elif _req(request, "energy"):
        # "트로트 신나는 걸로" after "자기 전에": a new energy overrides the old situation too
        keep = tuple(k for k in keep if k not in ("situations", "themes", "energy"))
    return {k: v for k, v in last.items() if k in keep
            and k not in ("refinement", "position", "signal", "rules")}


def relaxations(flt: SongFilter) -> list[tuple[SongFilter, str | None]]:
    """The filter, then ever looser versions of it, each with what was given up.

    Least explicit first: a theme, season or situation is often a nice-to-have (and few songs
    are titled for a season), energy next, while a named artist or genre is what the person
    asked for — dropped last, and said.
    """
    steps: list[tuple[SongFilter, str | None]] = [(flt, None)]
    cur = flt
    for attrs, note in ((("themes",), "테마"), (("seasons",), "계절"), (("situations",), "상황"),
                        (("energy_min", "energy_max"), "에너지"),
                        (("artists",), "가수"), (("genres",), "장르")):
        if any(getattr(cur, a) not in (None, ()) for a in attrs):
            cur = replace(cur, **{a: (None if a.startswith("energy") else ()) for a in attrs})
            steps.append((cur, note))
    return steps


_DEFAULT_WEIGHTS = RankWeights()


#: How a lean is said: (in the answer's first line, on a track that has the theme), by the
#: theme and the mood it answers (``None``: any mood).
PREFER_WORDS: dict[tuple[str, str | None], tuple[str, str]] = {
    ("위로/응원", "긴장"): ("떨리는 마음에 힘이 되는 곡을 섞어서", "응원이 되는 곡"),
    ("위로/응원", None): ("지친 마음에 위로가 되는 곡을 섞어서", "지친 마음에 위로"),
    ("사랑", None): ("축하해요! 설레는 사랑 노래 위주로", "사랑 노래"),
    ("설렘", None): ("축하해요! 설레는 노래 위주로", "설레는 노래"),
}


def _lean_words(theme: str, mood: np.ndarray) -> tuple[str, str]:
    top = LABELS[int(np.argmax(mood))]
    return PREFER_WORDS.get((theme, top)) or PREFER_WORDS.get((theme, None)) or (
        "", f"테마: {theme}")
#: Relevance added to a song with a preferred theme (a mood match is worth up to 1.0). Chosen by
#: looking at the answers to five worn-out messages × 3 users: 0.12 gave 1–2 comfort songs of 5
#: (33 %), 0.2 about half (53 %: "어른", "야생화", "사건의 지평선" beside sad songs), 0.3 two
#: thirds, crowding out the mood match with trot anthems. Half keeps the iso principle.
PREFER_BONUS = 0.2


def pick(plan_: Plan, candidates: Sequence[tuple[Song, float]], k: int,
         weights: RankWeights = _DEFAULT_WEIGHTS, cf_scores: Mapping[str, float] | None = None,
         rng: np.random.Generator | None = None) -> list[Ranked]:
    """Choose ``k`` tracks for the plan's per-position targets, with MMR variety and an artist cap.

    For "match" every position has the same target and this is ``bot.ranking.rerank``; for
    "lift" position ``i`` is filled by the best remaining song for *its* target, so the list
    walks from the current mood to the goal (``bot.ranking.select`` does both).
    """
    bonus = None
    if plan_.prefer_themes:
        want = set(plan_.prefer_themes)
        bonus = np.asarray([PREFER_BONUS if want & set(s.themes or ()) else 0.0
                            for s, _ in candidates], dtype=np.float32)
    return select(plan_.targets, candidates, k, weights, cf_scores, rng,
                  max_per_artist=plan_.max_per_artist, bonus=bonus)


def _energy_word(e: float) -> str:
    return next(word for bound, word in ENERGY_LEVELS if e < bound)


def reason(ranked: Ranked, plan_: Plan, position: int, used: set[str]) -> str:
    """One short line (≤ ~50 characters) on why this track, different from its neighbours.

    What the person asked for comes first (genre, artist, situation, seed song), then one
    facet not yet used in this reply (a theme, the energy), then the mood it shares and, when
    CF is sure, their taste. ``used`` collects the facets already mentioned in this reply.
    """
    s, p, req = ranked.song, plan_, plan_.request
    parts: list[str] = []
    if p.seed is not None:
        parts.append(f"「{_short(p.seed.title)}」와 닮은 분위기")
    if req.get("artists") and s.artist in req["artists"]:
        # the name that was asked for, not a collaboration credit ("HIGH4 (하이포), 아이유")
        parts.append(f"{_short(min(req['artists'], key=len))}의 곡")
    if req.get("genres") and s.genre in req["genres"]:
        parts.append(f"요청하신 {s.genre}")
    for situation in req.get("situations") or ():
        if situation in s.situations:
            parts.append(f"{situation}에 어울려요")
            break
    if p.strategy == "lift" and len(p.targets) > 1:
        step = LABELS[int(np.argmax(p.targets[min(position, len(p.targets) - 1)]))]
        parts.append(f"{position + 1}단계: {step} 쪽")
    facet = None
    if p.season and p.season in seasons_in_title(s.title):
        parts.append(f"{p.season} 노래")
    for theme in p.prefer_themes:  # why it was leaned toward: said on every such track
        if theme in s.themes:
            parts.append(_lean_words(theme, p.targets[0])[1])
            used.add(f"theme:{theme}")
            break
    for theme in s.themes:
        key = f"theme:{theme}"
        if key not in used:
            facet, _ = f"테마: {theme}", used.add(key)
            break
    if facet is None and s.energy is not None:
        key = f"energy:{_energy_word(s.energy)}"
        if key not in used or req.get("energy"):
            facet, _ = f"에너지 {_energy_word(s.energy)}", used.add(key)
    if facet:
        parts.append(facet)
    if len(parts) < 3:
        vec = np.asarray(s.vector, dtype=np.float32)
        vec = vec / max(float(vec.sum()), 1e-9)
        i = int(np.argmax(vec))
        parts.append(f"{EMOTIONS[i].emoji}{EMOTIONS[i].ko} {vec[i]:.0%}")
    if ranked.cf is not None and ranked.cf >= 0.7:
        parts.append("취향 저격 예상")
    return " · ".join(parts[:4])


def _short(text: str, n: int = 12) -> str:
    text = text.split(" (")[0]
    return text if len(text) <= n else text[: n - 1] + "…"
