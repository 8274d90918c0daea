"""A statement kawa cannot run is refused with a message that names the problem and the fix; it is a
SQLError, so `kawa sql` prints it and the API answers 400."""

from __future__ import annotations

import pytest

from kawa.warehouse import SQLError

from .conftest import Project, separable

KMEANS = "CREATE MODEL m OPTIONS (model_type = 'kmeans'{extra}) AS SELECT x1, x2 FROM separable"
LOGISTIC = "CREATE MODEL m OPTIONS (model_type = 'logistic_reg'{extra}) AS SELECT {columns} FROM separable"
PREDICT = "SELECT * FROM ML.PREDICT(MODEL {model}, {rows})"

# id -> (statement, a regular expression its error message matches)
CASES = {
    "unknown model": (
        PREDICT.format(model="nope", rows="(SELECT 1 AS x1)"),
        r"ML.PREDICT\(MODEL nope\): no model 'nope' in project 'shop' \(its models: buyer, level, plain\); "
        r"make one with CREATE MODEL nope",
    ),
    "unknown option": (
        KMEANS.format(extra=", colour = 'red'"),
        "option colour is not valid for model_type='kmeans'; kmeans takes kmeans_init_method, "
        "max_iterations, num_clusters, standardize_features",
    ),
    "option of another model type": (
        LOGISTIC.format(extra=", learn_rate = 0.1", columns="*"),
        r"option learn_rate is not valid for model_type='logistic_reg' \(it applies to "
        r"boosted_tree_classifier, boosted_tree_regressor\); logistic_reg takes auto_class_weights, ",
    ),
    "value out of range": (
        KMEANS.format(extra=", num_clusters = 1"),
        r"num_clusters must be a number in \[2, 100\]; got 1",
    ),
    "value of the wrong type": (
        KMEANS.format(extra=", standardize_features = 'yes'"),
        "standardize_features must be TRUE or FALSE; got 'yes'",
    ),
    "no model type": (
        "CREATE MODEL m AS SELECT 1",
        r"OPTIONS \(model_type = ...\) is required; it is one of 'kmeans'",
    ),
    "unsupported model type": (
        "CREATE MODEL m OPTIONS (model_type = 'dnn_classifier') AS SELECT 1",
        "model_type 'dnn_classifier' is not supported; use one of 'kmeans', 'linear_reg'",
    ),
    "missing label column": (
        LOGISTIC.format(extra="", columns="x1, x2"),
        r"CREATE MODEL m: the training query has no label column 'label' \(its columns: x1, x2\); "
        r"select it, or name the label with OPTIONS \(input_label_cols = \['column'\]\)",
    ),
    "named label column missing": (
        LOGISTIC.format(extra=", input_label_cols = ['bought']", columns="*"),
        "no label column 'bought'",
    ),
    "no features": (
        LOGISTIC.format(extra="", columns="label"),
        "has only the label 'label'; select features",
    ),
    "one class": (LOGISTIC.format(extra="", columns="x1, 1 AS label"), "has a single class"),
    "unusable column type": (
        LOGISTIC.format(extra="", columns="x1, [x2] AS l, label"),
        r"column 'l' has type list<.*double>, which a model cannot take; .* CAST\(l AS DOUBLE\)",
    ),
    "no rows": (
        "CREATE MODEL m OPTIONS (model_type = 'kmeans') AS SELECT x1 FROM separable WHERE false",
        "CREATE MODEL m: the training query returned no rows",
    ),
    "too few distinct rows": (
        "CREATE MODEL m OPTIONS (model_type = 'kmeans', num_clusters = 3) AS SELECT 1 AS one",
        "needs at least 3 distinct rows; the training query gave 1",
    ),
    "training query fails": (
        "CREATE MODEL m OPTIONS (model_type = 'kmeans') AS SELECT nope FROM separable",
        "CREATE MODEL m: the query failed: Binder Error: .*nope",
    ),
    "model exists": (
        "CREATE MODEL buyer OPTIONS (model_type = 'kmeans') AS SELECT x1 FROM separable",
        r"already exists \(version 1\)",
    ),
    "feature column missing": (
        PREDICT.format(model="buyer", rows="(SELECT x1 FROM separable)"),
        r"ML.PREDICT\(MODEL buyer\): the query has no column x2; model 'buyer' takes x1, x2 "
        r"\(its columns: x1\)",
    ),
    "evaluation label missing": (
        "SELECT * FROM ML.EVALUATE(MODEL buyer, (SELECT x1, x2 FROM separable))",
        "the query has no label column 'label', which ML.EVALUATE compares",
    ),
    "unseen class": (
        "SELECT * FROM ML.EVALUATE(MODEL buyer, (SELECT x1, x2, 7 AS label FROM separable))",
        "400 rows have a null 'label' or a class the model never saw",
    ),
    "centroids of a classifier": (
        "SELECT * FROM ML.CENTROIDS(MODEL buyer)",
        "ML.CENTROIDS needs a k-means model; 'buyer' is a logistic_reg",
    ),
    "no standardised centroids": (
        "SELECT * FROM ML.CENTROIDS(MODEL plain, STRUCT(TRUE AS standardize))",
        "trained with standardize_features = FALSE",
    ),
    "threshold of a regressor": (
        PREDICT.format(model="level", rows="TABLE separable, STRUCT(0.7 AS threshold)"),
        "threshold applies to binary classifiers only",
    ),
    "threshold out of range": (
        PREDICT.format(model="buyer", rows="TABLE separable, STRUCT(2 AS threshold)"),
        "threshold must be a number from 0 to 1",
    ),
    "unknown setting": (
        PREDICT.format(model="buyer", rows="TABLE separable, STRUCT(1 AS cutoff)"),
        "unknown setting cutoff; it takes threshold",
    ),
    "threshold without rows": (
        "SELECT * FROM ML.EVALUATE(MODEL buyer, STRUCT(0.6 AS threshold))",
        "settings such as threshold need rows to evaluate",
    ),
    "predict without rows": (
        "SELECT * FROM ML.PREDICT(MODEL buyer)",
        r"needs the rows to score: add \(SELECT ...\) or TABLE t",
    ),
    "unsupported function": (
        "SELECT * FROM ML.WEIGHTS(MODEL buyer)",
        "ML.WEIGHTS at line 1, column 18 is not supported; kawa has ML.PREDICT, ML.EVALUATE, ML.CENTROIDS",
    ),
    "unclosed parenthesis": (
        "SELECT * FROM ML.PREDICT(MODEL buyer, (SELECT 1)",
        r"'\(' at line 1, column 25 is never closed",
    ),
    "no MODEL keyword": (
        "SELECT * FROM ML.PREDICT(buyer, (SELECT 1))",
        "expected MODEL name as the first argument of ML.PREDICT at line 1, column 26, found 'buyer'",
    ),
    "transform": (
        "CREATE MODEL m OPTIONS (model_type = 'kmeans') TRANSFORM (x1) AS SELECT 1",
        "the TRANSFORM clause is not supported",
    ),
    "replace and if not exists": (
        "CREATE OR REPLACE MODEL IF NOT EXISTS m OPTIONS (model_type = 'kmeans') AS SELECT 1",
        "contradict each other",
    ),
    "no query": ("CREATE MODEL m OPTIONS (model_type = 'kmeans')", "AS needs the training query"),
    "option twice": (
        "CREATE MODEL m OPTIONS (model_type = 'kmeans', model_type = 'kmeans') AS SELECT 1",
        "option model_type is given twice",
    ),
    "unclosed string (DuckDB's message)": (
        "CREATE MODEL m OPTIONS (model_type = 'kmeans') AS SELECT 'unclosed",
        "Parser Error: unterminated string literal",
    ),
    "bad name": ("CREATE MODEL bad/name OPTIONS (model_type = 'kmeans') AS SELECT 1", "expected OPTIONS"),
    "drop unknown": ("DROP MODEL nope", r"DROP MODEL nope: no model 'nope'"),
    "drop with more": ("DROP MODEL nope extra", "expected the end of DROP MODEL"),
}


