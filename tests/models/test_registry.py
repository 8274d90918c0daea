"""The registry: numbered versions with their records, aliases, promotion seen by other instances."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import lightgbm
import numpy as np
import pyarrow as pa
import pytest
from sklearn.linear_model import LogisticRegression

from kawa.models import Bundle, ModelNotFoundError, Registry
from kawa.stores.artifacts import ArtifactStore, open_artifacts
from kawa.stores.metadata import open_metadata

TRAINING = {
    "query": "SELECT * FROM training_set",
    "start": datetime(2025, 1, 1, tzinfo=UTC),
    "end": datetime(2025, 10, 1, tzinfo=UTC),
}


@pytest.fixture(scope="module")
def bundles(table: pa.Table) -> list[Bundle]:
    train = table.slice(0, 2000)
    return [
        Bundle.fit(train, label="bought", estimator=LogisticRegression(max_iter=1000)),
        Bundle.fit(train, label="bought", estimator=lightgbm.LGBMClassifier(n_estimators=30, verbose=-1)),
    ]


def test_versions_count_up_and_keep_their_records(
    registry: Registry, bundles: list[Bundle], table: pa.Table, artifacts: ArtifactStore
) -> None:
    holdout = table.slice(2000)
    first = registry.register(
        "shop", "loyalty", bundles[0], metrics=bundles[0].evaluate(holdout), run_id="run-1", training=TRAINING
    )
    second = registry.register(
        "shop", "loyalty", bundles[1], metrics={"auc": np.float64(0.8), "bad": float("nan")}
    )
    assert (first, second) == (1, 2)
    assert registry.register("shop", "churn", bundles[0]) == 1  # numbering is per model

    v1 = registry.show("shop", "loyalty", 1)
    assert v1.flavor == "sklearn" and v1.run_id == "run-1"
    assert v1.artifact == "models/shop/loyalty/1"
    assert artifacts.list("models/shop/loyalty/1") == [
        "models/shop/loyalty/1/bundle.json",
        "models/shop/loyalty/1/model.skops",
    ]
    assert v1.metrics["auc"] == pytest.approx(bundles[0].evaluate(holdout)["auc"])
    assert v1.metrics["reliability"][0]["count"] > 0
    assert v1.training == {
        "query": TRAINING["query"],
        "start": "2025-01-01T00:00:00+00:00",
        "end": "2025-10-01T00:00:00+00:00",
    }
    assert v1.params["estimator"]["max_iter"] == 1000
    assert v1.params["preprocessing"]["encoding"] == "onehot"
    assert v1.signature == bundles[0].signature | {"output": bundles[0].signature["output"]}
    v2 = registry.show("shop", "loyalty")  # newest
    assert v2.version == 2 and v2.flavor == "lightgbm" and v2.run_id is None
    assert v2.metrics == {"auc": 0.8, "bad": None}
    assert [v.version for v in registry.list_versions("shop", "loyalty")] == [1, 2]


def test_loading_gives_back_the_registered_model(
    registry: Registry, bundles: list[Bundle], table: pa.Table
) -> None:
    for bundle in bundles:
        registry.register("shop", "loyalty", bundle)
    for version, bundle in enumerate(bundles, start=1):
        loaded = registry.load("shop", "loyalty", version)
        np.testing.assert_array_equal(loaded.predict_table(table), bundle.predict_table(table))
    # Versions never change, so a loaded bundle is cached and served from memory.
    assert registry.load("shop", "loyalty", 2) is registry.load("shop", "loyalty", 2)


def test_aliases_pick_the_version_that_serves(registry: Registry, bundles: list[Bundle]) -> None:
    for bundle in bundles:
        registry.register("shop", "loyalty", bundle)
    with pytest.raises(ModelNotFoundError, match="has no alias 'production'; point it at a version"):
        registry.load("shop", "loyalty")
    assert registry.promote("shop", "loyalty", 1) is None
    assert registry.promote("shop", "loyalty", 2, alias="staging") is None
    assert registry.resolve("shop", "loyalty") == 1
    assert registry.resolve("shop", "loyalty", "staging") == 2
    assert registry.load("shop", "loyalty").flavor.name == "sklearn"
    assert registry.load("shop", "loyalty", alias="staging").flavor.name == "lightgbm"
    assert registry.promote("shop", "loyalty", 2) == 1
    assert registry.load("shop", "loyalty").flavor.name == "lightgbm"
    assert registry.show("shop", "loyalty", 2).aliases == ("production", "staging")
    assert registry.show("shop", "loyalty", 1).aliases == ()
    [summary] = registry.list_models("shop")
    assert (summary.name, summary.latest_version, summary.versions) == ("loyalty", 2, 2)
    assert summary.aliases == {"production": 2, "staging": 2}


def test_a_promotion_is_seen_by_another_registry_without_a_restart(
    registry: Registry, bundles: list[Bundle], tmp_path: Path
) -> None:
    for bundle in bundles:
        registry.register("shop", "loyalty", bundle)
    registry.promote("shop", "loyalty", 1)
    # A second registry over its own connections, as a serving process would have.
    with (
        open_metadata("sqlite", tmp_path / "state") as metadata,
        open_artifacts("local", tmp_path / "state") as artifacts,
        Registry(metadata, artifacts) as serving,
    ):
        assert serving.resolve("shop", "loyalty") == 1
        assert serving.resolve("shop", "loyalty") == 1  # cached now
        registry.promote("shop", "loyalty", 2)
        assert serving.resolve("shop", "loyalty") == 2
        assert serving.load("shop", "loyalty").flavor.name == "lightgbm"
        # ...and a promotion from another process.
        subprocess.run(
            [
                sys.executable,
                "-c",
                textwrap.dedent(f"""
                from pathlib import Path
                from kawa.models import Registry
                from kawa.stores.artifacts import open_artifacts
                from kawa.stores.metadata import open_metadata
                state = Path({str(tmp_path / "state")!r})
                with open_metadata("sqlite", state) as m, open_artifacts("local", state) as a:
                    Registry(m, a).promote("shop", "loyalty", 1)
            """),
            ],
            check=True,
            timeout=60,
        )
        assert serving.resolve("shop", "loyalty") == 1


def test_unknown_models_versions_and_names_say_what_exists(registry: Registry, bundles: list[Bundle]) -> None:
    registry.register("shop", "loyalty", bundles[0])
    with pytest.raises(ModelNotFoundError, match="no model 'churn' in project 'shop'; its models: loyalty"):
        registry.load("shop", "churn", 1)
    with pytest.raises(ModelNotFoundError, match="no model 'churn' in project 'shop'"):
        registry.resolve("shop", "churn")
    with pytest.raises(ModelNotFoundError, match="has no version 7; it has 1"):
        registry.show("shop", "loyalty", 7)
    with pytest.raises(ModelNotFoundError, match="has no version 3"):
        registry.promote("shop", "loyalty", 3)
    with pytest.raises(
        ModelNotFoundError, match="no model 'loyalty' in project 'other'; it has no models yet"
    ):
        registry.show("other", "loyalty")
    with pytest.raises(ValueError, match=r"model name '../etc'"):
        registry.register("shop", "../etc", bundles[0])
    with pytest.raises(ValueError, match="alias 'Prod!'"):
        registry.promote("shop", "loyalty", 1, alias="Prod!")
    assert registry.list_models("other") == []


def test_a_failed_registration_leaves_no_version(
    registry: Registry, bundles: list[Bundle], artifacts: ArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.register("shop", "loyalty", bundles[0])

    original = artifacts.put_bytes

    def fail_on_manifest(path: str, data: bytes) -> None:
        if path.endswith("bundle.json"):
            raise OSError("disk full")
        original(path, data)

    with monkeypatch.context() as patch:
        patch.setattr(artifacts, "put_bytes", fail_on_manifest)  # the disk fills up mid-bundle
        with pytest.raises(OSError, match="disk full"):
            registry.register("shop", "loyalty", bundles[1])
    assert [v.version for v in registry.list_versions("shop", "loyalty")] == [1]
    # The next registration takes number 2 and replaces what the failed one left behind.
    assert registry.register("shop", "loyalty", bundles[0]) == 2
    assert artifacts.list("models/shop/loyalty/2") == [
        "models/shop/loyalty/2/bundle.json",
        "models/shop/loyalty/2/model.skops",
    ]
    assert registry.load("shop", "loyalty", 2).flavor.name == "sklearn"
