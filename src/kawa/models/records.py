"""What the registry keeps about a model and its versions, and how it turns that into JSON text."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model, with what it was trained on and how well it did."""

    project: str
    name: str
    version: int
    flavor: str
    artifact: str  # folder in the artifact store
    run_id: str | None
    signature: dict[str, Any]
    metrics: dict[str, Any]
    params: dict[str, Any]
    training: dict[str, Any]
    created_at: datetime
    aliases: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "name": self.name,
            "version": self.version,
            "flavor": self.flavor,
            "artifact": self.artifact,
            "run_id": self.run_id,
            "aliases": list(self.aliases),
            "created_at": self.created_at.isoformat(),
            "metrics": self.metrics,
            "params": self.params,
            "training": self.training,
            "signature": self.signature,
        }


@dataclass(frozen=True)
class ModelSummary:
    """A model with its newest version and its aliases, for listings."""

    project: str
    name: str
    description: str
    created_at: datetime
    latest_version: int | None
    versions: int
    aliases: dict[str, int] = field(default_factory=dict)


def version_record(row: Any, aliases: Mapping[int, Sequence[str]]) -> ModelVersion:
    """A `model_versions` row as a ModelVersion, with the aliases that point at it."""
    return ModelVersion(
        project=row.project,
        name=row.name,
        version=row.version,
        flavor=row.flavor,
        artifact=row.artifact,
        run_id=row.run_id,
        signature=json.loads(row.signature),
        metrics=json.loads(row.metrics),
        params=json.loads(row.params),
        training=json.loads(row.training),
        created_at=row.created_at,
        aliases=tuple(aliases.get(row.version, ())),
    )


def to_json_text(value: Any) -> str:
    """JSON for the metadata store: dates as ISO text, numpy scalars as numbers, NaN and inf as null."""
    return json.dumps(_clean(value), default=_default, allow_nan=False)


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and hasattr(value, "dtype") and getattr(value, "ndim", 1) == 0:
        return _clean(value.item())  # a numpy scalar
    return value


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)
