"""How a model's versions compare: holdout metrics side by side, and each version's curves.

The ROC curve and the reliability table are stored with a version's metrics when it is evaluated
(`Bundle.evaluate`); feature importance is asked of the saved model itself, so every version has it
where its flavor can tell. Versions registered without them say so (`missing`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kawa.models.errors import BundleError
from kawa.models.records import ModelVersion
from kawa.models.registry import Registry


@dataclass(frozen=True)
class MetricTable:
    """Scalar metrics of several versions: one row per metric, one value per version (None if absent)."""

    versions: list[int]
    rows: list[tuple[str, list[Any]]]

    def to_json(self) -> dict[str, Any]:
        return {"versions": self.versions, "metrics": {name: values for name, values in self.rows}}


@dataclass(frozen=True)
class Curves:
    """What a version's plots draw: ROC points, the reliability table and feature importance."""

    version: int
    roc: dict[str, list[float]] | None = None
    reliability: list[dict[str, Any]] | None = None
    importance: dict[str, float] | None = None
    missing: list[str] = field(default_factory=list)  # why a plot is absent, one line per plot

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "roc": self.roc,
            "reliability": self.reliability,
            "feature_importance": self.importance,
            "missing": self.missing,
        }


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics that are single numbers (not curves or tables).

    >>> scalar_metrics({"auc": 0.8, "rows": 10, "roc": {"fpr": [0.0]}, "reliability": []})
    {'auc': 0.8, 'rows': 10}
    """
    return {
        k: v
        for k, v in metrics.items()
        if v is None or (isinstance(v, int | float) and not isinstance(v, bool))
    }


def metric_table(versions: Sequence[ModelVersion]) -> MetricTable:
    """The versions' scalar metrics side by side, metrics in the order the versions first name them."""
    names: dict[str, None] = {}
    scalars = [scalar_metrics(v.metrics) for v in versions]
    for found in scalars:
        names.update(dict.fromkeys(found))
    rows = [(name, [found.get(name) for found in scalars]) for name in names]
    return MetricTable([v.version for v in versions], rows)


def curves(registry: Registry, version: ModelVersion, *, importance: bool = True) -> Curves:
    """The plot data of one version; `missing` says which plots it lacks and why. Feature importance
    loads the saved model, so `importance=False` skips it where only the stored curves are wanted."""
    missing: list[str] = []
    task = version.signature.get("output", {}).get("task")
    roc = version.metrics.get("roc")
    reliability = version.metrics.get("reliability")
    if task == "classification" and not isinstance(roc, dict):
        missing.append(
            "ROC curve: not stored with this version; retrain it to get one "
            "(register metrics=bundle.evaluate(holdout), which keeps the curve)"
        )
    if task == "classification" and not isinstance(reliability, list):
        missing.append(
            "calibration: no reliability table in this version's metrics (bundle.evaluate(holdout) adds one)"
        )
    if task == "regression":
        missing.append("ROC curve and calibration: this model predicts a value, not a probability")
    shares = None
    if importance:
        try:
            shares = registry.load(version.project, version.name, version.version).feature_importance()
        except BundleError as exc:
            missing.append(f"feature importance: the saved model cannot be loaded ({exc})")
        else:
            if shares is None:
                missing.append(f"feature importance: the {version.flavor} flavor does not report it")
    return Curves(
        version=version.version,
        roc=roc if isinstance(roc, dict) else None,
        reliability=reliability if isinstance(reliability, list) else None,
        importance=shares,
        missing=missing,
    )
