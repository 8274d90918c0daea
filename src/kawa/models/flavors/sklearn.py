"""The scikit-learn flavor: any classifier or regressor, saved with skops (data, never a pickle).

An outlier detector (IsolationForest, OneClassSVM, LocalOutlierFactor(novelty=True)) is a regressor of
its anomaly score, `-score_samples`, higher for more unusual rows; fitting it ignores the label values.

Loading trusts skops' own list of safe types and classes defined inside the installed scikit-learn
package (e.g. the tree objects of HistGradientBoosting); any other type or function named in the
file (`os.system`, `sklearn.datasets.dump_svmlight_file`, a class from another package) makes loading
fail unless the caller vouches for it by name with `trusted=[...]`.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np

from kawa.models.errors import BundleError
from kawa.models.flavors import Flavor, Hints, Task

MODEL_FILE = "model.skops"
# Linear models whose prediction is x . coef_ + intercept_ (through a sigmoid for the classifiers):
# kawa computes those itself, which skips scikit-learn's per-call input checks (~0.5 ms a call).
_LINEAR_CLASSIFIERS = {"LogisticRegression", "LogisticRegressionCV"}
_LINEAR_REGRESSORS = {
    "LinearRegression",
    "Ridge",
    "RidgeCV",
    "Lasso",
    "LassoCV",
    "ElasticNet",
    "ElasticNetCV",
}


class SklearnFlavor(Flavor):
    """A fitted scikit-learn estimator (a pipeline of them too)."""

    name = "sklearn"

    def __init__(self, estimator: Any, *, task: Task, n_classes: int) -> None:
        self.estimator = estimator
        self.task: Task = task
        self.n_classes = n_classes
        self._linear: tuple[np.ndarray, float] | None = _linear_terms(estimator, task, n_classes)
        self._outlier = task == "regression" and _is_outlier_detector(estimator)
        if task == "classification" and not hasattr(estimator, "predict_proba"):
            raise BundleError(
                f"{type(estimator).__name__} has no predict_proba, so it cannot give probabilities; "
                "wrap it in sklearn.calibration.CalibratedClassifierCV or pick a probabilistic classifier"
            )

    @classmethod
    def accepts(cls, estimator: object) -> bool:
        from sklearn.base import BaseEstimator

        return isinstance(estimator, BaseEstimator)

    @classmethod
    def hints(cls, estimator: object) -> Hints:
        module = type(estimator).__module__
        tree = module.startswith(("sklearn.ensemble", "sklearn.tree"))
        return Hints("ordinal", False) if tree else Hints("onehot", True)

    @classmethod
    def task_of(cls, estimator: object) -> Task | None:
        from sklearn.base import is_classifier, is_regressor

        if is_classifier(estimator):
            return "classification"
        return "regression" if is_regressor(estimator) or _is_outlier_detector(estimator) else None

    @classmethod
    def fit(
        cls,
        estimator: object,
        X: np.ndarray,
        y: np.ndarray,
        *,
        task: Task,
        n_classes: int,
        ordinal: Sequence[int],
    ) -> Self:
        from sklearn.base import clone

        model = clone(estimator)
        model.fit(X, y)
        return cls(model, task=task, n_classes=n_classes)

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self._linear is not None:
            weights, intercept = self._linear
            z = X @ weights + intercept
            return _expit(z) if self.task == "classification" else z
        if self._outlier:
            return -np.asarray(self.estimator.score_samples(X), dtype=np.float64)
        if self.task == "regression":
            return np.asarray(self.estimator.predict(X), dtype=np.float64)
        proba = np.asarray(self.estimator.predict_proba(X), dtype=np.float64)
        return proba[:, 1] if self.n_classes == 2 else proba

    def predict_row(self, x: np.ndarray) -> float | np.ndarray:
        if self._linear is not None:
            weights, intercept = self._linear
            z = float(x @ weights) + intercept
            if self.task == "regression":
                return z
            # The logistic function without overflow for large |z| (as scipy's expit does it).
            return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
        # One OpenMP thread: starting a team of threads for one row costs milliseconds (tens of them on a
        # busy machine) in HistGradientBoosting and other OpenMP estimators. The limit is per thread.
        with _one_openmp_thread():
            return super().predict_row(x)

    def save(self) -> tuple[dict[str, bytes], dict[str, Any]]:
        import skops.io

        kind = type(self.estimator)
        meta = {
            "task": self.task,
            "n_classes": self.n_classes,
            "estimator": f"{kind.__module__}.{kind.__name__}",
        }
        return {MODEL_FILE: skops.io.dumps(self.estimator)}, meta

    @classmethod
    def load(
        cls, files: Mapping[str, bytes], meta: Mapping[str, Any], *, trusted: Sequence[str] = ()
    ) -> Self:
        import skops.io

        data = files.get(MODEL_FILE)
        if data is None:
            raise BundleError(f"the bundle has no {MODEL_FILE}; it was not saved by the sklearn flavor")
        try:
            untrusted = skops.io.get_untrusted_types(data=data)
        except Exception as exc:  # a zip that is not a skops file, or not a zip at all
            raise BundleError(f"{MODEL_FILE} is not a readable skops file: {exc}") from None
        refused = [t for t in untrusted if t not in trusted and not _is_sklearn_class(t)]
        if refused:
            raise BundleError(
                f"refusing to load {MODEL_FILE}: it names types kawa does not trust: {', '.join(refused)}. "
                "Only load models you or your pipelines wrote; if you trust these types, pass trusted=[...]"
            )
        estimator = skops.io.loads(data, trusted=untrusted)
        task, n_classes = meta.get("task"), meta.get("n_classes")
        if task not in ("classification", "regression") or not isinstance(n_classes, int):
            raise BundleError(f"malformed sklearn flavor facts in bundle.json: {dict(meta)}")
        return cls(estimator, task=task, n_classes=n_classes)

    def params(self) -> dict[str, Any]:
        return {
            k: v if v is None or isinstance(v, bool | int | float | str) else repr(v)
            for k, v in self.estimator.get_params(deep=False).items()
        }

    def feature_importance(self) -> np.ndarray | None:
        # Trees and forests say it themselves; for linear models on standardised inputs (the bundle's
        # default for them) the size of a weight is a fair measure.
        found = getattr(self.estimator, "feature_importances_", None)
        if found is None:
            coef = getattr(self.estimator, "coef_", None)
            if coef is None:
                return None
            coef = np.abs(np.asarray(coef, dtype=np.float64))
            found = coef.sum(axis=0) if coef.ndim == 2 else coef
        return np.asarray(found, dtype=np.float64)


_controller: Any = None


def _one_openmp_thread() -> Any:
    """A context that runs OpenMP code of the calling thread on one thread."""
    global _controller
    if _controller is None:
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()  # inspects the loaded libraries once (milliseconds)
    return _controller.limit(limits=1, user_api="openmp")


def _expit(z: Any) -> Any:
    from scipy.special import expit

    return expit(z)


def _linear_terms(estimator: Any, task: Task, n_classes: int) -> tuple[np.ndarray, float] | None:
    kind = type(estimator)
    if not kind.__module__.startswith("sklearn.linear_model"):
        return None
    if not (
        (task == "classification" and kind.__name__ in _LINEAR_CLASSIFIERS and n_classes == 2)
        or (task == "regression" and kind.__name__ in _LINEAR_REGRESSORS)
    ):
        return None
    coef = np.asarray(estimator.coef_, dtype=np.float64)
    if coef.ndim == 2:
        if coef.shape[0] != 1:
            return None
        coef = coef[0]
    intercept = np.ravel(np.asarray(estimator.intercept_, dtype=np.float64))
    if intercept.size > 1:
        return None
    return np.ascontiguousarray(coef), float(intercept[0]) if intercept.size else 0.0


def _is_outlier_detector(estimator: Any) -> bool:
    from sklearn.base import is_outlier_detector

    return bool(is_outlier_detector(estimator))


def _is_sklearn_class(name: str) -> bool:
    """Whether `name` is a class defined in the installed scikit-learn (never a function)."""
    if not name.startswith("sklearn."):
        return False
    module, _, attr = name.rpartition(".")
    try:
        found = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return False
    return isinstance(found, type) and found.__module__.startswith("sklearn")
