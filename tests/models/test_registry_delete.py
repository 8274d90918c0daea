"""Deleting a model: its versions, aliases and bundles go, and its version numbers are never given out
again, so a registry that cached a deleted bundle by number never hands it out for a new model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from kawa.models import Bundle, ModelNotFoundError, Registry
from kawa.stores.artifacts import open_artifacts
from kawa.stores.metadata import open_metadata

pytest_plugins = ["tests.services.postgres"]


@pytest.fixture(params=["sqlite", "postgres"])
def metadata_url(request: pytest.FixtureRequest) -> str:
    return "sqlite" if request.param == "sqlite" else str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def registries(metadata_url: str, tmp_path: Path) -> Iterator[tuple[Registry, Registry]]:
    """Two registries over one database and artifact folder, as two processes would have them."""
    with (
        open_metadata(metadata_url, tmp_path / "state") as m1,
        open_metadata(metadata_url, tmp_path / "state") as m2,
        open_artifacts("local", tmp_path / "state") as artifacts,
        Registry(m1, artifacts) as first,
        Registry(m2, artifacts) as second,
    ):
        yield first, second


def test_a_deleted_models_numbers_are_never_reused(registries: tuple[Registry, Registry]) -> None:
    registry, serving = registries
    table = pa.table({"x": [0.0, 1.0, 2.0, 3.0], "y": [0, 0, 1, 1]})
    old = Bundle.fit(table, label="y", estimator=LogisticRegression())
    new = Bundle.fit(table, label="y", estimator=LinearRegression(), task="regression")
    registry.register("shop", "other", old)
    for _ in range(2):
        registry.register("shop", "churn", old)
    registry.promote("shop", "churn", 2)
    assert serving.load("shop", "churn").task == "classification"  # version 2, now cached there
    files = registry.artifacts.list("models/shop/churn")
    assert files

    assert registry.delete("shop", "churn") == 2
    assert [m.name for m in registry.list_models("shop")] == ["other"]
    assert registry.artifacts.list("models/shop/churn") == []
    with pytest.raises(ModelNotFoundError, match="no model 'churn' in project 'shop'; its models: other"):
        registry.show("shop", "churn")
    with pytest.raises(ModelNotFoundError, match="no model 'churn'"):
        registry.delete("shop", "churn")

    # Made again, it goes on after the deleted versions; the other registry serves the new bundle.
    assert registry.register("shop", "churn", new) == 3
    registry.promote("shop", "churn", 3)
    assert serving.resolve("shop", "churn") == 3
    assert serving.load("shop", "churn").task == "regression"
    assert [v.version for v in registry.list_versions("shop", "churn")] == [3]
    # A second delete keeps the highest number; other models and projects number on their own.
    assert registry.delete("shop", "churn") == 1
    assert registry.register("shop", "churn", old) == 4
    assert registry.register("other", "churn", old) == 1
    assert registry.register("shop", "other", old) == 2
