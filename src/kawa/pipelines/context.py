"""RunContext: what a step sees of its run (ids, parameters, stores) and how it records results."""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kawa.stores.artifacts.base import check_path

if TYPE_CHECKING:
    from kawa.runtime import Runtime
    from kawa.stores.artifacts import ArtifactStore
    from kawa.stores.online import OnlineStore
    from kawa.warehouse import Warehouse


class RunContext:
    """Handed to a step that takes a `ctx: RunContext` parameter; one per step of a run.

    `outputs` is for lineage: what the step wrote, such as `ctx.outputs["tables"] = ["scores"]`, or
    `ctx.outputs["model"] = {"name": "loyalty", "version": 3}` for a model version it registered
    (that one becomes the model_id and version of the run's status message).
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        run_id: str,
        pipeline: str,
        experiment: str,
        project: str,
        step: str,
        params: dict[str, Any],
        logical_date: datetime,
    ) -> None:
        self.runtime = runtime
        self.run_id = run_id
        self.pipeline = pipeline
        self.experiment = experiment
        self.project = project
        self.step = step
        self.params = params
        self.logical_date = logical_date
        self.outputs: dict[str, Any] = {}
        self.metrics: dict[str, float | None] = {}
        self.artifact_paths: list[str] = []
        self._warehouse: Warehouse | None = None

    @property
    def warehouse(self) -> Warehouse:
        """The project's warehouse (DuckDB over the lake)."""
        if self._warehouse is None:
            self._warehouse = self.runtime.warehouse(self.project)
        return self._warehouse

    @property
    def artifacts(self) -> ArtifactStore:
        """The artifact store (model files, logs); `log_artifact` files a run's own under its folder."""
        return self.runtime.artifacts

    @property
    def online(self) -> OnlineStore:
        """The online key-value store (features, predictions)."""
        return self.runtime.online

    def log_metric(self, name: str, value: float) -> None:
        """Record a metric of this step and run (the last value logged under a name wins)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"metric name {name!r} must be non-empty text, e.g. 'auc'")
        if isinstance(value, bool) or not isinstance(value, int | float):
            try:
                value = float(value)  # numpy scalars
            except (TypeError, ValueError):
                raise TypeError(f"metric {name!r} must be a number, got {type(value).__name__}") from None
        number = float(value)
        # JSON has no NaN or infinity; a metric that could not be computed is recorded as null.
        self.metrics[name] = number if math.isfinite(number) else None

    def log_artifact(self, path: str, data: bytes | str) -> str:
        """Store `data` as `runs/<run_id>/artifacts/<path>` and return that artifact path."""
        check_path(path)
        full = f"runs/{self.run_id}/artifacts/{path}"
        self.artifacts.put_bytes(full, data.encode() if isinstance(data, str) else data)
        if full not in self.artifact_paths:
            self.artifact_paths.append(full)
        return full

    def __repr__(self) -> str:
        return f"RunContext(run_id={self.run_id!r}, pipeline={self.pipeline!r}, step={self.step!r})"