@pytest.fixture(scope="module", autouse=True)
def models(project: Project) -> None:
    project.load("separable", separable())
    project.sql(
        "CREATE MODEL buyer OPTIONS (model_type = 'logistic_reg') AS SELECT x1, x2, label FROM separable"
    )
    project.sql(
        "CREATE MODEL plain OPTIONS (model_type = 'kmeans', standardize_features = FALSE) AS "
        "SELECT x1 FROM separable"
    )
    project.sql(
        "CREATE MODEL level OPTIONS (model_type = 'linear_reg', input_label_cols = ['x2']) AS "
        "SELECT x1, x2 FROM separable"
    )


@pytest.mark.parametrize(("sql", "expected"), list(CASES.values()), ids=list(CASES))
def test_bad_statements_say_what_is_wrong(project: Project, sql: str, expected: str) -> None:
    with pytest.raises(SQLError, match=expected):
        project.sql(sql)
    names = [m.name for m in project.registry.list_models("shop")]
    assert names == ["buyer", "level", "plain"]  # nothing half-made was registered


def test_a_model_name_the_registry_refuses_is_an_error(project: Project) -> None:
    with pytest.raises(SQLError, match=r"model name '\.hidden' must be 1-128 letters"):
        project.sql("CREATE MODEL \".hidden\" OPTIONS (model_type = 'kmeans') AS SELECT x1 FROM separable")
