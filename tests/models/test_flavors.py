"""Another framework plugs in through a Flavor of its own, and its bundles save and load like any other."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np
import pyarrow as pa
import pytest

from kawa.models import Bundle, BundleError, Flavor, Hints, register_flavor
from kawa.models import flavors as flavor_registry
from kawa.models.flavors import Task


class LeastSquares:
    """A tiny framework of its own: ordinary least squares in numpy."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> LeastSquares:
        design = np.column_stack([X, np.ones(len(X))])
        self.weights = np.linalg.lstsq(design, y, rcond=None)[0]
        return self


class LeastSquaresFlavor(Flavor):
    name = "least-squares"

    def __init__(self, weights: np.ndarray) -> None:
        self.weights = weights

    @classmethod
    def accepts(cls, estimator: object) -> bool:
        return isinstance(estimator, LeastSquares)

    @classmethod
    def hints(cls, estimator: object) -> Hints:
        return Hints("onehot", False)

    @classmethod
    def task_of(cls, estimator: object) -> Task | None:
        return "regression"

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
        return cls(LeastSquares().fit(X, y).weights)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X @ self.weights[:-1] + self.weights[-1])

    def save(self) -> tuple[dict[str, bytes], dict[str, Any]]:
        return {"weights.json": json.dumps(self.weights.tolist()).encode()}, {}

    @classmethod
    def load(
        cls, files: Mapping[str, bytes], meta: Mapping[str, Any], *, trusted: Sequence[str] = ()
    ) -> Self:
        return cls(np.array(json.loads(files["weights.json"])))


@pytest.fixture
def plugged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flavor_registry, "_registered", {})
    register_flavor(LeastSquaresFlavor)


def test_a_plugged_in_flavor_fits_saves_and_loads(plugged: None) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=500)
    city = rng.choice(["Tokyo", "Osaka"], 500)
    spend = 3.0 * x + np.where(city == "Tokyo", 10.0, 0.0) + 1.0
    table = pa.table({"x": x, "city": city, "spend": spend})
    bundle = Bundle.fit(table, label="spend", estimator=LeastSquares())
    assert bundle.flavor.name == "least-squares" and bundle.task == "regression"
    assert bundle.predict_one({"x": 1.0, "city": "Tokyo"}) == pytest.approx(14.0)
    assert bundle.predict_one({"x": 0.0, "city": "Osaka"}) == pytest.approx(1.0)
    files = bundle.to_files()
    assert set(files) == {"bundle.json", "weights.json"}
    loaded = Bundle.from_files(files)
    np.testing.assert_allclose(loaded.predict_table(table), spend)


def test_a_bundle_of_a_flavor_that_is_not_installed_is_refused(plugged: None) -> None:
    table = pa.table({"x": [1.0, 2.0, 3.0], "y": [2.0, 4.0, 6.0]})
    files = Bundle.fit(table, label="y", estimator=LeastSquares()).to_files()
    flavor_registry._registered.clear()
    with pytest.raises(BundleError, match="no model flavor 'least-squares' is installed"):
        Bundle.from_files(files)


def test_a_flavor_needs_a_name() -> None:
    class Nameless(LeastSquaresFlavor):
        name = ""

    with pytest.raises(ValueError, match="needs a class attribute `name`"):
        register_flavor(Nameless)
