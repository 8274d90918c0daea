"""Each model type trains from a query and predicts and evaluates with BigQuery ML's columns, finding the
structure planted in its data (and, where it cannot, failing the way that model type should)."""

from __future__ import annotations

import math

import pytest

from .conftest import Project, blobs, linear, quadrants, separable


@pytest.fixture(scope="module", autouse=True)
def tables(project: Project) -> None:
    project.load("blobs", blobs())
    project.load("separable", separable())
    project.load("linear", linear())
    project.load("quadrants", quadrants())


def test_kmeans_finds_the_planted_clusters(project: Project) -> None:
    [made] = project.sql(
        "CREATE MODEL clusters OPTIONS (model_type = 'kmeans', num_clusters = 3) AS "
        "SELECT x, y, channel FROM blobs"
    )
    assert made == {
        "model": "clusters", "version": 1, "model_type": "kmeans", "training_rows": 180,
        "evaluation_rows": 0, "notes": None,
    }  # fmt: skip
    groups = project.sql(
        "SELECT planted, centroid_id, count(*) AS n FROM ML.PREDICT(MODEL clusters, TABLE blobs) GROUP BY ALL"
    )
    assert sorted(g["n"] for g in groups) == [60, 60, 60]
    ids = {g["planted"]: g["centroid_id"] for g in groups}
    assert sorted(ids.values()) == [1, 2, 3]

    [row] = project.sql(
        "SELECT * FROM ML.PREDICT(MODEL clusters, (SELECT 10.2 AS x, 0.1 AS y, 'app' AS channel))"
    )
    assert list(row)[:2] == ["centroid_id", "nearest_centroids_distance"]
    assert row["centroid_id"] == ids["b"] and (float(row["x"]), row["channel"]) == (10.2, "app")
    distances = row["nearest_centroids_distance"]
    assert distances[0]["centroid_id"] == ids["b"] and len(distances) == 3
    assert [d["distance"] for d in distances] == sorted(d["distance"] for d in distances)

    centroids = project.sql("SELECT * FROM ML.CENTROIDS(MODEL clusters) ORDER BY centroid_id, feature")
    assert [(c["centroid_id"], c["feature"]) for c in centroids[:3]] == [(1, "channel"), (1, "x"), (1, "y")]
    by_id = {(c["centroid_id"], c["feature"]): c for c in centroids}
    assert by_id[(ids["b"], "x")]["numerical_value"] == pytest.approx(10.0, abs=0.2)
    assert by_id[(ids["c"], "y")]["numerical_value"] == pytest.approx(10.0, abs=0.2)
    assert by_id[(ids["a"], "x")]["numerical_value"] == pytest.approx(0.0, abs=0.2)
    shares = {v["category"]: v["value"] for v in by_id[(ids["a"], "channel")]["categorical_value"]}
    assert (
        shares == pytest.approx({"web": 1.0, "app": 0.0, "mail": 0.0})
        and by_id[(ids["a"], "channel")]["numerical_value"] is None
    )
    standardised = project.sql(
        "SELECT numerical_value FROM ML.CENTROIDS(MODEL clusters, STRUCT(TRUE AS standardize)) "
        f"WHERE feature = 'x' AND centroid_id = {ids['b']}"
    )
    assert 0.5 < standardised[0]["numerical_value"] < 2.0  # b's x is about 1.4 standard deviations out

    [metrics] = project.sql("SELECT * FROM ML.EVALUATE(MODEL clusters)")
    assert list(metrics) == ["davies_bouldin_index", "mean_squared_distance"]
    assert metrics["davies_bouldin_index"] < 0.2  # tight clusters far apart


def test_logistic_reg_separates_a_line_and_gives_probabilities(project: Project) -> None:
    [made] = project.sql(
        "CREATE MODEL buyer OPTIONS (model_type = 'logistic_reg', max_iterations = 100) AS "
        "SELECT * FROM separable"
    )
    assert (made["training_rows"], made["evaluation_rows"]) == (400, 0)  # AUTO_SPLIT: under 500 rows
    [held] = project.sql("SELECT * FROM ML.EVALUATE(MODEL buyer, TABLE separable)")
    assert list(held) == ["precision", "recall", "accuracy", "f1_score", "log_loss", "roc_auc"]
    assert held["roc_auc"] > 0.99 and held["accuracy"] > 0.95
    [stored] = project.sql("SELECT * FROM ML.EVALUATE(MODEL buyer)")  # measured on the training rows
    assert stored == pytest.approx(held)

    rows = project.sql("SELECT * FROM ML.PREDICT(MODEL buyer, (SELECT x1, x2, colour, label FROM separable))")
    assert list(rows[0])[:3] == ["predicted_label", "predicted_label_probs", "x1"]
    for row in rows:
        probs = {p["label"]: p["prob"] for p in row["predicted_label_probs"]}
        assert list(probs) == [0, 1] and math.isclose(sum(probs.values()), 1.0)
        assert row["predicted_label"] == (1 if probs[1] >= 0.5 else 0)
    assert sum(r["predicted_label"] == r["label"] for r in rows) / len(rows) > 0.95

    def positives(threshold: float) -> int:
        return project.sql(
            "SELECT count(*) FILTER (predicted_label = 1) AS n FROM "
            f"ML.PREDICT(MODEL buyer, TABLE separable, STRUCT({threshold} AS threshold))"
        )[0]["n"]

    assert positives(0.99) < positives(0.5) < positives(0.01)


