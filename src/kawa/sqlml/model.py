"""A registry model as SQL sees it, and the ML.* table functions over it: ML.PREDICT, ML.EVALUATE and
ML.CENTROIDS, each returning an Arrow table with BigQuery ML's columns.

- k-means: `centroid_id`, `nearest_centroids_distance` (the nearest min(k, 5) centroids as
  [{centroid_id, distance}], nearest first, in the model's standardised space), then the input columns.
- classifiers: `predicted_<label>` and `predicted_<label>_probs` ([{label, prob}] in class order).
- regressors: `predicted_<label>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kawa.models import Bundle, RowError
from kawa.models.columns import CategoricalColumn, NumericColumn, to_numpy
from kawa.sqlml import metrics
from kawa.sqlml.errors import SQLModelError
from kawa.sqlml.inputs import as_inputs, find_column
from kawa.sqlml.parse import Value

CENTROID_LABEL = "centroid_id"
NEAREST = 5  # BigQuery ML lists the distances to the nearest min(num_clusters, 5) centroids
BATCH_ROWS = 262_144


@dataclass(frozen=True)
class SQLModel:
    """One version of a registry model. `model_type` is a CREATE MODEL type, or "classifier" /
    "regressor" for models registered another way (a pipeline's); `from_sql` models take dates as days."""

    name: str
    version: int
    model_type: str
    bundle: Bundle
    metrics: dict[str, Any]
    from_sql: bool = False

    @property
    def kind(self) -> Literal["kmeans", "classifier", "regressor"]:
        if self.model_type == "kmeans":
            return "kmeans"
        return "classifier" if self.bundle.task == "classification" else "regressor"

    def inputs(self, table: pa.Table, where: str) -> pa.Table:
        """The model's input columns of `table` (matched ignoring case), ready for its bundle."""
        names = [c.name for c in self.bundle.preprocessor.columns]
        found = {n: find_column(table, n) for n in names}
        missing = [n for n, column in found.items() if column is None]
        if missing:
            raise SQLModelError(
                f"{where}: the query has no column {', '.join(missing)}; model {self.name!r} takes "
                f"{', '.join(names)} (its columns: {', '.join(table.column_names) or 'none'})"
            )
        picked = pa.table({n: table.column(found[n]) for n in names}) if names else table.select([])
        return as_inputs(picked, names) if self.from_sql else picked


def predict(model: SQLModel, table: pa.Table, settings: dict[str, Value], where: str) -> pa.Table:
    """ML.PREDICT: the predicted columns, then every column of `table`."""
    threshold = _threshold(model, settings, where, allowed={"threshold"})
    features = model.inputs(table, where)
    outputs: dict[str, pa.Array] = {}
    try:
        if model.kind == "kmeans":
            x = model.bundle.preprocessor.transform_table(features)
            k = len(model.bundle.classes)
            ids, distances = assign(model.bundle, x, min(k, NEAREST))
            outputs[CENTROID_LABEL] = pa.array(ids[:, 0])
            outputs["nearest_centroids_distance"] = _pairs(ids, distances, CENTROID_LABEL, "distance")
        else:
            label = model.bundle.label
            predicted = model.bundle.predict_table(features)
            if model.kind == "regressor":
                outputs[f"predicted_{label}"] = pa.array(predicted, pa.float64())
            else:
                proba = _class_probabilities(predicted)
                codes = _predicted_codes(proba, threshold)
                classes = pa.array(model.bundle.classes)
                outputs[f"predicted_{label}"] = classes.take(pa.array(codes))
                positions = np.broadcast_to(np.arange(len(classes)), proba.shape)
                outputs[f"predicted_{label}_probs"] = _pairs(
                    positions, proba, "label", "prob", lookup=classes
                )
    except RowError as exc:
        raise SQLModelError(f"{where}: {exc}") from None
    taken = {n.lower() for n in outputs}
    rest = [n for n in table.column_names if n.lower() not in taken]
    return pa.table({**outputs, **{n: table.column(n) for n in rest}})


def evaluate(model: SQLModel, table: pa.Table | None, settings: dict[str, Value], where: str) -> pa.Table:
    """ML.EVALUATE: one row of metrics, over `table` or, without one, as measured when it was trained."""
    if table is not None:
        found = evaluate_rows(model, table, settings, where)
    elif settings:
        raise SQLModelError(
            f"{where}: settings such as threshold need rows to evaluate: "
            f"ML.EVALUATE(MODEL {model.name}, (SELECT ...), STRUCT(...))"
        )
    else:
        found = _stored(model)
    return pa.table({name: pa.array([value], pa.float64()) for name, value in found.items()})


def evaluate_rows(model: SQLModel, table: pa.Table, settings: dict[str, Value], where: str) -> dict[str, Any]:
    """The metrics of `model` on `table` (which holds the label, except for k-means)."""
    threshold = _threshold(model, settings, where, allowed={"threshold"})
    try:
        features = model.inputs(table, where)
        if model.kind == "kmeans":
            x = model.bundle.preprocessor.transform_table(features)
            ids, distances = assign(model.bundle, x, 1)
            return metrics.clustering(x, ids[:, 0], distances[:, 0])
        label = model.bundle.label
        column = find_column(table, label)
        if column is None:
            raise SQLModelError(
                f"{where}: the query has no label column {label!r}, which ML.EVALUATE compares the "
                f"predictions with (its columns: {', '.join(table.column_names)})"
            )
        predicted = model.bundle.predict_table(features)
        truth = table.column(column)
        if model.kind == "regressor":
            return metrics.regression(NumericColumn.floats(label, truth), predicted)
        classes = pa.array(model.bundle.classes, pc.cast(truth, truth.type).type)
        codes = pc.index_in(truth, value_set=classes)
        if codes.null_count:
            raise SQLModelError(
                f"{where}: {codes.null_count} rows have a null {label!r} or a class the model never saw "
                f"(it knows {', '.join(map(repr, model.bundle.classes))}); filter them out in the query"
            )
        return metrics.classification(to_numpy(codes), predicted, threshold=threshold)
    except (RowError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise SQLModelError(f"{where}: {exc}") from None


def centroids(model: SQLModel, settings: dict[str, Value], where: str) -> pa.Table:
    """ML.CENTROIDS: one row per centroid and input, in the inputs' own units unless `standardize`."""
    if model.kind != "kmeans":
        raise SQLModelError(
            f"{where}: ML.CENTROIDS needs a k-means model; {model.name!r} is a {model.model_type}"
        )
    _check_settings(settings, {"standardize"}, where)
    standardize = settings.get("standardize", False)
    if not isinstance(standardize, bool):
        raise SQLModelError(f"{where}: standardize must be TRUE or FALSE, e.g. STRUCT(TRUE AS standardize)")
    preprocessor = model.bundle.preprocessor
    if standardize and not model.bundle.options.get("scale", False):
        raise SQLModelError(
            f"{where}: {model.name!r} was trained with standardize_features = FALSE, so its centroids exist "
            "in the inputs' own units only; leave out STRUCT(TRUE AS standardize)"
        )
    # The nearest-centroid classifier keeps the centroids as its fitted points.
    points = np.asarray(model.bundle.flavor.estimator._fit_X, dtype=np.float64)  # type: ignore[attr-defined]
    rows: dict[str, list[Any]] = {
        CENTROID_LABEL: [],
        "feature": [],
        "numerical_value": [],
        "categorical_value": [],
    }
    for cid, point in enumerate(points, start=1):
        offset = 0
        for column in preprocessor.columns:
            rows[CENTROID_LABEL].append(cid)
            rows["feature"].append(column.name)
            if isinstance(column, NumericColumn):
                value = float(point[offset])
                fill = column.fill
                rows["numerical_value"].append(value if standardize else value * fill.std + fill.mean)
                rows["categorical_value"].append([])
            else:
                # A category's slot holds the share of the cluster's rows in it; the missing slot is left out.
                names = (
                    column.categories
                    if isinstance(column, CategoricalColumn)
                    else getattr(column, "tokens", [])
                )
                shares = zip(names, point[offset : offset + len(names)], strict=True)
                rows["numerical_value"].append(None)
                rows["categorical_value"].append([{"category": str(c), "value": float(v)} for c, v in shares])
            offset += column.width
    category = pa.list_(pa.struct([("category", pa.string()), ("value", pa.float64())]))
    schema = pa.schema(
        [(CENTROID_LABEL, pa.int64()), ("feature", pa.string()), ("numerical_value", pa.float64()),
         ("categorical_value", category)]
    )  # fmt: skip
    return pa.table(rows, schema=schema)


def assign(bundle: Bundle, x: np.ndarray, nearest: int) -> tuple[np.ndarray, np.ndarray]:
    """The `nearest` centroids of each row of the feature matrix `x` (ids 1..k, nearest first) and
    their Euclidean distances."""
    ids = np.empty((len(x), nearest), dtype=np.int64)
    distances = np.empty((len(x), nearest), dtype=np.float64)
    neighbours = bundle.flavor.estimator  # type: ignore[attr-defined]
    for start in range(0, len(x), BATCH_ROWS):
        part = x[start : start + BATCH_ROWS]
        found_distances, found_ids = neighbours.kneighbors(part, n_neighbors=nearest)
        ids[start : start + len(part)] = found_ids + 1
        distances[start : start + len(part)] = found_distances
    return ids, distances


def _stored(model: SQLModel) -> dict[str, Any]:
    """The metrics recorded at training, under BigQuery ML's names (mapped from kawa's own names for
    models registered by pipelines; a metric they did not record is None)."""
    names = {
        "kmeans": metrics.CLUSTERING,
        "classifier": metrics.CLASSIFICATION,
        "regressor": metrics.REGRESSION,
    }
    found = dict(model.metrics)
    if not model.from_sql:
        rmse = found.get("rmse")
        found = {
            "accuracy": found.get("accuracy"),
            "log_loss": found.get("log_loss"),
            "roc_auc": found.get("auc"),
            "mean_absolute_error": found.get("mae"),
            "mean_squared_error": None if rmse is None else rmse**2,
            "r2_score": found.get("r2"),
        }
    return {name: found.get(name) for name in names[model.kind]}


def _check_settings(settings: dict[str, Value], allowed: set[str], where: str) -> None:
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise SQLModelError(
            f"{where}: unknown setting {', '.join(unknown)}; it takes {', '.join(sorted(allowed))}"
        )


def _threshold(model: SQLModel, settings: dict[str, Value], where: str, allowed: set[str]) -> float:
    _check_settings(settings, allowed, where)
    if "threshold" not in settings:
        return 0.5
    value = settings["threshold"]
    if model.kind != "classifier" or len(model.bundle.classes) != 2:
        raise SQLModelError(
            f"{where}: threshold applies to binary classifiers only; {model.name!r} is not one"
        )
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise SQLModelError(f"{where}: threshold must be a number from 0 to 1, e.g. STRUCT(0.6 AS threshold)")
    return float(value)


def _class_probabilities(predicted: np.ndarray) -> np.ndarray:
    """(n, k) class probabilities from a bundle's output (P(class 1) for a binary classifier)."""
    return np.column_stack([1.0 - predicted, predicted]) if predicted.ndim == 1 else predicted


def _predicted_codes(proba: np.ndarray, threshold: float) -> np.ndarray:
    if proba.shape[1] == 2:
        return (proba[:, 1] >= threshold).astype(np.int64)
    return proba.argmax(axis=1)


def _pairs(
    keys: np.ndarray, numbers: np.ndarray, key_name: str, value_name: str, *, lookup: pa.Array | None = None
) -> pa.ListArray:
    """A list<struct<key, value>> column from (n, m) matrices of keys and numbers; with `lookup`, the
    keys are positions in it."""
    rows, width = keys.shape
    flat = pa.array(keys.ravel())
    entries = pa.StructArray.from_arrays(
        [flat if lookup is None else lookup.take(flat), pa.array(numbers.ravel(), pa.float64())],
        names=[key_name, value_name],
    )
    offsets = pa.array(np.arange(0, rows * width + 1, width, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, entries)
