"""Bundles: fit, predict from rows and tables, and the same predictions after saving and loading."""

from __future__ import annotations

import pickle

import lightgbm
import numpy as np
import pyarrow as pa
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression, Ridge

from kawa.models import Bundle, BundleError
from kawa.models.metrics import auc
from kawa.stores.artifacts import ArtifactStore

CLASSIFIERS = {
    "logistic": lambda: LogisticRegression(max_iter=1000),
    "hist_gradient_boosting": lambda: HistGradientBoostingClassifier(max_iter=30, random_state=0),
    "lightgbm": lambda: lightgbm.LGBMClassifier(n_estimators=60, verbose=-1, random_state=0),
}


@pytest.fixture(scope="module", params=list(CLASSIFIERS))
def fitted(request: pytest.FixtureRequest, table: pa.Table) -> Bundle:
    return Bundle.fit(table.slice(0, 2000), label="bought", estimator=CLASSIFIERS[request.param]())


def test_each_flavor_learns_the_label(fitted: Bundle, table: pa.Table) -> None:
    holdout = table.slice(2000)
    metrics = fitted.evaluate(holdout)
    recency_only = auc(holdout.column("bought").to_numpy(), -holdout.column("recency_days").to_numpy())
    assert metrics["rows"] == holdout.num_rows
    assert metrics["auc"] > recency_only + 0.03
    assert 0 < metrics["log_loss"] < 0.69  # better than a coin


def test_the_flavor_and_preprocessing_suit_the_estimator(fitted: Bundle) -> None:
    linear = isinstance(getattr(fitted.flavor, "estimator", None), LogisticRegression)
    names = fitted.preprocessor.feature_names
    assert "age=missing" in names  # training data had missing ages
    if linear:
        assert fitted.options == {**fitted.options, "encoding": "onehot", "scale": True}
        assert {"media=Twitter", "media=missing", "gender=missing"} <= set(names)
    else:  # trees: ordinal codes, no scaling
        assert fitted.options == {**fitted.options, "encoding": "ordinal", "scale": False}
        assert "media" in names and "gender" in names
    assert {"signup.year", "signup.month", "signup.weekday", "signup.hour", "signup.days"} <= set(names)


