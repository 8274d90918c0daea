"""ML.EVALUATE's metrics, named as BigQuery ML names them; a metric the data leaves undefined is None.

>>> regression([1.0, 2.0, 4.0], [1.0, 3.0, 2.0])["mean_absolute_error"]
1.0
>>> classification([0, 0, 1, 1], [0.1, 0.6, 0.7, 0.8], threshold=0.5)["precision"]
0.6666666666666666
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from kawa.models.metrics import auc, log_loss

REGRESSION = (
    "mean_absolute_error",
    "mean_squared_error",
    "mean_squared_log_error",
    "median_absolute_error",
    "r2_score",
    "explained_variance",
)
CLASSIFICATION = ("precision", "recall", "accuracy", "f1_score", "log_loss", "roc_auc")
CLUSTERING = ("davies_bouldin_index", "mean_squared_distance")


def regression(y_true: ArrayLike, predicted: ArrayLike) -> dict[str, Any]:
    """Errors of a regressor; mean_squared_log_error only where no value is -1 or less."""
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(predicted, dtype=np.float64)
    if y.size == 0:
        return dict.fromkeys(REGRESSION)
    error = p - y
    variance = float(y.var())
    logs_defined = bool((y > -1).all() and (p > -1).all())
    return {
        "mean_absolute_error": float(np.abs(error).mean()),
        "mean_squared_error": float((error**2).mean()),
        "mean_squared_log_error": (
            float(((np.log1p(p) - np.log1p(y)) ** 2).mean()) if logs_defined else None
        ),
        "median_absolute_error": float(np.median(np.abs(error))),
        "r2_score": 1.0 - float((error**2).mean()) / variance if variance > 0 else None,
        "explained_variance": 1.0 - float(error.var()) / variance if variance > 0 else None,
    }


def classification(codes: ArrayLike, proba: ArrayLike, *, threshold: float = 0.5) -> dict[str, Any]:
    """Scores of a classifier from class numbers 0..k-1 and P(class 1) (binary: a class-1 prediction
    when it reaches `threshold`) or (n, k) probabilities (multi-class: macro averages, the argmax wins)."""
    y = np.asarray(codes, dtype=np.int64)
    p = np.asarray(proba, dtype=np.float64)
    if y.size == 0:
        return dict.fromkeys(CLASSIFICATION)
    if p.ndim == 1:
        predicted = (p >= threshold).astype(np.int64)
        precision, recall, f1 = _scores(y == 1, predicted == 1)
        roc_auc = auc(y, p)
    else:
        predicted = p.argmax(axis=1)
        seen = np.union1d(np.unique(y), np.unique(predicted))
        per_class = [_scores(y == c, predicted == c) for c in seen]
        precision, recall, f1 = (float(np.mean([s[i] or 0.0 for s in per_class])) for i in range(3))
        aucs = [a for c in range(p.shape[1]) if (a := auc(y == c, p[:, c])) is not None]
        roc_auc = float(np.mean(aucs)) if aucs else None
    return {
        "precision": precision,
        "recall": recall,
        "accuracy": float((predicted == y).mean()),
        "f1_score": f1,
        "log_loss": log_loss(y, p),
        "roc_auc": roc_auc,
    }


def clustering(features: np.ndarray, assigned: np.ndarray, distance: np.ndarray) -> dict[str, Any]:
    """Davies-Bouldin index of the assignment (None unless 2+ clusters and more rows than clusters)
    and the mean squared distance of each row to its centroid."""
    if len(assigned) == 0:
        return dict.fromkeys(CLUSTERING)
    clusters = len(np.unique(assigned))
    index = None
    if 1 < clusters < len(assigned):
        from sklearn.metrics import davies_bouldin_score

        index = float(davies_bouldin_score(features, assigned))
    return {"davies_bouldin_index": index, "mean_squared_distance": float((distance**2).mean())}


def _scores(actual: np.ndarray, predicted: np.ndarray) -> tuple[float | None, float | None, float | None]:
    """Precision, recall and F1 of one class given as boolean masks (None where undefined)."""
    hits = float((actual & predicted).sum())
    precision = hits / predicted.sum() if predicted.any() else None
    recall = hits / actual.sum() if actual.any() else None
    if precision is None or recall is None:
        return precision, recall, None
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return float(precision), float(recall), float(f1)
