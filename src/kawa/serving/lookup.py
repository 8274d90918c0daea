"""Everything served about one entity: every model's stored prediction, its streaming features and its
materialised batch features, as the product (and a person debugging it) would read them.

Predictions come from the prediction store (the newer of the batch and the real-time one, as
`GET /v1/predictions/{model}/{entity}` answers). Streaming features are read from the states the trigger
worker keeps in the online store, evaluated now; materialised features from `features/<project>/<view>`.
Which views exist is the project's code (`code` in kawa.yaml), imported once per change of its files.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from kawa.config import Config
from kawa.features.materialize import online_features
from kawa.features.view import FeatureView
from kawa.models import Registry
from kawa.serving.store import PredictionStore
from kawa.stores.online import OnlineStore
from kawa.streaming import StreamEngine, StreamView
from kawa.triggers.state import stream_ns

if TYPE_CHECKING:
    from kawa.runtime import Runtime


@dataclass(frozen=True)
class ProjectViews:
    """The stream views and feature views a project's code defines, or why they could not be read."""

    stream_views: list[StreamView] = field(default_factory=list)
    feature_views: list[FeatureView] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True)
class EntityProfile:
    """What kawa serves about one entity id, by model and by view; views without a value are left out."""

    entity_id: str
    predictions: dict[str, dict[str, Any]]
    stream_features: dict[str, dict[str, Any]]
    features: dict[str, dict[str, Any]]
    models: list[str]  # every model of the project, with a prediction or not
    stream_views: list[str]
    feature_views: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return bool(self.predictions or self.stream_features or self.features)

    def to_json(self) -> dict[str, Any]:
        return {
            "entity_id": self.entity_id,
            "predictions": self.predictions,
            "stream_features": self.stream_features,
            "features": self.features,
            "models": self.models,
            "stream_views": self.stream_views,
            "feature_views": self.feature_views,
            "notes": self.notes,
        }


def entity_profile(
    registry: Registry,
    online: OnlineStore,
    project: str,
    entity_id: str,
    *,
    views: ProjectViews | None = None,
    now_us: int | None = None,
) -> EntityProfile:
    """Every stored prediction of `entity_id` (one per model), its streaming features at `now_us` (default
    now) and its materialised features, for the views in `views`."""
    views = views or ProjectViews()
    store = PredictionStore(online)
    models = [m.name for m in registry.list_models(project)]
    predictions = {}
    for model in models:
        found = store.get(project, model, entity_id)
        if found is not None:
            predictions[model] = msgspec.to_builtins(found) | {"source": found.source}
    moment = now_us if now_us is not None else time.time_ns() // 1000
    streaming = {}
    for view in views.stream_views:
        values = stream_values(online, project, view, entity_id, moment)
        if values is not None:
            streaming[view.name] = values
    features = {}
    for feature_view in views.feature_views:
        stored = online_features(online, project, feature_view, entity_id)
        if stored is not None:
            features[feature_view.name] = stored
    notes = [views.error] if views.error else []
    return EntityProfile(
        entity_id=entity_id,
        predictions=predictions,
        stream_features=streaming,
        features=features,
        models=models,
        stream_views=[v.name for v in views.stream_views],
        feature_views=[v.name for v in views.feature_views],
        notes=notes,
    )


def lookup(runtime: Runtime, registry: Registry, project: str, entity_id: str) -> EntityProfile:
    """`entity_profile` with the views of the project's code, which is the code of the project kawa.yaml
    names (another project served by the same kawa shows predictions only)."""
    views = project_views(runtime.config) if project == runtime.config.project else None
    return entity_profile(registry, runtime.online, project, entity_id, views=views)


def stream_values(
    online: OnlineStore, project: str, view: StreamView, key: str, now_us: int
) -> dict[str, Any] | None:
    """The view's features for `key` at `now_us` from the stored state, or None when there is no state
    (no trigger uses the view, the entity sent no event, or the view changed since the state was stored)."""
    namespace = stream_ns(project, view.name)
    raw = online.get(namespace, key)
    if raw is None:
        return None
    engine = StreamEngine([view], capacity=1)
    engine.load_states([(view.name, key, raw)])
    if len(engine) == 0:  # saved by another definition of the view: its state is not readable
        return None
    return engine.values(view.name, key, now_us)


_cache_lock = threading.Lock()
_cache: dict[str, tuple[tuple[tuple[str, float], ...], ProjectViews]] = {}


def project_views(config: Config) -> ProjectViews:
    """The stream and feature views of the project's code, imported again only when its files change."""
    from kawa.project_code import ProjectCodeError, load

    root = Path(config.root)
    files = [p if (p := Path(name)).is_absolute() else root / p for name in config.code]
    stamp = tuple((str(f), f.stat().st_mtime if f.is_file() else -1.0) for f in files)
    with _cache_lock:
        cached = _cache.get(str(root))
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            found = load(config)
        except ProjectCodeError as exc:
            views = ProjectViews(error=f"the project's code cannot be imported, so no views are shown: {exc}")
        else:
            views = ProjectViews(
                stream_views=_sorted(found.get("stream_view", {}).values()),  # type: ignore[arg-type]
                feature_views=_sorted(found.get("feature_view", {}).values()),  # type: ignore[arg-type]
            )
        _cache[str(root)] = (stamp, views)
        return views


def _sorted(views: Sequence[Any] | Any) -> list[Any]:
    return sorted(views, key=lambda v: v.name)
