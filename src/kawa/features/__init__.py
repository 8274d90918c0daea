"""Features: views keyed by an entity, labels, point-in-time training sets, materialisation online."""

from __future__ import annotations

from kawa.features import agg
from kawa.features.entity import ITEM, SESSION, USER, VISITOR, Entity
from kawa.features.errors import FeatureError
from kawa.features.label import Label, series
from kawa.features.materialize import materialize, namespace, online_features
from kawa.features.spec import Feature
from kawa.features.training import training_set
from kawa.features.view import FeatureView

__all__ = [
    "ITEM",
    "SESSION",
    "USER",
    "VISITOR",
    "Entity",
    "Feature",
    "FeatureError",
    "FeatureView",
    "Label",
    "agg",
    "materialize",
    "namespace",
    "online_features",
    "series",
    "training_set",
]
