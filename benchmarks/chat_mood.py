"""Mood reading on chat: the shipped classifier alone vs with the rule layer (``bot.moodrules``).

Two measurements, neither used to write or tune the rules:
- the chat probe (``training/data/chat_mood_probe.csv``, 152 sentences written for this before the
  rules): accuracy per phenomenon (negation, boredom, nerves, sarcasm, English, mixed, calm,
  control), and for sarcasm the share *not* read 기쁨;
- 평화 on real calm text, KOTE (``../shared/data/emotion/kote``, found via ``training.paths``):
  the comments whose raters' labels point to calm (편안/쾌적, 안심/신뢰) and to none of our other
  five moods (``KOTE_MOODS`` below), against the comments labelled with one of those five and no
  calm label. Reported: calm recall (read 평화), 평화 false-positive rate on the others, and 평화
  precision, on ``test``. The relief rule's weight is fitted on ``val`` (``--fit`` sweeps it).

    python -m benchmarks.chat_mood [--fit] [--variant int8|fp32] [--no-kote]

Writes ``benchmarks/results/chat_mood.json``.
"""

from __future__ import annotations

import argparse
import csv
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from benchmarks import machine, write_results
from bot import moodrules
from bot.moodrules import adjust_mood
from bot.understand import Lexicon, understand
from indexing.catalog import load_default
from inference.classifier import EmotionClassifier
from inference.emotions import LABELS, index_of
from training.paths import kote_dir

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "chat_mood.json"
PROBE = ROOT / "training" / "data" / "chat_mood_probe.csv"

#: KOTE's 44 labels, in id order (its README).
KOTE_LABELS: tuple[str, ...] = (
    "불평/불만", "환영/호의", "감동/감탄", "지긋지긋", "고마움", "슬픔", "화남/분노", "존경", "기대감",
    "우쭐댐/무시함", "안타까움/실망", "비장함", "의심/불신", "뿌듯함", "편안/쾌적", "신기함/관심",
    "아껴주는", "부끄러움", "공포/무서움", "절망", "한심함", "역겨움/징그러움", "짜증", "어이없음",
    "없음", "패배/자기혐오", "귀찮음", "힘듦/지침", "즐거움/신남", "깨달음", "죄책감", "증오/혐오",
    "흐뭇함(귀여움/예쁨)", "당황/난처", "경악", "부담/안_내킴", "서러움", "재미없음", "불쌍함/연민",
    "놀람", "행복", "불안/걱정", "기쁨", "안심/신뢰",
)
#: Which KOTE labels point to which of our moods. Only labels that name the mood itself, in the
#: seed project's spirit (공포/놀람 → 긴장, 혐오 → 분노, 행복 → 기쁨); the many KOTE labels with no
#: clear place among six moods (기대감, 존경, 깨달음 …) point nowhere.
KOTE_MOODS: dict[str, tuple[str, ...]] = {
    "분노": ("화남/분노", "짜증", "증오/혐오", "역겨움/징그러움", "불평/불만"),
    "긴장": ("공포/무서움", "불안/걱정", "놀람", "경악"),
    "슬픔": ("슬픔", "절망", "서러움"),
    "평화": ("편안/쾌적", "안심/신뢰"),
    "기쁨": ("기쁨", "행복", "즐거움/신남", "감동/감탄"),
    "중립": ("없음",),
}
PEACE = index_of("평화")
JOY = index_of("기쁨")


def _ids(names: tuple[str, ...]) -> set[int]:
    return {KOTE_LABELS.index(n) for n in names}


def kote_sets(path: Path) -> tuple[list[str], list[str]]:
    """(calm comments, other-mood comments) of one KOTE split."""
    calm_ids = _ids(KOTE_MOODS["평화"])
    other_ids = set().union(*(_ids(v) for k, v in KOTE_MOODS.items() if k != "평화"))
    calm, other = [], []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3 or not parts[2]:
                continue
            labels = {int(x) for x in parts[2].split(",")}
            if labels & calm_ids and not labels & other_ids:
                calm.append(parts[1])
            elif labels & other_ids and not labels & calm_ids:
                other.append(parts[1])
    return calm, other


def _with_rules(vecs: np.ndarray, requests: list) -> tuple[np.ndarray, list[list[str]]]:
    out, fired = [], []
    for v, r in zip(vecs, requests, strict=True):
        w, f = adjust_mood(v, r)
        out.append(w)
        fired.append(f)
    return np.asarray(out), fired


def probe_report(clf: EmotionClassifier, lex: Lexicon) -> dict:
    with PROBE.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    texts = [r["sentence"] for r in rows]
    gold = [r["label"] for r in rows]
    base = clf.predict(texts)
    reqs = [understand(t, lex) for t in texts]
    ruled, fired = _with_rules(base, reqs)
    by: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    fired_count: Counter[str] = Counter()
    for r, g, b, a, f in zip(rows, gold, base, ruled, fired, strict=True):
        ph = r["phenomenon"]
        for key, vec in (("classifier", b), ("with_rules", a)):
            by[ph][key].append(LABELS[int(np.argmax(vec))] == g)
            by["all"][key].append(LABELS[int(np.argmax(vec))] == g)
            if ph == "sarcasm" and g != "기쁨":
                by["sarcasm_not_joy"][key].append(int(np.argmax(vec)) != JOY)
        fired_count.update(f)
    table = {ph: {"n": len(v["classifier"]),
                  "classifier": round(float(np.mean(v["classifier"])), 3),
                  "with_rules": round(float(np.mean(v["with_rules"])), 3)}
             for ph, v in by.items()}
    return {"n": len(rows), "accuracy": table, "rules_fired": dict(fired_count)}


