"""Training for CREATE MODEL: the training query's rows in, an all-in-one bundle and its metrics out.

Supervised types are `Bundle.fit` over a scikit-learn or LightGBM estimator configured from the
OPTIONS. k-means learns its preprocessing (one-hot categories, standardised numbers when
`standardize_features`) and clusters with scikit-learn's KMeans; its bundle holds a one-nearest-
neighbour classifier over the centroids, so it loads, serves and predicts `centroid_id` 1..k like any
other registry model (a prediction is the one-hot membership of the nearest centroid).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from kawa.models import Bundle, BundleError, RowError
from kawa.models.flavors.sklearn import SklearnFlavor
from kawa.models.preprocess import Preprocessor
from kawa.sqlml import metrics
from kawa.sqlml.errors import SQLModelError
from kawa.sqlml.inputs import as_inputs, check_types, find_column
from kawa.sqlml.model import CENTROID_LABEL, SQLModel, assign, evaluate_rows

SEED = 0  # splits and k-means starts repeat, so the same query and options give the same model
# What Preprocessor.learn gets for k-means; kept in the bundle like Bundle.fit keeps its own.
_KMEANS_PREPROCESSING: dict[str, Any] = {
    "encoding": "onehot",
    "unknown": "missing",
    "max_categories": 100,
    "min_frequency": 1,
    "sequences": "counts",
    "sequence_length": None,
}


@dataclass(frozen=True)
class Trained:
    """A trained SQL model before it is registered."""

    model: SQLModel
    training_rows: int
    evaluation_rows: int
    notes: list[str] = field(default_factory=list)


def train(name: str, options: dict[str, Any], table: pa.Table) -> Trained:
    """Fit the model `options` describe (already resolved) on `table`; SQLModelError if it cannot."""
    where = f"CREATE MODEL {name}"
    if table.num_rows == 0:
        raise SQLModelError(f"{where}: the training query returned no rows")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if options["model_type"] == "kmeans":
                trained = _kmeans(name, options, table, where)
            else:
                trained = _supervised(name, options, table, where)
        except (BundleError, RowError) as exc:
            raise SQLModelError(f"{where}: {exc}") from None
    notes = list(dict.fromkeys(_note(w) for w in caught))
    return Trained(trained.model, trained.training_rows, trained.evaluation_rows, notes)


def _note(caught: warnings.WarningMessage) -> str:
    """A warning from training in one line, with the option that helps where there is one."""
    first = str(caught.message).strip().splitlines()[0].rstrip(":")
    hint = "; raise max_iterations" if caught.category.__name__ == "ConvergenceWarning" else ""
    return f"{caught.category.__name__}: {first}{hint}"


def _kmeans(name: str, options: dict[str, Any], table: pa.Table, where: str) -> Trained:
    from sklearn.cluster import KMeans
    from sklearn.neighbors import KNeighborsClassifier

    features = table.column_names
    check_types(table, features, where)
    data = as_inputs(table, features)
    preprocessing = {**_KMEANS_PREPROCESSING, "scale": options["standardize_features"]}
    preprocessor = Preprocessor.learn(data, features=features, **preprocessing)
    x = preprocessor.transform_table(data)
    k = options["num_clusters"] or max(2, int(math.log10(len(x))))
    distinct = len(np.unique(x, axis=0))
    if distinct < k:
        raise SQLModelError(
            f"{where}: k-means with num_clusters={k} needs at least {k} distinct rows; the training "
            f"query gave {distinct}. Lower num_clusters or train on more rows"
        )
    init = "random" if options["kmeans_init_method"] == "RANDOM" else "k-means++"
    kmeans = KMeans(k, init=init, max_iter=options["max_iterations"], random_state=SEED).fit(x)
    nearest = KNeighborsClassifier(n_neighbors=1, algorithm="brute").fit(
        kmeans.cluster_centers_, np.arange(k)
    )
    flavor = SklearnFlavor(nearest, task="classification", n_classes=k)
    bundle = Bundle(
        preprocessor, flavor, task="classification", label=CENTROID_LABEL,
        classes=list(range(1, k + 1)), options=preprocessing,
    )  # fmt: skip
    ids, distances = assign(bundle, x, 1)
    found = metrics.clustering(x, ids[:, 0], distances[:, 0])
    model = SQLModel(name, 0, "kmeans", bundle, {**found, "rows": len(x)}, from_sql=True)
    return Trained(model, len(x), 0)


def _supervised(name: str, options: dict[str, Any], table: pa.Table, where: str) -> Trained:
    model_type = options["model_type"]
    wanted = (options["input_label_cols"] or ["label"])[0]
    label = find_column(table, wanted)
    if label is None:
        raise SQLModelError(
            f"{where}: the training query has no label column {wanted!r} (its columns: "
            f"{', '.join(table.column_names)}); select it, or name the label with "
            "OPTIONS (input_label_cols = ['column'])"
        )
    features = [c for c in table.column_names if c != label]
    if not features:
        raise SQLModelError(f"{where}: the training query has only the label {label!r}; select features too")
    check_types(table, features, where)
    data = as_inputs(table, features)
    training, holdout = _split(data, options, where)
    estimator = _estimator(model_type, options, training.num_rows)
    bundle = Bundle.fit(training, label=label, estimator=estimator, features=features)
    model = SQLModel(name, 0, model_type, bundle, {}, from_sql=True)
    held = holdout if holdout is not None else training
    known = _known_classes(model, held)
    found = {**(bundle.evaluate(known) if known.num_rows else {}), **evaluate_rows(model, known, {}, where)}
    model = SQLModel(name, 0, model_type, bundle, found, from_sql=True)
    return Trained(model, training.num_rows, 0 if holdout is None else holdout.num_rows)


def _split(table: pa.Table, options: dict[str, Any], where: str) -> tuple[pa.Table, pa.Table | None]:
    """Training and evaluation rows as BigQuery ML splits them: AUTO_SPLIT holds out nothing under 500
    rows, 20% up to 50,000 rows, then 10,000 rows; RANDOM holds out data_split_eval_fraction."""
    method, rows = options["data_split_method"], table.num_rows
    if method == "NO_SPLIT" or (method == "AUTO_SPLIT" and rows < 500):
        return table, None
    fraction = options["data_split_eval_fraction"] if method == "RANDOM" else min(0.2, 10_000 / rows)
    held = round(rows * fraction)
    if held == 0:
        return table, None
    if held >= rows:
        raise SQLModelError(
            f"{where}: data_split_eval_fraction={fraction} of {rows} rows leaves none to train on; "
            "lower it or use data_split_method='NO_SPLIT'"
        )
    order = np.random.default_rng(SEED).permutation(rows)
    return table.take(np.sort(order[held:])), table.take(np.sort(order[:held]))


def _known_classes(model: SQLModel, table: pa.Table) -> pa.Table:
    """The evaluation rows whose label is a class seen in training (a random split can hold out the
    only rows of a rare class)."""
    if model.bundle.task != "classification":
        return table
    import pyarrow.compute as pc

    label = table.column(model.bundle.label)
    keep = pc.is_in(label, value_set=pa.array(model.bundle.classes, label.type))
    return table.filter(keep)


def _estimator(model_type: str, options: dict[str, Any], rows: int) -> object:
    """The estimator for a supervised model type, configured from its options (docs/sql-models.md)."""
    l1, l2, intercept = options["l1_reg"], options["l2_reg"], options.get("fit_intercept", True)
    if model_type == "linear_reg":
        from sklearn.linear_model import ElasticNet, LinearRegression, Ridge

        if l1 > 0:
            # kawa's objective, sum of squared errors + l1 |w|_1 + l2 |w|^2, in ElasticNet's terms.
            alpha = l1 / (2 * rows) + l2 / rows
            return ElasticNet(
                alpha=alpha, l1_ratio=l1 / (2 * rows) / alpha, fit_intercept=intercept,
                max_iter=options["max_iterations"], random_state=SEED,
            )  # fmt: skip
        return (
            Ridge(alpha=l2, fit_intercept=intercept) if l2 > 0 else LinearRegression(fit_intercept=intercept)
        )
    weights = "balanced" if options.get("auto_class_weights") else None
    if model_type == "logistic_reg":
        from sklearn.linear_model import LogisticRegression

        strength = l1 + 2 * l2  # sum of log losses + l1 |w|_1 + l2 |w|^2, in scikit-learn's terms
        return LogisticRegression(
            C=1 / strength if strength > 0 else math.inf, l1_ratio=l1 / strength if strength > 0 else 0.0,
            solver="saga" if l1 > 0 else "lbfgs", max_iter=options["max_iterations"],
            fit_intercept=intercept, class_weight=weights, random_state=SEED,
        )  # fmt: skip
    import lightgbm

    depth = options["max_tree_depth"]
    settings: dict[str, Any] = {
        "n_estimators": options["max_iterations"],
        "learning_rate": options["learn_rate"],
        "max_depth": depth,
        "num_leaves": min(2**depth, 131_072),
        "reg_alpha": l1,
        "reg_lambda": l2,
        "subsample": options["subsample"],
        "subsample_freq": 1 if options["subsample"] < 1 else 0,
        "colsample_bytree": options["colsample_bytree"],
        "feature_fraction_bynode": options["colsample_bynode"],
        "min_split_gain": options["min_split_loss"],
        "min_child_weight": options["min_tree_child_weight"],
        "min_child_samples": 1,  # as in XGBoost, only min_tree_child_weight limits a leaf's size
        "random_state": SEED,
        "verbose": -1,
    }
    if model_type == "boosted_tree_classifier":
        return lightgbm.LGBMClassifier(class_weight=weights, **settings)
    return lightgbm.LGBMRegressor(**settings)
