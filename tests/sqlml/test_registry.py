"""SQL models are registry versions like any other: CREATE OR REPLACE adds a version that SQL reads at
once, DROP MODEL removes a SQL model, and models of pipelines are used but never replaced or dropped."""

from __future__ import annotations

import pytest
from sklearn.linear_model import LogisticRegression

from kawa.models import Bundle
from kawa.warehouse import SQLError

from .conftest import Project, blobs, separable

TRAIN = (
    "CREATE {verb} MODEL {name} OPTIONS (model_type = 'logistic_reg', max_iterations = 100) "
    "AS SELECT {columns} FROM separable"
)


@pytest.fixture(scope="module", autouse=True)
def tables(project: Project) -> None:
    project.load("separable", separable())
    project.load("blobs", blobs())


def test_each_create_is_a_version_and_sql_reads_the_newest(project: Project) -> None:
    [first] = project.sql(TRAIN.format(verb="", name="buyer", columns="x1, x2, label"))
    with pytest.raises(SQLError, match=r"model 'buyer' already exists \(version 1\); use CREATE OR REPLACE"):
        project.sql(TRAIN.format(verb="", name="buyer", columns="x1, label"))
    [same] = project.sql(TRAIN.format(verb="", name="IF NOT EXISTS buyer", columns="x1, label"))
    [second] = project.sql(TRAIN.format(verb="OR REPLACE", name="buyer", columns="x1, label"))
    assert (first["version"], same["version"], second["version"]) == (1, 1, 2)
    assert same["training_rows"] is None  # nothing was trained

    # Version 2 needs only x1, so a query without x2 works now.
    [row] = project.sql("SELECT predicted_label FROM ML.PREDICT(MODEL buyer, (SELECT 2.0 AS x1))")
    assert row["predicted_label"] == 1

    versions = project.registry.list_versions("shop", "buyer")
    assert [v.version for v in versions] == [1, 2]
    newest = versions[-1]
    assert newest.params["model_type"] == "logistic_reg" and newest.params["options"]["max_iterations"] == 100
    assert newest.training["query"] == "SELECT x1, label FROM separable" and newest.training["rows"] == 400
    assert newest.metrics["roc_auc"] > 0.75 and newest.metrics["auc"] == pytest.approx(
        newest.metrics["roc_auc"]
    )
    assert [i["name"] for i in newest.signature["inputs"]] == ["x1"]
    [summary] = [m for m in project.registry.list_models("shop") if m.name == "buyer"]
    assert summary.latest_version == 2 and summary.versions == 2

    # Loaded from the registry, it serves JSON rows like any bundle.
    bundle = project.registry.load("shop", "buyer", 2)
    assert bundle.predict_one({"x1": 2.0}) > 0.9 > 0.1 > bundle.predict_one({"x1": -2.0})


def test_drop_model_removes_every_version_and_a_new_one_never_reuses_their_numbers(
    project: Project,
) -> None:
    make = (
        "CREATE OR REPLACE MODEL groups OPTIONS (model_type = 'kmeans', num_clusters = {k}) "
        "AS SELECT x, y FROM blobs"
    )
    project.sql(make.format(k=2))
    project.sql(make.format(k=2))
    assert len(project.sql("SELECT * FROM ML.CENTROIDS(MODEL groups)")) == 4  # 2 centroids x 2 inputs
    artifacts = [v.artifact for v in project.registry.list_versions("shop", "groups")]

    assert project.sql("DROP MODEL groups") == [{"model": "groups", "dropped_versions": 2}]
    assert "groups" not in [m.name for m in project.registry.list_models("shop")]
    assert not any(project.registry.artifacts.list(a) for a in artifacts)
    with pytest.raises(SQLError, match="no model 'groups' in project 'shop'"):
        project.sql("SELECT * FROM ML.CENTROIDS(MODEL groups)")
    assert project.sql("DROP MODEL IF EXISTS groups") == [{"model": "groups", "dropped_versions": 0}]
    with pytest.raises(SQLError, match="no model 'groups'"):
        project.sql("DROP MODEL groups")

    # Made again, it goes on after the dropped versions: version 1 and 2 never name another bundle.
    [made] = project.sql(make.format(k=3))
    assert made["version"] == 3
    assert [v.version for v in project.registry.list_versions("shop", "groups")] == [3]
    assert len(project.sql("SELECT * FROM ML.CENTROIDS(MODEL groups)")) == 6


def test_pipeline_models_are_read_but_never_replaced_or_dropped(project: Project) -> None:
    table = separable().select(["x1", "x2", "label"]).rename_columns(["x1", "x2", "bought"])
    bundle = Bundle.fit(table, label="bought", estimator=LogisticRegression())
    project.registry.register("shop", "loyalty", bundle, metrics=bundle.evaluate(table))

    rows = project.sql(
        "SELECT predicted_bought, x1 FROM ML.PREDICT(MODEL loyalty, (SELECT x1, x2 FROM separable))"
    )
    assert len(rows) == 400 and {r["predicted_bought"] for r in rows} == {0, 1}
    [metrics] = project.sql("SELECT roc_auc, log_loss, precision FROM ML.EVALUATE(MODEL loyalty)")
    assert metrics["roc_auc"] > 0.99 and metrics["precision"] is None  # not recorded by the pipeline
    for statement in (TRAIN.format(verb="OR REPLACE", name="loyalty", columns="*"), "DROP MODEL loyalty"):
        with pytest.raises(SQLError, match="registered by a pipeline or the Python API"):
            project.sql(statement)
    assert [v.version for v in project.registry.list_versions("shop", "loyalty")] == [1]


def test_a_failed_create_keeps_the_versions_there_were(project: Project) -> None:
    project.sql(TRAIN.format(verb="OR REPLACE", name="kept", columns="x1, label"))
    with pytest.raises(SQLError, match="no label column"):
        project.sql(TRAIN.format(verb="OR REPLACE", name="kept", columns="x1, x2"))
    assert [v.version for v in project.registry.list_versions("shop", "kept")] == [1]