def _peace_figures(calm_vecs: np.ndarray, other_vecs: np.ndarray) -> dict:
    tp = int((calm_vecs.argmax(1) == PEACE).sum())
    fp = int((other_vecs.argmax(1) == PEACE).sum())
    recall = tp / max(1, len(calm_vecs))
    precision = tp / max(1, tp + fp)
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    return {"calm_read_peace": tp, "calm_n": len(calm_vecs), "recall": round(recall, 3),
            "others_read_peace": fp, "others_n": len(other_vecs),
            "false_positive_rate": round(fp / max(1, len(other_vecs)), 4),
            "precision": round(precision, 3), "f1": round(f1, 3)}


def kote_report(clf: EmotionClassifier, lex: Lexicon, *, fit: bool) -> dict:
    out: dict = {"definition": {"calm": "labels ∩ {편안/쾌적, 안심/신뢰} ≠ ∅ and no label of the other five moods",
                                "others": "a label of the other five moods and no calm label",
                                "mood_labels": {k: list(v) for k, v in KOTE_MOODS.items()}}}
    splits = {}
    for split in ("val", "test"):
        path = kote_dir() / f"{split}.tsv"
        calm, other = kote_sets(path)
        t0 = time.perf_counter()
        cv, ov = clf.predict(calm), clf.predict(other)
        creq = [understand(t, lex) for t in calm]
        oreq = [understand(t, lex) for t in other]
        splits[split] = (cv, ov, creq, oreq)
        print(f"KOTE {split}: {len(calm)} calm, {len(other)} others "
              f"({time.perf_counter() - t0:.1f} s to read)")
    if fit:
        cv, ov, creq, oreq = splits["val"]
        sweep = {}
        keep = moodrules.HINT_WEIGHT["relief"]
        try:
            for w in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
                moodrules.HINT_WEIGHT["relief"] = w
                fig = _peace_figures(_with_rules(cv, creq)[0], _with_rules(ov, oreq)[0])
                sweep[str(w)] = fig
                print(f"  val relief weight {w:.1f}: recall {fig['recall']:.3f} "
                      f"precision {fig['precision']:.3f} F1 {fig['f1']:.3f}")
        finally:
            moodrules.HINT_WEIGHT["relief"] = keep
        out["val_sweep_relief_weight"] = sweep
        best = max(sweep, key=lambda k: (sweep[k]["f1"], -float(k)))
        out["val_best_relief_weight"] = float(best)
        print(f"  best on val: {best} (shipped: {keep})")
    out["relief_weight_shipped"] = moodrules.HINT_WEIGHT["relief"]
    for split, (cv, ov, creq, oreq) in splits.items():
        out[split] = {"classifier": _peace_figures(cv, ov),
                      "with_rules": _peace_figures(_with_rules(cv, creq)[0],
                                                   _with_rules(ov, oreq)[0])}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fit", action="store_true", help="sweep the relief weight on KOTE val")
    ap.add_argument("--variant", default="auto", choices=("auto", "int8", "fp32"))
    ap.add_argument("--no-kote", action="store_true", help="skip KOTE (e.g. ../shared absent)")
    args = ap.parse_args(argv)

    clf = EmotionClassifier.load(variant=args.variant, threads=2)
    lex = Lexicon.from_catalog(load_default())
    result: dict = {"machine": machine(), "model_variant": clf.variant,
                    "rules": {"hint_weight": dict(moodrules.HINT_WEIGHT),
                              "negation_keep": moodrules.NEGATION_KEEP,
                              "sarcasm_move": moodrules.SARCASM_MOVE}}
    probe = probe_report(clf, lex)
    result["probe"] = probe
    print(f"\nchat probe ({probe['n']} sentences): accuracy, classifier alone → with rules")
    for ph, v in probe["accuracy"].items():
        print(f"  {ph:16} n={v['n']:3}  {v['classifier']:.3f} → {v['with_rules']:.3f}")
    print(f"  rules fired: {probe['rules_fired']}")

    if not args.no_kote and (kote_dir() / "test.tsv").exists():
        kote = kote_report(clf, lex, fit=args.fit)
        result["kote_peace"] = kote
        for split in ("val", "test"):
            for key in ("classifier", "with_rules"):
                f = kote[split][key]
                print(f"  KOTE {split} {key:10}: calm read 평화 {f['calm_read_peace']}/{f['calm_n']} "
                      f"(recall {f['recall']:.3f}); others read 평화 {f['others_read_peace']}/"
                      f"{f['others_n']} (FPR {f['false_positive_rate']:.4f}); precision "
                      f"{f['precision']:.3f}")
    elif not args.no_kote:
        print(f"KOTE not found under {kote_dir()}: skipped")
    write_results(RESULTS, result)
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