def test_predict_one_predict_and_predict_table_agree(fitted: Bundle, table: pa.Table) -> None:
    sample = table.slice(2000, 200)
    rows = sample.to_pylist()
    # Human-readable JSON: date-times as ISO text, as an HTTP client sends them.
    for row in rows[::2]:
        row["signup"] = row["signup"].isoformat().replace("+00:00", "Z")
    from_table = fitted.predict_table(sample)
    one_by_one = np.array([fitted.predict_one(row) for row in rows])
    listed = np.array(fitted.predict(rows))
    assert from_table.shape == (200,)
    np.testing.assert_allclose(one_by_one, from_table, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(listed, from_table, rtol=1e-12, atol=1e-15)
    assert ((from_table > 0) & (from_table < 1)).all()
    assert from_table.std() > 0.05  # not a constant


def test_a_saved_bundle_predicts_the_same(fitted: Bundle, table: pa.Table, artifacts: ArtifactStore) -> None:
    paths = fitted.save(artifacts, "models/shop/loyalty/1")
    assert paths[-1] == "models/shop/loyalty/1/bundle.json"
    loaded = Bundle.load(artifacts, "models/shop/loyalty/1")
    assert loaded.flavor.name == fitted.flavor.name
    assert loaded.signature == fitted.signature
    np.testing.assert_array_equal(loaded.predict_table(table), fitted.predict_table(table))
    row = {
        "age": 34,
        "gender": "male",
        "media": "Twitter",
        "recency_days": 3,
        "vip": False,
        "signup": "2025-06-01",
    }
    assert loaded.predict_one(row) == fitted.predict_one(row)


def test_a_pickled_bundle_predicts_the_same(fitted: Bundle, table: pa.Table) -> None:
    # Pipeline steps hand bundles to the next step's process as pickles.
    copy = pickle.loads(pickle.dumps({"bundle": fitted}))["bundle"]
    np.testing.assert_array_equal(copy.predict_table(table), fitted.predict_table(table))
    row = {"age": 34, "gender": "male", "media": "Twitter", "recency_days": 3}
    row |= {"vip": False, "signup": "2025-06-01"}
    assert copy.predict_one(row) == fitted.predict_one(row)


def test_the_signature_describes_human_readable_inputs(fitted: Bundle) -> None:
    signature = fitted.signature
    by_name = {f["name"]: f for f in signature["inputs"]}
    assert list(by_name) == ["age", "gender", "media", "recency_days", "vip", "signup"]
    kinds = {name: (f["kind"], f["type"]) for name, f in by_name.items()}
    assert kinds == {
        "age": ("numeric", "number"),
        "gender": ("categorical", "string"),
        "media": ("categorical", "string"),
        "recency_days": ("numeric", "number"),
        "vip": ("boolean", "boolean"),
        "signup": ("datetime", "date-time"),
    }
    assert sorted(by_name["media"]["categories"]) == ["Mail", "Search", "TV", "Twitter"]
    assert by_name["media"]["categories"][0] == "Twitter"  # most frequent first
    assert signature["output"] == {
        "task": "classification",
        "label": "bought",
        "kind": "probability",
        "classes": [False, True],
        "positive_class": True,
    }
    # The example row is a valid input.
    assert 0 < fitted.predict_one(signature["example"]) < 1


def test_batches_of_any_size_give_the_same_predictions(table: pa.Table) -> None:
    bundle = Bundle.fit(table, label="bought", estimator=LogisticRegression(max_iter=1000))
    whole = bundle.predict_table(table)
    np.testing.assert_allclose(bundle.predict_table(table, batch_rows=333), whole, rtol=1e-12)
    assert bundle.predict_table(table.slice(0, 0)).shape == (0,)
    chunked = pa.concat_tables([table.slice(0, 1000), table.slice(1000, 7), table.slice(1007)])
    np.testing.assert_allclose(bundle.predict_table(chunked), whole, rtol=1e-12)
    refit = Bundle.fit(chunked, label="bought", estimator=LogisticRegression(max_iter=1000))
    assert refit.signature == bundle.signature
    assert bundle.predict([]) == []


def test_pandas_frames_are_accepted(table: pa.Table) -> None:
    frame = table.to_pandas()
    bundle = Bundle.fit(frame, label="bought", estimator=LogisticRegression(max_iter=1000))
    np.testing.assert_allclose(bundle.predict_table(frame), bundle.predict_table(table), rtol=1e-12)


def test_declared_kinds_override_inferred_ones() -> None:
    table = pa.table({"zip": [75001, 75002, 13001, 75001] * 25, "spend": [1.0, 2.0, 3.0, 4.0] * 25})
    table = table.append_column("big", pa.array([s > 2 for s in table.column("spend").to_pylist()]))
    bundle = Bundle.fit(table, label="big", estimator=LogisticRegression(), kinds={"zip": "categorical"})
    assert bundle.signature["inputs"][0]["type"] == "integer"
    assert {"zip=75001", "zip=missing"} <= set(bundle.preprocessor.feature_names)
    assert 0 < bundle.predict_one({"zip": 13001, "spend": 3.5}) < 1
    # Date-times kept as ISO text are declared too.
    text = pa.table(
        {"seen": ["2026-01-05T10:00:00Z", "2026-02-01T00:00:00Z"] * 10, "big": [True, False] * 10}
    )
    dated = Bundle.fit(text, label="big", estimator=LogisticRegression(), kinds={"seen": "datetime"})
    assert (
        dated.predict_one({"seen": "2026-01-05T10:00:00Z"}) > 0.5 > dated.predict_one({"seen": "2026-02-01"})
    )


def test_regressors_predict_values(table: pa.Table) -> None:
    train, holdout = table.slice(0, 2500), table.slice(2500)
    for estimator in (Ridge(), lightgbm.LGBMRegressor(n_estimators=50, verbose=-1)):
        bundle = Bundle.fit(
            train, label="recency_days", estimator=estimator, features=["age", "media", "vip"]
        )
        assert bundle.task == "regression"
        metrics = bundle.evaluate(holdout)
        assert set(metrics) == {"rows", "rmse", "mae", "r2"}
        assert metrics["rmse"] >= metrics["mae"] > 0
        loaded = Bundle.from_files(bundle.to_files())
        row = {"age": 30, "media": "TV", "vip": True}
        assert loaded.predict_one(row) == pytest.approx(bundle.predict_one(row), rel=1e-12)
        assert loaded.predict_one(row) == pytest.approx(
            float(loaded.predict_table(pa.Table.from_pylist([row]))[0])
        )


def test_multi_class_predictions_are_class_probabilities(table: pa.Table) -> None:
    for estimator in (
        LogisticRegression(max_iter=1000),
        lightgbm.LGBMClassifier(n_estimators=20, verbose=-1),
    ):
        bundle = Bundle.fit(
            table, label="media", estimator=estimator, features=["age", "recency_days", "vip"]
        )
        one = bundle.predict_one({"age": 30, "recency_days": 2.0, "vip": True})
        assert isinstance(one, dict) and set(one) == {"Mail", "Search", "TV", "Twitter"}
        assert sum(one.values()) == pytest.approx(1.0)
        many = bundle.predict_table(table.slice(0, 10))
        assert many.shape == (10, 4)
        np.testing.assert_allclose(many.sum(axis=1), 1.0)
        assert "log_loss" in bundle.evaluate(table) and "auc" not in bundle.evaluate(table)


def test_fitting_refuses_what_cannot_work(table: pa.Table) -> None:
    with pytest.raises(BundleError, match="'nope' is not a column"):
        Bundle.fit(table, label="nope", estimator=LogisticRegression())
    single = table.filter(pa.compute.equal(table.column("vip"), True)).select(["age", "vip"])
    with pytest.raises(BundleError, match="single class"):
        Bundle.fit(single, label="vip", estimator=LogisticRegression())
    with pytest.raises(BundleError, match="null values"):
        Bundle.fit(
            pa.table({"x": [1.0, 2.0, 3.0], "y": [1, None, 0]}), label="y", estimator=LogisticRegression()
        )
    listy = pa.table({"x": pa.array([[1], [2]]), "y": [0, 1]})
    with pytest.raises(BundleError, match="declare its kind"):
        Bundle.fit(listy, label="y", estimator=LogisticRegression())
    with pytest.raises(TypeError, match="no model flavor accepts"):
        Bundle.fit(table, label="bought", estimator=object())
