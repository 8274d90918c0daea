"""CREATE MODEL's OPTIONS: which model types exist, which options each takes, their defaults and limits.

Names, defaults and meanings follow BigQuery ML where an option maps cleanly onto the estimator kawa
trains (docs/sql-models.md lists them); anything else is refused with the list of valid names.

>>> resolve({"model_type": "KMEANS", "num_clusters": 4}, "m")["num_clusters"]
4
>>> resolve({"model_type": "kmeans", "learn_rate": 0.1}, "m")
Traceback (most recent call last):
...
kawa.sqlml.errors.SQLModelError: CREATE MODEL m: option learn_rate is not valid for model_type='kmeans' \
(it applies to boosted_tree_classifier, boosted_tree_regressor); kmeans takes kmeans_init_method, \
max_iterations, num_clusters, standardize_features
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from kawa.sqlml.errors import SQLModelError
from kawa.sqlml.parse import Value


@dataclass(frozen=True)
class Option:
    """One option: its type, its default (None: worked out from the data), and its valid range."""

    kind: Literal["int", "float", "bool", "choice", "labels"]
    default: Any
    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False  # the low end itself is not allowed
    choices: tuple[str, ...] = ()

    def check(self, value: Value) -> Any:
        """`value` as this option's type; a message (not an exception) says what is wrong."""
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise _Invalid("TRUE or FALSE")
            return value
        if self.kind == "choice":
            if not isinstance(value, str) or value.upper() not in self.choices:
                raise _Invalid("one of " + ", ".join(f"'{c}'" for c in self.choices))
            return value.upper()
        if self.kind == "labels":
            labels = [value] if isinstance(value, str) else value
            if not (isinstance(labels, list) and len(labels) == 1 and isinstance(labels[0], str)):
                raise _Invalid("a list of one column name, such as ['bought']")
            return labels
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Invalid("a whole number" if self.kind == "int" else "a number")
        if self.kind == "int" and value != int(value):
            raise _Invalid("a whole number")
        number = int(value) if self.kind == "int" else float(value)
        if number < self.low or number > self.high or (self.low_open and number == self.low):
            low = "(" if self.low_open else "["
            high = "inf)" if math.isinf(self.high) else f"{_show(self.high)}]"
            raise _Invalid(f"a number in {low}{_show(self.low)}, {high}")
        return number


class _Invalid(ValueError):
    """What an option's value should have been."""


def _show(number: float) -> str:
    return str(int(number)) if number == int(number) else str(number)


_SPLIT = {
    "input_label_cols": Option("labels", None),
    "data_split_method": Option("choice", "AUTO_SPLIT", choices=("AUTO_SPLIT", "RANDOM", "NO_SPLIT")),
    "data_split_eval_fraction": Option("float", 0.2, 0.0, 1.0, low_open=True),
}
_LINEAR = {
    "max_iterations": Option("int", 20, 1, 100_000),
    "l1_reg": Option("float", 0.0, 0.0),
    "l2_reg": Option("float", 0.0, 0.0),
    "fit_intercept": Option("bool", True),
}
_TREES = {
    "max_iterations": Option("int", 20, 1, 100_000),
    "learn_rate": Option("float", 0.3, 0.0, 1.0, low_open=True),
    "max_tree_depth": Option("int", 6, 1, 20),
    "l1_reg": Option("float", 0.0, 0.0),
    "l2_reg": Option("float", 1.0, 0.0),
    "subsample": Option("float", 1.0, 0.0, 1.0, low_open=True),
    "colsample_bytree": Option("float", 1.0, 0.0, 1.0, low_open=True),
    "colsample_bynode": Option("float", 1.0, 0.0, 1.0, low_open=True),
    "min_split_loss": Option("float", 0.0, 0.0),
    "min_tree_child_weight": Option("float", 1.0, 0.0),
}
_BALANCE = {"auto_class_weights": Option("bool", False)}

MODEL_TYPES: dict[str, dict[str, Option]] = {
    "kmeans": {
        "num_clusters": Option("int", None, 2, 100),
        "max_iterations": Option("int", 20, 1, 100_000),
        "standardize_features": Option("bool", True),
        "kmeans_init_method": Option("choice", "RANDOM", choices=("RANDOM", "KMEANS++")),
    },
    "linear_reg": {**_SPLIT, **_LINEAR},
    "logistic_reg": {**_SPLIT, **_LINEAR, **_BALANCE},
    "boosted_tree_regressor": {**_SPLIT, **_TREES},
    "boosted_tree_classifier": {**_SPLIT, **_TREES, **_BALANCE},
}
CLASSIFIERS = ("logistic_reg", "boosted_tree_classifier")


def resolve(options: Mapping[str, Value], model: str) -> dict[str, Any]:
    """Every option of the model type, given or default, checked; `model_type` lower case."""
    where = f"CREATE MODEL {model}"
    kinds = ", ".join(f"'{k}'" for k in MODEL_TYPES)
    model_type = options.get("model_type")
    if model_type is None:
        raise SQLModelError(f"{where}: OPTIONS (model_type = ...) is required; it is one of {kinds}")
    if not isinstance(model_type, str) or model_type.lower() not in MODEL_TYPES:
        raise SQLModelError(f"{where}: model_type {model_type!r} is not supported; use one of {kinds}")
    model_type = model_type.lower()
    specs = MODEL_TYPES[model_type]
    resolved: dict[str, Any] = {"model_type": model_type}
    for name, value in options.items():
        if name == "model_type":
            continue
        if name not in specs:
            elsewhere = sorted(t for t, s in MODEL_TYPES.items() if name in s)
            hint = f" (it applies to {', '.join(elsewhere)})" if elsewhere else ""
            raise SQLModelError(
                f"{where}: option {name} is not valid for model_type='{model_type}'{hint}; "
                f"{model_type} takes {', '.join(sorted(specs))}"
            )
        try:
            resolved[name] = specs[name].check(value)
        except _Invalid as exc:
            raise SQLModelError(f"{where}: option {name} must be {exc}; got {value!r}") from None
    for name, spec in specs.items():
        resolved.setdefault(name, spec.default)
    return resolved
