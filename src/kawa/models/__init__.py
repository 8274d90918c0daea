"""Models: all-in-one bundles (preprocessing + estimator + input signature), metrics and the registry.

>>> import pyarrow as pa
>>> from sklearn.linear_model import LogisticRegression
>>> ages, media = [20, 30, 40, 50] * 5, ["Twitter", "TV"] * 10
>>> table = pa.table({"age": ages, "media": media, "bought": [0, 0, 1, 1] * 5})
>>> bundle = Bundle.fit(table, label="bought", estimator=LogisticRegression())
>>> bundle.predict_one({"age": 45, "media": "Twitter"}) > 0.5
True
"""

from __future__ import annotations

from kawa.models.bundle import Bundle, Prediction
from kawa.models.errors import BundleError, ModelNotFoundError, RowError
from kawa.models.flavors import Flavor, Hints, register_flavor
from kawa.models.flavors.torch import SequenceCNN
from kawa.models.images import Image
from kawa.models.records import ModelSummary, ModelVersion
from kawa.models.registry import Registry
from kawa.models.text import Text

__all__ = [
    "Bundle",
    "BundleError",
    "Flavor",
    "Hints",
    "Image",
    "ModelNotFoundError",
    "ModelSummary",
    "ModelVersion",
    "Prediction",
    "Registry",
    "RowError",
    "SequenceCNN",
    "Text",
    "register_flavor",
]
