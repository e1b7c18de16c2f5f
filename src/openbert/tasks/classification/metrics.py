"""Classification metrics (numpy only): accuracy, F1, Matthews correlation, Pearson, Spearman.

Every function takes 1-D sequences of equal length: ``predictions`` (class ids or scores) and
``labels`` (gold class ids or scores) and returns a Python float.
"""
from __future__ import annotations

import numpy as np


def _pair(predictions, labels) -> tuple[np.ndarray, np.ndarray]:
    p, y = np.asarray(predictions).reshape(-1), np.asarray(labels).reshape(-1)
    if p.shape != y.shape:
        raise ValueError(f"{p.size} predictions for {y.size} labels")
    if p.size == 0:
        raise ValueError("no predictions to score")
    return p, y


def accuracy(predictions, labels) -> float:
    """Fraction of predictions equal to the label."""
    p, y = _pair(predictions, labels)
    return float(np.mean(p == y))


def f1_score(predictions, labels, positive=1) -> float:
    """Binary F1 of class ``positive``: 2PR / (P + R); 0.0 when there is no true positive."""
    p, y = _pair(predictions, labels)
    tp = float(np.sum((p == positive) & (y == positive)))
    if tp == 0:
        return 0.0
    precision = tp / float(np.sum(p == positive))
    recall = tp / float(np.sum(y == positive))
    return 2 * precision * recall / (precision + recall)


def matthews_corrcoef(predictions, labels) -> float:
    """Matthews correlation coefficient (multi-class form; for two classes
    (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN))); 0.0 when undefined."""
    p, y = _pair(predictions, labels)
    classes = np.union1d(p, y)
    pi, yi = np.searchsorted(classes, p), np.searchsorted(classes, y)
    c = np.zeros((classes.size, classes.size), dtype=np.float64)  # c[true, predicted]
    np.add.at(c, (yi, pi), 1.0)
    t_k, p_k = c.sum(axis=1), c.sum(axis=0)
    n, correct = c.sum(), np.trace(c)
    cov_yp = correct * n - np.dot(t_k, p_k)
    cov_pp = n * n - np.dot(p_k, p_k)
    cov_yy = n * n - np.dot(t_k, t_k)
    if cov_pp == 0 or cov_yy == 0:
        return 0.0
    return float(cov_yp / np.sqrt(cov_pp * cov_yy))


def pearson(predictions, labels) -> float:
    """Pearson correlation coefficient; 0.0 when either side is constant."""
    p, y = _pair(predictions, labels)
    p, y = p.astype(np.float64) - p.mean(), y.astype(np.float64) - y.mean()
    denom = np.sqrt(np.dot(p, p) * np.dot(y, y))
    return float(np.dot(p, y) / denom) if denom > 0 else 0.0


def rankdata(x) -> np.ndarray:
    """Ranks 1..n, ties get the average of the ranks they span (as scipy.stats.rankdata)."""
    x = np.asarray(x).reshape(-1)
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    # start of each run of equal values
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], x.size]
    avg = (starts + ends + 1) / 2.0  # mean of ranks start+1 .. end
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def spearman(predictions, labels) -> float:
    """Spearman rank correlation: Pearson of the (tie-averaged) ranks."""
    p, y = _pair(predictions, labels)
    return pearson(rankdata(p), rankdata(y))


METRICS = {"accuracy": accuracy, "f1": f1_score, "mcc": matthews_corrcoef,
           "pearson": pearson, "spearman": spearman}


def compute(names, predictions, labels) -> dict[str, float]:
    """``{"eval_<name>": value}`` for each metric name in ``names`` (keys of ``METRICS``)."""
    return {f"eval_{n}": METRICS[n](predictions, labels) for n in names}
