"""What the models page shows: ROC curves kept with the metrics, feature importance from the flavor,
versions side by side, and notes where a version lacks a plot."""

from __future__ import annotations

import lightgbm
import numpy as np
import pyarrow as pa
import pytest
from sklearn import metrics as sk
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

from kawa.models import Bundle, Registry
from kawa.models.metrics import classification_metrics, roc_curve
from kawa.models.report import curves, metric_table, scalar_metrics


@pytest.fixture(scope="module")
def noisy(table: pa.Table) -> pa.Table:
    """The customers with a column of pure noise, which no model should find important."""
    noise = np.random.default_rng(9).normal(size=table.num_rows)
    return table.append_column("noise", pa.array(noise))


def test_the_roc_curve_matches_scikit_learn() -> None:
    rng = np.random.default_rng(4)
    score = np.round(rng.random(400), 2)  # ties
    y = (rng.random(400) < score).astype(int)
    found = roc_curve(y, score, max_points=10_000)
    assert found is not None
    fpr, tpr, _ = sk.roc_curve(y, score, drop_intermediate=False)
    np.testing.assert_allclose(found["fpr"], fpr, atol=1e-6)
    np.testing.assert_allclose(found["tpr"], tpr, atol=1e-6)
    thin = roc_curve(y, score, max_points=11)
    assert thin is not None and len(thin["fpr"]) == 11
    assert (thin["fpr"][0], thin["tpr"][0], thin["fpr"][-1], thin["tpr"][-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(thin["fpr"]) >= 0) and np.all(np.diff(thin["tpr"]) >= 0)
    # The area under the thinned curve stays close to the AUC.
    assert np.trapezoid(thin["tpr"], thin["fpr"]) == pytest.approx(sk.roc_auc_score(y, score), abs=0.02)
    assert roc_curve([1, 1], [0.2, 0.3]) is None
    assert classification_metrics(y, score)["roc"] == roc_curve(y, score)


@pytest.mark.parametrize(
    "estimator",
    [
        LogisticRegression(max_iter=1000),
        RandomForestClassifier(n_estimators=30, random_state=0),
        lightgbm.LGBMClassifier(n_estimators=40, verbose=-1),
    ],
    ids=["logistic", "forest", "lightgbm"],
)
def test_feature_importance_is_per_input_and_finds_the_signal(noisy: pa.Table, estimator: object) -> None:
    bundle = Bundle.fit(noisy, label="bought", estimator=estimator)
    shares = bundle.feature_importance()
    assert shares is not None
    # One share per input column (one-hot and date parts added up), largest first, summing to 1.
    assert set(shares) == {"age", "gender", "media", "recency_days", "vip", "signup", "noise"}
    assert list(shares.values()) == sorted(shares.values(), reverse=True)
    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares["recency_days"] > shares["noise"]


def test_a_flavor_that_cannot_tell_gives_no_importance(table: pa.Table) -> None:
    bundle = Bundle.fit(table, label="bought", estimator=KNeighborsClassifier())
    assert bundle.feature_importance() is None


def test_versions_side_by_side_and_their_curves(registry: Registry, noisy: pa.Table) -> None:
    train, holdout = noisy.slice(0, 2000), noisy.slice(2000)
    forest = Bundle.fit(
        train, label="bought", estimator=RandomForestClassifier(n_estimators=20, random_state=0)
    )
    knn = Bundle.fit(train, label="bought", estimator=KNeighborsClassifier())
    registry.register("shop", "buyer", forest, metrics=forest.evaluate(holdout))
    registry.register("shop", "buyer", knn, metrics={"auc": 0.61, "note": "hand-made"})
    v1, v2 = registry.list_versions("shop", "buyer")

    table = metric_table([v2, v1])
    assert table.versions == [2, 1]
    rows = dict(table.rows)
    assert rows["auc"][0] == 0.61 and rows["auc"][1] == pytest.approx(v1.metrics["auc"])
    assert rows["brier"] == [None, pytest.approx(v1.metrics["brier"])]
    assert "roc" not in rows and "reliability" not in rows and "note" not in rows
    assert scalar_metrics({"ok": True, "n": 3}) == {"n": 3}

    first = curves(registry, v1)
    assert first.roc is not None and first.roc["tpr"][-1] == 1.0
    assert first.reliability and first.importance and not first.missing
    stored_only = curves(registry, v1, importance=False)  # without loading the model
    assert stored_only.importance is None and stored_only.roc == first.roc and not stored_only.missing
    second = curves(registry, v2)
    assert second.roc is None and second.reliability is None and second.importance is None
    assert [line.split(":")[0] for line in second.missing] == [
        "ROC curve",
        "calibration",
        "feature importance",
    ]


def test_a_regressor_says_why_it_has_no_roc(registry: Registry, table: pa.Table) -> None:
    data = table.drop_columns(["bought"])
    bundle = Bundle.fit(data, label="recency_days", estimator=LinearRegression())
    registry.register("shop", "recency", bundle, metrics=bundle.evaluate(data))
    found = curves(registry, registry.show("shop", "recency"))
    assert found.importance is not None and found.roc is None
    assert found.missing == ["ROC curve and calibration: this model predicts a value, not a probability"]
