"""Holdout metrics agree with scikit-learn's on known examples."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as sk
from sklearn.calibration import calibration_curve

from kawa.models import metrics


@pytest.fixture(scope="module")
def scored() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    p = rng.random(5000)
    y = (rng.random(5000) < p**1.5).astype(int)  # miscalibrated on purpose
    p[:500] = np.round(p[:500], 1)  # plenty of ties
    return y, p


def test_auc_matches_scikit_learn_with_ties(scored: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = scored
    assert metrics.auc(y, p) == pytest.approx(sk.roc_auc_score(y, p), abs=1e-12)
    assert metrics.auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert metrics.auc([0, 0, 1], [0.1, 0.2, 0.9]) == 1.0
    assert metrics.auc([1, 1, 1], [0.1, 0.2, 0.9]) is None


def test_log_loss_matches_scikit_learn(scored: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = scored
    assert metrics.log_loss(y, p) == pytest.approx(sk.log_loss(y, p), rel=1e-9)
    extreme = np.array([0.0, 1.0, 1.0, 0.3])
    truth = np.array([1, 1, 0, 0])
    assert metrics.log_loss(truth, extreme) == pytest.approx(sk.log_loss(truth, extreme), rel=1e-9)
    proba = np.array([[0.2, 0.5, 0.3], [0.1, 0.1, 0.8], [0.6, 0.3, 0.1]])
    labels = np.array([1, 2, 2])
    assert metrics.log_loss(labels, proba) == pytest.approx(sk.log_loss(labels, proba, labels=[0, 1, 2]))


def test_calibration_bins_match_calibration_curve(scored: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = scored
    observed, predicted = calibration_curve(y, p, n_bins=10, strategy="uniform")
    found = metrics.calibration(y, p, bins=10)
    table = found["reliability"]
    np.testing.assert_allclose([b["observed_rate"] for b in table], observed)
    np.testing.assert_allclose([b["mean_predicted"] for b in table], predicted)
    assert sum(b["count"] for b in table) == len(y)
    counts = np.array([b["count"] for b in table])
    ece = float((np.abs(observed - predicted) * counts).sum() / len(y))
    assert found["ece"] == pytest.approx(ece)
    assert found["ece"] > 0.05  # p**1.5 is far from calibrated
    calibrated = (np.random.default_rng(1).random(len(p)) < p).astype(int)
    assert metrics.calibration(calibrated, p)["ece"] < 0.03


def test_classification_metrics_bundle_them(scored: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = scored
    found = metrics.classification_metrics(y, p)
    assert found["brier"] == pytest.approx(sk.brier_score_loss(y, p))
    assert found["accuracy"] == pytest.approx(sk.accuracy_score(y, p >= 0.5))
    assert found["positive_rate"] == pytest.approx(y.mean())
    assert found["rows"] == len(y)


def test_regression_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(10, 3, 1000)
    predicted = y + rng.normal(0, 1, 1000)
    found = metrics.regression_metrics(y, predicted)
    assert found["rmse"] == pytest.approx(np.sqrt(sk.mean_squared_error(y, predicted)))
    assert found["mae"] == pytest.approx(sk.mean_absolute_error(y, predicted))
    assert found["r2"] == pytest.approx(sk.r2_score(y, predicted))
