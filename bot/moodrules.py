"""The mood rule layer: moves the classifier's 6-d vector where chat cues say it is wrong.

Why rules on top of the model: the shipped classifier learned from single sentences that say
their feeling outright. Chat has things that corpus barely has — negation ("별로 안 우울해" is not
sadness), boredom ("할 게 없어" is not sadness or anger), nerves named by the event ("발표
앞두고"), praise through gritted teeth ("최고다 ^^ 또 야근이래"), English and mixed sentences the
Korean tokenizer splits into noise, and plain relief ("다행이다") that it almost never reads as
평화. ``bot.understand`` finds those cues in the text; this module decides what each one does to
the vector, so the effect of every rule is one documented number, measured by
``benchmarks/chat_mood.py`` (classifier alone vs with the rules, per phenomenon, on a held-out
probe and on KOTE).

Each rule is a convex move, so the output is still a probability vector:
- negation: the negated mood keeps ``NEGATION_KEEP`` of its mass; the rest goes to where "not X"
  lands (``NEGATION_TARGET``);
- sarcasm: 기쁨 and 평화 hand ``SARCASM_MOVE`` of their mass to the negative mood behind it;
- a hinted mood (nerves, boredom, a plain day, English words, sarcasm, relief, good news told
  as an event — "100일이야!", "합격했어"): ``v ← (1−w)·v + w·onehot``
  with ``w = HINT_WEIGHT[rule]``.
"""

from __future__ import annotations

import numpy as np

from bot.understand import Request
from inference.emotions import LABELS, NUM_EMOTIONS, index_of

__all__ = ["HINT_WEIGHT", "NEGATION_ALSO", "NEGATION_KEEP", "NEGATION_TARGET", "RULES", "SARCASM_MOVE", "adjust_mood"]

#: Rule names in the order they are applied (also what ``adjust_mood`` reports).
RULES: tuple[str, ...] = ("negation", "sarcasm", "nerves", "boredom", "plain", "english", "relief",
                          "celebration")

#: Share of a negated mood's mass it keeps ("별로 안 우울해" still carries a trace of the topic).
NEGATION_KEEP = 0.1
#: Where the mass of a negated mood goes. Not sad / not angry is plain (중립); not afraid is half
#: calm (the fear is gone); not happy is mostly unhappy; not calm is unease.
NEGATION_TARGET: dict[str, dict[str, float]] = {
    "슬픔": {"중립": 1.0},
    "분노": {"중립": 1.0},
    "긴장": {"중립": 0.5, "평화": 0.5},
    "기쁨": {"슬픔": 0.6, "중립": 0.4},
    "평화": {"긴장": 0.5, "중립": 0.5},
    "중립": {"중립": 1.0},
}
#: A negated good mood takes the other good mood with it: "행복하지 않아" and "기분 안 좋아" are not
#: calm either, though the classifier, seeing 행복/좋아, reads them 평화.
NEGATION_ALSO: dict[str, tuple[str, ...]] = {"기쁨": ("평화",)}
#: Share of 기쁨 and 평화 handed to the negative mood when praise is sarcastic.
SARCASM_MOVE = 0.9
#: Mixing weight of the hinted mood per rule, chosen on the tuning sentences in
#: ``tests/test_understand.py`` (never on the probe); ``relief`` fitted on KOTE ``val`` by
#: ``python -m benchmarks.chat_mood --fit``.
HINT_WEIGHT: dict[str, float] = {
    "sarcasm": 0.5,
    "nerves": 0.6,
    "boredom": 0.7,
    "plain": 0.6,
    "english": 0.7,
    "relief": 0.5,
    "celebration": 0.6,
}


def _onehot(mood: str) -> np.ndarray:
    v = np.zeros(NUM_EMOTIONS)
    v[index_of(mood)] = 1.0
    return v


def adjust_mood(vec: np.ndarray, request: Request) -> tuple[np.ndarray, list[str]]:
    """The classifier's vector moved by the cues ``understand`` found; and the rules that fired.

    ``vec`` is one (6,) or (1, 6) probability row in ``inference.emotions.LABELS`` order; the
    result has the same shape and sums to 1. A request without cues comes back unchanged.
    """
    src = np.asarray(vec)
    shape = src.shape
    v = src.astype(np.float64).reshape(-1)
    if v.shape != (NUM_EMOTIONS,):
        raise ValueError(f"expected one row of {NUM_EMOTIONS} probabilities ({', '.join(LABELS)}), "
                         f"got shape {shape}")
    v = np.clip(v, 0.0, None)
    v = v / v.sum() if v.sum() > 0 else np.full(NUM_EMOTIONS, 1.0 / NUM_EMOTIONS)
    fired: list[str] = []
    cues = set(request.cues)

    if request.negated_mood:
        moved = 0.0
        for name in (request.negated_mood, *NEGATION_ALSO.get(request.negated_mood, ())):
            i = index_of(name)
            moved += v[i] * (1.0 - NEGATION_KEEP)
            v[i] *= NEGATION_KEEP
        for mood, share in NEGATION_TARGET[request.negated_mood].items():
            v[index_of(mood)] += moved * share
        fired.append("negation")

    hint = request.mood_hint
    if "sarcasm" in cues and hint:
        j = index_of(hint)
        for pos in ("기쁨", "평화"):
            i = index_of(pos)
            moved = v[i] * SARCASM_MOVE
            v[i] -= moved
            v[j] += moved
    for rule in RULES[1:]:
        if rule in cues and hint:
            w = HINT_WEIGHT[rule]
            v = (1.0 - w) * v + w * _onehot(hint)
            fired.append(rule)
            break  # one hint per message: understand() sets at most one
    v = v / v.sum()
    return v.astype(src.dtype if src.dtype.kind == "f" else np.float64).reshape(shape), fired
