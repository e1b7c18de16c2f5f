"""Metrics against hand-computed values and against scipy."""
import math

import numpy as np
import pytest

from openbert.tasks.classification import metrics


def test_accuracy():
    assert metrics.accuracy([0, 1, 1, 0], [0, 1, 0, 0]) == 0.75


def test_f1_by_hand():
    # TP=2, predicted positive=3, actual positive=3 -> P=R=2/3
    assert metrics.f1_score([1, 1, 0, 1, 0], [1, 0, 0, 1, 1]) == pytest.approx(2 / 3)
    assert metrics.f1_score([0, 0], [1, 0]) == 0.0
    # class 0 as positive: TP=2, predicted 3, actual 2 -> P=2/3, R=1 -> 0.8
    assert metrics.f1_score([0, 0, 0, 1], [0, 1, 0, 1], positive=0) == pytest.approx(0.8)


def test_mcc_by_hand():
    # TP=2 FP=1 FN=1 TN=1: (2*1 - 1*1) / sqrt(3*3*2*2) = 1/6
    assert metrics.matthews_corrcoef([1, 1, 0, 1, 0], [1, 0, 0, 1, 1]) == pytest.approx(1 / 6)
    assert metrics.matthews_corrcoef([1, 0, 1], [1, 0, 1]) == pytest.approx(1.0)
    assert metrics.matthews_corrcoef([0, 1, 0], [1, 0, 1]) == pytest.approx(-1.0)
    assert metrics.matthews_corrcoef([1, 1, 1], [1, 0, 1]) == 0.0  # undefined -> 0


def test_mcc_multiclass_formula():
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 3, 200), rng.integers(0, 3, 200)
    c = np.zeros((3, 3))
    for a, b in zip(y, p):
        c[a, b] += 1
    t, q, n, s = c.sum(1), c.sum(0), c.sum(), np.trace(c)
    want = (s * n - t @ q) / math.sqrt((n * n - q @ q) * (n * n - t @ t))
    assert metrics.matthews_corrcoef(p, y) == pytest.approx(want)


def test_pearson_spearman_by_hand():
    assert metrics.pearson([1, 2, 3], [1, 2, 4]) == pytest.approx(9 / math.sqrt(84))
    # ranks with ties: [1, 2.5, 2.5, 4] vs [1, 3, 2, 4] -> 4.5 / sqrt(4.5 * 5)
    assert metrics.spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(4.5 / math.sqrt(22.5))
    assert list(metrics.rankdata([10, 30, 20, 20])) == [1.0, 4.0, 2.5, 2.5]
    assert metrics.pearson([1, 1, 1], [1, 2, 3]) == 0.0


def test_against_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    x = rng.normal(size=300)
    y = 0.5 * x + rng.normal(size=300)
    yr = np.round(y, 1)  # ties
    assert metrics.pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-12)
    assert metrics.spearman(x, yr) == pytest.approx(stats.spearmanr(x, yr)[0], abs=1e-12)
    assert np.allclose(metrics.rankdata(yr), stats.rankdata(yr))


def test_compute_and_errors():
    out = metrics.compute(("accuracy", "f1"), [1, 0], [1, 1])
    assert out == {"eval_accuracy": 0.5, "eval_f1": pytest.approx(2 / 3)}
    with pytest.raises(ValueError):
        metrics.accuracy([1, 0], [1])
    with pytest.raises(ValueError):
        metrics.accuracy([], [])