def test_boosted_trees_learn_what_a_line_cannot(project: Project) -> None:
    [made] = project.sql(
        "CREATE MODEL xor_trees OPTIONS (model_type = 'boosted_tree_classifier', max_iterations = 50) AS "
        "SELECT x1, x2, label FROM quadrants"
    )
    assert (made["training_rows"], made["evaluation_rows"]) == (640, 160)  # AUTO_SPLIT holds out 20%
    project.sql(
        "CREATE MODEL xor_line OPTIONS (model_type = 'logistic_reg') AS SELECT x1, x2, label FROM quadrants"
    )
    [trees] = project.sql("SELECT roc_auc FROM ML.EVALUATE(MODEL xor_trees)")
    [line] = project.sql("SELECT roc_auc FROM ML.EVALUATE(MODEL xor_line)")
    assert trees["roc_auc"] > 0.95 and line["roc_auc"] < 0.7


def test_boosted_tree_classifier_with_three_text_classes(project: Project) -> None:
    project.sql(
        "CREATE MODEL regions OPTIONS (model_type = 'BOOSTED_TREE_CLASSIFIER', "
        "input_label_cols = ['region'], data_split_method = 'NO_SPLIT') AS "
        "SELECT x1, x2, region FROM quadrants"
    )
    rows = project.sql("SELECT * FROM ML.PREDICT(MODEL regions, (SELECT x1, x2, region FROM quadrants))")
    assert [p["label"] for p in rows[0]["predicted_region_probs"]] == ["east", "middle", "west"]
    assert sum(r["predicted_region"] == r["region"] for r in rows) / len(rows) > 0.95
    [metrics] = project.sql("SELECT accuracy, roc_auc FROM ML.EVALUATE(MODEL regions, TABLE quadrants)")
    assert metrics["accuracy"] > 0.95 and metrics["roc_auc"] > 0.95


def test_linear_reg_recovers_a_line_and_l1_reg_shrinks_it(project: Project) -> None:
    project.sql(
        "CREATE MODEL line OPTIONS (model_type = 'linear_reg', input_label_cols = ['y']) AS "
        "SELECT * FROM linear"
    )
    [metrics] = project.sql("SELECT * FROM ML.EVALUATE(MODEL line)")
    assert list(metrics) == [
        "mean_absolute_error", "mean_squared_error", "mean_squared_log_error", "median_absolute_error",
        "r2_score", "explained_variance",
    ]  # fmt: skip
    assert metrics["r2_score"] > 0.99 and metrics["mean_absolute_error"] < 0.2
    [row] = project.sql("SELECT predicted_y FROM ML.PREDICT(MODEL line, (SELECT 1.0 AS x1, 1.0 AS x2))")
    assert row["predicted_y"] == pytest.approx(6.0, abs=0.1)

    project.sql(
        "CREATE MODEL flat OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'], l1_reg = 1e6) AS "
        "SELECT * FROM linear"
    )
    [flat] = project.sql("SELECT r2_score FROM ML.EVALUATE(MODEL flat)")
    assert flat["r2_score"] < 0.05  # so strong a penalty leaves only the intercept


def test_boosted_tree_regressor_learns_steps(project: Project) -> None:
    for kind in ("boosted_tree_regressor", "linear_reg"):
        project.sql(
            f"CREATE MODEL steps_{kind} OPTIONS (model_type = '{kind}', input_label_cols = ['level'], "
            "data_split_method = 'RANDOM', data_split_eval_fraction = 0.25) AS "
            "SELECT x1, x2, level FROM quadrants"
        )
    [trees] = project.sql("SELECT r2_score FROM ML.EVALUATE(MODEL steps_boosted_tree_regressor)")
    [line] = project.sql("SELECT r2_score FROM ML.EVALUATE(MODEL steps_linear_reg)")
    assert trees["r2_score"] > 0.9 and line["r2_score"] < 0.2


def test_training_warnings_come_back_as_notes(project: Project) -> None:
    [made] = project.sql(
        "CREATE MODEL hurried OPTIONS (model_type = 'logistic_reg', max_iterations = 1) AS "
        "SELECT x1, x2, label FROM quadrants"
    )
    assert made["notes"].startswith("ConvergenceWarning: lbfgs failed to converge")
    assert made["notes"].endswith("raise max_iterations")
    assert project.registry.show("shop", "hurried").training["notes"] == [made["notes"]]
