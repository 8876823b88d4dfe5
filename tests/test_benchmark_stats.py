"""The fast macro-F1 behind calibration and the benchmark's bootstrap must match sklearn."""

import numpy as np
import pytest

from training.classifier import _macro_f1, evaluate_predictions
from training.evaluate import paired_bootstrap


@pytest.mark.parametrize("labels", [list(range(6)), [0, 1, 2, 4, 5]])
def test_fast_macro_f1_matches_sklearn(labels):
    rng = np.random.default_rng(3)
    y = rng.choice(labels, 500)
    pred = np.where(rng.random(500) < 0.6, y, rng.integers(0, 6, 500))
    want = evaluate_predictions(y, pred, labels=labels)["macro_f1"]
    assert _macro_f1(y, pred, labels) == pytest.approx(want, abs=1e-12)


def test_paired_bootstrap_separates_better_from_equal():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 6, 2000)
    good = np.where(rng.random(2000) < 0.8, y, rng.integers(0, 6, 2000))
    poor = np.where(rng.random(2000) < 0.5, y, rng.integers(0, 6, 2000))
    b = paired_bootstrap(y, good, poor, list(range(6)), rounds=300)
    assert b["ci95"][0] > 0.15 and b["p_not_better"] == 0.0
    same = paired_bootstrap(y, good, good, list(range(6)), rounds=50)
    assert same["delta"] == 0.0 and same["ci95"] == [0.0, 0.0] and same["p_not_better"] == 1.0
