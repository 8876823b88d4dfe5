"""Classifier quality on the held-out split, beside a TF-IDF baseline, plus the probe.

One implementation for ``moodtune eval`` (the report alone) and ``benchmarks/classifier.py``
(the report plus speed): the served model (int8 one sentence per call, as the bot runs it, and
fp32/int8 in batches) on the test split it never trained on, scored on all six labels and on the
five the source corpus can express; in the same run a character n-gram TF-IDF + logistic
regression baseline trained on the same train split, with a paired bootstrap interval for the
gain; and the held-out probe of music talk and everyday statements
(``training/data/probe_ko.csv``) that the corpus split cannot show.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

__all__ = ["paired_bootstrap", "print_quality", "quality", "split"]


def split(seed: int):
    from training.data import (
        build_dataset,
        default_label_map_path,
        default_peace_path,
        load_label_map,
    )
    from training.paths import emotion_csv

    lmap = load_label_map(default_label_map_path())
    return build_dataset([(emotion_csv(), lmap), (default_peace_path(), lmap)], seed=seed)


def paired_bootstrap(y, pred_a, pred_b, labels: list[int], *, rounds: int = 2000,
                     seed: int = 0) -> dict:
    """95 % interval of macro-F1(a) - macro-F1(b) over resampled test sets.

    "Beats the baseline clearly" should not hinge on one split's luck: resampling the same
    sentences for both models keeps their errors paired, so the interval is tight and honest.
    """
    from training.classifier import _macro_f1

    y, pred_a, pred_b = (np.asarray(v, dtype=np.int64) for v in (y, pred_a, pred_b))
    rng = np.random.default_rng(seed)
    deltas = np.empty(rounds)
    for r in range(rounds):
        i = rng.integers(0, len(y), len(y))
        deltas[r] = _macro_f1(y[i], pred_a[i], labels) - _macro_f1(y[i], pred_b[i], labels)
    lo, hi = np.percentile(deltas, [2.5, 97.5])
    return {"delta": _macro_f1(y, pred_a, labels) - _macro_f1(y, pred_b, labels),
            "ci95": [float(lo), float(hi)], "p_not_better": float(np.mean(deltas <= 0)),
            "rounds": rounds}


def quality(seed: int, model_dir: Path | None) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from inference.classifier import EmotionClassifier
    from inference.emotions import LABELS, index_of
    from training.classifier import evaluate_predictions
    from training.data import read_probe

    data = split(seed)
    test_x = [e.text for e in data.test]
    test_y = [e.label for e in data.test]
    five = [i for i in range(6) if i != index_of("평화")]
    out: dict = {"test_size": len(test_x), "test_per_class": data.describe()["test"]}

    t = time.perf_counter()
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), min_df=2, sublinear_tf=True)
    a = vec.fit_transform([e.text for e in data.train])
    lr = LogisticRegression(C=3, max_iter=3000, class_weight="balanced")
    lr.fit(a, [e.label for e in data.train])
    base_pred = lr.predict(vec.transform(test_x))
    out["baseline_train_seconds"] = round(time.perf_counter() - t, 1)

    ya = np.asarray(test_y)
    mask = np.isin(ya, five)  # the five-label view: sentences of the five source labels

    def score(pred):
        pred = np.asarray(pred)
        m6 = evaluate_predictions(test_y, pred)
        m5 = evaluate_predictions(ya[mask], pred[mask], labels=five)
        return {"accuracy_6": m6["accuracy"], "macro_f1_6": m6["macro_f1"],
                "accuracy_5": m5["accuracy"], "macro_f1_5": m5["macro_f1"],
                "per_class_f1": {k: v["f1"] for k, v in m6["per_class"].items()}}

    out["tfidf_logreg"] = score(base_pred)
    preds = {}
    for variant in ("fp32", "int8"):
        clf = EmotionClassifier.load(model_dir, variant=variant, threads=2)
        preds[variant] = clf.predict(test_x).argmax(1)
        out[f"onnx_{variant}"] = score(preds[variant])
    # The bot classifies one message per call. int8 is dynamically quantised (activation scales
    # per call), so batched int8 scores differ a little from what users get: score that too.
    def served(texts: list[str]) -> np.ndarray:
        return np.asarray([int(clf.predict_one(t).argmax()) for t in texts])

    preds["served"] = served(test_x)
    out["onnx_int8_served"] = score(preds["served"])
    out["int8_batched_vs_served_agreement"] = float(np.mean(preds["served"] == preds["int8"]))
    # Held-out music talk and everyday statements: registers the corpus split cannot show.
    probe = read_probe()
    probe_x = [t for t, _, _ in probe]
    probe_y = np.asarray([y for _, y, _ in probe])
    topics = np.asarray([t for _, _, t in probe])
    # `clf` is the int8 model, loaded last in the loop above
    probe_pred = {"onnx_int8": served(probe_x),
                  "tfidf_logreg": lr.predict(vec.transform(probe_x))}
    out["probe"] = {name: {t: float(np.mean(pred[topics == t] == probe_y[topics == t]))
                           for t in sorted(set(topics))}
                    for name, pred in probe_pred.items()}
    out["probe"]["size"] = {t: int(np.sum(topics == t)) for t in sorted(set(topics))}
    out["int8_vs_baseline"] = {
        "six": paired_bootstrap(ya, preds["served"], base_pred, list(range(6))),
        "five": paired_bootstrap(ya[mask], preds["served"][mask], base_pred[mask], five),
    }
    out["labels"] = list(LABELS)
    return out


def print_quality(q: dict) -> None:
    """The quality table and the probe, as both commands print them."""
    print(f"\nQuality on the held-out test split ({q['test_size']} sentences, never trained on)")
    print(f"{'model':<18}{'acc (6)':>9}{'mF1 (6)':>9}{'acc (5)':>9}{'mF1 (5)':>9}")
    for k in ("tfidf_logreg", "onnx_fp32", "onnx_int8", "onnx_int8_served"):
        m = q[k]
        print(f"{k:<18}{m['accuracy_6']:>9.4f}{m['macro_f1_6']:>9.4f}{m['accuracy_5']:>9.4f}"
              f"{m['macro_f1_5']:>9.4f}")
    for view, name in (("six", "all six labels"), ("five", "the five source labels")):
        b = q["int8_vs_baseline"][view]
        print(f"served int8 vs TF-IDF baseline, macro-F1 on {name}: {b['delta']:+.4f} "
              f"(paired bootstrap 95% CI {b['ci95'][0]:+.4f} .. {b['ci95'][1]:+.4f}, "
              f"P(not better) {b['p_not_better']:.3f})")
    pr = q["probe"]
    print("held-out probe accuracy (training/data/probe_ko.csv): " + ", ".join(
        f"{t} ({n}) int8 {pr['onnx_int8'][t]:.2f} / TF-IDF {pr['tfidf_logreg'][t]:.2f}"
        for t, n in pr["size"].items()))
    print("per-class F1 (int8 as served):",
          json.dumps(q["onnx_int8_served"]["per_class_f1"], ensure_ascii=False))
    print("onnx_int8 = batches of 32 (dynamic quantisation scales per call); onnx_int8_served = "
          "one sentence per call, as the bot runs it; argmax agreement "
          f"{q['int8_batched_vs_served_agreement']:.3f}")
