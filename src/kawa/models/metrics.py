"""Holdout metrics for the registry: AUC, ROC, log loss, calibration of classifiers; RMSE, MAE of regressors.

Plain numpy, so they match scikit-learn's definitions without importing it. Undefined values (AUC
with one class present) are None, so metrics stay valid JSON.

>>> round(auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]), 3)
0.75
>>> regression_metrics([1.0, 2.0, 4.0], [1.0, 3.0, 2.0])["mae"]
1.0
>>> roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
{'fpr': [0.0, 0.0, 0.5, 0.5, 1.0], 'tpr': [0.0, 0.5, 0.5, 1.0, 1.0]}
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike


def auc(y_true: ArrayLike, score: ArrayLike) -> float | None:
    """Area under the ROC curve for 0/1 labels (ties count half); None when only one class is present."""
    y = np.asarray(y_true, dtype=bool)
    s = np.asarray(score, dtype=np.float64)
    positives = int(y.sum())
    negatives = y.size - positives
    if positives == 0 or negatives == 0:
        return None
    ranks = _average_ranks(s)
    return float((ranks[y].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def roc_curve(y_true: ArrayLike, score: ArrayLike, max_points: int = 101) -> dict[str, list[float]] | None:
    """The ROC curve as false and true positive rates from (0, 0) to (1, 1), one point per distinct score
    (as sklearn.metrics.roc_curve without dropping collinear points), thinned to about `max_points`
    points so it fits in the registry; None when only one class is present."""
    y = np.asarray(y_true, dtype=bool)
    s = np.asarray(score, dtype=np.float64)
    positives = int(y.sum())
    negatives = y.size - positives
    if positives == 0 or negatives == 0:
        return None
    order = np.argsort(-s, kind="mergesort")
    ranked, hits = s[order], y[order]
    # The last row of each run of equal scores: a threshold takes all tied rows or none.
    ends = np.r_[np.flatnonzero(ranked[1:] != ranked[:-1]), ranked.size - 1]
    tpr = np.r_[0.0, np.cumsum(hits)[ends] / positives]
    fpr = np.r_[0.0, np.cumsum(~hits)[ends] / negatives]
    if tpr.size > max_points:
        keep = np.unique(np.linspace(0, tpr.size - 1, max_points).round().astype(np.int64))
        tpr, fpr = tpr[keep], fpr[keep]
    return {"fpr": [round(float(v), 6) for v in fpr], "tpr": [round(float(v), 6) for v in tpr]}


def log_loss(y_true: ArrayLike, proba: ArrayLike) -> float:
    """Mean negative log-likelihood: `proba` is P(class 1) for 0/1 labels, or (n, k) class
    probabilities for labels 0..k-1. Probabilities are clipped away from 0 and 1 like scikit-learn's."""
    y = np.asarray(y_true)
    p = np.asarray(proba, dtype=np.float64)
    eps = np.finfo(np.float64).eps
    if p.ndim == 1:
        p = np.column_stack([1.0 - p, p])
    p = np.clip(p, eps, 1.0 - eps)
    p = p / p.sum(axis=1, keepdims=True)
    return float(-np.log(p[np.arange(y.size), y.astype(np.int64)]).mean())


def calibration(y_true: ArrayLike, proba: ArrayLike, bins: int = 10) -> dict[str, Any]:
    """Expected calibration error over `bins` equal-width probability bins, with the reliability table
    (each non-empty bin's mean predicted probability, observed positive rate and row count)."""
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(proba, dtype=np.float64)
    # Same binning as sklearn.calibration.calibration_curve(strategy="uniform").
    index = np.searchsorted(np.linspace(0.0, 1.0, bins + 1)[1:-1], p)
    counts = np.bincount(index, minlength=bins)
    predicted = np.bincount(index, weights=p, minlength=bins)
    observed = np.bincount(index, weights=y, minlength=bins)
    table = [
        {
            "bin": i,
            "mean_predicted": float(predicted[i] / counts[i]),
            "observed_rate": float(observed[i] / counts[i]),
            "count": int(counts[i]),
        }
        for i in range(bins)
        if counts[i] > 0
    ]
    ece = float(np.abs(predicted - observed).sum() / max(y.size, 1))
    return {"ece": ece, "reliability": table}


def classification_metrics(y_true: ArrayLike, proba: ArrayLike) -> dict[str, Any]:
    """AUC and the ROC curve, log loss, Brier score, calibration and accuracy of a classifier on a holdout.

    `proba` is P(class 1) for a binary model (labels 0/1) or (n, k) probabilities (labels 0..k-1).
    """
    y = np.asarray(y_true).astype(np.int64)
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim == 2:
        return {
            "rows": int(y.size),
            "log_loss": log_loss(y, p),
            "accuracy": float((p.argmax(axis=1) == y).mean()) if y.size else None,
        }
    calib = calibration(y, p)
    return {
        "rows": int(y.size),
        "positive_rate": float(y.mean()) if y.size else None,
        "auc": auc(y, p),
        "log_loss": log_loss(y, p),
        "brier": float(((p - y) ** 2).mean()) if y.size else None,
        "accuracy": float(((p >= 0.5) == (y == 1)).mean()) if y.size else None,
        "ece": calib["ece"],
        "reliability": calib["reliability"],
        "roc": roc_curve(y, p),
    }


def regression_metrics(y_true: ArrayLike, predicted: ArrayLike) -> dict[str, Any]:
    """RMSE, MAE and R² of a regressor on a holdout."""
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(predicted, dtype=np.float64)
    error = p - y
    variance = float(((y - y.mean()) ** 2).sum()) if y.size else 0.0
    return {
        "rows": int(y.size),
        "rmse": float(np.sqrt((error**2).mean())) if y.size else None,
        "mae": float(np.abs(error).mean()) if y.size else None,
        "r2": 1.0 - float((error**2).sum()) / variance if variance > 0 else None,
    }


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of `values`, ties sharing their average rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    # Start of each run of equal values, and its average rank.
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], values.size]
    average = (starts + ends + 1) / 2.0
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat(average, ends - starts)
    return ranks
