"""The front end reads SQL as tokens: strings, quoted names and comments never hide or fake an ML.* call,
nested parentheses and semicolons inside strings are respected, and SQL without models reaches DuckDB as
it was written."""

from __future__ import annotations

import doctest
import importlib

import pytest

from kawa.sqlml import mentions_models
from kawa.sqlml.parse import CreateModel, DropModel, Query, ml_calls, split
from kawa.sqlml.scan import tokenize

from .conftest import Project, separable


@pytest.fixture(scope="module", autouse=True)
def model(project: Project) -> None:
    project.load("separable", separable())
    project.sql(
        "CREATE MODEL buyer OPTIONS (model_type = 'logistic_reg') AS SELECT x1, x2, label FROM separable"
    )


@pytest.mark.parametrize(
    "module",
    ["kawa.sqlml.errors", "kawa.sqlml.scan", "kawa.sqlml.parse", "kawa.sqlml.options", "kawa.sqlml.inputs",
     "kawa.sqlml.metrics", "kawa.sqlml.scope"],
)  # fmt: skip
def test_docstring_examples_run(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0


def test_lexical_forms() -> None:
    sql = (
        "SELECT 'a''b', E'c\\'d', $$e;f$$, $tag$g$tag$, \"h\"\"i\", `j.k`, 1_000, .5e3, $1, $name "
        "/* outer /* nested */ still comment */ -- to the end\n;"
    )
    kinds = [(t.kind, t.text) for t in tokenize(sql)]
    assert kinds == [
        ("word", "SELECT"), ("string", "a'b"), ("symbol", ","), ("string", "c'd"), ("symbol", ","),
        ("string", "e;f"), ("symbol", ","), ("string", "g"), ("symbol", ","), ("name", 'h"i'),
        ("symbol", ","),
        ("name", "j.k"), ("symbol", ","), ("number", "1_000"), ("symbol", ","), ("number", ".5e3"),
        ("symbol", ","), ("param", "$1"), ("symbol", ","), ("param", "$name"), ("symbol", ";"),
    ]  # fmt: skip


def test_models_hidden_in_strings_names_and_comments_are_not_calls() -> None:
    hidden = [
        "SELECT 'ML.PREDICT(MODEL m, (SELECT 1))' AS s",
        'SELECT 1 AS "ML.PREDICT(MODEL m)" -- ML.EVALUATE(MODEL m)',
        "/* CREATE MODEL m OPTIONS (model_type = 'kmeans') AS SELECT 1 */ SELECT model FROM t",
        "SELECT $$DROP MODEL m$$, html.ml FROM pages AS html",
    ]
    for sql in hidden:
        assert not mentions_models(sql), sql
        assert ml_calls(sql) == []
        assert [type(s) for s in split(sql)] == [Query]


def test_statements_split_on_semicolons_outside_strings() -> None:
    found = split(
        "create or replace model `my.m` options (model_type = 'kmeans', note = 'a;b') as select ';' as x; "
        "DROP MODEL IF EXISTS m2; SELECT ')'"
    )
    assert found == [
        CreateModel("my.m", "select ';' as x", {"model_type": "kmeans", "note": "a;b"}, replace=True),
        DropModel("m2", if_exists=True),
        Query("SELECT ')'"),
    ]


def test_option_values() -> None:
    [create] = split(
        "CREATE MODEL IF NOT EXISTS d.m OPTIONS (a = -1, b = 2.5, c = TRUE, d = NULL, e = ['x', 'y'], "
        "f = ARRAY['z'], \"G\" = 1e-3) AS (SELECT 1)"
    )
    assert create == CreateModel(
        "d.m", "(SELECT 1)",
        {"a": -1, "b": 2.5, "c": True, "d": None, "e": ["x", "y"], "f": ["z"], "g": 0.001},
        if_not_exists=True,
    )  # fmt: skip


def test_an_ml_call_with_tricky_text_inside_runs(project: Project) -> None:
    rows = project.sql(
        """
        -- a comment that says ML.PREDICT(MODEL nope, (SELECT 1))
        SELECT 'ML.CENTROIDS(MODEL nope)' AS note, p.predicted_label, p.paren, p."semi;colon"
        FROM ml.predict(MODEL "buyer", (
            SELECT x1, x2, ')' AS paren, 'a;b' AS "semi;colon"
            FROM separable WHERE label IN (SELECT 1) AND x1 > (0.5)  /* ) */
        )) AS p
        ORDER BY x1 DESC
        LIMIT 2
        """
    )
    assert len(rows) == 2
    for row in rows:
        assert row == {
            "note": "ML.CENTROIDS(MODEL nope)",
            "predicted_label": 1,
            "paren": ")",
            "semi;colon": "a;b",
        }


def test_calls_nest_and_scripts_run_in_order(project: Project) -> None:
    rows = project.sql(
        "CREATE TEMP TABLE picked AS SELECT * FROM separable WHERE x1 > 1; "
        "CREATE OR REPLACE MODEL again "
        "OPTIONS (model_type = 'logistic_reg', input_label_cols = ['predicted_label']) "
        "AS SELECT x1, x2, predicted_label FROM ML.PREDICT(MODEL buyer, TABLE separable); "
        "SELECT count(*) AS n, sum(predicted_predicted_label) AS positives FROM ML.PREDICT(MODEL again, "
        "(SELECT x1, x2 FROM ML.PREDICT(MODEL buyer, TABLE picked)))"
    )
    picked = project.sql("SELECT count(*) AS n FROM separable WHERE x1 > 1")[0]["n"]
    assert rows[0]["n"] == picked and rows[0]["positives"] > picked * 0.8


def test_sql_without_models_is_untouched(project: Project) -> None:
    assert project.sql("SELECT 'ML.PREDICT' AS model; SELECT 2 AS two") == [{"two": 2}]
    assert project.sql("SELECT * FROM range(5)", limit=2) == [{"range": 0}, {"range": 1}]
    assert project.sql("SELECT * FROM ML.EVALUATE(MODEL buyer)", limit=1)[0]["roc_auc"] > 0.99


def test_the_query_of_a_call_sees_the_with_clause_before_it(project: Project) -> None:
    rows = project.sql(
        """
        WITH wide AS (SELECT x1, x2, label FROM separable),
             high AS (SELECT * FROM wide WHERE x1 > 1),
             scored AS (SELECT * FROM ML.PREDICT(MODEL buyer, (SELECT x1, x2 FROM high)))
        SELECT (SELECT count(*) FROM scored) AS scored,
               (SELECT count(*) FROM high) AS high,
               e.accuracy
        FROM ML.EVALUATE(MODEL buyer, (WITH low AS (SELECT * FROM wide WHERE x1 < -1) SELECT * FROM low)) AS e
        """
    )
    [counts] = project.sql(
        "SELECT count(*) FILTER (x1 > 1) AS high, count(*) FILTER (x1 < -1) AS low FROM separable"
    )
    assert rows[0]["scored"] == rows[0]["high"] == counts["high"] > 0
    [low] = project.sql(
        "SELECT accuracy FROM ML.EVALUATE(MODEL buyer, (SELECT * FROM separable WHERE x1 < -1))"
    )
    assert rows[0]["accuracy"] == low["accuracy"]


def test_a_later_statement_sees_the_replaced_model_and_the_changed_rows(project: Project) -> None:
    train = (
        "CREATE OR REPLACE MODEL slope OPTIONS (model_type = 'linear_reg', input_label_cols = ['y']) "
        "AS SELECT i::DOUBLE AS x, i * {k}.0 AS y FROM range(10) t(i)"
    )
    score = "(SELECT predicted_y FROM ML.PREDICT(MODEL slope, TABLE points))"
    rows = project.sql(
        f"{train.format(k=2)}; CREATE TEMP TABLE points AS SELECT 1.0 AS x; "
        f"CREATE TEMP TABLE first AS SELECT * FROM {score}; "
        f"{train.format(k=5)}; CREATE TEMP TABLE second AS SELECT * FROM {score}; "
        f"UPDATE points SET x = 2.0; "
        f"SELECT (SELECT predicted_y FROM first) AS a, (SELECT predicted_y FROM second) AS b, "
        f"(SELECT predicted_y FROM {score}) AS c"
    )
    assert rows[0] == pytest.approx({"a": 2.0, "b": 5.0, "c": 10.0})
