"""Flavors: how a bundle fits, saves, loads and calls one ML framework's estimators.

A flavor is the only framework-specific part of a bundle. kawa ships `sklearn` (any scikit-learn
classifier or regressor, saved with skops), `lightgbm` (LGBMClassifier / LGBMRegressor, saved as
LightGBM's text model) and `torch` (`SequenceCNN`, a small PyTorch network over token sequences, saved
as numpy arrays; PyTorch is needed to train it only: `pip install 'kawa[torch]'`). Another framework
plugs in by subclassing `Flavor` and either calling `register_flavor(MyFlavor)` or advertising it as
an entry point in the `kawa.flavors` group; see docs/models.md. A bundle names its flavor, and loading
looks the name up only among flavors installed in this Python environment: the artifact is data, the
code that reads it is yours.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from importlib.metadata import entry_points
from typing import Any, ClassVar, Literal, NamedTuple, Self

import numpy as np

Task = Literal["classification", "regression"]
ENTRY_POINT_GROUP = "kawa.flavors"

# name -> (module, class); imported on first use so `import kawa` never imports a framework.
BUILTIN: dict[str, tuple[str, str]] = {
    "lightgbm": ("kawa.models.flavors.lightgbm", "LightGBMFlavor"),
    "sklearn": ("kawa.models.flavors.sklearn", "SklearnFlavor"),
    "torch": ("kawa.models.flavors.torch", "TorchFlavor"),
}


class Hints(NamedTuple):
    """How the bundle should preprocess inputs for an estimator."""

    encoding: Literal["onehot", "ordinal"]  # ordinal codes suit trees; one-hot suits linear models
    scale: bool  # standardise numbers (linear models, neural nets) or not (trees)
    # Lists of strings as token counts (a bag of tokens, for any estimator) or as token ids (for
    # sequence models, which then get `sequences=[(offset, length, vocabulary size), ...]` in `fit`).
    sequences: Literal["ids", "counts"] = "counts"


class Flavor(ABC):
    """A fitted estimator of one framework, behind the few calls a bundle makes.

    Output convention for `predict` and `predict_row`: for a binary classifier the probability of
    class 1 (classes are numbered 0..k-1 by the bundle); for a multi-class one the k probabilities;
    for a regressor the predicted value. Inputs are float64 feature matrices (rows x features) built
    by the bundle's preprocessing, never raw user data.
    """

    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def accepts(cls, estimator: object) -> bool:
        """Whether this flavor knows how to fit and save `estimator`."""

    @classmethod
    def hints(cls, estimator: object) -> Hints:
        """The preprocessing that suits `estimator` (one-hot and scaling unless overridden)."""
        return Hints("onehot", True)

    @classmethod
    def task_of(cls, estimator: object) -> Task | None:
        """Whether `estimator` classifies or regresses, if the flavor can tell."""
        return None

    @classmethod
    @abstractmethod
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
        """Fit a copy of `estimator`; `y` holds class numbers 0..n_classes-1 or values, `ordinal` the
        positions of ordinal-coded categorical features (-1 means missing). A flavor whose hints ask for
        `sequences="ids"` also gets `sequences=`, where the feature matrix holds token ids."""

    @abstractmethod
    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions for every row of `X` (see the output convention above)."""

    def predict_row(self, x: np.ndarray) -> float | np.ndarray:
        """The prediction for one feature vector; flavors override it with a faster path."""
        result = self.predict(x.reshape(1, -1))[0]
        return float(result) if np.ndim(result) == 0 else np.asarray(result)

    @abstractmethod
    def save(self) -> tuple[dict[str, bytes], dict[str, Any]]:
        """The files that hold the model (name -> bytes) and small JSON facts `load` needs back."""

    @classmethod
    @abstractmethod
    def load(
        cls, files: Mapping[str, bytes], meta: Mapping[str, Any], *, trusted: Sequence[str] = ()
    ) -> Self:
        """The model saved by `save`; must never execute code from the files. `trusted` names extra
        types the user vouches for, for formats that construct objects by type name."""

    def params(self) -> dict[str, Any]:
        """The estimator's settings, as JSON, for the registry."""
        return {}

    def feature_importance(self) -> np.ndarray | None:
        """How much each feature slot counts in the model (one non-negative number per column of the
        feature matrix, any scale), or None where the framework does not say."""
        return None


_registered: dict[str, type[Flavor]] = {}


def register_flavor(flavor: type[Flavor]) -> type[Flavor]:
    """Make `flavor` available to `Bundle.fit` and to loading; usable as a class decorator."""
    if not getattr(flavor, "name", None):
        raise ValueError(f"{flavor.__name__} needs a class attribute `name`, such as 'xgboost'")
    _registered[flavor.name] = flavor
    return flavor


def get_flavor(name: str) -> type[Flavor]:
    """The installed flavor called `name`; LookupError naming the installed ones otherwise."""
    if name in _registered:
        return _registered[name]
    if name in BUILTIN:
        module, attr = BUILTIN[name]
        return register_flavor(getattr(importlib.import_module(module), attr))
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name == name:
            return register_flavor(point.load())
    known = sorted({*_registered, *BUILTIN, *(p.name for p in entry_points(group=ENTRY_POINT_GROUP))})
    raise LookupError(
        f"no model flavor {name!r} is installed (known: {', '.join(known)}); install the package that "
        f"provides it (an entry point in the {ENTRY_POINT_GROUP!r} group) or call register_flavor()"
    )


def flavor_for(estimator: object) -> type[Flavor]:
    """The flavor for `estimator`: registered and plug-in flavors first, then torch, LightGBM, sklearn."""
    plugins = [
        n
        for n in (*_registered, *(p.name for p in entry_points(group=ENTRY_POINT_GROUP)))
        if n not in BUILTIN
    ]
    for name in [*dict.fromkeys(plugins), "torch", "lightgbm", "sklearn"]:
        try:
            flavor = get_flavor(name)
        except ImportError:
            continue  # the framework is not installed, so the estimator cannot be one of its
        if flavor.accepts(estimator):
            return flavor
    raise TypeError(
        f"no model flavor accepts a {type(estimator).__module__}.{type(estimator).__name__}; use a "
        "scikit-learn or LightGBM estimator, kawa's SequenceCNN, or plug in a flavor for its framework "
        "(docs/models.md)"
    )


__all__ = [
    "BUILTIN",
    "ENTRY_POINT_GROUP",
    "Flavor",
    "Hints",
    "Task",
    "flavor_for",
    "get_flavor",
    "register_flavor",
]
